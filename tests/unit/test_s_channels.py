"""S-channels end to end on the fake demo fabric: a station asks for channels with CDCP on its
port, then each channel is a station of its own (EVB, ECP, VDP, S-tagged), its VMs get their own
VSIs and flows, in their tenants' VLANs, and frames cross OVS in the channel's S-tag."""

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.codec.cdcp_tlv import CdcpRole, CdcpTlv, SChannel
from app.codec.ethernet import TPID_CTAG, TPID_STAG, VlanTag
from app.codec.evb_tlv import EvbMode
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame, decode_evb_frame
from app.codec.vdp import VdpTlvType, VsiId
from app.control_plane import ControlPlane
from app.events import EventLog
from app.fabric.ports import DEFAULT_TRUNK_PATTERNS, PortRef
from app.fabric.switch_sync import SwitchSync
from app.flows.ofmsg import ETH_TYPE_8021AD
from app.policy.loader import load_policies
from app.session.cdcp import DEFAULT_CHANNEL, CdcpConfig
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from tests.fakes.demo_fabric import EDGE1, EDGE2
from tests.fakes.drive import connect
from tests.fakes.stations import vdp_responses
from tests.unit.test_control_plane import POLICIES, Bed

WEB, DB = (5, 4), (6, 1)  # policies/default.yaml: web (blue, VLAN 100), db (red, VLAN 200)
S1, S2 = 4000, 4001  # the first S-VIDs of the default range, in the order asked
VM_A, VM_B = "52:54:00:00:01:0a", "52:54:00:00:01:0b"  # behind edge1-s1's channels 2 and 3
VM_W, VM_D = "52:54:00:00:02:0a", "52:54:00:00:02:0d"  # plain stations on edge2-s1, edge2-s2
UUID = "a1b2c3d4-0000-0000-0000-0000000001{:02x}"


def cdcp_request(*scids, held=None):
    held = held or {}
    return CdcpTlv(
        role=CdcpRole.STATION,
        scomp=True,
        chncap=8,
        channels=(DEFAULT_CHANNEL, *(SChannel(s, held.get(s, 0)) for s in scids)),
    )


def ask_channels(bed, *scids, held=None):
    """The station of edge1-s1 asks for S-channels; the frames the bridge sent back."""
    return bed.frame_in(
        EDGE1, 1, bed.stations.hello(EDGE1, 1, cdcp=cdcp_request(*scids, held=held))
    )


def associate(bed, dpid, port_no, n, mac, type_key, svid=0):
    frame = bed.stations.vdp(
        dpid, port_no, VdpTlvType.ASSOCIATE, UUID.format(n), mac, 0, *type_key, svid=svid
    )
    return bed.frame_in(dpid, port_no, frame)


def channel_bed(**plane):
    """Edge1-s1 with S-channels 2 (S-VID 4000) and 3 (4001), a web VM in the first and a db VM
    in the second; a web VM on edge2-s1 and a db VM on edge2-s2, plain."""
    bed = Bed(**plane)
    ask_channels(bed, 2, 3)
    for svid in (S1, S2):
        bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=svid))
    for port_no in (1, 2):
        bed.station_hello(EDGE2, port_no)
    for sent in (
        associate(bed, EDGE1, 1, 1, VM_A, WEB, svid=S1),
        associate(bed, EDGE1, 1, 2, VM_B, DB, svid=S2),
        associate(bed, EDGE2, 1, 3, VM_W, WEB),
        associate(bed, EDGE2, 2, 4, VM_D, DB),
    ):
        assert [r.status for r in vdp_responses(sent)] == [0x40]
    return bed


def send(bed, dpid, port_no, src, dst, svid=0):
    """Where a frame from `src` ends up, with the tag it leaves with: (dpid, port, VID, TPID)."""
    deliveries = bed.fabric.send(
        dpid,
        port_no,
        eth_src=src,
        eth_dst=dst,
        eth_type=0x0800,
        vlan_vid=svid | ofp.OFPVID_PRESENT if svid else ofp.OFPVID_NONE,
    )
    return [
        (d.dpid, d.port, d.packet["vlan_vid"] & 0xFFF, d.packet.get("vlan_tpid"))
        for d in deliveries
    ]


