"""Benchmark: the data-plane gap of a VM migration driven by VDP (by default libvirt's order:
Pre-Associate at the destination, the move, De-Associate at the source, Associate at the
destination).

The move is QEMU's (topologies/migration.py): the VM's copy waits paused on the destination,
the source stops, the copy resumes and announces its MAC with RARP frames. A peer VM pings the
migrating VM at 1,000 packets/s throughout; for each migration the gap is the longest interval
without a reply and the number of lost packets. After each migration every switch is checked
for flows left where the VM no longer is. Prints JSON: the summary, then one line per move with
its steps (ms from the previous step), and the time from the VM's first RARP to the
controller's `vsi.activated` event (null when the controller reports none). Progress goes to
stderr.

--precopy-ms is live migration's memory copy: the time the paused copy waits before the source
stops (the Pre-Associate is sent when the destination QEMU starts, before it). --trace captures
the server ports and adds, per VDP request, where its time went (bench/vdp_trace.py). --ecp-rte
sets the ECP retransmission exponent of the controller and of every lldpad station (each side
uses the larger of the two): lldpad sends a station's next PDU one ACK timer after the previous.

    .venv/bin/python -m bench.migration [--migrations 20] [--order vdp|associate-first|cancelled]
        [--precopy-ms 1000] [--trace] [--ecp-rte N]
"""

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.error
from datetime import datetime
from itertools import pairwise
from pathlib import Path

from bench.stats import summary
from bench.vdp_trace import CAPTURE_FILTER, MODES, rarp_times, request_timing, vdp_on_wire
from topologies.capture import Capture
from topologies.controller_process import ControllerProcess, free_port
from topologies.datacenter import datacenter
from topologies.migration import ORDERS, flows_follow, migrate, start_vm
from topologies.probe import start_probe, stop_probe

PROBE_RATE = 1000  # packets/s
BEFORE_MOVE = 0.3  # s of probe traffic before the migration starts
AFTER_MOVE = 0.5  # s of probe traffic after its last step


def steps_ms(marks):
    """{step: ms since the previous step} from {step: time.monotonic()}, in time order."""
    ordered = sorted(marks.items(), key=lambda kv: kv[1])
    return {step: round(1000 * (at - before), 1) for (_, before), (step, at) in pairwise(ordered)}


def rarp_to_activated_ms(events, vsi_id, resumed_wall):
    """ms from the first RARP (wall clock) to the controller's vsi.activated event of vsi_id,
    None if there is none."""
    for event in events:
        if event["kind"] == "vsi.activated" and event["detail"].get("vsi", vsi_id) == vsi_id:
            return round(1000 * (event["ts"] - resumed_wall), 1)
    return None


def trace_move(wires, vsi_id, marks_wall, destination, stations_of):
    """Per VDP step of one move, where its time went (request_timing, on the port of the station
    that made it: stations_of[step], else the destination), and from the resume to the first
    RARP on the destination's port, with the number of RARPs."""
    ordered = sorted(marks_wall.items(), key=lambda kv: kv[1])
    traced = {}
    for (_, called), (step, returned) in pairwise(ordered):
        if step in MODES:
            wire = wires[stations_of.get(step, destination)][0]
            traced[step] = request_timing(wire, vsi_id, step, called, returned)
    if "resumed" in marks_wall:
        resumed = marks_wall["resumed"]
        seen = [ts for ts in wires[destination][1] if resumed - 0.01 <= ts < resumed + 2]
        traced["rarp_on_wire"] = round(1000 * (seen[0] - resumed), 1) if seen else None
        traced["rarps"] = len(seen)
    return traced


