"""The whole path of a request through the pure control plane, on the fake demo fabric:
station LLDP -> EVB answer; VDP Associate -> ECP ack now, flows as batches, the response only
once the batches are confirmed; refusals answered at once with no flow; garbage counted."""

import dataclasses
from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.codec.evb_tlv import EvbMode
from app.codec.frame import EcpAckFrame, LldpFrame, decode_evb_frame
from app.codec.vdp import VdpError, VdpTlvType, VsiId
from app.control_plane import SAVE_DELAY_MAX, ControlPlane, Reaction
from app.events import EventLog
from app.fabric.ports import DEFAULT_TRUNK_PATTERNS, PortRef
from app.fabric.switch_sync import SwitchSync
from app.flows.base_pipeline import ETH_TYPE_LLDP
from app.flows.tables import VM_METER_BASE, CookieKind, cookie_kind
from app.policy.loader import load_policies
from app.refusal_events import INTERVAL, IN_FULL
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from tests.fakes.demo_fabric import EDGE1, EDGE2, demo_fabric
from tests.fakes.drive import answer, connect
from tests.fakes.stations import Stations, vdp_responses
from tests.pcap_reader import read_pcap

POLICIES = Path(__file__).resolve().parents[2] / "policies"
DATA = Path(__file__).resolve().parents[1] / "data"
UNTAGGED = ofp.OFPVID_NONE


class Bed:
    """ControlPlane + the fake switches, with the shim's job done by hand."""

    def __init__(self, save=lambda changes: None, observer=None, **plane):
        self.log = EventLog()
        self.bridge = VdpBridge(Authorizer(lambda: load_policies(POLICIES)))
        self.plane = ControlPlane(self.log, self.bridge, save=save, observer=observer, **plane)
        self.fabric = demo_fabric()
        self.syncs = {}
        for dpid, fake in self.fabric.switches.items():
            sync = SwitchSync(
                dpid, DEFAULT_TRUNK_PATTERNS, self.plane.vm_flows, self.plane.vm_meters
            )
            connect(sync, fake)
            self.syncs[dpid] = sync
            self.plane.switch_ports(dpid, sync.name, sync.ports, 0.0)
        self.run(self.plane.tick(0.0))  # link probes
        self.stations = Stations()

    def run(self, reaction: Reaction, confirm: bool = True) -> list[tuple[int, int, bytes]]:
        """Applies the batches, delivers link probes, returns the frames sent to stations."""
        for batch in reaction.batches:
            answer(self.syncs[batch.dpid], self.fabric.switches[batch.dpid], batch.msgs)
            assert not self.fabric.switches[batch.dpid].errors
        out = []
        for dpid, port_no, frame in reaction.packets:
            peer = self.fabric.peers.get((dpid, port_no))
            if peer is None:
                out.append((dpid, port_no, frame))
            else:
                self.frame_in(*peer, frame)
        if confirm and reaction.ticket is not None:
            out += self.run(self.plane.flows_confirmed(reaction.ticket, {}, 1.0))
        return out + self._ack(out)

    def _ack(self, sent) -> list:
        """The stations acknowledge every ECP request of ours, as lldpad does."""
        more = []
        for dpid, port_no, data in sent:
            ack = self.stations.ack(dpid, port_no, data)
            if ack is not None:
                more += self.frame_in(dpid, port_no, ack)
        return more

    def frame_in(self, dpid, port_no, frame, now=1.0, confirm=True):
        port = self.syncs[dpid].ports[port_no]
        return self.run(self.plane.handle_frame(dpid, port, frame, now), confirm)

    def station_hello(self, dpid, port_no):
        return self.frame_in(dpid, port_no, self.stations.hello(dpid, port_no))

    def request(
        self, dpid, port_no, mode, uuid, mac, vid=0, type_id=5, version=4, confirm=True, now=1.0
    ):
        frame = self.stations.vdp(dpid, port_no, mode, uuid, mac, vid, type_id, version)
        return self.frame_in(dpid, port_no, frame, now, confirm)

    def associate_reaction(self, dpid, port_no, uuid, mac, now=1.0) -> Reaction:
        """The control plane's reaction to an Associate, not yet run by the shim."""
        return self.plane.handle_frame(
            dpid,
            self.syncs[dpid].ports[port_no],
            self.stations.vdp(dpid, port_no, VdpTlvType.ASSOCIATE, uuid, mac),
            now,
        )


