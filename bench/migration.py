"""Benchmark: the data-plane gap of a VM migration driven by VDP (libvirt's order: Pre-Associate
at the destination, the move, De-Associate at the source, Associate at the destination).

A peer VM pings the migrating VM at 1,000 packets/s throughout; for each migration the gap is
the longest interval without a reply and the number of lost packets. After each migration every
switch is checked for flows left where the VM no longer is. Prints JSON.

    .venv/bin/python -m bench.migration [--migrations 20] [--order vdp|associate-first]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from itertools import pairwise
from pathlib import Path

from bench.stats import summary
from topologies.controller_process import ControllerProcess, free_port
from topologies.datacenter import datacenter
from topologies.migration import flows_follow, migrate, start_vm
from topologies.probe import start_probe, stop_probe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--migrations", type=int, default=20)
    parser.add_argument("--order", choices=["vdp", "associate-first"], default="vdp")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-migration-"))
    gaps, losses, stale, failed = [], [], [], 0
    steps = {}  # step -> durations (ms) from the previous step
    with (
        ControllerProcess(work, of_port=free_port(), rest_port=free_port()) as ctl,
        datacenter(controller_port=ctl.of_port) as dc,
    ):
        stations = {srv.name: dc.add_station(srv.name) for srv in dc.spec.servers}
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
        for _ in range(args.migrations):
            destination = "srv22" if mover.server == "srv11" else "srv11"
            stream = start_probe(peer.vm.netns, mover.vm.address)
            time.sleep(0.3)
            marks = {}
            results = migrate(dc, stations, mover, destination, order=args.order, marks=marks)
            ordered = sorted(marks.items(), key=lambda kv: kv[1])
            for (_, before), (step, at) in pairwise(ordered):
                steps.setdefault(step, []).append(1000 * (at - before))
            failed += not all(r.ok for r in results.values())
            time.sleep(0.5)
            result = stop_probe(stream)
            gaps.append(result["max_gap_ms"])
            losses.append(result["lost"])
            problem = flows_follow(dc, mover)
            if problem:
                stale.append(problem)
        ecp = {
            key: sum(s["counters"].get(key, 0) for s in ctl.rest("/v1/stations"))
            for key in ("retransmits", "gave_up", "duplicates")
        }
    measured = [g for g in gaps if g is not None]
    print(
        json.dumps(
            {
                "benchmark": "migration_gap",
                "order": args.order,
                "migrations": args.migrations,
                "vdp_failures": failed,
                "probe_rate_pps": 1000,
                "gap_ms": summary(measured),
                "lost_packets": {
                    "median": statistics.median(losses),
                    "max": max(losses),
                    "total": sum(losses),
                },
                "step_ms_median": {
                    step: round(statistics.median(v), 1) for step, v in steps.items()
                },
                "gaps_ms": gaps,
                # our retransmissions toward the stations, give-ups, duplicates seen
                "bridge_ecp": ecp,
                "stale_flows": len(stale),
                "stale_detail": stale[:3],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
