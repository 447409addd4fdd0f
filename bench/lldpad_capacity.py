"""Benchmark: one real lldpad station asking for K associations in a row, each kept alive.

Runs the controller and the default data center, lldpad on srv11 and K vdptool Associates one
after another (distinct VSI UUIDs and MACs, VID 0, type 5 v4 of policies/default.yaml, which has
no per-port limit), timing each vdptool (`-W`: until the bridge's response reached the station,
at most vdptool's own 5 s). Then it holds the VSIs for a while (--hold, by default one
keep-alive period, so that every VSI is refreshed at least once) and checks that none expired:
the controller's `vsi.expired` events, the associations it holds, the VSIs lldpad holds.

lldpad's ECP sends one VSI per PDU and one PDU per 10us*2^RTE (164 ms): a station keeps at most
period/164 ms VSIs refreshed (docs/evb-timers.md). The bridge's RKA (the negotiated one is the
larger of both sides', so the bridge decides) is chosen so that K VSIs' keep-alives take at most
half of the station's ECP (--rka to force one). Debian's lldpad 1.1+git20221028 crashes when
asked for about its 355th VSI on one interface: the benchmark then stops and reports
`lldpad_exit` -11 (docs/evb-timers.md). Prints JSON.

    .venv/bin/python -m bench.lldpad_capacity [--vms 1000] [--rka N] [--hold SECONDS]
"""

import argparse
import collections
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.config import Settings
from app.session.evb_negotiation import evb_duration
from bench.stats import percentile
from topologies.controller_process import ControllerProcess, free_port
from topologies.datacenter import datacenter
from topologies.shell import CommandError, in_host, run
from topologies.station import parse_vdptool

SERVER, EDGE_PORT = "srv11", "edge1-s1"
MANAGER, TYPE_ID, TYPE_VERSION = "mgr1", 5, 4
STATION_RTE = 14  # lldpad's default ecprte (topologies/station.py)
KEEPALIVE_SHARE = 0.5  # the most of the station's ECP the keep-alives may take
WINDOW = 100  # the first and last WINDOW requests are compared


def vsi_uuid(n: int) -> str:
    # lldpad needs a non-zero byte among the UUID's first 8.
    return f"ca9ac170-{n >> 16:04x}-0000-0000-{n & 0xFFFF:012x}"


def vsi_mac(n: int) -> str:
    return f"52:54:00:c9:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def rka_for(vms: int, rte: int = STATION_RTE) -> int:
    """The smallest RKA (not below the controller's default) at which `vms` keep-alives take at
    most KEEPALIVE_SHARE of a station's ECP (one PDU per 10us*2^RTE)."""
    rka = Settings().evb_rka
    while vms * evb_duration(rte) > KEEPALIVE_SHARE * evb_duration(rka):
        rka += 1
    return rka


def median_ms(values) -> float | None:
    return round(1000 * statistics.median(values), 1) if values else None


class Controller:
    """What the bench reads from the controller's REST API."""

    def __init__(self, ctl: ControllerProcess):
        self.ctl = ctl

    def station(self) -> dict | None:
        return next((s for s in self.ctl.rest("/v1/stations") if s.get("port") == EDGE_PORT), None)

    def event_kinds(self, prefix: str) -> collections.Counter:
        kinds, after = collections.Counter(), 0
        while True:
            page = self.ctl.rest(f"/v1/events?kind={prefix}&after={after}&limit=1000")
            kinds.update(event["kind"] for event in page)
            if len(page) < 1000:
                return kinds
            after = page[-1]["id"]

    def associated(self, uuids: set) -> int:
        return sum(
            1
            for vsi in self.ctl.rest("/v1/associations")
            if vsi["vsi_id"] in uuids and vsi["state"] == "associated"
        )


def station_holds(station, uuids) -> int | None:
    """How many of the VSIs lldpad holds, asked one VSI at a time (lldpad answers `vdptool -t`
    in one 4 KiB message, empty once the station holds more than about 20 VSIs); None if
    lldpad does not answer."""
    held = 0
    for uuid in uuids:
        try:
            vsis = station.query(uuid=uuid)
        except CommandError:
            return None
        held += any(vsi.get("uuid") == uuid and vsi.get("mode") == "assoc" for vsi in vsis)
    return held


