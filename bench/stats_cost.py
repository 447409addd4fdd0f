"""Benchmark: what one VM statistics poll of an edge switch costs the controller, in process.

An edge with --vms VMs of the demo's "web" type (two ingress ACL rules, a meter) holds the flows
FlowProgrammer plans for it; its flow stats reply (every VSI flow, with counters) is built as a
switch sends it, in 64 KiB parts, and so is its meter stats reply (a meter per VM). Timed, each
--rounds times: os-ken parsing the parts (with the controller's body parser, WireFlowStatsPart,
as the shim installs it: on os-ken's receive thread), then VmStats counting them (on the worker
thread, under the control plane's lock), for the flows and for the meters. Prints JSON:
flow entries per VM, microseconds per entry and per VM for each step, milliseconds per poll of
that switch, and the share of one core that polling --total-vms VMs every --interval seconds
takes at that cost.

    .venv/bin/python -m bench.stats_cost [--vms 625] [--rounds 20] [--total-vms 100000]
        [--interval 10]
"""

import argparse
import json
import platform
import statistics
import struct
import time
from pathlib import Path

from os_ken.ofproto import ofproto_common, ofproto_parser
from os_ken.ofproto import ofproto_v1_3 as ofp

from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.links import Topology
from app.fabric.ports import PortRef
from app.flows import flow_stats_wire
from app.flows.programmer import FlowProgrammer
from app.flows.tables import CookieKind, cookie_kind
from app.flows.vm_stats import VmStats
from app.policy.loader import load_policies
from app.vdp.binding import BindingState, MacVid, VmBinding

POLICIES = Path(__file__).resolve().parent.parent / "policies"
EDGE, AGG = 1, 0x100
PART = 65535 - 16 - 8  # a multipart reply's body fits one OpenFlow message


class Datapath:
    """What os-ken's message parser reads of a datapath."""

    ofproto = ofp
    from os_ken.ofproto import ofproto_v1_3_parser as ofproto_parser


def web_bindings(count: int, edges: int = 1) -> list[VmBinding]:
    """`count` VMs of the demo's web type, on edges EDGE .. EDGE + edges - 1 in turn, 32 server
    ports each."""
    web = load_policies(POLICIES).get(5, 4)
    assert web is not None, "the shipped policies define type 5 version 4 (web)"
    return [
        VmBinding(
            n,
            VsiId(VsiIdFormat.UUID, n.to_bytes(16, "big")),
            PortRef(EDGE + n % edges, 1 + n // edges % 32),
            (MacVid("52:00:" + ":".join(f"{b:02x}" for b in n.to_bytes(4, "big")), 100),),
            web,
            BindingState.FORWARDING,
        )
        for n in range(1, count + 1)
    ]


def flow_entry_octets(entry, n: int) -> bytes:
    match = bytearray()
    entry.ofp_match().serialize(match, 0)
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR,
        ofp.OFP_FLOW_STATS_0_SIZE + len(match) + len(entry.body),
        entry.table_id,
        60,
        0,
        entry.priority,
        0,
        0,
        0,
        entry.cookie,
        1000 + n,
        100000 + n,
    )
    return head + bytes(match) + entry.body


def _meter_octets(meter_id: int, n: int) -> bytes:
    length = ofp.OFP_METER_STATS_SIZE + ofp.OFP_METER_BAND_STATS_SIZE
    return struct.pack(
        ofp.OFP_METER_STATS_PACK_STR, meter_id, length, 3, 1000 + n, 100000 + n, 60, 0
    ) + struct.pack(ofp.OFP_METER_BAND_STATS_PACK_STR, n, 100 * n)


