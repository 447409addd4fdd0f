"""The per-VM flow plan, programmed through SwitchSync into a fake fabric (edge1, edge2 below
agg1, optionally an edge1-edge2 trunk), checked by the frames that come out of it."""

import ipaddress
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.ethernet import NEAREST_BRIDGE
from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.links import Topology, parse_probe, probe_frames
from app.fabric.ports import DEFAULT_TRUNK_PATTERNS, PortRef
from app.fabric.switch_sync import SwitchSync
from app.flows import ofmsg
from app.flows.base_pipeline import ETH_TYPE_LLDP
from app.flows.ofmsg import MeterSpec
from app.flows.tables import (
    COOKIE_MASK_APP,
    PORT_PUNT_METER_BASE,
    VM_METER_BASE,
    CookieKind,
    Meter,
    Priority,
    Table,
    cookie,
    cookie_kind,
    vm_meter_id,
)
from app.flows.vm_flows import acl_match, acl_priority, plan_vm_flows
from app.policy.acl import AclRule, MacMatch
from app.policy.profile import Qos, VsiTypeKey, VsiTypeProfile
from app.vdp.binding import BindingState, MacVid, VmBinding
from tests.fakes.demo_fabric import AGG, CROSS, EDGE1, EDGE2, UPLINK, demo_fabric
from tests.fakes.drive import answer, connect, flow_mods

UNTAGGED = ofp.OFPVID_NONE
BROADCAST = "ff:ff:ff:ff:ff:ff"
IPV4, IPV6, ARP = 0x0800, 0x86DD, 0x0806
TCP = 6

TELNET_DENIED = (
    AclRule("deny", eth_type=IPV4, ip_proto=TCP, tp_dst=23),
    AclRule("deny", eth_type=IPV6, ip_proto=TCP, tp_dst=23),
)


def profile(name="web", tenant="blue", vlans=(100, 101), key=(5, 4), **fields) -> VsiTypeProfile:
    return VsiTypeProfile(
        VsiTypeKey(*key), name, tenant, frozenset(vlans), frozenset({"mgr1"}), **fields
    )


WEB = profile(ingress_acl=TELNET_DENIED, qos=Qos(rate_kbps=10000, burst_kb=1000))
DB = profile("db", "red", (200,), (6, 1))
SSH_ONLY = profile(
    "bastion",
    key=(8, 1),
    egress_acl=(AclRule("permit", eth_type=IPV4, ip_proto=TCP, tp_dst=22),),
    acl_default="deny",
)
MARKED = profile("batch", vlans=(100,), key=(7, 1), qos=Qos(rate_kbps=500, pcp=1, dscp=8))


def mac(n: int) -> str:
    return f"52:00:00:00:00:{n:02x}"


def vm(
    handle: int,
    port: PortRef,
    vid: int = 100,
    prof: VsiTypeProfile = WEB,
    state: BindingState = BindingState.FORWARDING,
    entries=None,
) -> VmBinding:
    return VmBinding(
        handle,
        VsiId(VsiIdFormat.UUID, handle.to_bytes(16, "big")),
        port,
        entries or (MacVid(mac(handle), vid),),
        prof,
        state,
    )


def tcp(src: VmBinding, dst: VmBinding | str, port: int = 80, **fields) -> dict:
    dst_mac = dst if isinstance(dst, str) else dst.entries[0].mac
    return dict(
        eth_src=src.entries[0].mac,
        eth_dst=dst_mac,
        eth_type=IPV4,
        ip_proto=TCP,
        ipv4_src="10.0.0.1",
        ipv4_dst="10.0.0.2",
        tcp_src=40000,
        tcp_dst=port,
        **fields,
    )


def arp(src: VmBinding, dst: str = BROADCAST) -> dict:
    return dict(eth_src=src.entries[0].mac, eth_dst=dst, eth_type=ARP)


def P(dpid, port_no) -> PortRef:
    return PortRef(dpid, port_no)