def vsi_flows(bed, dpid) -> list:
    """The switch's flows that belong to a VM (not its place on the tree)."""
    return [f for f in bed.plane.vm_flows(dpid) if cookie_kind(f.cookie) is CookieKind.VSI]


def ping(bed, src_port: PortRef, src_mac, dst_mac):
    deliveries = bed.fabric.send(
        src_port.dpid,
        src_port.port_no,
        eth_src=src_mac,
        eth_dst=dst_mac,
        eth_type=0x0800,
        ip_proto=1,
        ipv4_src="10.0.0.1",
        ipv4_dst="10.0.0.2",
        vlan_vid=UNTAGGED,
    )
    return [(d.dpid, d.port) for d in deliveries]


VM_A, VM_B, VM_C = "52:54:00:00:00:0a", "52:54:00:00:00:0b", "52:54:00:00:00:0c"
UUID_A, UUID_B, UUID_C = (f"a1b2c3d4-0000-0000-0000-00000000000{x}" for x in "abc")


def test_station_lldp_is_answered_with_our_evb_tlv():
    bed = Bed()
    sent = bed.station_hello(EDGE1, 1)
    answers = [decode_evb_frame(f) for _, _, f in sent]
    assert any(isinstance(f, LldpFrame) and f.lldpdu.evb.mode == EvbMode.BRIDGE for f in answers)
    assert [e.port for e in bed.log.recent("station.seen")] == ["edge1-s1"]


def test_associate_is_answered_only_after_its_flows_are_confirmed():
    bed = Bed()
    bed.station_hello(EDGE1, 1)
    reaction = bed.associate_reaction(EDGE1, 1, UUID_A, VM_A)
    # Now: the ECP ack, and flow batches; the VDP response waits for the barrier.
    now_sent = [decode_evb_frame(f) for _, _, f in reaction.packets]
    assert [type(f) for f in now_sent] == [EcpAckFrame]
    assert reaction.ticket is not None and {b.dpid for b in reaction.batches} >= {EDGE1}
    sent = bed.run(reaction, confirm=False)
    assert vdp_responses(sent) == []
    sent = bed.run(bed.plane.flows_confirmed(reaction.ticket, {}, 1.1))
    (response,) = vdp_responses(sent)
    assert (response.status, response.filters[0].vid) == (0x40, 100)  # VID 0 -> default 100


def test_the_intent_is_saved_after_the_flows_leave_and_before_the_station_hears():
    saved = []
    bed = Bed(save=saved.append)
    bed.station_hello(EDGE1, 1)
    reaction = bed.associate_reaction(EDGE1, 1, UUID_A, VM_A)
    assert reaction.batches and saved == []  # the disk's sync must not delay them
    # The shim, once it has sent them: not while flows are on their way, for at most a while.
    bed.plane.save_unless_busy(1.0, busy=True)
    bed.plane.save_unless_busy(1.0 + SAVE_DELAY_MAX / 2, busy=True)
    assert saved == []
    bed.plane.save_unless_busy(1.0 + SAVE_DELAY_MAX, busy=True)
    assert [len(changes.vsis) for changes in saved] == [1]
    bed.plane.save_unless_busy(3.0, busy=False)
    assert len(saved) == 1  # nothing new: no write
    saved.clear()
    bed.run(reaction, confirm=False)
    frame = bed.stations.vdp(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUID_A, VM_A, 0, 5, 4)
    leaving = bed.plane.handle_frame(EDGE1, bed.syncs[EDGE1].ports[1], frame, 2.0)
    assert leaving.batches and saved == []
    # Not saved by the shim this time: saved all the same by the time the response is out.
    confirmed = bed.plane.flows_confirmed(leaving.ticket, {}, 2.1)
    assert [r.status for r in vdp_responses(confirmed.packets)] == [0x40]
    assert len(saved) == 1