def test_a_station_s_channels_get_s_vids_and_the_answer_rides_in_the_port_s_lldp():
    bed = Bed()
    sent = ask_channels(bed, 2, 3)
    lldp = [f for f in (decode_evb_frame(d) for _, _, d in sent) if isinstance(f, LldpFrame)]
    assert lldp and all(f.vlan is None for f in lldp)  # the default S-channel: untagged
    assert lldp[0].lldpdu.cdcp == CdcpTlv(
        role=CdcpRole.BRIDGE,
        scomp=True,
        chncap=8,
        channels=(DEFAULT_CHANNEL, SChannel(2, S1), SChannel(3, S2)),
    )
    added = bed.log.recent("cdcp.channel_added")
    assert [(e.port, e.detail["scid"], e.detail["svid"]) for e in added] == [
        ("edge1-s1", 2, S1),
        ("edge1-s1", 3, S2),
    ]
    (port,) = [s for s in bed.plane.sessions_snapshot() if s["port"] == "edge1-s1"]
    assert port["channels"] == [{"scid": 2, "svid": S1}, {"scid": 3, "svid": S2}]
    assert port["cdcp"]["station"]["channels"][1] == {"scid": 2, "svid": 0}
    assert bed.plane.channels(EDGE1) == {1: port["channels"]}
    # The station then lists what it holds: the same answer, no event; that again: nothing sent.
    (again,) = ask_channels(bed, 2, 3, held={2: S1, 3: S2})
    assert decode_evb_frame(again[2]).lldpdu.cdcp == lldp[0].lldpdu.cdcp
    assert ask_channels(bed, 2, 3, held={2: S1, 3: S2}) == []
    assert len(bed.log.recent("cdcp.channel_added")) == 2


def test_each_s_channel_is_a_station_of_its_own_and_unknown_tags_are_counted():
    bed = Bed()
    ask_channels(bed, 2)
    sent = bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=S1))
    answers = [decode_evb_frame(d) for _, _, d in sent]
    assert answers and all(f.vlan == VlanTag(S1, tpid=TPID_STAG) for f in answers)
    assert answers[0].lldpdu.evb.mode == EvbMode.BRIDGE and answers[0].lldpdu.cdcp is None
    channel = [s for s in bed.plane.sessions_snapshot() if s["svid"] == S1]
    assert [(s["port"], s["agreement"] is not None) for s in channel] == [("edge1-s1", True)]
    assert bed.log.recent("station.seen")[-1].detail["svid"] == S1
    # An S-VID CDCP gave no channel of this port, and a C-tag: counted, never answered.
    assert bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=S2)) == []
    ctagged = bed.stations.hello(EDGE1, 1)
    ctagged = ctagged[:12] + TPID_CTAG.to_bytes(2, "big") + S1.to_bytes(2, "big") + ctagged[12:]
    assert bed.frame_in(EDGE1, 1, ctagged) == []
    counters = bed.plane.counters_for(EDGE1)
    assert counters["edge1-s1"]["unknown_channel"] == 1
    assert counters["edge1-s1"]["tagged"] == 1
    assert counters[f"edge1-s1.{S1}"]["lldp_evb"] == 1
    # CDCP runs on the port itself: a channel's station asking for channels is not heard.
    nested = bed.stations.hello(EDGE1, 1, svid=S1, cdcp=cdcp_request(5))
    sent = bed.frame_in(EDGE1, 1, nested)
    assert all(decode_evb_frame(d).lldpdu.cdcp is None for _, _, d in sent)
    assert bed.plane.counters_for(EDGE1)[f"edge1-s1.{S1}"]["lldp_cdcp_ignored"] == 1


def test_a_channel_s_vdp_exchange_is_s_tagged_and_its_vsi_is_held_at_the_channel():
    bed = Bed()
    ask_channels(bed, 2)
    bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=S1))
    frame = bed.stations.vdp(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID.format(1), VM_A, svid=S1)
    reaction = bed.plane.handle_frame(EDGE1, bed.syncs[EDGE1].ports[1], frame, 1.0)
    (ack,) = [decode_evb_frame(d) for _, _, d in reaction.packets]
    assert isinstance(ack, EcpAckFrame) and ack.vlan == VlanTag(S1, tpid=TPID_STAG)
    sent = bed.run(reaction)
    (response,) = [f for f in (decode_evb_frame(d) for _, _, d in sent) if isinstance(f, VdpFrame)]
    assert response.vlan == VlanTag(S1, tpid=TPID_STAG)
    (info,) = bed.bridge.vsis()
    assert [a.port for a in info.attachments] == [PortRef(EDGE1, 1, S1)]
    (associated,) = bed.log.recent("vsi.associated")
    assert (associated.port, associated.detail["svid"]) == ("edge1-s1", S1)