class Dc:
    """The fabric, its controller-side SwitchSyncs, and the topology learnt from probes."""

    def __init__(self, cross: bool = False):
        self.fabric = demo_fabric(cross)
        self.switches = self.fabric.switches
        self.topology = Topology()
        self.plan = {}
        self.syncs = {
            dpid: SwitchSync(dpid, DEFAULT_TRUNK_PATTERNS, self._flows, self._meters)
            for dpid in self.switches
        }
        for dpid, sync in self.syncs.items():
            connect(sync, self.switches[dpid])
        self.discover(0.0)

    def _flows(self, dpid):
        return self.plan[dpid].flows if dpid in self.plan else []

    def _meters(self, dpid):
        return self.plan[dpid].meters if dpid in self.plan else {}

    def discover(self, now: float) -> None:
        """Every probe crosses its link and is punted at the far end, as on the real switches."""
        for dpid, sync in self.syncs.items():
            for port_no, frame in probe_frames(dpid, sync.ports.values()):
                far = self.fabric.peers[(dpid, port_no)]
                verdict = self.switches[far[0]].process(
                    in_port=far[1],
                    eth_type=ETH_TYPE_LLDP,
                    eth_dst=NEAREST_BRIDGE,
                    eth_src="02:00:00:00:00:01",
                )
                assert verdict.outputs == [ofp.OFPP_CONTROLLER]
                self.topology.add_link(parse_probe(frame), P(*far), now)

    def program(self, *bindings: VmBinding, rr=()) -> dict[int, list]:
        """Plans and reconciles every switch; returns the flow and meter mods sent, per dpid."""
        self.plan = plan_vm_flows(bindings, self.topology.routes(), set(rr))
        sent = {
            dpid: flow_mods(answer(sync, self.switches[dpid], sync.resync()))
            for dpid, sync in self.syncs.items()
        }
        for fake in self.switches.values():
            assert not fake.errors
        return sent

    def send(self, port: PortRef, **pkt) -> list[tuple[int, int]]:
        """Where the frame leaves the fabric; every copy must leave untagged."""
        deliveries = self.fabric.send(port.dpid, port.port_no, **pkt)
        assert all(d.packet["vlan_vid"] == UNTAGGED for d in deliveries)
        return [(d.dpid, d.port) for d in deliveries]

    def flows_of(self, dpid: int, owner_cookie: int) -> list:
        return [f for f in self.switches[dpid].flows if f.cookie == owner_cookie]


def wire(fake_flow) -> bytes:
    """The flow as the bytes of the FlowMod that would install it."""
    msg = ofmsg.add_flow(ofmsg.flow_from_stats(fake_flow))
    msg.datapath, msg.xid = SimpleNamespace(ofproto=ofp, ofproto_parser=parser), 0
    msg.serialize()
    return bytes(msg.buf)


# unicast ------------------------------------------------------------------------------------
def test_vm_to_vm_in_one_vlan_across_edges_arrives_untagged_at_its_port_only():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 2))
    dc.program(a, b)
    assert dc.send(a.port, **tcp(a, b)) == [(EDGE2, 2)]
    assert dc.send(b.port, **tcp(b, a)) == [(EDGE1, 1)]
    # Between switches the frame is tagged with the VM's VLAN.
    ((port, on_trunk),) = dc.switches[EDGE1].process(in_port=1, **tcp(a, b)).frames
    assert port == UPLINK and on_trunk["vlan_vid"] == ofp.OFPVID_PRESENT | 100


def test_transit_switch_forwards_by_vlan_and_mac():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    frame = tcp(a, b, vlan_vid=ofp.OFPVID_PRESENT | 100)
    assert dc.switches[AGG].process(in_port=1, **frame).outputs == [2]
    assert dc.switches[AGG].process(in_port=1, **{**frame, "vlan_vid": 0x1000 | 101}).dropped


def test_shortest_path_takes_the_direct_trunk_when_there_is_one():
    dc = Dc(cross=True)
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    assert dc.send(a.port, **tcp(a, b)) == [(EDGE2, 1)]
    assert dc.switches[EDGE1].process(in_port=1, **tcp(a, b)).outputs == [CROSS]


def test_same_port_vms_reach_each_other_only_through_the_reflective_relay_hairpin():
    dc = Dc()
    a, b, c = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 1)), vm(3, P(EDGE1, 2))
    dc.program(a, b, c)
    assert dc.send(a.port, **tcp(a, b)) == []
    assert dc.send(a.port, **tcp(a, c)) == [(EDGE1, 2)]
    dc.program(a, b, c, rr={a.port})
    assert dc.send(a.port, **tcp(a, b)) == [(EDGE1, 1)]
    assert dc.switches[EDGE1].process(in_port=1, **tcp(a, b)).outputs == [1]
    assert dc.send(a.port, **tcp(a, c)) == [(EDGE1, 2)]
    assert dc.send(c.port, **tcp(c, a)) == [(EDGE1, 1)]


def test_other_vlans_and_other_tenants_are_not_delivered():
    dc = Dc()
    a = vm(1, P(EDGE1, 1))  # web, VLAN 100
    other_vlan = vm(2, P(EDGE2, 1), 101)  # web, VLAN 101
    red = vm(3, P(EDGE2, 2), 200, DB)  # another tenant
    dc.program(a, other_vlan, red)
    assert dc.send(a.port, **tcp(a, other_vlan)) == []
    assert dc.send(a.port, **tcp(a, red)) == []
    assert dc.send(red.port, **tcp(red, a)) == []
    # Tagging a frame with another VLAN does not get it in.
    assert dc.send(a.port, **tcp(a, red, vlan_vid=ofp.OFPVID_PRESENT | 200)) == []
    assert dc.send(a.port, **tcp(a, other_vlan, vlan_vid=ofp.OFPVID_PRESENT | 101)) == []