def test_two_associated_vms_reach_each_other_across_edges_and_a_refused_one_nothing():
    bed = Bed()
    for dpid in (EDGE1, EDGE2):
        bed.station_hello(dpid, 1)
    assert (
        vdp_responses(bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A))[0].status == 0x40
    )
    assert (
        vdp_responses(bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B))[0].status == 0x40
    )
    assert ping(bed, PortRef(EDGE1, 1), VM_A, VM_B) == [(EDGE2, 1)]
    assert ping(bed, PortRef(EDGE2, 1), VM_B, VM_A) == [(EDGE1, 1)]

    intruder = "52:54:00:00:00:66"
    sent = bed.request(
        EDGE2, 1, VdpTlvType.ASSOCIATE, "a1b2c3d4-0000-0000-0000-000000000066", intruder, type_id=99
    )
    (refusal,) = vdp_responses(sent)
    assert refusal.error == VdpError.OTHER_FAILURE and not refusal.keep
    assert ping(bed, PortRef(EDGE2, 1), intruder, VM_A) == []
    assert bed.log.recent("vsi.refused")[-1].detail["reason"]


def test_deassociate_removes_exactly_that_vm():
    bed = Bed()
    for dpid in (EDGE1, EDGE2):
        bed.station_hello(dpid, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B)
    sent = bed.request(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUID_A, VM_A, vid=100)
    assert vdp_responses(sent)[0].status == 0x40
    assert ping(bed, PortRef(EDGE1, 1), VM_A, VM_B) == []
    assert ping(bed, PortRef(EDGE2, 1), VM_B, VM_A) == []
    assert [b.vsi_id for b in bed.bridge.bindings()] == [VsiId.from_uuid(UUID_B)]


def test_flows_refused_by_a_switch_turn_the_success_into_a_failure_and_are_taken_back():
    bed = Bed()
    bed.station_hello(EDGE1, 1)
    reaction = bed.associate_reaction(EDGE1, 1, UUID_A, VM_A)
    bed.run(reaction, confirm=False)
    sent = bed.run(bed.plane.flows_confirmed(reaction.ticket, {EDGE1: "table full"}, 1.1))
    (response,) = vdp_responses(sent)
    assert response.error == VdpError.OTHER_FAILURE
    assert bed.bridge.bindings() == []
    assert vsi_flows(bed, EDGE1) == []
    assert bed.log.recent("vsi.install_failed")


