"""Data-plane probes (app/fabric/probes.py, app/codec/probe.py) on the fake demo fabric: they
cross the VLAN's real flows from edge to edge, a path that stops carrying them raises
probe.lost (alarm path.down) naming the path, and nothing a VM sends can fake a result."""

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.errors import CodecError
from app.codec.probe import ETHERTYPE_PROBE, Probe, decode_probe, encode_probe, is_probe
from app.events import Event
from app.fabric import probes
from app.fabric.links import Routes
from app.fabric.ports import PortRef
from app.fabric.probes import DataPlaneProbes
from app.faults.alarms import AlarmBook
from app.flows.tables import Meter, Table
from tests.fakes.demo_fabric import AGG, EDGE1, EDGE2, UPLINK
from tests.unit.test_fabric_control import MACS, Bed

VID = 100  # the web type's default VLAN
KEY = b"k" * 32


def probed() -> Bed:
    bed = Bed(fabric={"probe_vlans": [VID], "probe_interval": 1.0})
    bed.associate(EDGE1, 1, 0)
    bed.associate(EDGE2, 1, 1)
    return bed


def run(bed: Bed, start: float, seconds: float) -> float:
    now = start
    while now < start + seconds:
        now = round(now + 0.1, 6)
        bed.wire.deliver(bed.core.background(now), now)
    return now


def test_a_probe_crosses_the_vlans_flows_to_the_other_edge_and_comes_back_punted():
    bed = probed()
    run(bed, 2.0, 3.0)
    pairs = dict(bed.core.probes.snapshot())
    assert set(pairs) == {(VID, EDGE1, EDGE2), (VID, EDGE2, EDGE1)}
    for stats in pairs.values():
        assert stats["sent"] >= 3 and stats["lost"] == 0
        assert stats["received"] == stats["sent"] and stats["state"] == "up"
    # Punted at the destination's EGRESS_ACL, through the probes' own meter: no VM got one.
    edge2 = bed.wire.fabric.switches[EDGE2]
    verdict = edge2.process(
        in_port=UPLINK, eth_dst=MACS[1], eth_type=ETHERTYPE_PROBE, vlan_vid=ofp.OFPVID_PRESENT | VID
    )
    assert verdict.outputs == [ofp.OFPP_CONTROLLER] and verdict.meters == [Meter.PROBE]
    assert verdict.tables == [Table.CLASSIFY, Table.FORWARD, Table.EGRESS_ACL]
    assert bed.log.recent("probe.") == []


def test_a_path_whose_trunk_flow_is_removed_by_hand_alarms_with_the_path_and_recovers():
    bed = probed()
    run(bed, 2.0, 2.0)
    agg = bed.wire.fabric.switches[AGG]
    # ovs-ofctl del-flows agg1 in_port=2: what comes up from edge2 goes nowhere
    removed = [f for f in agg.flows if dict(f.match.items()).get("in_port") == 2]
    agg.flows = [f for f in agg.flows if f not in removed]
    now = run(bed, 4.0, (probes.LOSSES + 1) * 1.0 + probes.TIMEOUT)
    (lost,) = bed.log.recent("probe.lost")
    assert (lost.switch, lost.detail["peer"], lost.detail["vlan"]) == ("edge2", "edge1", VID)
    assert lost.detail["path"] == ["edge2/edge2-up1", "agg1/agg1-dn1"]
    assert lost.detail["mac"] == MACS[0]
    pairs = dict(bed.core.probes.snapshot())
    assert pairs[(VID, EDGE2, EDGE1)]["state"] == "down"
    assert pairs[(VID, EDGE1, EDGE2)]["state"] == "up"  # the other way still works

    book = AlarmBook()
    (notice,) = book.on_event(Event(lost.kind, switch=lost.switch, detail=lost.detail), [], set())
    assert notice.alarm.id == "path.down:100/edge2~edge1"
    assert "edge2/edge2-up1 > agg1/agg1-dn1 > edge1" in notice.alarm.reason

    agg.flows += removed  # put back (the audit would)
    run(bed, now, 2.0)
    (restored,) = bed.log.recent("probe.restored")
    assert restored.detail["lost"] >= probes.LOSSES
    (cleared,) = book.on_event(
        Event(restored.kind, switch=restored.switch, detail=restored.detail), [], set()
    )
    assert not cleared.alarm.active