def test_a_frame_already_tagged_with_the_granted_vid_is_admitted():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    assert dc.send(a.port, **tcp(a, b, vlan_vid=ofp.OFPVID_PRESENT | 100)) == [(EDGE2, 1)]


def test_a_mac_with_two_vlans_sends_untagged_in_the_first_and_tagged_in_both():
    dc = Dc()
    two = vm(1, P(EDGE1, 1), entries=(MacVid(mac(1), 101), MacVid(mac(1), 100)))
    in_100, in_101 = vm(2, P(EDGE2, 1), 100), vm(3, P(EDGE2, 2), 101)
    dc.program(two, in_100, in_101)
    assert dc.send(two.port, **tcp(two, in_101)) == [(EDGE2, 2)]
    assert dc.send(two.port, **tcp(two, in_100)) == []
    assert dc.send(two.port, **tcp(two, in_100, vlan_vid=ofp.OFPVID_PRESENT | 100)) == [(EDGE2, 1)]
    assert dc.send(in_100.port, **tcp(in_100, two)) == [(EDGE1, 1)]
    assert dc.send(in_101.port, **tcp(in_101, two)) == [(EDGE1, 1)]


def test_a_vm_that_is_not_bound_is_dropped_at_its_port_and_counted():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    stranger = vm(9, P(EDGE1, 1))
    assert dc.send(stranger.port, **tcp(stranger, b)) == []
    assert dc.send(stranger.port, **arp(stranger)) == []
    # A bound MAC from another port is not admitted either.
    assert dc.send(P(EDGE1, 2), **tcp(a, b)) == []
    verdict = dc.switches[EDGE1].process(in_port=2, **tcp(a, b))
    assert verdict.flows[0].cookie == cookie(CookieKind.BASE, 2)
    # Nor is a frame to a MAC nobody has bound.
    assert dc.send(a.port, **tcp(a, mac(77))) == []


# ACLs and QoS -------------------------------------------------------------------------------
def test_ingress_acl_denies_telnet_and_permits_the_rest():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    assert dc.send(a.port, **tcp(a, b, 23)) == []
    assert dc.send(a.port, **tcp(a, b, 80)) == [(EDGE2, 1)]
    ipv6_telnet = {**tcp(a, b, 23), "eth_type": IPV6}
    del ipv6_telnet["ipv4_src"], ipv6_telnet["ipv4_dst"]
    assert dc.send(a.port, **ipv6_telnet) == []
    assert dc.send(a.port, **arp(a, b.entries[0].mac)) == [(EDGE2, 1)]
    verdict = dc.switches[EDGE1].process(in_port=1, **tcp(a, b, 23))
    assert verdict.tables == [Table.CLASSIFY, Table.INGRESS_ACL]


def test_egress_acl_filters_what_is_delivered_even_through_the_hairpin():
    dc = Dc()
    a, here = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 1), prof=SSH_ONLY)
    there = vm(3, P(EDGE2, 1), prof=SSH_ONLY)
    dc.program(a, here, there, rr={a.port})
    assert dc.send(a.port, **tcp(a, there, 22)) == [(EDGE2, 1)]
    assert dc.send(a.port, **tcp(a, there, 80)) == []
    assert dc.send(a.port, **arp(a, there.entries[0].mac)) == []
    assert dc.send(a.port, **tcp(a, here, 22)) == [(EDGE1, 1)]
    assert dc.send(a.port, **tcp(a, here, 80)) == []
    # The profile's default deny covers what its VMs send too.
    assert dc.send(there.port, **tcp(there, a, 80)) == []


def not_port_meters(meters) -> set[int]:
    """The meter ids less the server ports' punt meters (app/flows/base_pipeline.py)."""
    return {m for m in meters if not PORT_PUNT_METER_BASE < m < VM_METER_BASE}