def test_keepalive_timeout_removes_the_flows_and_tells_the_station():
    bed = Bed()
    bed.station_hello(EDGE1, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    assert vsi_flows(bed, EDGE1)
    sent = bed.run(bed.plane.tick(100.0))
    (deassoc,) = vdp_responses(sent)
    assert deassoc.mode == VdpTlvType.DE_ASSOCIATE and not deassoc.is_response
    assert vsi_flows(bed, EDGE1) == []


def test_malformed_frames_are_counted_and_reported_at_a_bounded_rate():
    bed = Bed()
    good = read_pcap(DATA / "vdp22.pcap")[0]
    for i in range(50):
        assert bed.frame_in(EDGE1, 1, good[:20], now=i * 0.1) == []
    counts = bed.plane.counters_for(EDGE1)["edge1-s1"]
    assert counts["malformed"] == 50
    dropped = bed.log.recent("frame.dropped")
    assert len(dropped) == 1 and dropped[0].detail["field"]
    assert bed.station_hello(EDGE1, 1)  # the port still works


def test_link_probes_build_the_topology():
    bed = Bed()
    assert {(link.a.dpid, link.b.dpid) for link in bed.plane.topology.links} == {
        (EDGE1, 0x100),
        (EDGE2, 0x100),
    }
    assert all(
        bed.plane.counters_for(0x100)[p]["link_probe"] >= 1 for p in ("agg1-dn1", "agg1-dn2")
    )
    assert ETH_TYPE_LLDP  # probes ride on LLDP, punted like the stations' frames


def test_a_trunk_port_going_down_ends_its_link_at_once():
    bed = Bed()
    sync = bed.syncs[EDGE1]
    uplink = next(port for port in sync.ports.values() if port.name == "edge1-up1")
    ports = {**sync.ports, uplink.number: dataclasses.replace(uplink, up=False)}
    bed.run(bed.plane.switch_ports(EDGE1, sync.name, ports, 1.0))
    [down] = bed.log.recent("link.down")
    assert (down.switch, down.port) in {("edge1", "edge1-up1"), ("agg1", "agg1-dn1")}
    assert {down.port, down.detail["peer"].split("/")[1]} == {"edge1-up1", "agg1-dn1"}
    assert {(link.a.dpid, link.b.dpid) for link in bed.plane.topology.links} == {(EDGE2, 0x100)}


def test_relocation_prepares_the_destination_and_the_stations_associate_moves_the_vm():
    bed = Bed()
    for dpid in (EDGE1, EDGE2):
        bed.station_hello(dpid, 1)
        bed.station_hello(dpid, 2)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 2, VdpTlvType.ASSOCIATE, UUID_B, VM_B)
    vsi_a = VsiId.from_uuid(UUID_A)
    bed.run(bed.plane.prepare(vsi_a, PortRef(EDGE2, 1), 2.0, replicate=False))
    # Prepared, not forwarding: the VM is still where it was.
    assert ping(bed, PortRef(EDGE2, 2), VM_B, VM_A) == [(EDGE1, 1)]
    sent = bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A, vid=100, now=3.0)
    responses = vdp_responses(sent)
    assert [r.status for r in responses if r.is_response] == [0x40]
    (unsolicited,) = [r for r in responses if not r.is_response]
    assert unsolicited.mode == VdpTlvType.DE_ASSOCIATE
    assert ping(bed, PortRef(EDGE2, 2), VM_B, VM_A) == [(EDGE2, 1)]
    assert not [
        f
        for f in bed.fabric.switches[EDGE1].flows
        if f.cookie >> 48 == 0xEB03 and f.match.get("eth_src") == VM_A
    ]
    where = bed.plane.lookup(bed.plane.find_vsi(VM_A))
    assert [(c["switch"], c["port"]) for c in where["current"]] == [("edge2", "edge2-s1")]
    assert [(p["switch"], p["port"]) for p in where["previous"]] == [("edge1", "edge1-s1")]