_STAMP = r"^(\d\d):(\d\d):(\d\d\.\d+) "
_BUILT = re.compile(_STAMP + r"ecp22_build_ecpdu:\S+ seqno (0x[0-9a-f]+)")
_SENT = re.compile(_STAMP + r"hexdump_frame:\S+ ecp-out")
_ACKED = re.compile(_STAMP + r"ecp22_rx_receiveframe:\S+ received ACK frame seqno (0x[0-9a-f]+)")


def _seconds(match) -> float:
    return int(match.group(1)) * 3600 + int(match.group(2)) * 60 + float(match.group(3))


def station_ecp(log: str) -> dict:
    """The station's side of ECP from lldpad's debug log: the PDUs it sent, how many it had to
    retransmit (no ACK within its timer), and how long the bridge's ACKs took."""
    first_sent, transmissions, ack_delays, current = {}, collections.Counter(), [], None
    for line in log.splitlines():
        if match := _BUILT.match(line):
            current = int(match.group(4), 16)
            first_sent.pop(current, None)  # sequence numbers wrap: a new PDU
        elif (match := _SENT.match(line)) and current is not None:
            first_sent.setdefault(current, _seconds(match))
            transmissions[current] += 1
        elif (match := _ACKED.match(line)) and (seq := int(match.group(4), 16)) in first_sent:
            ack_delays.append(_seconds(match) - first_sent.pop(seq))
    return {
        "pdus": len(transmissions),
        "retransmitted": sum(1 for n in transmissions.values() if n > 1),
        "ack_ms": {
            "median": median_ms(ack_delays),
            "p95": round(1000 * percentile(ack_delays, 0.95), 1) if ack_delays else None,
            "max": round(1000 * max(ack_delays), 1) if ack_delays else None,
        },
    }


def new_pdus(station: dict) -> int:
    """The ECP PDUs a station sent so far, retransmissions left out."""
    counters = station.get("counters", {})
    return counters.get("ecp_req", 0) - counters.get("duplicates", 0)