def test_meters_carry_the_profile_rate_in_kbps_and_admission_uses_them():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1), prof=MARKED)
    plain = vm(3, P(EDGE2, 2), prof=DB)
    dc.program(a, b, plain)
    meter_a = dc.switches[EDGE1].meters[vm_meter_id(1)]
    assert meter_a.flags == ofp.OFPMF_KBPS | ofp.OFPMF_BURST
    assert [(band.rate, band.burst_size) for band in meter_a.bands] == [(10000, 1000)]
    assert isinstance(meter_a.bands[0], parser.OFPMeterBandDrop)
    meter_b = dc.switches[EDGE2].meters[vm_meter_id(2)]
    assert [(band.rate, band.burst_size) for band in meter_b.bands] == [(500, 500)]
    assert not_port_meters(dc.switches[EDGE2].meters) == {Meter.PUNT, Meter.PROBE, vm_meter_id(2)}
    assert set(dc.switches[AGG].meters) == {Meter.PUNT, Meter.PROBE}
    assert dc.switches[EDGE1].process(in_port=1, **tcp(a, b)).meters == [vm_meter_id(1)]
    assert dc.switches[EDGE2].process(in_port=2, **tcp(plain, a)).meters == []


def test_pcp_and_dscp_are_marked_at_admission():
    dc = Dc()
    marked, a = vm(1, P(EDGE2, 1), prof=MARKED), vm(2, P(EDGE1, 1))
    dc.program(marked, a)
    ((_, on_trunk),) = dc.switches[EDGE2].process(in_port=1, **tcp(marked, a)).frames
    assert (on_trunk["vlan_pcp"], on_trunk["ip_dscp"]) == (1, 8)
    ((_, on_trunk),) = dc.switches[EDGE2].process(in_port=1, **arp(marked, a.entries[0].mac)).frames
    assert on_trunk["vlan_pcp"] == 1 and "ip_dscp" not in on_trunk
    ((_, unmarked),) = dc.switches[EDGE1].process(in_port=1, **tcp(a, marked)).frames
    assert "ip_dscp" not in unmarked and unmarked["vlan_pcp"] == 0


def test_a_changed_rate_modifies_the_meter_and_stale_vm_meters_are_deleted():
    dc = Dc()
    a = vm(1, P(EDGE1, 1))
    sent = dc.program(a)
    # A new meter goes before the flows that use it.
    assert isinstance(sent[EDGE1][0], parser.OFPMeterMod)
    faster = profile(ingress_acl=TELNET_DENIED, qos=Qos(rate_kbps=20000, burst_kb=1000))
    sent = dc.program(vm(1, P(EDGE1, 1), prof=faster))
    mods = [m for m in sent[EDGE1] if isinstance(m, parser.OFPMeterMod)]
    assert [(m.command, m.meter_id) for m in mods] == [(ofp.OFPMC_MODIFY, vm_meter_id(1))]
    assert dc.switches[EDGE1].meters[vm_meter_id(1)].bands[0].rate == 20000
    # A leftover VM meter (an earlier run) goes; a meter below the VM range is not ours to judge.
    edge1 = dc.switches[EDGE1]
    edge1.apply(
        [
            ofmsg.meter_mod(ofp.OFPMC_ADD, VM_METER_BASE + 77, MeterSpec.kbps(1, 1)),
            ofmsg.meter_mod(ofp.OFPMC_ADD, 7, MeterSpec.pktps(1, 1)),
        ]
    )
    dc.program(vm(1, P(EDGE1, 1), prof=faster))
    assert not_port_meters(edge1.meters) == {Meter.PUNT, Meter.PROBE, 7, vm_meter_id(1)}


# flooding -----------------------------------------------------------------------------------
@pytest.mark.parametrize("cross", [False, True], ids=["star", "with-edge-trunk"])
def test_broadcast_reaches_exactly_the_vlan_members_once(cross):
    dc = Dc(cross)
    a, b, c = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1)), vm(3, P(EDGE2, 2))
    other_vlan, red = vm(4, P(EDGE1, 2), 101), vm(5, P(EDGE1, 2), 200, DB)
    prepared = vm(6, P(EDGE1, 2), state=BindingState.PREPARED)
    dc.program(a, b, c, other_vlan, red, prepared)
    assert dc.send(a.port, **arp(a)) == [(EDGE2, 1), (EDGE2, 2)]
    assert dc.send(b.port, **arp(b)) == [(EDGE1, 1), (EDGE2, 2)]
    assert dc.send(c.port, **arp(c, "01:00:5e:00:00:fb")) == [(EDGE1, 1), (EDGE2, 1)]
    assert dc.send(other_vlan.port, **arp(other_vlan)) == []
    assert dc.send(red.port, **arp(red)) == []


def test_broadcast_goes_back_out_of_a_reflective_relay_port_with_another_member():
    dc = Dc()
    a, b, far = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 1)), vm(3, P(EDGE2, 1))
    alone = vm(4, P(EDGE1, 2))
    dc.program(a, b, far, alone, rr={a.port, alone.port})
    assert dc.send(a.port, **arp(a)) == [(EDGE1, 1), (EDGE1, 2), (EDGE2, 1)]
    assert dc.send(alone.port, **arp(alone)) == [(EDGE1, 1), (EDGE2, 1)]
    assert dc.send(far.port, **arp(far)) == [(EDGE1, 1), (EDGE1, 2)]
    dc.program(a, b, far, alone, rr={alone.port})
    assert dc.send(a.port, **arp(a)) == [(EDGE1, 2), (EDGE2, 1)]