def multipart_reply_parts(items: list[bytes], kind: int) -> list[bytes]:
    """A multipart reply as OpenFlow messages of at most 64 KiB, MORE set on all but the last."""
    bodies, body = [], b""
    for octets in items:
        if len(body) + len(octets) > PART:
            bodies.append(body)
            body = b""
        body += octets
    bodies.append(body)
    parts = []
    for i, body in enumerate(bodies):
        flags = ofp.OFPMPF_REPLY_MORE if i < len(bodies) - 1 else 0
        multipart = struct.pack("!HH4x", kind, flags) + body
        header = struct.pack(
            ofproto_common.OFP_HEADER_PACK_STR,
            ofp.OFP_VERSION,
            ofp.OFPT_MULTIPART_REPLY,
            ofproto_common.OFP_HEADER_SIZE + len(multipart),
            7,
        )
        parts.append(header + multipart)
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=625, help="VMs on the edge polled")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--total-vms", type=int, default=100000)
    parser.add_argument("--interval", type=float, default=10.0)
    args = parser.parse_args()

    flow_stats_wire.install()
    topology = Topology()
    topology.add_link(PortRef(EDGE, 1000), PortRef(AGG, 1), 0.0)
    programmer = FlowProgrammer()
    programmer.set_routes(topology.routes())
    bindings = web_bindings(args.vms)
    for binding in bindings:
        programmer.update({binding.handle: (None, binding)})
    # What the poll asks for: the switch's flows of kind VSI (SwitchSync.stats_probe).
    entries = [f for f in programmer.flows(EDGE) if cookie_kind(f.cookie) is CookieKind.VSI]
    parts = multipart_reply_parts(
        [flow_entry_octets(e, n) for n, e in enumerate(entries)], ofp.OFPMP_FLOW
    )
    meters = sorted(programmer.meters(EDGE))
    meter_parts = multipart_reply_parts(
        [_meter_octets(m, n) for n, m in enumerate(meters)], ofp.OFPMP_METER
    )
    port_of = programmer.port_of
    datapath = Datapath()

    def parsed(replies: list[bytes]) -> list:
        body: list = []
        for octets in replies:
            version, kind, length, xid = ofproto_parser.header(octets)
            body += ofproto_parser.msg(datapath, version, kind, length, xid, octets).body
        return body

    times: dict[str, list[float]] = {"parse": [], "count": [], "meter_parse": [], "meter_count": []}
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        body = parsed(parts)
        t1 = time.perf_counter()
        stats = VmStats()
        stats.flow_stats(EDGE, flow_stats_wire.counts(body), port_of, 0.0)
        t2 = time.perf_counter()
        meter_body = parsed(meter_parts)
        t3 = time.perf_counter()
        stats.meter_stats(EDGE, meter_body, port_of, 0.0)
        t4 = time.perf_counter()
        for name, took in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            times[name].append(took)
    assert len(flow_stats_wire.flows(body)) == len(entries) and len(meter_body) == len(meters)
    assert stats.malformed == 0 and stats.unknown == 0

    ms = {name: statistics.median(values) for name, values in times.items()}
    parse, count = ms["parse"], ms["count"]
    per_poll = sum(ms.values())
    polls_per_s = args.total_vms / args.vms / args.interval
    print(
        json.dumps(
            {
                "benchmark": "stats_poll_cost",
                "machine": {"python": platform.python_version(), "platform": platform.platform()},
                "vms_on_the_switch": args.vms,
                "flow_entries": len(entries),
                "entries_per_vm": round(len(entries) / args.vms, 2),
                "reply_parts": len(parts),
                "reply_bytes": sum(len(p) for p in parts),
                "us_per_entry": {
                    "parse": round(1e6 * parse / len(entries), 2),
                    "count": round(1e6 * count / len(entries), 2),
                },
                "meters": len(meters),
                "ms_per_poll": {
                    **{name: round(1e3 * took, 2) for name, took in ms.items()},
                    "total": round(1e3 * per_poll, 2),
                },
                "at_scale": {
                    "total_vms": args.total_vms,
                    "interval_s": args.interval,
                    "switch_polls_per_s": round(polls_per_s, 2),
                    "core_share": round(per_poll * polls_per_s, 3),
                },
            }
        )
    )


if __name__ == "__main__":
    main()