def test_a_changed_profile_applies_to_associated_vms_and_a_removed_type_deassociates():
    import dataclasses

    from app.policy.profile import Qos

    bed = Bed()
    bed.station_hello(EDGE1, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    database = load_policies(POLICIES)
    web = database.get(5, 4)
    faster = database.with_profile(
        dataclasses.replace(web, qos=Qos(rate_kbps=20000, burst_kb=2000))
    )
    reaction, result = bed.plane.apply_profiles(faster, 2.0)
    assert result == {"updated": 1, "deassociated": []}
    bed.run(reaction)
    (meter,) = [m for i, m in bed.fabric.switches[EDGE1].meters.items() if i > VM_METER_BASE]
    assert meter.bands[0].rate == 20000
    reaction, result = bed.plane.apply_profiles(faster.without(web.key), 3.0)
    assert result["deassociated"] == [UUID_A]
    sent = bed.run(reaction)
    assert [r.mode for r in vdp_responses(sent)] == [VdpTlvType.DE_ASSOCIATE]
    assert vsi_flows(bed, EDGE1) == []


def test_a_restarted_controller_takes_back_its_intent_and_changes_no_flow():
    bed = Bed()
    for dpid in (EDGE1, EDGE2):
        bed.station_hello(dpid, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B)
    saved = []
    restarted = ControlPlane(
        EventLog(), VdpBridge(Authorizer(lambda: load_policies(POLICIES))), save=saved.append
    )
    restarted.restore(bed.plane.intent(), load_policies(POLICIES), 50.0)
    for dpid, fake in bed.fabric.switches.items():
        sync = SwitchSync(dpid, DEFAULT_TRUNK_PATTERNS, restarted.vm_flows, restarted.vm_meters)
        sent = connect(sync, fake)
        assert not [m for m in sent if m.__class__.__name__ in ("OFPFlowMod", "OFPMeterMod")], (
            f"switch {dpid:#x} was changed"
        )
    assert ping(bed, PortRef(EDGE1, 1), VM_A, VM_B) == [(EDGE2, 1)]
    assert [b.vsi_id for b in restarted.bridge.bindings()] == [
        VsiId.from_uuid(UUID_A),
        VsiId.from_uuid(UUID_B),
    ]


def test_restored_vsis_keep_alive_from_when_their_switch_is_ready_again():
    bed = Bed()
    for dpid in (EDGE1, EDGE2):
        bed.station_hello(dpid, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B)
    restarted = ControlPlane(EventLog(), VdpBridge(Authorizer(lambda: load_policies(POLICIES))))
    restarted.restore(bed.plane.intent(), load_policies(POLICIES), 50.0)
    timeout = 17.45  # RKA 20 both sides: ((1 + 2R) * 2^RTE + 2^RKA) * 10 us * 1.5
    for dpid, sync in bed.syncs.items():
        restarted.switch_ports(dpid, sync.name, sync.ports, 50.0)
    restarted.switch_ready(EDGE1, 60.0)  # reconciling edge1 took 10 s; edge2 is not back yet
    # Until its first keep-alive a restored VSI has twice its timeout: the controller that
    # stopped may have taken a keep-alive and never answered it.
    restarted.tick(50.0 + 2 * timeout + 1)
    assert [b.vsi_id for b in restarted.bridge.bindings()] == [VsiId.from_uuid(UUID_A)]
    restarted.tick(60.0 + 2 * timeout + 1)
    assert restarted.bridge.bindings() == []


def test_a_restored_vsi_keeps_its_plain_timeout_once_a_keep_alive_is_heard():
    bed = Bed()
    bed.station_hello(EDGE1, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    restored = VdpBridge(Authorizer(lambda: load_policies(POLICIES)))
    restored.restore(bed.plane.intent()["vsis"], load_policies(POLICIES), 50.0)
    timeout = 17.45
    assert restored.expire(50.0 + timeout + 1).changes == {}  # the grace holds
    ((vsi_id, att),) = [
        (v, a) for v, vsi in restored._vsis.items() for a in vsi.attachments.values()
    ]
    restored._refresh(vsi_id, att, 60.0, timeout)  # a keep-alive
    assert att.expires == 60.0 + timeout


def test_a_type_unknown_here_is_asked_of_the_vm_manager_and_the_request_replayed():
    import dataclasses

    from app.policy.database import VsiTypeDatabase
    from app.vcenter.client import LookupPending, ProfileQuery
    from app.vdp.authorizer import VsiManagerUnreachable

    database = load_policies(POLICIES)
    remote = dataclasses.replace(database.get(5, 4), key=database.get(5, 4).key.__class__(42, 1))
    answers = {}

    def lookup(db, manager_id, key):
        query = ProfileQuery(key.type_id, key.version, manager_id)
        if query not in answers:
            raise LookupPending(query)
        if answers[query] is None:
            raise VsiManagerUnreachable("connection refused")
        return answers[query]

    bed = Bed()
    bed.bridge._authorizer = Authorizer(lambda: VsiTypeDatabase(), lookup=lookup)
    bed.station_hello(EDGE1, 1)
    bed.station_hello(EDGE2, 1)
    sent = bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A, type_id=42, version=1)
    sent += bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_C, VM_C, type_id=42, version=1)
    assert vdp_responses(sent) == []  # parked while the manager is asked
    answers[ProfileQuery(42, 1, "mgr1")] = remote
    sent = bed.run(bed.plane.lookup_done(ProfileQuery(42, 1, "mgr1"), 1.5))
    assert sorted(
        (d, r.status) for (d, _, _), r in zip(sent, vdp_responses(sent), strict=True)
    ) == [(EDGE1, 0x40), (EDGE2, 0x40)]
    assert ping(bed, PortRef(EDGE1, 1), VM_A, VM_C) == [(EDGE2, 1)]

    sent = bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B, type_id=43, version=1)
    answers[ProfileQuery(43, 1, "mgr1")] = None  # the manager did not answer
    sent = bed.run(bed.plane.lookup_done(ProfileQuery(43, 1, "mgr1"), 2.0))
    (refused,) = vdp_responses(sent)
    assert refused.error == VdpError.UNABLE_TO_CONTACT_VSI_MANAGER


