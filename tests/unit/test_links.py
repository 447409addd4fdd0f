"""Link discovery probes and the topology graph: paths, the flood tree, expiry."""

from collections import deque
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.codec.builders import build_bridge_lldp_frame, build_ecp_ack
from app.codec.ethernet import NEAREST_BRIDGE, NEAREST_CUSTOMER_BRIDGE, VlanTag
from app.codec.evb_tlv import EvbTlv
from app.codec.frame import decode_evb_frame, encode_evb_frame
from app.codec.lldp import ChassisId, PortId
from app.fabric.links import (
    LINK_TIMEOUT,
    LOCALLY_ASSIGNED,
    Link,
    Topology,
    build_probe,
    parse_probe,
    probe_frames,
)
from app.fabric.ports import Port, PortRef, PortRole
from tests.unit.conftest import captured_frames

MAC = "02:00:00:00:01:65"
AGG = 0x100


def star(topology=None, now=0.0):
    """edge1 and edge2 below agg1: edgeN port 101 <-> agg1 port N."""
    topology = topology or Topology()
    for edge in (1, 2):
        topology.add_link(PortRef(edge, 101), PortRef(AGG, edge), now)
    return topology


def triangle():
    topology = star()
    topology.add_link(PortRef(1, 102), PortRef(2, 102), 0.0)
    return topology


# probes -------------------------------------------------------------------------------------
def test_probe_round_trip():
    frame = build_probe(PortRef(0x1, 101), MAC)
    assert len(frame) == 60
    decoded = decode_evb_frame(frame)
    assert (decoded.dst, decoded.src) == (NEAREST_BRIDGE, MAC)
    assert decoded.lldpdu.chassis_id == ChassisId(LOCALLY_ASSIGNED, b"evb-nms:0000000000000001")
    assert decoded.lldpdu.port_id == PortId(LOCALLY_ASSIGNED, b"101")
    assert decoded.lldpdu.ttl == LINK_TIMEOUT
    assert parse_probe(frame) == PortRef(1, 101)


@given(st.integers(0, 2**64 - 1), st.integers(1, 0xFFFFFF00))
def test_any_dpid_and_port_round_trip(dpid, port_no):
    assert parse_probe(build_probe(PortRef(dpid, port_no), MAC)) == PortRef(dpid, port_no)


def _probe_with(**changes) -> bytes:
    frame = decode_evb_frame(build_probe(PortRef(1, 101), MAC))
    lldpdu = changes.pop("lldpdu", {})
    return encode_evb_frame(replace(frame, lldpdu=replace(frame.lldpdu, **lldpdu), **changes))


@pytest.mark.parametrize(
    "frame",
    [
        _probe_with(dst=NEAREST_CUSTOMER_BRIDGE),
        _probe_with(vlan=VlanTag(100)),
        _probe_with(lldpdu={"chassis_id": ChassisId.from_mac(MAC)}),
        _probe_with(
            lldpdu={"chassis_id": ChassisId(LOCALLY_ASSIGNED, b"evb-nms:00000000000000AB")}
        ),
        _probe_with(lldpdu={"chassis_id": ChassisId(LOCALLY_ASSIGNED, b"evb-nms:1")}),
        _probe_with(lldpdu={"port_id": PortId.from_name("edge1-up1")}),
        _probe_with(lldpdu={"port_id": PortId(LOCALLY_ASSIGNED, b"0")}),
        _probe_with(lldpdu={"port_id": PortId(LOCALLY_ASSIGNED, b"101 ")}),
        build_bridge_lldp_frame(MAC, PortId.from_mac(MAC), 120, EvbTlv(mode=1), dst=NEAREST_BRIDGE),
        build_ecp_ack(MAC, 7),
        build_probe(PortRef(1, 101), MAC)[:30],
        b"",
    ],
    ids=[
        "customer-bridge-dst",
        "tagged",
        "mac-chassis",
        "upper-case-dpid",
        "short-dpid",
        "named-port",
        "port-0",
        "port-with-space",
        "lldpad-style-lldp",
        "ecp",
        "truncated",
        "empty",
    ],
)
def test_frames_that_are_not_our_probes(frame):
    assert parse_probe(frame) is None