def test_vlan_frames_never_go_to_switches_without_members():
    dc = Dc()
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 2))
    dc.program(a, b)
    verdict = dc.switches[EDGE1].process(in_port=1, **arp(a))
    assert verdict.outputs == [2]
    assert not [f for f in dc.switches[AGG].flows if cookie_kind(f.cookie) is CookieKind.VLAN]


def test_group_frames_from_a_link_outside_the_flood_tree_are_dropped_but_probes_pass():
    dc = Dc(cross=True)
    a, b = vm(1, P(EDGE1, 1)), vm(2, P(EDGE2, 1))
    dc.program(a, b)
    # Rooted at edge1, the tree holds edge1-agg1 and edge1-edge2; edge2-agg1 is left out.
    tagged_arp = {**arp(a), "vlan_vid": ofp.OFPVID_PRESENT | 100}
    for dpid, port_no in ((EDGE2, UPLINK), (AGG, 2)):
        verdict = dc.switches[dpid].process(in_port=port_no, **tagged_arp)
        assert verdict.dropped and verdict.flows[0].cookie == cookie(CookieKind.LINK, port_no)
    assert dc.send(P(EDGE2, UPLINK), **tagged_arp) == []
    dc.discover(1.0)  # asserts that every probe is still punted
    # Unicast still takes the link.
    assert dc.send(P(EDGE2, UPLINK), **tcp(a, b, vlan_vid=ofp.OFPVID_PRESENT | 100)) == [(EDGE2, 1)]


# bindings coming and going --------------------------------------------------------------------
def test_a_prepared_binding_forwards_nothing_but_has_its_meter_and_acls_ready():
    dc = Dc()
    prepared = vm(1, P(EDGE1, 1), state=BindingState.PREPARED)
    b = vm(2, P(EDGE2, 1))
    dc.program(prepared, b)
    assert dc.send(prepared.port, **tcp(prepared, b)) == []
    assert dc.send(prepared.port, **arp(prepared)) == []
    assert dc.send(b.port, **tcp(b, prepared)) == []
    assert dc.send(b.port, **arp(b)) == []
    mine = cookie(CookieKind.VSI, 1)
    assert vm_meter_id(1) in dc.switches[EDGE1].meters
    assert {f.table_id for f in dc.flows_of(EDGE1, mine)} == {Table.INGRESS_ACL, Table.EGRESS_ACL}
    assert dc.flows_of(EDGE2, mine) == dc.flows_of(AGG, mine) == []
    ready = {wire(f) for f in dc.flows_of(EDGE1, mine)}
    # Associating adds admission and forwarding; what was prepared stays as it is.
    sent = dc.program(vm(1, P(EDGE1, 1)), b)
    assert all(
        m.command == ofp.OFPFC_ADD
        for msgs in sent.values()
        for m in msgs
        if isinstance(m, parser.OFPFlowMod) and m.cookie == mine
    )
    assert ready <= {wire(f) for f in dc.flows_of(EDGE1, mine)}
    assert not [m for msgs in sent.values() for m in msgs if isinstance(m, parser.OFPMeterMod)]
    assert dc.send(prepared.port, **tcp(prepared, b)) == [(EDGE2, 1)]


def test_removing_a_binding_leaves_every_other_flow_byte_identical():
    dc = Dc()
    a, b, c = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 1)), vm(3, P(EDGE2, 1), prof=MARKED)
    d = vm(4, P(EDGE2, 2), 101)
    dc.program(a, b, c, d, rr={a.port})
    others = {cookie(CookieKind.VSI, handle) for handle in (2, 3, 4)}

    def snapshot():
        return {
            dpid: sorted(wire(f) for f in fake.flows if f.cookie in others)
            for dpid, fake in dc.switches.items()
        }

    before = snapshot()
    sent = dc.program(b, c, d, rr={a.port})
    assert snapshot() == before
    assert not [
        m
        for msgs in sent.values()
        for m in msgs
        if isinstance(m, parser.OFPFlowMod) and m.cookie in others
    ]
    gone = cookie(CookieKind.VSI, 1)
    assert all(not dc.flows_of(dpid, gone) for dpid in dc.switches)
    assert vm_meter_id(1) not in dc.switches[EDGE1].meters
    assert Meter.PUNT in dc.switches[EDGE1].meters
    # The meter goes after the flows that used it (deleting it first would take them along).
    kinds = [type(m) for m in sent[EDGE1]]
    assert kinds[-1] is parser.OFPMeterMod and kinds.count(parser.OFPMeterMod) == 1
    # The shared flood flows were recomputed: b is now alone behind its port.
    assert dc.send(b.port, **arp(b)) == [(EDGE2, 1)]
    assert dc.send(b.port, **tcp(b, a)) == []


