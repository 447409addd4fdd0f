"""Benchmark: what the intent audit (app/fabric/audit.py) costs the controller, in process, at
the scale bench's size.

--edges edge switches under one aggregation switch, --vms VMs of the demo's web type spread
over them (32 server ports each), every switch holding exactly its intent (base pipeline and
VM flows and meters, as FlowProgrammer plans them). IntentAudit passes over every switch, as
the controller runs them: each request's reply built as the switch sends it (64 KiB parts),
then timed: os-ken parsing it (with the controller's flow stats body parser, on os-ken's
receive thread) and the audit judging it (a digest; when it differs from the last in sync, the
piece's intent and the comparison; under the controller's lock). The first pass compares every
piece with the intent, the tables' sizes not known yet (as after a start); the second too,
every switch having been sent changes (as under a stream of Associates), its tables sliced; the
next ones judge by digest (switches nobody changed). Prints JSON: per pass the requests, flows
read and CPU; CPU per request (mean and max: the longest the lock is held) and per flow, of the
last pass; at --rate requests a second, the pass's length and the share of one core it takes.

    .venv/bin/python -m bench.audit_cost [--edges 64] [--vms 20000] [--rate 10] [--passes 3]
"""

import argparse
import json
import platform
import statistics
import struct
import time

from os_ken.ofproto import ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric.audit import IntentAudit, Piece, PieceIntent
from app.fabric.links import Topology
from app.fabric.ports import Port, PortRef, PortRole
from app.fabric.xids import Xids
from app.flows import flow_stats_wire
from app.flows.base_pipeline import base_flows, base_meters
from app.flows.programmer import FlowProgrammer
from bench.stats_cost import (
    AGG,
    EDGE,
    Datapath,
    flow_entry_octets,
    multipart_reply_parts,
    web_bindings,
)

UPLINK = 1000
_METER_CONFIG = struct.Struct("!HHI")
_DROP_BAND = struct.Struct("!HHII4x")


def _ports(dpid: int, edges: int) -> list[Port]:
    mac = "02:00:00:00:00:01"
    if dpid == AGG:
        return [Port(n, f"agg1-dn{n}", mac, PortRole.TRUNK, True) for n in range(1, edges + 1)]
    return [
        *(Port(n, f"e{dpid}-s{n}", mac, PortRole.SERVER, True) for n in range(1, 33)),
        Port(UPLINK, f"e{dpid}-up1", mac, PortRole.TRUNK, True),
    ]


def _meter_octets(meter_id: int, spec) -> bytes:
    band = _DROP_BAND.pack(ofp.OFPMBT_DROP, _DROP_BAND.size, spec.rate, spec.burst)
    return _METER_CONFIG.pack(_METER_CONFIG.size + len(band), spec.flags, meter_id) + band


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--edges", type=int, default=64)
    cli.add_argument("--vms", type=int, default=20000)
    cli.add_argument("--rate", type=float, default=10.0, help="audit requests a second")
    cli.add_argument("--passes", type=int, default=3)
    args = cli.parse_args()

    flow_stats_wire.install()
    topology = Topology()
    edges = [EDGE + i for i in range(args.edges)]
    for i, dpid in enumerate(edges):
        topology.add_link(PortRef(dpid, UPLINK), PortRef(AGG, i + 1), 0.0)
    programmer = FlowProgrammer()
    programmer.set_routes(topology.routes())
    for binding in web_bindings(args.vms, args.edges):
        programmer.update({binding.handle: (None, binding)})
    switches = [*edges, AGG]
    ports = {dpid: _ports(dpid, args.edges) for dpid in switches}

    def meters_of(dpid: int) -> dict:
        return {**base_meters(ports[dpid]), **programmer.meters(dpid)}

    pieces = PieceIntent(programmer)

    def intent(dpid: int, piece: Piece):
        """As FabricControl._intent."""
        if piece.table is None:
            return [], meters_of(dpid)
        return base_flows(ports[dpid]) + pieces.flows(dpid, piece), {}

    # What each switch holds: its intent, as flow stats entries and meter configs.
    held = {}
    for dpid in switches:
        flows, meters = base_flows(ports[dpid]) + programmer.flows(dpid), meters_of(dpid)
        held[dpid] = (
            [(f, flow_entry_octets(f, n)) for n, f in enumerate(flows)],
            [_meter_octets(m, spec) for m, spec in sorted(meters.items())],
        )

    def reply(dpid: int, request) -> list[bytes]:
        flows, meters = held[dpid]
        if isinstance(request, parser.OFPMeterConfigStatsRequest):
            return multipart_reply_parts(meters, ofp.OFPMP_METER_CONFIG)
        mask, want = request.cookie_mask, request.cookie & request.cookie_mask
        chosen = [
            octets
            for f, octets in flows
            if f.table_id == request.table_id and f.cookie & mask == want
        ]
        return multipart_reply_parts(chosen, ofp.OFPMP_FLOW)

    datapath = Datapath()
    audit = IntentAudit(1e9, Xids())  # no budget here: the rate is applied to the costs below
    per_request: list[float] = []
    passes: list[dict] = []
    now = 0.0
    for index in range(args.passes):
        if index == 1:  # every switch changed since: each piece compared with the intent
            for dpid in switches:
                audit.sent(dpid, [])
                pieces.changed(dpid)
        parse_s = judge_s = 0.0
        requests = flows_read = 0
        for _ in range(10**6):
            now += 1.0
            t0 = time.process_time()
            (dpid, request), *_ = audit.due(now, switches)
            t1 = time.process_time()
            body: list = []
            for octets in reply(dpid, request):
                version, kind, length, xid = ofproto_parser.header(octets)
                msg = ofproto_parser.msg(datapath, version, kind, length, request.xid, octets)
                body += msg.body
            t2 = time.process_time()
            assert audit.reply(dpid, request.xid, body, intent) is None, "a difference"
            t3 = time.process_time()
            parse_s += t2 - t1
            judge_s += (t1 - t0) + (t3 - t2)
            per_request.append(t3 - t0)
            requests += 1
            if isinstance(request, parser.OFPFlowStatsRequest):
                flows_read += len(flow_stats_wire.flows(body))
            if dpid == AGG and not audit._turn:
                break  # the last switch's turn is over: one pass
        passes.append(
            {
                "requests": requests,
                "flows_read": flows_read,
                "parse_s": round(parse_s, 3),
                "judge_s": round(judge_s, 3),
            }
        )
    last = passes[-1]  # the steady state: switches nobody changed
    cpu_pass = last["parse_s"] + last["judge_s"]
    pass_s = last["requests"] / args.rate
    print(
        json.dumps(
            {
                "benchmark": "audit_cost",
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "switches": len(switches),
                "vms": args.vms,
                "flows_held": sum(len(held[d][0]) for d in switches),
                "passes": passes,
                "cpu_ms_per_request": {
                    "mean": round(1e3 * cpu_pass / last["requests"], 2),
                    "median": round(1e3 * statistics.median(per_request), 2),
                    "max": round(1e3 * max(per_request), 2),
                },
                "us_per_flow_read": round(1e6 * cpu_pass / max(1, last["flows_read"]), 2),
                "at_rate": {
                    "requests_per_s": args.rate,
                    "pass_s": round(pass_s, 1),
                    "core_share": round(cpu_pass / pass_s, 3),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