def test_a_flood_of_refusals_costs_a_few_events_and_one_summary_not_a_row_each():
    """Issue 10: every refused TLV was one event (a log line and an SQLite row)."""
    bed = Bed()
    bed.station_hello(EDGE1, 1)
    sent = []
    for n in range(40):
        uuid = f"b1b2c3d4-0000-0000-0000-{n:012x}"
        sent += bed.request(
            EDGE1,
            1,
            VdpTlvType.ASSOCIATE,
            uuid,
            f"52:54:00:00:01:{n:02x}",
            type_id=99,
            version=1,
            now=1.0 + n * 0.01,
        )
    assert len(vdp_responses(sent)) == 40  # the station hears every answer
    refusals = [e for e in bed.log.recent("vsi.refused", limit=1000) if e.kind == "vsi.refused"]
    assert len(refusals) == IN_FULL
    bed.run(bed.plane.tick(1.0 + INTERVAL))
    (summary,) = bed.log.recent("vsi.refused_summary")
    assert (summary.switch, summary.port) == ("edge1", "edge1-s1")
    assert summary.detail["refused"] == 40 and summary.detail["error"] == "other_failure"
    assert "unknown VSI type 99" in summary.detail["reason"]


def rarp(mac: str) -> bytes:
    """QEMU's announce-self frame: RARP request reverse, the VM's MAC as source."""
    mac_octets = bytes.fromhex(mac.replace(":", ""))
    payload = bytes.fromhex("0001080006040003") + mac_octets + bytes(4) + mac_octets + bytes(4)
    return (b"\xff" * 6 + mac_octets + b"\x80\x35" + payload).ljust(60, b"\0")


def arp_request(mac: str) -> bytes:
    mac_octets = bytes.fromhex(mac.replace(":", ""))
    payload = bytes.fromhex("0001080006040001") + mac_octets + bytes([10, 0, 0, 1]) + bytes(10)
    return (b"\xff" * 6 + mac_octets + b"\x08\x06" + payload).ljust(60, b"\0")