def test_no_captured_station_frame_is_taken_for_a_probe():
    frames = captured_frames()
    assert frames
    assert all(parse_probe(frame) is None for _, _, frame in frames)


def test_probes_go_out_of_trunk_ports_that_are_up():
    ports = [
        Port(3, "edge1-s3", "02:00:00:00:00:03", PortRole.SERVER),
        Port(102, "edge1-up2", "02:00:00:00:00:66", PortRole.TRUNK, up=False),
        Port(101, "edge1-up1", MAC, PortRole.TRUNK),
    ]
    assert probe_frames(1, ports) == [(101, build_probe(PortRef(1, 101), MAC))]


# the link graph -----------------------------------------------------------------------------
def test_links_are_added_refreshed_and_listed():
    topology = Topology()
    assert topology.add_link(PortRef(1, 101), PortRef(AGG, 1), 0.0)
    assert not topology.add_link(PortRef(AGG, 1), PortRef(1, 101), 1.0)  # the other direction
    assert topology.links == [Link(PortRef(1, 101), PortRef(AGG, 1))]
    assert topology.peer(PortRef(AGG, 1)) == PortRef(1, 101)
    assert topology.switches() == {1, AGG}
    assert topology.link_ports(AGG) == {1}


def test_links_expire_unless_seen_again():
    topology = star(now=0.0)
    topology.add_link(PortRef(AGG, 2), PortRef(2, 101), 10.0)
    assert topology.expire(LINK_TIMEOUT - 0.1) == []
    assert topology.expire(LINK_TIMEOUT) == [Link(PortRef(1, 101), PortRef(AGG, 1))]
    assert topology.switches() == {2, AGG}
    assert topology.next_hop(2, 1) is None
    assert topology.expire(10.0 + LINK_TIMEOUT) == [Link(PortRef(2, 101), PortRef(AGG, 2))]
    assert topology.links == [] and topology.switches() == set()


def test_the_timeout_is_the_topology_s_own():
    topology = star(Topology(timeout=7.0))
    assert topology.expire(6.9) == [] and len(topology.expire(7.0)) == 2


def test_switch_and_port_removal():
    topology = triangle()
    assert topology.remove_port(PortRef(1, 102)) is not None
    assert topology.remove_port(PortRef(1, 102)) is None
    assert topology.peer(PortRef(2, 102)) is None
    assert topology.remove_switch(AGG)
    assert topology.links == [] and not topology.remove_switch(AGG)


def test_recabling_replaces_the_old_link():
    topology = star()
    assert topology.add_link(PortRef(3, 101), PortRef(AGG, 1), 5.0)  # edge3 now on agg1 port 1
    assert topology.peer(PortRef(1, 101)) is None
    assert topology.links == [
        Link(PortRef(2, 101), PortRef(AGG, 2)),
        Link(PortRef(3, 101), PortRef(AGG, 1)),
    ]


def test_a_cable_between_two_ports_of_one_switch_is_no_link():
    topology = Topology()
    assert not topology.add_link(PortRef(1, 101), PortRef(1, 102), 0.0)
    assert topology.links == []


# paths ------------------------------------------------------------------------------------
def test_next_hop_in_a_star_goes_through_the_aggregation_switch():
    topology = star()
    assert topology.next_hop(1, 2) == 101
    assert topology.next_hop(AGG, 2) == 2
    assert topology.next_hop(AGG, 1) == 1
    assert topology.next_hop(1, 1) is None
    assert topology.next_hop(1, 99) is None and topology.next_hop(99, 1) is None


def test_next_hop_takes_the_direct_link_and_the_lowest_of_parallel_ports():
    topology = triangle()
    assert topology.next_hop(1, 2) == 102
    topology.add_link(PortRef(1, 103), PortRef(2, 103), 0.0)
    topology.add_link(PortRef(1, 100), PortRef(2, 99), 0.0)
    assert topology.next_hop(1, 2) == 100
    assert topology.next_hop(2, 1) == 99