def trace_medians(moves):
    """{step: {field: median ms}} over the moves' traces, and how many times in all the stations
    retransmitted a request of the moves."""
    values, retransmissions = {}, 0
    for move in moves:
        for step, timing in move.get("trace_ms", {}).items():
            if not isinstance(timing, dict):
                continue
            retransmissions += timing["sent"] - 1
            for field, ms in timing.items():
                if field != "sent" and ms is not None:
                    values.setdefault(step, {}).setdefault(field, []).append(ms)
    medians = {
        step: {field: round(statistics.median(v), 1) for field, v in fields.items()}
        for step, fields in values.items()
    }
    return {**medians, "station_retransmissions": retransmissions}


def controller_record(records, start_wall, end_wall):
    """The controller's record (GET /v1/migrations) of the migration that started between
    start_wall and end_wall, compact: outcome, order, ms of each step since the previous one,
    activation; None if it has none."""
    for record in records:
        started = datetime.fromisoformat(record["started"]).timestamp()
        if start_wall <= started <= end_wall:
            return {
                "outcome": record["outcome"],
                "order": record["order_name"],
                "steps_ms": {step["step"]: step["ms"] for step in record["steps"]},
                "activation": record.get("activation"),
            }
    return None


def dump(report):
    """The report as JSON, each move on one line: readable at 50 moves."""
    lines = [f" {json.dumps(k)}: {json.dumps(v)}" for k, v in report.items() if k != "moves"]
    moves = ",\n  ".join(json.dumps(move) for move in report["moves"])
    lines.append(f' "moves": [\n  {moves}\n ]')
    return "{\n" + ",\n".join(lines) + "\n}"


def _rest_or_none(ctl, path):
    """A REST answer; None where the controller has no such resource (yet), the error where it
    failed: the measurements made before are reported either way."""
    try:
        return ctl.rest(path)
    except urllib.error.HTTPError as error:
        return None if error.code in (404, 405) else {"error": f"HTTP {error.code}"}