def test_the_vms_first_frame_at_its_standby_destination_moves_it_before_its_associate():
    bed = Bed()
    for dpid, port_no in ((EDGE1, 1), (EDGE2, 1), (EDGE2, 2)):
        bed.station_hello(dpid, port_no)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 2, VdpTlvType.ASSOCIATE, UUID_B, VM_B)
    bed.request(EDGE2, 1, VdpTlvType.PRE_ASSOCIATE, UUID_A, VM_A, vid=100, now=2.0)
    destination = bed.syncs[EDGE2].ports[1]
    # Standing by: the source forwards; the copy's frames at the destination reach only us.
    assert ping(bed, PortRef(EDGE2, 2), VM_B, VM_A) == [(EDGE1, 1)]
    assert ping(bed, PortRef(EDGE2, 1), VM_A, VM_B) == [(EDGE2, ofp.OFPP_CONTROLLER)]
    # The VM's MAC on a port where it is not prepared: dropped there, nothing moves.
    assert ping(bed, PortRef(EDGE1, 2), VM_A, VM_B) == []
    spoofed = bed.plane.first_frame(EDGE1, bed.syncs[EDGE1].ports[2], rarp(VM_A), 2.5)
    assert spoofed == Reaction()
    assert bed.plane.counters_for(EDGE1)["edge1-s2"]["vm_frame_ignored"] == 1

    reaction = bed.plane.first_frame(EDGE2, destination, rarp(VM_A), 3.0)
    assert reaction.ticket is not None and {b.dpid for b in reaction.batches} >= {EDGE1, EDGE2}
    # The VM's ARP request, punted while the flows are on their way, waits for them.
    assert bed.plane.first_frame(EDGE2, destination, arp_request(VM_A), 3.001) == Reaction()
    assert not bed.log.recent("vsi.activated")  # not before the switches confirmed the flows
    assert bed.run(reaction, confirm=False) == []
    confirmed = bed.plane.flows_confirmed(reaction.ticket, {}, 3.01)
    assert confirmed.resubmits == [(EDGE2, 1, rarp(VM_A)), (EDGE2, 1, arp_request(VM_A))]
    assert confirmed.packets == []  # nothing to tell any station
    (activated,) = bed.log.recent("vsi.activated")
    assert (activated.switch, activated.port) == ("edge2", "edge2-s1")
    assert activated.detail["moved_from"] == bed.plane.switches.text(PortRef(EDGE1, 1))
    # Every switch points to the destination; the source admits the VM no more.
    assert ping(bed, PortRef(EDGE2, 2), VM_B, VM_A) == [(EDGE2, 1)]
    assert ping(bed, PortRef(EDGE2, 1), VM_A, VM_B) == [(EDGE2, 2)]
    assert ping(bed, PortRef(EDGE1, 1), VM_A, VM_B) == []
    # A frame punted before the flows went in and handed to us after: run through again.
    late = bed.plane.first_frame(EDGE2, destination, arp_request(VM_A), 3.02)
    assert late == Reaction(resubmits=[(EDGE2, 1, arp_request(VM_A))])
    # The stations catch up: the source de-associates, the destination's Associate confirms.
    bed.request(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUID_A, VM_A, vid=100, now=4.0)
    confirm = bed.plane.handle_frame(
        EDGE2,
        destination,
        bed.stations.vdp(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A, 100, 5, 4),
        5.0,
    )
    assert confirm.batches == []  # in place already
    responses = vdp_responses(bed.run(confirm))
    assert [r.status for r in responses] == [0x40]
    assert ping(bed, PortRef(EDGE2, 2), VM_B, VM_A) == [(EDGE2, 1)]


def test_a_migration_is_recorded_step_by_step():
    bed = Bed()
    for dpid, port_no in ((EDGE1, 1), (EDGE2, 1)):
        bed.station_hello(dpid, port_no)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE2, 1, VdpTlvType.PRE_ASSOCIATE, UUID_A, VM_A, vid=100, now=2.0)
    bed.run(bed.plane.first_frame(EDGE2, bed.syncs[EDGE2].ports[1], rarp(VM_A), 3.0))
    bed.request(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUID_A, VM_A, vid=100, now=4.0)
    bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A, vid=100, now=5.0)
    [record] = bed.plane.migrations.records()
    assert (record.source, record.destination) == (PortRef(EDGE1, 1), PortRef(EDGE2, 1))
    assert (record.result.value, record.order_name) == ("completed", "libvirt")
    assert record.order == "prepared, activated, source_released, confirmed"
    assert record.activation_ms is not None


