"""WireFlowStatsPart reads a flow stats reply into the FlowEntries os-ken's own parser would give
(same key, same instruction octets), for every kind of flow the controller plans; truncated
octets fail the way os-ken's parsers fail."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.links import Topology
from app.flows import ofmsg
from app.flows.base_pipeline import base_flows
from app.flows.flow_stats_wire import WireFlowStatsPart, counts, flows
from app.flows.vm_flows import plan_vm_flows
from app.vdp.binding import BindingState, MacVid, VmBinding
from tests.unit.test_programmer import LINKS, PORTS, PROFILES


def _planned() -> list[ofmsg.FlowEntry]:
    topology = Topology()
    for a, b in LINKS:
        topology.add_link(a, b, 0.0)
    bindings = [
        VmBinding(
            n,
            VsiId(VsiIdFormat.UUID, n.to_bytes(16, "big")),
            port,
            (MacVid(f"52:00:00:00:01:{n:02x}", 100 + n % 2),),
            PROFILES[n % len(PROFILES)],
            BindingState.FORWARDING,
        )
        for n, port in enumerate(PORTS, start=1)
    ]
    plans = plan_vm_flows(bindings, topology.routes(), {PORTS[0]})
    return [entry for plan in plans.values() for entry in plan.flows]


FLOWS = _planned()


def _stats_octets(entry: ofmsg.FlowEntry, packets: int = 0) -> bytes:
    """One ofp_flow_stats as a switch sends it."""
    match = bytearray()
    entry.ofp_match().serialize(match, 0)
    length = ofp.OFP_FLOW_STATS_0_SIZE + len(match) + len(entry.body)
    head = struct.pack(
        ofp.OFP_FLOW_STATS_0_PACK_STR,
        length,
        entry.table_id,
        7,  # duration
        0,
        entry.priority,
        0,
        0,
        0,
        entry.cookie,
        packets,
        packets * 60,
    )
    return head + bytes(match) + entry.body


def test_planned_flows_read_back_as_os_ken_reads_them():
    assert len({type(i) for e in FLOWS for i in e.instructions}) >= 3  # a varied sample
    for entry in FLOWS:
        octets = _stats_octets(entry, packets=3)
        (wire,) = WireFlowStatsPart.parser(octets, 0).flows()
        reference = ofmsg.flow_from_stats(parser.OFPFlowStats.parser(octets, 0))
        assert wire.length == len(octets)
        assert wire.entry.key == reference.key == entry.key
        assert wire.entry.cookie == entry.cookie
        assert wire.entry.body == reference.body == entry.body
        assert ofmsg.flow_from_stats(wire) is wire.entry


def test_a_whole_reply_is_parsed_by_os_ken_with_the_wire_body_parser(monkeypatch):
    monkeypatch.setattr(parser.OFPFlowStatsReply, "cls_stats_body_cls", WireFlowStatsPart)
    entries = [*FLOWS, *base_flows([])]
    body = b"".join(_stats_octets(e) for e in entries)
    header = struct.pack(
        ofp.OFP_HEADER_PACK_STR,
        ofp.OFP_VERSION,
        ofp.OFPT_MULTIPART_REPLY,
        ofp.OFP_MULTIPART_REPLY_SIZE + len(body),
        0xEB000001,
    )
    octets = header + struct.pack("!HH4x", ofp.OFPMP_FLOW, 0) + body

    class Datapath:
        ofproto, ofproto_parser = ofp, parser

    msg = parser.msg_parser(
        Datapath(), ofp.OFP_VERSION, ofp.OFPT_MULTIPART_REPLY, len(octets), 0xEB000001, octets
    )
    assert isinstance(msg, parser.OFPFlowStatsReply)
    assert len(msg.body) == 1  # one call for the whole message
    assert [ofmsg.flow_from_stats(s).key for s in flows(msg.body)] == [e.key for e in entries]
    heads = [(e.table_id, e.priority, e.cookie) for e in entries]
    assert [c[:3] for c in counts(msg.body)] == heads


@pytest.mark.parametrize("cut", [1, 10, 47, 52])
def test_truncated_flow_stats_fail_as_os_kens_do(cut):
    octets = _stats_octets(FLOWS[0])[:cut]
    with pytest.raises(struct.error):
        WireFlowStatsPart.parser(octets, 0)


@settings(max_examples=200)
@given(st.binary(min_size=56, max_size=200))
def test_garbage_raises_struct_error_or_parses(octets):
    try:
        part = WireFlowStatsPart.parser(octets, 0)
    except struct.error:
        return
    assert sum(f.length for f in part.flows()) == part.length == len(octets)


def test_a_flows_identity_leaves_out_its_counters_and_duration():
    entry = ofmsg.flow(
        2, 35000, 0xEB03000000000007, (), vlan_vid=0x1064, eth_dst="52:00:00:00:00:01"
    )
    match = bytearray()
    entry.ofp_match().serialize(match, 0)

    def octets(packets: int, seconds: int) -> bytes:
        length = ofp.OFP_FLOW_STATS_0_SIZE + len(match)
        head = struct.pack(
            ofp.OFP_FLOW_STATS_0_PACK_STR,
            length,
            2,
            seconds,
            0,
            35000,
            0,
            0,
            0,
            entry.cookie,
            packets,
            100 * packets,
        )
        return head + bytes(match)

    first, later = (
        WireFlowStatsPart.parser(octets(p, s), 0).flows()[0] for p, s in ((1, 5), (900, 60))
    )
    assert first.identity() == later.identity()
    assert first.entry == later.entry == entry