def test_nothing_but_our_own_probe_back_from_where_it_was_sent_counts():
    bed = probed()
    core = bed.core
    frames, _ = core.probes.due(10.0, core.control.programmer.vlan_members, {EDGE1, EDGE2, AGG})
    (src, frame), _ = frames
    dst = EDGE2 if src == EDGE1 else EDGE1
    forged = encode_probe(Probe(src, dst, VID, 1), MACS[1], b"x" * 32)
    before = core.probes.pairs[(VID, src, dst)].received
    core.probe_arrived(dst, 1, frame, 10.001)  # from a server port: a VM's doing
    core.probe_arrived(src, UPLINK, frame, 10.001)  # at the wrong edge
    core.probe_arrived(dst, UPLINK, forged, 10.001)  # not signed with our key
    assert core.probes.pairs[(VID, src, dst)].received == before
    core.probe_arrived(dst, UPLINK, frame, 10.002)
    core.probe_arrived(dst, UPLINK, frame, 10.003)  # a replay
    assert core.probes.pairs[(VID, src, dst)].received == before + 1
    assert sum(core.probes.rejected.values()) == 4


def test_a_vm_cannot_put_a_probe_into_the_fabric():
    bed = probed()
    edge1 = bed.wire.fabric.switches[EDGE1]
    verdict = edge1.process(in_port=1, eth_src=MACS[0], eth_dst=MACS[1], eth_type=ETHERTYPE_PROBE)
    assert verdict.dropped and verdict.tables == [Table.CLASSIFY]


def test_the_pairs_turn_so_every_path_is_probed_within_edges_minus_one_rounds():
    edges = [1, 2, 3, 4, 5]
    members = {e: {(1, 0): {f"52:00:00:00:00:0{e}": 1}} for e in edges}
    book = DataPlaneProbes([VID], KEY, interval=1.0, timeout=0.5)
    seen = set()
    for round_ in range(len(edges) - 1):
        frames, _ = book.due(float(round_), lambda vid: members, set(edges))
        assert len(frames) == len(edges)  # one probe per edge and round
        seen |= {(s, decode_probe(f, KEY).dst) for s, f in frames}
    assert seen == {(s, d) for s in edges for d in edges if s != d}
    frames, _ = book.due(3.5, lambda vid: members, set(edges))
    assert frames == []  # not before the next round


def test_in_flight_probes_are_bounded(monkeypatch):
    monkeypatch.setattr(probes, "MAX_IN_FLIGHT", 3)
    members = {e: {(1, 0): {"52:00:00:00:00:01": 1}} for e in range(1, 11)}
    book = DataPlaneProbes([VID], KEY, interval=1.0, timeout=100.0)
    frames, _ = book.due(0.0, lambda vid: members, set(members))
    assert len(frames) == 3 and book.unsent == 7


def test_a_pair_no_longer_probed_is_dropped_and_its_alarm_cleared():
    members = {e: {(1, 0): {"52:00:00:00:00:01": 1}} for e in (1, 2)}
    book = DataPlaneProbes([VID], KEY, interval=1.0, timeout=0.5)
    events = []
    for t in range(probes.LOSSES + 1):
        events += book.due(float(t), lambda vid: members, {1, 2})[1]
    assert {e.kind for e in events} == {"probe.lost"}
    _, events = book.due(10.0, lambda vid: {1: members[1]}, {1, 2})
    assert {(e.kind, e.detail["reason"]) for e in events} == {
        ("probe.restored", "no longer probed")
    }
    assert book.pairs == {}


def test_the_probe_frame_is_signed_and_tagged_with_its_vlan():
    probe = Probe(1, 2, VID, 7)
    frame = encode_probe(probe, MACS[0], KEY)
    assert is_probe(frame) and len(frame) >= 60
    assert decode_probe(frame, KEY) == probe
    with pytest.raises(CodecError):
        decode_probe(frame, b"y" * 32)
    tampered = bytearray(frame)
    tampered[30] ^= 1  # inside the signed body
    with pytest.raises(CodecError):
        decode_probe(bytes(tampered), KEY)
    retagged = bytearray(frame)
    retagged[15] = (VID + 1) & 0xFF  # moved to another VLAN
    with pytest.raises(CodecError):
        decode_probe(bytes(retagged), KEY)
    assert not is_probe(bytes(12) + b"\x88\xcc" + bytes(46))


def test_the_path_on_the_tree():
    # 1 and 2 below 10, 3 below 11, 10 and 11 below the root 20
    routes = Routes(
        up={1: (5, 10, 1), 2: (5, 10, 2), 3: (6, 11, 1), 10: (9, 20, 1), 11: (9, 20, 2)}
    )
    assert routes.path(1, 2) == [PortRef(1, 5), PortRef(10, 2)]
    assert routes.path(1, 3) == [PortRef(1, 5), PortRef(10, 9), PortRef(20, 2), PortRef(11, 1)]
    assert routes.path(20, 3) == [PortRef(20, 2), PortRef(11, 1)]
    assert routes.path(3, 11) == [PortRef(3, 6)]
    assert Routes(up={1: (5, 10, 1)}).path(1, 99) is None


def test_probes_off_send_nothing():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    bed.associate(EDGE2, 1, 1)
    out = bed.core.background(5.0)
    assert not any(isinstance(m, parser.OFPPacketOut) for _, m in out)