def test_reconnecting_to_a_switch_in_sync_sends_nothing():
    dc = Dc()
    dc.program(
        vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 1), prof=MARKED), vm(3, P(EDGE2, 1)), rr={P(EDGE1, 1)}
    )
    for dpid, fake in dc.switches.items():
        sync = SwitchSync(dpid, DEFAULT_TRUNK_PATTERNS, dc._flows, dc._meters)
        assert flow_mods(connect(sync, fake)) == []


# the plan itself ----------------------------------------------------------------------------
def _some_bindings():
    return [
        vm(1, P(EDGE1, 1)),
        vm(2, P(EDGE1, 1), prof=MARKED),
        vm(3, P(EDGE2, 1), prof=SSH_ONLY),
        vm(4, P(EDGE2, 2), 200, DB),
        vm(5, P(EDGE1, 2), state=BindingState.PREPARED),
    ]


def _canonical(plan):
    """os-ken instructions compare by identity; their JSON (FlowEntry.body) by content."""
    return {
        dpid: ([(f.key, f.cookie, f.body) for f in p.flows], p.meters) for dpid, p in plan.items()
    }


def test_the_plan_is_sorted_unique_and_independent_of_binding_order():
    dc = Dc(cross=True)
    bindings = _some_bindings()
    plan = plan_vm_flows(bindings, dc.topology.routes(), {P(EDGE1, 1)})
    assert _canonical(plan) == _canonical(
        plan_vm_flows(reversed(bindings), dc.topology.routes(), {P(EDGE1, 1)})
    )
    assert sorted(plan) == [EDGE1, EDGE2, AGG]
    for switch_plan in plan.values():
        keys = [f.key for f in switch_plan.flows]
        assert len(keys) == len(set(keys))
        assert [(f.table_id, -f.priority) for f in switch_plan.flows] == sorted(
            (f.table_id, -f.priority) for f in switch_plan.flows
        )
        assert all(
            cookie_kind(f.cookie) in (CookieKind.VSI, CookieKind.VLAN, CookieKind.LINK)
            for f in switch_plan.flows
        )


def test_every_flow_of_a_vm_carries_its_handle_and_shared_flows_their_vid():
    plan = plan_vm_flows(_some_bindings(), Dc().topology.routes(), set())
    for switch_plan in plan.values():
        for f in switch_plan.flows:
            kind, owner = cookie_kind(f.cookie), f.cookie & 0xFFFFFFFFFFFF
            if kind is CookieKind.VSI:
                assert owner in {1, 2, 3, 4, 5}
                if dict(f.match).get("metadata") is not None:
                    assert dict(f.match)["metadata"] == owner
            elif kind is CookieKind.LINK:  # the edges' way up to agg1
                assert f.priority == Priority.DEFAULT_UP and owner == UPLINK
                assert f.body == ofmsg.canonical_instructions(
                    (ofmsg.apply_actions(ofmsg.output(UPLINK)),)
                )
            else:
                assert kind is CookieKind.VLAN and f.priority in (
                    Priority.VLAN_FLOOD,
                    Priority.VLAN_FLOOD_HAIRPIN,
                )
                assert dict(f.match)["vlan_vid"] == ofp.OFPVID_PRESENT | owner