def test_each_port_negotiates_with_the_evb_settings_its_pattern_gives():
    from app.session.evb_negotiation import BridgeEvbConfig
    from app.session.evb_settings import EvbPortRule, EvbPortSettings

    settings = EvbPortSettings(
        BridgeEvbConfig(rka=23),
        [EvbPortRule("edge1", "edge1-s1", {"rka": 21, "rrcap": False})],
    )
    bed = Bed(evb_settings=settings)
    bed.station_hello(EDGE1, 1)
    bed.station_hello(EDGE2, 1)
    agreed = {s["port"]: s["agreement"] for s in bed.plane.sessions_snapshot()}
    assert (agreed["edge1-s1"]["rka"], agreed["edge1-s1"]["rr_granted"]) == (21, False)
    assert (agreed["edge2-s1"]["rka"], agreed["edge2-s1"]["rr_granted"]) == (23, True)
    bridge = {s["port"]: s["bridge_settings"] for s in bed.plane.sessions_snapshot()}
    assert (bridge["edge1-s1"]["rka"], bridge["edge1-s1"]["rr"]) == (21, "deny")


def test_a_request_waiting_for_a_slow_manager_is_answered_within_its_ports_rwd():
    """The station waits for its response about its negotiated RWD: a lookup that takes longer
    is answered "unable to contact the VSI manager", not hard, before then (ANSWER_SHARE);
    the manager's late answer replays nothing."""
    from app.control_plane import ANSWER_SHARE
    from app.policy.database import VsiTypeDatabase
    from app.session.evb_negotiation import BridgeEvbConfig, evb_duration
    from app.session.evb_settings import EvbPortRule, EvbPortSettings
    from app.vcenter.client import LookupPending, ProfileQuery

    def lookup(db, manager_id, key):
        raise LookupPending(ProfileQuery(key.type_id, key.version, manager_id))

    settings = EvbPortSettings(BridgeEvbConfig(), [EvbPortRule("edge1", "*", {"rwd": 22})])
    bed = Bed(evb_settings=settings)
    bed.bridge._authorizer = Authorizer(lambda: VsiTypeDatabase(), lookup=lookup)
    bed.station_hello(EDGE1, 1)
    bed.station_hello(EDGE2, 1)
    sent = bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A, type_id=42, version=1)
    sent += bed.request(EDGE2, 1, VdpTlvType.ASSOCIATE, UUID_C, VM_C, type_id=42, version=1)
    assert vdp_responses(sent) == []
    edge2_by = 1.0 + ANSWER_SHARE * evb_duration(20)  # the station's RWD 20 is larger
    edge1_by = 1.0 + ANSWER_SHARE * evb_duration(22)
    assert vdp_responses(bed.run(bed.plane.tick(edge2_by - 0.01))) == []
    sent = bed.run(bed.plane.tick(edge2_by))
    ((dpid, _, _),) = [s for s in sent if vdp_responses([s])]
    (refused,) = vdp_responses(sent)
    assert (dpid, refused.error, refused.hard) == (
        EDGE2,
        VdpError.UNABLE_TO_CONTACT_VSI_MANAGER,
        False,
    )
    assert vdp_responses(bed.run(bed.plane.tick(edge1_by - 0.01))) == []
    (refused,) = vdp_responses(bed.run(bed.plane.tick(edge1_by)))
    assert refused.error == VdpError.UNABLE_TO_CONTACT_VSI_MANAGER
    (event, *_) = bed.log.recent("vsi.refused")
    assert "did not answer within" in event.detail["reason"]
    assert vdp_responses(bed.run(bed.plane.lookup_done(ProfileQuery(42, 1, "mgr1"), 40.0))) == []