def timed(argv, timeout=15):
    """Seconds argv ran and its CompletedProcess (exit code -1 if it had to be killed)."""
    start = time.monotonic()
    try:
        proc = run(argv, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        proc = subprocess.CompletedProcess(argv, -1, "", f"killed after {timeout} s")
    return time.monotonic() - start, proc


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000, help="associations asked (default 1000)")
    parser.add_argument(
        "--rka",
        type=int,
        help="the bridge's RKA (default: the smallest at "
        f"which the VMs' keep-alives take at most {KEEPALIVE_SHARE:.0%} of the "
        "station's ECP, not below the controller's default)",
    )
    parser.add_argument(
        "--hold",
        type=float,
        help="seconds to hold the VSIs after the last "
        "request (default: one keep-alive period + 10 s)",
    )
    parser.add_argument("--policies-dir", default="policies")
    args = parser.parse_args(argv)
    rka = args.rka if args.rka is not None else rka_for(args.vms)
    hold = args.hold if args.hold is not None else evb_duration(rka) + 10
    work = Path(tempfile.mkdtemp(prefix="bench-lldpad-capacity-"))
    uuids = {vsi_uuid(n) for n in range(1, args.vms + 1)}
    waits, outcomes, errors = [], collections.Counter(), collections.Counter()
    with (
        ControllerProcess(
            work,
            of_port=free_port(),
            rest_port=free_port(),
            extra_args=("--evb-rka", str(rka), "--policies-dir", args.policies_dir),
        ) as ctl,
        datacenter(controller_port=ctl.of_port) as dc,
    ):
        api = Controller(ctl)
        station = dc.add_station(SERVER)
        if not station.wait_vdp_ready(15):
            sys.exit("station never enabled VDP")
        agreement = (api.station() or {}).get("agreement") or {}
        started = time.monotonic()
        for n in range(1, args.vms + 1):
            command = station.vdptool_argv(
                "assoc", MANAGER, TYPE_ID, TYPE_VERSION, vsi_uuid(n), filters=[f"0-{vsi_mac(n)}"]
            )
            waited, proc = timed(command)
            waits.append(waited)
            result = parse_vdptool(
                proc.stdout + proc.stderr, waited=True, returncode=proc.returncode
            )
            if result.ok and result.fields.get("mode") == "assoc":
                outcomes["granted"] += 1
            elif result.ok:  # vdptool prints a refused VSI as de-associated
                outcomes["refused"] += 1
            else:
                outcomes["failed"] += 1
                errors[result.error] += 1
            if station.returncode() is not None:
                # lldpad 1.1+git20221028 dies (SIGSEGV) when asked for its ~355th VSI: the
                # requests after that would only measure vdptool failing to connect.
                waits.pop()
                break
        requests_done = time.monotonic()
        if station.returncode() is not None:
            hold = 0.0  # no station left to send keep-alives
        before_hold = api.station() or {}
        time.sleep(hold)
        after_hold = api.station() or {}
        vsi_events = api.event_kinds("vsi.")
        ecp_events = api.event_kinds("ecp.")
        held_by_controller = api.associated(uuids)
        lldpad_exit = station.returncode()  # None: still running (-11: it crashed)
        held_by_station = station_holds(station, sorted(uuids))
        # vdptool's own cost: a query the bridge is not involved in, and nsenter alone.
        query = in_host(dc.server(SERVER)) + [
            "vdptool",
            "-i",
            station.ifname,
            "-t",
            "-V",
            "assoc",
            "-c",
            f"uuid={vsi_uuid(1)}",
        ]
        query_ms = median_ms([timed(query)[0] for _ in range(10)]) if lldpad_exit is None else None
        nsenter_ms = median_ms([timed(in_host(dc.server(SERVER)) + ["true"])[0] for _ in range(10)])
        station_log = shutil.copy(station.log_path, work / station.log_path.name)
        lldpad_ecp = station_ecp(Path(station_log).read_text(errors="replace"))
    counters = after_hold.get("counters", {})
    first, last = waits[:WINDOW], waits[-WINDOW:]
    print(
        json.dumps(
            {
                "benchmark": "lldpad_station_capacity",
                "vms": args.vms,
                "requests_sent": outcomes.total(),
                "bridge_rka": rka,
                "negotiated": {
                    key: agreement.get(key)
                    for key in (
                        "r",
                        "rte",
                        "rwd",
                        "rka",
                        "keepalive_interval",
                        "bridge_keepalive_timeout",
                    )
                },
                "keepalive_share_of_station_ecp": round(
                    args.vms
                    * evb_duration(agreement.get("rte", STATION_RTE))
                    / evb_duration(agreement.get("rka", rka)),
                    3,
                ),
                "granted": outcomes["granted"],
                "refused": outcomes["refused"],
                "failed": outcomes["failed"],
                "failures": dict(errors.most_common(5)),
                "vsi_expired": vsi_events.get("vsi.expired", 0),
                "vsi_events": dict(vsi_events),
                "ecp_events": dict(ecp_events),
                "vdptool_wait_ms": {
                    f"median_first_{WINDOW}": median_ms(first),
                    f"median_last_{WINDOW}": median_ms(last),
                    "ratio_last_to_first": round(
                        statistics.median(last) / statistics.median(first), 2
                    )
                    if waits
                    else None,
                    "p95": round(1000 * percentile(waits, 0.95), 1) if waits else None,
                    "max": round(1000 * max(waits), 1) if waits else None,
                    f"median_per_{WINDOW}": [
                        median_ms(waits[i : i + WINDOW]) for i in range(0, len(waits), WINDOW)
                    ],
                },
                "requests_duration_s": round(requests_done - started, 1),
                "requests_per_s": round(outcomes.total() / (requests_done - started), 2),
                "hold_s": round(hold, 1),
                "keepalives_during_hold": new_pdus(after_hold) - new_pdus(before_hold),
                "held_after": {
                    "controller_associated": held_by_controller,
                    "station_vsis": held_by_station,
                },
                "lldpad_exit": lldpad_exit,  # None: it ran to the end; -11: it crashed (SIGSEGV)
                "ecp": {
                    key: counters.get(key)
                    for key in (
                        "ecp_req",
                        "duplicates",
                        "retransmits",
                        "gave_up",
                        "ecp_req_tx",
                        "ecp_ack_tx",
                        "acks_unexpected",
                    )
                },
                "lldpad_ecp": lldpad_ecp,
                "vdptool_query_ms": query_ms,
                "nsenter_true_ms": nsenter_ms,
                "controller_log": str(ctl.log_path),
                "station_log": str(station_log),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