def test_an_edge_holds_its_own_vms_and_one_way_up_the_root_holds_every_vm():
    topology = Dc().topology.routes()
    many = [vm(h, P(EDGE1 if h % 2 else EDGE2, 1 + h % 4 // 2)) for h in range(1, 41)]
    plan = plan_vm_flows(many, topology, set())
    unicast = {
        dpid: sum(f.priority == Priority.VM_UNICAST for f in plan[dpid].flows) for dpid in plan
    }
    assert unicast == {EDGE1: 20, EDGE2: 20, AGG: 40}
    assert [
        sum(f.priority == Priority.DEFAULT_UP for f in plan[d].flows) for d in (EDGE1, EDGE2, AGG)
    ] == [1, 1, 0]


def _count(plan, dpid, handle):
    return sum(f.cookie == cookie(CookieKind.VSI, handle) for f in plan[dpid].flows)


def test_flow_count_of_one_vm_matches_the_documented_formula():
    topology = Dc().topology
    # web: 2 ingress rules + default, egress default, 1 MAC/VID.
    web = vm(1, P(EDGE1, 1))
    plan = plan_vm_flows([web], topology.routes(), set())
    # admit 2 + ingress 3 + egress 1 + unicast 1; one unicast entry on agg1 (the root) and
    # none on edge2, which reaches it through its default up
    assert (_count(plan, EDGE1, 1), _count(plan, AGG, 1), _count(plan, EDGE2, 1)) == (7, 1, 0)
    plan = plan_vm_flows([web], topology.routes(), {web.port})
    assert _count(plan, EDGE1, 1) == 8  # + the egress permit's hairpin variant
    # DSCP marking triples admission; PREPARED keeps only the ACLs.
    marked = plan_vm_flows([vm(2, P(EDGE1, 1), prof=MARKED)], topology.routes(), set())
    assert _count(marked, EDGE1, 2) == 6 + 1 + 1 + 1
    prepared = vm(3, P(EDGE1, 1), state=BindingState.PREPARED)
    plan = plan_vm_flows([prepared], topology.routes(), set())
    assert (_count(plan, EDGE1, 3), _count(plan, AGG, 3)) == (3 + 1, 0)


def test_bindings_that_break_the_contract_are_refused():
    topology = Topology()
    a = vm(1, P(EDGE1, 1))
    with pytest.raises(ValueError, match="handle 1"):
        plan_vm_flows([a, vm(1, P(EDGE1, 2))], topology.routes(), set())
    twin = VmBinding(2, a.vsi_id, P(EDGE2, 1), a.entries, WEB, BindingState.FORWARDING)
    with pytest.raises(ValueError, match=mac(1)):
        plan_vm_flows([a, twin], topology.routes(), set())
    with pytest.raises(ValueError, match="twice"):
        plan_vm_flows(
            [vm(3, P(EDGE1, 1), entries=(MacVid(mac(3), 100),) * 2)], topology.routes(), set()
        )
    # A migration: the destination is prepared while the source forwards, same MAC.
    prepared_twin = VmBinding(2, a.vsi_id, P(EDGE2, 1), a.entries, WEB, BindingState.PREPARED)
    assert plan_vm_flows([a, prepared_twin], topology.routes(), set())


def test_switches_without_links_get_only_their_local_flows():
    dc = Dc()
    dc.topology = Topology()
    a, b, c = vm(1, P(EDGE1, 1)), vm(2, P(EDGE1, 2)), vm(3, P(EDGE2, 1))
    dc.program(a, b, c)
    assert sorted(dc.plan) == [EDGE1, EDGE2]
    assert dc.flows_of(EDGE1, cookie(CookieKind.VSI, 3)) == []
    assert dc.send(a.port, **tcp(a, b)) == [(EDGE1, 2)]
    assert dc.send(a.port, **arp(a)) == [(EDGE1, 2)]
    assert dc.send(a.port, **tcp(a, c)) == []


def test_acl_rules_map_to_openflow_matches():
    rule = AclRule(
        "permit",
        eth_src=MacMatch.parse("02:00:00:00:00:01"),
        eth_dst=MacMatch.parse("02:00:00:00:00:00/ff:ff:ff:00:00:00"),
        ipv4_src=ipaddress.IPv4Network("10.30.0.0/16"),
        ipv4_dst=ipaddress.IPv4Network("10.40.1.7/32"),
        ip_proto=17,
        tp_src=1024,
        tp_dst=53,
    )
    assert acl_match(rule) == {
        "eth_src": "02:00:00:00:00:01",
        "eth_dst": ("02:00:00:00:00:00", "ff:ff:ff:00:00:00"),
        "eth_type": IPV4,
        "ipv4_src": ("10.30.0.0", "255.255.0.0"),
        "ipv4_dst": "10.40.1.7",
        "ip_proto": 17,
        "udp_src": 1024,
        "udp_dst": 53,
    }
    v6 = AclRule(
        "deny",
        ipv6_dst=ipaddress.IPv6Network("2001:db8::/32"),
        ipv6_src=ipaddress.IPv6Network("::/0"),
        ip_proto=TCP,
        tp_dst=22,
    )
    assert acl_match(v6) == {
        "eth_type": IPV6,
        "ipv6_dst": ("2001:db8::", "ffff:ffff::"),
        "ip_proto": TCP,
        "tcp_dst": 22,
    }
    assert acl_match(AclRule("deny")) == {}


def test_acl_priorities_keep_rule_order_and_refuse_what_does_not_fit():
    assert acl_priority(0) == Priority.ACL_TOP
    assert acl_priority(1) == acl_priority(0) - 2
    assert acl_priority(Priority.ACL_TOP // 2 - 1) - 1 >= 1
    with pytest.raises(ValueError, match="does not fit"):
        acl_priority(Priority.ACL_TOP // 2)


def test_every_flow_we_install_is_ours():
    dc = Dc(cross=True)
    dc.program(*_some_bindings(), rr={P(EDGE1, 1)})
    for fake in dc.switches.values():
        assert all(
            f.cookie & COOKIE_MASK_APP == cookie(CookieKind.BASE) & COOKIE_MASK_APP
            for f in fake.flows
        )


# any set of bindings --------------------------------------------------------------------------
SERVER_PORTS = [P(EDGE1, 1), P(EDGE1, 2), P(EDGE2, 1), P(EDGE2, 2)]
fabrics = {cross: Dc(cross) for cross in (False, True)}


@st.composite
def scenarios(draw):
    count = draw(st.integers(1, 6))
    bindings = [
        vm(
            handle,
            draw(st.sampled_from(SERVER_PORTS)),
            draw(st.sampled_from((100, 101))),
            prof=profile(),
            state=draw(st.sampled_from(BindingState)),
        )
        for handle in range(1, count + 1)
    ]
    rr = draw(st.sets(st.sampled_from(SERVER_PORTS)))
    return draw(st.booleans()), bindings, rr


@settings(max_examples=60)
@given(scenarios())
def test_any_bindings_get_exactly_the_connectivity_the_rules_promise(scenario):
    cross, bindings, rr = scenario
    dc = fabrics[cross]
    dc.program(*bindings, rr=rr)
    forwarding = [b for b in bindings if b.forwarding]
    for src in bindings:
        vid = src.entries[0].vid
        peers = [b for b in forwarding if b is not src and b.entries[0].vid == vid]
        # A standby binding's frames reach only the controller (they activate it).
        punted = [(src.port.dpid, ofp.OFPP_CONTROLLER)]
        standby = src.state is BindingState.STANDBY
        for dst in bindings:
            if dst is src:
                continue
            reaches = src.forwarding and dst in peers and (src.port != dst.port or src.port in rr)
            assert dc.send(src.port, **tcp(src, dst)) == (
                [(dst.port.dpid, dst.port.port_no)] if reaches else punted if standby else []
            )
        expected = (
            sorted(
                {
                    (b.port.dpid, b.port.port_no)
                    for b in peers
                    if b.port != src.port or src.port in rr
                }
            )
            if src.forwarding
            else punted
            if standby
            else []
        )
        assert dc.send(src.port, **arp(src)) == expected


# a VSI that owns a whole VLAN at its port (VID or GroupID/VID filter) ---------------------------
OWNS = profile("router", vlans=(100,), key=(9, 1), whole_vlan=True)


def owner(handle: int, port: PortRef, vid: int = 100) -> VmBinding:
    return vm(handle, port, prof=OWNS, entries=(MacVid(None, vid),))


def test_an_owned_vlan_admits_tagged_frames_at_its_port_and_gets_unclaimed_unicast_tagged():
    dc = Dc()
    router, a = owner(1, P(EDGE2, 2)), vm(2, P(EDGE1, 1))
    dc.program(router, a)
    tag = ofp.OFPVID_PRESENT | 100
    behind = "52:00:00:00:99:01"  # some host behind the owner: no VDP entry names it
    # a VM to a MAC nobody holds in the VLAN: up the tree, down to the owner, still tagged
    deliveries = dc.fabric.send(EDGE1, 1, **tcp(a, behind))
    assert [(d.dpid, d.port, d.packet["vlan_vid"]) for d in deliveries] == [(EDGE2, 2, tag)]
    # from behind the owner, tagged, to the VM: admitted by port and VLAN, delivered untagged
    to_a = {**tcp(a, a), "eth_src": behind}
    assert dc.send(router.port, **to_a, vlan_vid=tag) == [(EDGE1, 1)]
    # untagged or in another VLAN: the port's default deny
    assert dc.fabric.send(EDGE2, 2, **to_a) == []
    assert dc.fabric.send(EDGE2, 2, **to_a, vlan_vid=0x1000 | 101) == []


def test_an_owned_vlan_floods_tagged_to_its_owner_and_untagged_to_vms():
    dc = Dc()
    router, a, b = owner(1, P(EDGE2, 2)), vm(2, P(EDGE1, 1)), vm(3, P(EDGE2, 1))
    dc.program(router, a, b)
    copies = dc.fabric.send(EDGE1, 1, **arp(a))
    assert sorted((d.dpid, d.port, d.packet["vlan_vid"]) for d in copies) == [
        (EDGE2, 1, UNTAGGED),
        (EDGE2, 2, ofp.OFPVID_PRESENT | 100),
    ]


def test_two_owners_of_one_vlan_break_the_contract():
    with pytest.raises(ValueError, match="MAC/VLAN 100"):
        plan_vm_flows([owner(1, P(EDGE1, 1)), owner(2, P(EDGE2, 1))], Topology().routes(), set())