def _last_event_id(ctl):
    latest = ctl.rest("/v1/events?latest=1&limit=1")
    return latest[-1]["id"] if latest else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--order", choices=ORDERS, default="vdp")
    parser.add_argument("--precopy-ms", type=float, default=1000.0)
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--ecp-rte", type=int, help="default: each side's own (14)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    moves, stale, failed = [], [], 0
    timings, wires = [], {}  # per move (for --trace); per server: (VDP on its port, RARPs)
    windows = []  # per move: its wall-clock window, to find the controller's record of it
    with (
        ControllerProcess(
            work,
            of_port=free_port(),
            rest_port=free_port(),
            extra_args=() if args.ecp_rte is None else ("--evb-rte", str(args.ecp_rte)),
        ) as ctl,
        datacenter(controller_port=ctl.of_port) as dc,
    ):
        rte = {} if args.ecp_rte is None else {"ecprte": args.ecp_rte}
        stations = {srv.name: dc.add_station(srv.name, **rte) for srv in dc.spec.servers}
        if not all(s.wait_vdp_ready(15) for s in stations.values()):
            sys.exit("a station never enabled VDP")
        peer = start_vm(
            dc,
            stations,
            "peer",
            "srv21",
            "52:54:00:00:0b:01",
            "10.0.0.201/24",
            "b0b0b0b0-0000-0000-0000-000000000201",
        )
        mover = start_vm(
            dc,
            stations,
            "mover",
            "srv11",
            "52:54:00:00:0b:02",
            "10.0.0.202/24",
            "b0b0b0b0-0000-0000-0000-000000000202",
        )
        if not peer.vm.wait_reachable(mover.vm.address, timeout=5):
            sys.exit("the peer cannot reach the VM before any migration")
        servers = ("srv11", "srv22")  # the mover moves between these two
        captures = contextlib.ExitStack()
        if args.trace:
            pcaps = {
                srv: captures.enter_context(
                    Capture(dc.spec.server(srv).edge_port, CAPTURE_FILTER, work / f"{srv}.pcap")
                )
                for srv in servers
            }
        with captures:
            for n in range(args.migrations):
                source = mover.server
                destination = servers[1] if source == servers[0] else servers[0]
                seen = _last_event_id(ctl)
                stream = start_probe(peer.vm.netns, mover.vm.address, rate=PROBE_RATE)
                time.sleep(BEFORE_MOVE)
                marks = {}
                wall_offset = time.time() - time.monotonic()
                results = migrate(
                    dc,
                    stations,
                    mover,
                    destination,
                    order=args.order,
                    marks=marks,
                    precopy=args.precopy_ms / 1000,
                )
                time.sleep(AFTER_MOVE)
                probe = stop_probe(stream)
                failed += not all(r.ok for r in results.values())
                problem = flows_follow(dc, mover)
                if problem:
                    stale.append(problem)
                events = ctl.rest(f"/v1/events?kind=vsi.&after={seen}&limit=1000")
                marks_wall = {step: at + wall_offset for step, at in marks.items()}
                move = {
                    "n": n + 1,
                    "to": destination,
                    "gap_ms": probe["max_gap_ms"],
                    "lost": probe["lost"],
                    "vdp_ok": {step: r.ok for step, r in results.items()},
                    "steps_ms": steps_ms(marks),
                    "rarp_to_activated_ms": (
                        rarp_to_activated_ms(events, mover.uuid, marks_wall["resumed"])
                        if "resumed" in marks
                        else None
                    ),
                }
                moves.append(move)
                print(json.dumps(move), file=sys.stderr, flush=True)
                # which station made each request: the source only De-Associates in libvirt's order
                stations_of = {"deassoc": source} if args.order == "vdp" else {}
                timings.append((move, marks_wall, destination, stations_of))
                windows.append((move, marks_wall["start"], time.time()))
        if args.trace:
            for srv, cap in pcaps.items():
                frames = cap.timed_frames()
                mac = dc.server(srv).defaultIntf().MAC()
                wires[srv] = (vdp_on_wire(frames, mac), rarp_times(frames, mover.vm.mac))
            for move, marks_wall, destination, stations_of in timings:
                move["trace_ms"] = trace_move(
                    wires, mover.uuid, marks_wall, destination, stations_of
                )
        ecp = {
            key: sum(s["counters"].get(key, 0) for s in ctl.rest("/v1/stations"))
            for key in ("retransmits", "gave_up", "duplicates")
        }
        records = _rest_or_none(
            ctl, f"/v1/migrations?vsi={mover.uuid}&limit={max(1, args.migrations)}"
        )
        for move, start_wall, end_wall in windows:
            move["controller"] = (
                controller_record(records, start_wall, end_wall)
                if isinstance(records, list)
                else records
            )
    gaps = [m["gap_ms"] for m in moves if m["gap_ms"] is not None]
    losses = [m["lost"] for m in moves]
    steps = {}
    for move in moves:
        for step, ms in move["steps_ms"].items():
            steps.setdefault(step, []).append(ms)
    activation = [m["rarp_to_activated_ms"] for m in moves if m["rarp_to_activated_ms"] is not None]
    report = {
        "benchmark": "migration_gap",
        "order": args.order,
        "migrations": args.migrations,
        "precopy_ms": args.precopy_ms,
        "ecp_rte": args.ecp_rte,
        "vdp_failures": failed,
        "probe_rate_pps": PROBE_RATE,
        "gap_ms": summary(gaps),
        "lost_packets": {
            "median": statistics.median(losses),
            "max": max(losses),
            "total": sum(losses),
        },
        "step_ms_median": {step: round(statistics.median(v), 1) for step, v in steps.items()},
        "rarp_to_activated_ms": summary(activation, digits=1),
        "trace_ms_median": trace_medians(moves) if args.trace else None,
        "gaps_ms": gaps,
        # our retransmissions toward the stations, give-ups, duplicates seen
        "bridge_ecp": ecp,
        "stale_flows": len(stale),
        "stale_detail": stale[:3],
        # per move, "controller": its record in the controller's migration log (null: none)
        "moves": moves,
    }
    print(dump(report))


if __name__ == "__main__":
    main()