def test_vms_behind_two_s_channels_of_one_port_reach_their_own_tenant_only():
    bed = channel_bed()
    # In the channel's S-tag, to the tenant's VM on another edge: untagged there; and back.
    assert send(bed, EDGE1, 1, VM_A, VM_W, svid=S1) == [(EDGE2, 1, 0, None)]
    assert send(bed, EDGE2, 1, VM_W, VM_A) == [(EDGE1, 1, S1, ETH_TYPE_8021AD)]
    assert send(bed, EDGE1, 1, VM_B, VM_D, svid=S2) == [(EDGE2, 2, 0, None)]
    assert send(bed, EDGE2, 2, VM_D, VM_B) == [(EDGE1, 1, S2, ETH_TYPE_8021AD)]
    # Other tenants, whether behind the same port or elsewhere: nothing.
    assert send(bed, EDGE1, 1, VM_A, VM_B, svid=S1) == []
    assert send(bed, EDGE1, 1, VM_A, VM_D, svid=S1) == []
    assert send(bed, EDGE2, 2, VM_D, VM_A) == []
    # A VM's frames outside its channel: untagged, or in the other channel's S-tag.
    assert send(bed, EDGE1, 1, VM_A, VM_W) == []
    assert send(bed, EDGE1, 1, VM_A, VM_W, svid=S2) == []
    # Broadcast reaches the tenant's members: the channel of VM_A, not VM_B's.
    broadcast = "ff:ff:ff:ff:ff:ff"
    assert send(bed, EDGE2, 1, VM_W, broadcast) == [(EDGE1, 1, S1, ETH_TYPE_8021AD)]
    assert send(bed, EDGE1, 1, VM_A, broadcast, svid=S1) == [(EDGE2, 1, 0, None)]
    assert bed.bridge.bound.at(EDGE1, 1) and {b.port for b in bed.bridge.bound.at(EDGE1, 1)} == {
        PortRef(EDGE1, 1, S1),
        PortRef(EDGE1, 1, S2),
    }


def test_a_channel_the_station_gives_up_takes_its_vms_and_their_flows():
    bed = channel_bed()
    ask_channels(bed, 3, held={3: S2})
    (removed,) = bed.log.recent("cdcp.channel_removed")
    assert (removed.detail["scid"], removed.detail["svid"]) == (2, S1)
    (gone,) = bed.log.recent("vsi.deassociated")
    assert (gone.detail["reason"], gone.detail["svid"]) == ("S-channel removed", S1)
    assert send(bed, EDGE2, 1, VM_W, VM_A) == []
    assert send(bed, EDGE2, 2, VM_D, VM_B) == [(EDGE1, 1, S2, ETH_TYPE_8021AD)]
    assert bed.plane.channels(EDGE1) == {1: [{"scid": 3, "svid": S2}]}
    # Its frames are an unknown channel's now.
    assert bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=S1)) == []


def test_refused_channels_are_answered_with_s_vid_0_and_reported():
    bed = Bed(cdcp_config=CdcpConfig(max_channels=2, svids=(300, 310)))
    sent = ask_channels(bed, 2, 3)
    cdcp = next(decode_evb_frame(d) for _, _, d in sent).lldpdu.cdcp
    assert [(c.scid, c.svid) for c in cdcp.channels] == [(1, 1), (2, 300), (3, 0)]
    (refused,) = bed.log.recent("cdcp.refused")
    assert refused.detail["scids"] == [3] and refused.detail["chncap"] == 2


def test_with_cdcp_off_a_station_s_cdcp_tlv_is_not_answered():
    bed = Bed(cdcp_config=CdcpConfig(max_channels=0))
    sent = ask_channels(bed, 2)
    assert all(decode_evb_frame(d).lldpdu.cdcp is None for _, _, d in sent)
    assert bed.plane.counters_for(EDGE1)["edge1-s1"]["cdcp_disabled"] == 1
    assert bed.plane.channels(EDGE1) == {}