def test_flood_tree_of_a_triangle_leaves_one_link_out():
    topology = triangle()
    # Rooted at dpid 1: both its links are on the tree; edge2-agg1 is not.
    assert topology.tree_ports(1) == {101, 102}
    assert topology.tree_ports(2) == {102}
    assert topology.tree_ports(AGG) == {1}
    assert topology.ports_toward(AGG, {2}) == {1}
    assert topology.ports_toward(1, {2, AGG}) == {101, 102}
    assert topology.ports_toward(1, {1}) == set()
    assert topology.ports_toward(2, {AGG}) == {102}
    assert topology.tree_ports(99) == set() and topology.ports_toward(99, {1}) == set()


# properties over random graphs ----------------------------------------------------------------
@st.composite
def graphs(draw):
    """Up to 7 switches, links between random pairs (parallel links allowed), unique ports."""
    dpids = draw(st.lists(st.integers(1, 50), min_size=1, max_size=7, unique=True))
    pairs = draw(st.lists(st.tuples(st.sampled_from(dpids), st.sampled_from(dpids)), max_size=14))
    next_port = {dpid: 1 for dpid in dpids}
    links = []
    for a, b in pairs:
        if a != b:
            links.append((PortRef(a, next_port[a]), PortRef(b, next_port[b])))
            next_port[a] += 1
            next_port[b] += 1
    order = draw(st.permutations(range(len(links))))
    return [links[i] for i in order]


def _build(links):
    topology = Topology()
    for a, b in links:
        topology.add_link(a, b, 0.0)
    return topology


def _distances(links, src):
    adjacency = {}
    for a, b in links:
        adjacency.setdefault(a.dpid, set()).add(b.dpid)
        adjacency.setdefault(b.dpid, set()).add(a.dpid)
    distances, queue = {src: 0}, deque([src])
    while queue:
        node = queue.popleft()
        for far in adjacency.get(node, ()):
            if far not in distances:
                distances[far] = distances[node] + 1
                queue.append(far)
    return distances


@given(graphs())
def test_next_hops_follow_shortest_paths_without_loops(links):
    topology = _build(links)
    for src in topology.switches():
        distances = _distances(links, src)
        for dst in topology.switches() - {src}:
            node, hops = src, 0
            while node != dst and hops <= len(links):
                port = topology.next_hop(node, dst)
                if port is None:
                    break
                node, hops = topology.peer(PortRef(node, port)).dpid, hops + 1
            if dst in distances:
                assert (node, hops) == (dst, distances[dst])
            else:
                assert topology.next_hop(src, dst) is None


@given(graphs())
def test_flood_tree_spans_each_connected_part_without_cycles(links):
    topology = _build(links)
    tree_links = {
        Link.between(PortRef(d, p), topology.peer(PortRef(d, p)))
        for d in topology.switches()
        for p in topology.tree_ports(d)
    }
    for link in tree_links:  # both ends agree
        assert link.a.port_no in topology.tree_ports(link.a.dpid)
        assert link.b.port_no in topology.tree_ports(link.b.dpid)
    parts = {frozenset(_distances(links, d)) for d in topology.switches()}
    # A forest: as many links as switches minus connected parts, and it connects each part.
    assert len(tree_links) == len(topology.switches()) - len(parts)
    assert {
        frozenset(_distances([(link.a, link.b) for link in tree_links], d))
        for d in topology.switches()
    } == parts
    for dpid in topology.switches():
        part = next(p for p in parts if dpid in p)
        assert topology.ports_toward(dpid, part) == topology.tree_ports(dpid)
        assert topology.ports_toward(dpid, {dpid}) == set()


@given(graphs(), st.randoms())
def test_flood_tree_does_not_depend_on_the_order_links_were_seen(links, random):
    shuffled = list(links)
    random.shuffle(shuffled)
    first, second = _build(links), _build(shuffled)
    for dpid in first.switches():
        assert first.tree_ports(dpid) == second.tree_ports(dpid)
        for dst in first.switches():
            assert first.next_hop(dpid, dst) == second.next_hop(dpid, dst)