def test_a_malformed_cdcp_request_changes_nothing_and_says_why():
    bed = Bed()
    ask_channels(bed, 2)
    bogus = CdcpTlv(role=CdcpRole.STATION, scomp=True, chncap=8, channels=(SChannel(2, 0),))
    sent = bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, cdcp=bogus))
    assert all(decode_evb_frame(d).lldpdu.cdcp is None for _, _, d in sent)
    (ignored,) = bed.log.recent("cdcp.ignored")
    assert "default S-channel" in ignored.detail["reason"]
    assert bed.plane.channels(EDGE1) == {1: [{"scid": 2, "svid": S1}]}


def test_the_channels_and_their_vms_survive_a_restart_without_a_flow_changed():
    saved = []
    bed = channel_bed(save=saved.append)
    bed.plane.save()
    assert [[EDGE1, 1, 2, S1], [EDGE1, 1, 3, S2]] in [c.channels for c in saved]
    intent = bed.plane.intent()
    restarted = ControlPlane(EventLog(), VdpBridge(Authorizer(lambda: load_policies(POLICIES))))
    restarted.restore(intent, load_policies(POLICIES), 50.0)
    for dpid, fake in bed.fabric.switches.items():
        sync = SwitchSync(dpid, DEFAULT_TRUNK_PATTERNS, restarted.vm_flows, restarted.vm_meters)
        sent = connect(sync, fake)
        assert not [m for m in sent if m.__class__.__name__ in ("OFPFlowMod", "OFPMeterMod")]
        restarted.switch_ports(dpid, sync.name, sync.ports, 50.0)
    assert restarted.channels(EDGE1) == bed.plane.channels(EDGE1)
    # The station's next CDCP TLV (what it holds) gets the same channels; its channel speaks.
    edge1_s1 = bed.syncs[EDGE1].ports[1]
    hello = bed.stations.hello(EDGE1, 1, cdcp=cdcp_request(2, 3, held={2: S1, 3: S2}))
    restarted.handle_frame(EDGE1, edge1_s1, hello, 51.0)
    assert restarted.channels(EDGE1) == bed.plane.channels(EDGE1)
    assert restarted.handle_frame(
        EDGE1, edge1_s1, bed.stations.hello(EDGE1, 1, svid=S1), 51.0
    ).packets
    assert {b.vsi_id for b in restarted.bridge.bindings() if b.port.svid} == {
        VsiId.from_uuid(UUID.format(1)),
        VsiId.from_uuid(UUID.format(2)),
    }


def test_vms_of_one_tenant_in_two_channels_of_a_port_meet_through_the_reflective_relay():
    """Both channels' stations asked for reflective relay (and got it): a frame from one
    channel to the other goes back out of the port it came in on, in the receiver's S-tag."""
    bed = Bed()
    ask_channels(bed, 2, 3)
    for svid in (S1, S2):
        bed.frame_in(EDGE1, 1, bed.stations.hello(EDGE1, 1, svid=svid))
    associate(bed, EDGE1, 1, 1, VM_A, WEB, svid=S1)
    associate(bed, EDGE1, 1, 2, VM_B, WEB, svid=S2)
    assert send(bed, EDGE1, 1, VM_A, VM_B, svid=S1) == [(EDGE1, 1, S2, ETH_TYPE_8021AD)]
    assert send(bed, EDGE1, 1, VM_B, VM_A, svid=S2) == [(EDGE1, 1, S1, ETH_TYPE_8021AD)]
    # Flooded, a frame reaches both channels (its own too: a reflective relay reflects).
    assert send(bed, EDGE1, 1, VM_A, "ff:ff:ff:ff:ff:ff", svid=S1) == [
        (EDGE1, 1, S1, ETH_TYPE_8021AD),
        (EDGE1, 1, S2, ETH_TYPE_8021AD),
    ]


def test_a_restarted_station_asking_again_for_what_it_held_is_answered_at_once():
    bed = Bed()
    ask_channels(bed, 2)
    ask_channels(bed, 2, held={2: S1})  # what it holds
    sent = ask_channels(bed, 2)  # restarted: <2, 0> again
    (answer,) = [decode_evb_frame(d).lldpdu.cdcp for _, _, d in sent]
    assert [(c.scid, c.svid) for c in answer.channels] == [(1, 1), (2, S1)]
    assert len(bed.log.recent("cdcp.channel_added")) == 1
