"""FabricControl, the controller without os-ken, driven as the shim drives it (tests/fakes/wire.py):
its messages applied in order to the fake demo fabric, the switches' replies fed back. ECP ACKs
leave before the flows of their requests; requests that arrive together become one batch and
one barrier per switch; a VDP response leaves only after every barrier of its flows, or as a
failure when a switch refuses, disconnects or does not answer in time."""

import threading
from pathlib import Path

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.frame import EcpAckFrame, decode_evb_frame
from app.codec.vdp import VdpError, VdpTlvType
from app.control_plane import ControlPlane
from app.controller.nms_service import ControllerService
from app.events import EventLog
from app.fabric.batches import TIMEOUT
from app.fabric.ports import DEFAULT_TRUNK_PATTERNS, PortRef
from app.fabric.xids import XID_BASE, XID_SPAN
from app.fabric_control import FabricControl
from app.flows.tables import VM_METER_BASE, CookieKind, cookie_kind
from app.policy.loader import load_policies
from app.registry import Conflict, NotFound, Registry
from app.store.sqlite_store import SqliteStore
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from tests.fakes.demo_fabric import AGG, EDGE1, EDGE2, demo_fabric
from tests.fakes.fake_switch import FakePort
from tests.fakes.stations import Stations, vdp_responses
from tests.fakes.wire import Wire

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ASSOCIATE = VdpTlvType.ASSOCIATE
UUIDS = [f"a1b2c3d4-0000-0000-0000-00000000000{x}" for x in "abcd"]
MACS = [f"52:54:00:00:00:0{x}" for x in "abcd"]
SERVER_PORTS = [(EDGE1, 1), (EDGE1, 2), (EDGE2, 1), (EDGE2, 2)]
FLOW_CHANGES = (parser.OFPFlowMod, parser.ONFBundleAddMsg)  # a flow-mod, alone or in a bundle
BUNDLE_LABELS = {"bundle-open", "bundle-add", "bundle-commit"}


class Bed:
    """FabricControl on the demo fabric with every switch connected and linked, and stations
    that have said hello on every server port."""

    def __init__(
        self,
        database=None,
        parts: int = 1,
        refuse_bundles=False,
        expected_timeout: float = 0.0,
        fabric=None,
        **authorizer,
    ):
        """`fabric`: FabricControl's other options (the audit's rate, the probed VLANs)."""
        self.log = EventLog()
        self.bridge = VdpBridge(
            Authorizer(database or (lambda: load_policies(POLICIES)), **authorizer)
        )
        self.core = FabricControl(
            ControlPlane(self.log, self.bridge),
            DEFAULT_TRUNK_PATTERNS,
            expected_timeout=expected_timeout,
            **(fabric or {}),
        )
        self.wire = Wire(self.core, demo_fabric(), parts)
        for fake in self.wire.fabric.switches.values():
            fake.refuse_bundles = refuse_bundles
        self.wire.connect()
        self.stations = Stations()
        self.wire.frames([(d, p, self.stations.hello(d, p)) for d, p in SERVER_PORTS])

    def associate(self, dpid, port_no, n, vid=0, type_id=5, version=4):
        """Station n's Associate, as one punted frame."""
        self.wire.frames(
            [
                (
                    dpid,
                    port_no,
                    self.stations.vdp(
                        dpid, port_no, ASSOCIATE, UUIDS[n], MACS[n], vid, type_id, version
                    ),
                )
            ]
        )

    def mark(self) -> int:
        return len(self.wire.timeline)

    def since(self, mark: int) -> list[tuple[int, str]]:
        return self.wire.timeline[mark:]

    def vsi_flows(self, dpid) -> list:
        return [
            f
            for f in self.wire.fabric.switches[dpid].flows
            if cookie_kind(f.cookie) is CookieKind.VSI
        ]


def test_every_switch_connects_reconciles_and_becomes_ready():
    bed = Bed()
    assert {s["name"]: s["state"] for s in bed.core.switches_snapshot()} == {
        "edge1": "ready",
        "edge2": "ready",
        "agg1": "ready",
    }
    assert {e.switch for e in bed.log.recent("switch.ready")} == {"edge1", "edge2", "agg1"}
    assert len(bed.core.control.topology.links) == 2  # the probes crossed the fake links
    assert not any(fake.errors for fake in bed.wire.fabric.switches.values())


def test_everything_sent_carries_an_xid_of_one_space():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    sent = [m for fake in bed.wire.fabric.switches.values() for m in fake.received]
    xids = [m.xid for m in sent]
    assert all(XID_BASE <= xid < XID_BASE + XID_SPAN for xid in xids)
    assert len(set(xids)) == len(xids)
    assert {type(m) for m in sent} >= {
        parser.OFPPortDescStatsRequest,
        parser.OFPFlowMod,
        parser.OFPBarrierRequest,
        parser.OFPPacketOut,
    }


def test_multipart_replies_in_parts_are_assembled_before_they_are_used():
    whole, parted = Bed(), Bed(parts=3)
    assert [s["state"] for s in parted.core.switches_snapshot()] == ["ready"] * 3
    for dpid, fake in parted.wire.fabric.switches.items():
        assert len(fake.flows) == len(whole.wire.fabric.switches[dpid].flows)


def test_a_stations_ecp_ack_reaches_the_switch_before_the_flows_of_its_associate():
    bed = Bed()
    edge1 = bed.wire.fabric.switches[EDGE1]
    bed.wire.hold_barriers = True
    first = len(edge1.received)
    mark = bed.mark()
    bed.associate(EDGE1, 1, 0)
    received = edge1.received[first:]
    assert isinstance(received[0], parser.OFPPacketOut)
    assert isinstance(decode_evb_frame(received[0].data), EcpAckFrame)
    assert any(isinstance(m, FLOW_CHANGES) for m in received[1:])
    assert isinstance(received[-1], parser.OFPBarrierRequest)
    assert all(label != "vdp" for _, label in bed.since(mark))  # the response waits
    assert vdp_responses(bed.wire.to_stations) == []

    bed.wire.release()
    timeline = bed.since(mark)
    (response_at,) = [i for i, (_, label) in enumerate(timeline) if label == "vdp"]
    replies = [i for i, (_, label) in enumerate(timeline) if label == "barrier-reply"]
    assert replies and max(replies) < response_at
    assert timeline[response_at][0] == EDGE1
    (response,) = vdp_responses(bed.wire.to_stations)
    assert response.status == 0x40
    assert bed.vsi_flows(EDGE1)


def _acks(bed, dpid) -> list:
    sent = [m for m in bed.wire.fabric.switches[dpid].received]
    return [
        m
        for m in sent
        if isinstance(m, parser.OFPPacketOut) and isinstance(decode_evb_frame(m.data), EcpAckFrame)
    ]


def test_the_shim_acks_each_request_as_it_arrives_and_the_session_does_not_ack_it_again():
    bed = Bed()
    before = len(_acks(bed, EDGE1))
    request = bed.stations.vdp(EDGE1, 1, ASSOCIATE, UUIDS[0], MACS[0])
    (ack,) = bed.core.ecp_ack(EDGE1, 1, request)  # before the worker has seen anything
    assert decode_evb_frame(ack[1].data).sequence == decode_evb_frame(request).sequence
    bed.wire.frames([(EDGE1, 1, request)])
    bed.wire.frames([(EDGE1, 1, request)])  # a retransmission: acknowledged again
    assert len(_acks(bed, EDGE1)) == before + 2
    session = bed.core.control._sessions[EDGE1][PortRef(EDGE1, 1)]
    assert session.counters["ecp_ack_tx"] == 2  # counted by the session it answered for
    assert session.counters["duplicates"] == 1
    assert bed.core.ecp_ack(AGG, 1, request) == []  # a trunk has no station
    assert bed.core.ecp_ack(EDGE1, 99, request) == []  # nor an unknown port
    assert bed.core.ecp_ack(EDGE1, 1, bed.stations.hello(EDGE1, 1)) == []


def test_requests_arriving_together_make_one_batch_and_barrier_per_switch():
    bed = Bed()
    bed.wire.hold_barriers = True
    mark = bed.mark()
    bed.wire.frames(
        [
            (d, p, bed.stations.vdp(d, p, ASSOCIATE, UUIDS[n], MACS[n]))
            for n, (d, p) in enumerate(SERVER_PORTS)
        ]
    )
    timeline = bed.since(mark)
    acks = [i for i, (_, label) in enumerate(timeline) if label == "ecp-ack"]
    changes = [i for i, (_, label) in enumerate(timeline) if label != "ecp-ack"]
    assert len(acks) == len(SERVER_PORTS) and max(acks) < min(changes)
    per_switch = {}
    for dpid, label in timeline[len(acks) :]:
        per_switch.setdefault(dpid, []).append(label)
    assert set(per_switch) >= {EDGE1, EDGE2}
    for dpid, labels in per_switch.items():
        assert labels[-1] == "barrier" and labels.count("barrier") == 1, (dpid, labels)
        assert set(labels[:-1]) <= {"flow-mod", "meter-mod", *BUNDLE_LABELS}, (dpid, labels)

    last = sorted(per_switch)[-1]
    bed.wire.release([d for d in per_switch if d != last])
    assert vdp_responses(bed.wire.to_stations) == []  # one switch has not answered yet
    bed.wire.release()
    timeline = bed.since(mark)
    responses = [i for i, (_, label) in enumerate(timeline) if label == "vdp"]
    replies = [i for i, (_, label) in enumerate(timeline) if label == "barrier-reply"]
    assert len(responses) == len(SERVER_PORTS) and max(replies) < min(responses)
    assert [r.status for r in vdp_responses(bed.wire.to_stations)] == [0x40] * 4


def _refused(bed) -> list:
    return [r for r in vdp_responses(bed.wire.to_stations) if r.mode is ASSOCIATE]


def test_no_barrier_reply_within_the_timeout_fails_the_association():
    bed = Bed()
    bed.wire.hold_barriers = True
    bed.associate(EDGE1, 1, 0)
    bed.wire.deliver(bed.core.tick(1.0 + TIMEOUT - 0.1))
    assert _refused(bed) == []
    bed.wire.deliver(bed.core.tick(1.0 + TIMEOUT + 0.1))
    (response,) = _refused(bed)
    assert response.error == VdpError.OTHER_FAILURE
    (failed,) = bed.log.recent("vsi.install_failed")
    assert set(failed.detail["reason"].split("; ")) == {f"no barrier reply within {TIMEOUT} s"}
    assert bed.bridge.bindings() == []


def test_a_refused_flow_mod_fails_the_association_at_its_barrier():
    bed = Bed()
    edge1 = bed.wire.fabric.switches[EDGE1]
    bed.wire.hold_barriers = True
    first = len(edge1.received)
    bed.associate(EDGE1, 1, 0)
    flow_mod = next(m for m in edge1.received[first:] if isinstance(m, FLOW_CHANGES))
    bed.core.error(EDGE1, flow_mod.xid, ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPFMFC_TABLE_FULL)
    assert _refused(bed) == []
    bed.wire.release()
    (response,) = _refused(bed)
    assert response.error == VdpError.OTHER_FAILURE
    assert bed.log.recent("switch.error")[-1].detail["xid"] == flow_mod.xid
    (failed,) = bed.log.recent("vsi.install_failed")
    assert failed.detail["reason"] == (
        f"OpenFlow error type {ofp.OFPET_FLOW_MOD_FAILED} code {ofp.OFPFMFC_TABLE_FULL}"
    )
    assert bed.vsi_flows(EDGE1) == []


def test_a_switch_disconnecting_fails_the_associations_waiting_for_it():
    bed = Bed()
    bed.wire.hold_barriers = True
    bed.associate(EDGE1, 1, 0)
    waiting = {dpid for dpid, _ in bed.wire.held}
    assert {EDGE1, AGG} <= waiting  # the VM's edge and the layer above
    bed.wire.deliver(bed.core.switch_disconnected(AGG, 1.5))
    assert _refused(bed) == []  # the edge's barrier is still outstanding
    bed.wire.release([EDGE1])
    (response,) = _refused(bed)
    assert response.error == VdpError.OTHER_FAILURE
    (failed,) = bed.log.recent("vsi.install_failed")
    assert failed.detail["reason"] == "switch disconnected"
    assert "agg1" not in {s["name"] for s in bed.core.switches_snapshot()}


def test_a_disconnected_switch_is_heard_no_more():
    bed = Bed()
    bed.wire.deliver(bed.core.switch_disconnected(EDGE2, 1.0))
    assert bed.core.receive(EDGE2, 1, bed.stations.hello(EDGE2, 1), 1.0) == []
    reply = parser.OFPFlowStatsReply(None, body=[], flags=0)
    reply.xid = XID_BASE
    assert bed.core.multipart_reply(EDGE2, reply, 1.0) == []
    assert bed.core.port_status(EDGE2, ofp.OFPPR_ADD, FakePort(3, b"edge2-s3"), 1.0) == []
    assert bed.log.recent("switch.disconnected")[-1].switch == "edge2"


def test_lost_flows_are_noticed_by_the_canary_and_restored():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    edge1 = bed.wire.fabric.switches[EDGE1]
    before = sorted((f.table_id, f.priority, f.cookie) for f in edge1.flows)
    edge1.flows.clear()
    edge1.meters.clear()
    bed.wire.deliver(bed.core.canary_probes())
    assert sorted((f.table_id, f.priority, f.cookie) for f in edge1.flows) == before
    assert [e.switch for e in bed.log.recent("switch.flows_lost")] == ["edge1"]


def test_one_stats_poll_per_switch_with_vms_counts_a_vms_traffic_at_its_edge():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    handle = bed.bridge.vsis()[0].attachments[0].handle
    edge1 = bed.wire.fabric.switches[EDGE1]
    for _ in range(3):  # from the VM: admitted, through its ingress ACL
        edge1.process(in_port=1, eth_src=MACS[0], eth_dst="52:54:00:99:99:99")
    edge1.meter_drops[VM_METER_BASE + handle] = 4
    probes = bed.core.stats_probes(5.0)
    # edge2 holds no VM, agg1 only the MAC entries of every VM: neither is asked.
    assert sorted((d, type(m).__name__) for d, m in probes) == [
        (EDGE1, "OFPFlowStatsRequest"),
        (EDGE1, "OFPMeterStatsRequest"),
    ]
    assert bed.core.stats_probes(5.0) == []  # the last poll is unanswered: no second one
    bed.wire.deliver(probes, now=7.0)
    counters, polled_at = bed.core.stats.vm(EDGE1, handle)
    assert (counters.packets_in, counters.bytes_in, counters.meter_drops) == (3, 300, 4)
    assert polled_at == 7.0
    assert [(d, p) for d, p, _ in bed.core.stats.ports()] == [(EDGE1, 1)]
    assert len(bed.core.stats_probes(5.0)) == 2  # answered: the next poll may go
    bed.core.switch_disconnected(EDGE1, 8.0)
    assert bed.core.stats.vm(EDGE1, handle) is None


def test_a_switch_whose_vms_have_all_gone_is_no_longer_polled_and_its_counters_go():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    bed.wire.deliver(bed.core.stats_probes(5.0))
    assert [d for d, _, _ in bed.core.stats.ports()] == [EDGE1]
    bed.wire.frames(
        [(EDGE1, 1, bed.stations.vdp(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUIDS[0], MACS[0]))]
    )
    assert bed.core.stats_probes(6.0) == []
    assert bed.core.stats.ports() == []


def test_a_new_port_gets_its_base_flows_and_is_reported():
    bed = Bed()
    bed.wire.deliver(bed.core.port_status(EDGE1, ofp.OFPPR_ADD, FakePort(3, b"edge1-s3"), 1.0))
    (added,) = bed.log.recent("port.added")
    assert (added.switch, added.port, added.detail["role"]) == ("edge1", "edge1-s3", "server")
    assert bed.wire.fabric.switches[EDGE1].process(in_port=3, eth_type=0x0800).flows
    (edge1,) = [s for s in bed.core.switches_snapshot() if s["name"] == "edge1"]
    assert "edge1-s3" in {p["name"] for p in edge1["ports"]}


# bundles -------------------------------------------------------------------------------------
def _labels(bed, mark, dpid) -> list[str]:
    """What `dpid` got since `mark`: flow changes and barriers."""
    skip = ("ecp-ack", "vdp", "barrier-reply")
    return [label for d, label in bed.since(mark) if d == dpid and label not in skip]


def test_a_vms_first_association_goes_as_ordered_messages_its_meter_first():
    # Only flows no switch holds yet: nothing uses them before the response, no bundle needed.
    bed = Bed()
    mark = bed.mark()
    bed.associate(EDGE1, 1, 0)
    labels = _labels(bed, mark, EDGE1)
    assert labels[0] == "meter-mod" and labels[-1] == "barrier"
    assert set(labels[1:-1]) == {"flow-mod"}
    assert bed.wire.fabric.switches[EDGE1].committed == []


def test_a_batch_changing_flows_in_place_reaches_its_switch_as_one_bundle_its_meter_first():
    bed = Bed()
    edge1 = bed.wire.fabric.switches[EDGE1]
    bed.associate(EDGE1, 1, 0)
    before = {f.cookie for f in bed.vsi_flows(EDGE1)}
    bed.wire.hold_barriers = True
    mark = bed.mark()
    bed.associate(EDGE1, 2, 2)  # its port joins the VLAN: edge1's flood flow is replaced
    labels = _labels(bed, mark, EDGE1)
    adds = labels.count("bundle-add")
    assert adds >= 2
    assert labels == [
        "meter-mod",
        "bundle-open",
        *["bundle-add"] * adds,
        "bundle-commit",
        "barrier",
    ]
    assert len(edge1.committed[-1]) == adds  # applied at the commit, all at once
    new = {f.cookie for f in bed.vsi_flows(EDGE1)} - before
    assert new and new < {f.cookie for f in edge1.committed[-1]}
    assert edge1.bundles == {}
    bed.wire.release()
    assert _refused(bed)[-1].status == 0x40  # the commit's reply is no failure
    (snapshot,) = [s for s in bed.core.switches_snapshot() if s["name"] == "edge1"]
    assert snapshot["bundles"] == {"used": True, "committed": 1}
    assert bed.log.recent("switch.error") == []


def test_a_gone_vms_meter_is_deleted_after_the_commit_of_its_flows():
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    mark = bed.mark()
    bed.wire.frames(
        [(EDGE1, 1, bed.stations.vdp(EDGE1, 1, VdpTlvType.DE_ASSOCIATE, UUIDS[0], MACS[0]))]
    )
    labels = _labels(bed, mark, EDGE1)
    assert labels[labels.index("bundle-commit") + 1 :][:2] == ["meter-mod", "barrier"]
    assert bed.vsi_flows(EDGE1) == []


def test_a_refused_commit_applies_nothing_and_fails_the_association():
    bed = Bed()
    edge1 = bed.wire.fabric.switches[EDGE1]
    bed.associate(EDGE1, 1, 0)
    held = bed.vsi_flows(EDGE1)
    edge1.fail_commits = True
    bed.associate(EDGE1, 2, 2)
    response = _refused(bed)[-1]
    assert response.error == VdpError.OTHER_FAILURE
    (failed,) = bed.log.recent("vsi.install_failed")
    assert failed.detail["reason"] == (
        f"OpenFlow error type {ofp.OFPET_EXPERIMENTER} code {ofp.ONFERR_ET_FAILED}"
    )
    assert bed.vsi_flows(EDGE1) == held and edge1.committed == []
    assert [b.port.port_no for b in bed.bridge.bindings()] == [1]


def test_a_switch_refusing_bundles_gets_ordered_batches_and_one_event():
    bed = Bed(refuse_bundles=True)
    unsupported = bed.log.recent("switch.bundles_unsupported")
    assert sorted(e.switch for e in unsupported) == ["agg1", "edge1", "edge2"]
    assert all(e.detail["reason"].startswith("bundle probe refused") for e in unsupported)
    assert bed.log.recent("switch.error") == []  # the probe's refusal is no failure
    mark = bed.mark()
    bed.associate(EDGE1, 1, 0)
    labels = _labels(bed, mark, EDGE1)
    assert labels[-1] == "barrier" and set(labels[:-1]) == {"meter-mod", "flow-mod"}
    assert _refused(bed)[-1].status == 0x40
    assert bed.vsi_flows(EDGE1)
    assert len(bed.log.recent("switch.bundles_unsupported")) == 3


# the service and the registry on top ---------------------------------------------------------


@pytest.fixture
def service_bed(tmp_path):
    """As the controller wires them: the registry owns the VSI type database (the authorizer
    reads it there), the service applies its changes through FabricControl."""
    store = SqliteStore(str(tmp_path / "evb.db"))
    holder = {}
    bed = Bed(
        database=lambda: holder["registry"].database(),
        registrations=lambda: holder["registry"],
    )
    service = ControllerService(bed.core, bed.bridge, threading.RLock(), bed.wire.deliver)
    holder["registry"] = Registry(load_policies(POLICIES), store, service)
    yield bed, service, holder["registry"]
    store.close()


def test_the_registrys_profiles_reach_the_authorizer_and_the_switches(service_bed):
    bed, _, registry = service_bed
    bed.associate(EDGE1, 1, 0, vid=110, type_id=42, version=1)
    assert _refused(bed)[-1].error == VdpError.OTHER_FAILURE  # type unknown
    body = {
        "name": "green",
        "tenant": "blue",
        "vlans": [110],
        "manager_ids": ["mgr1"],
        "qos": {"rate_kbps": 5000, "burst_kb": 500},
    }
    registry.put_profile(42, 1, body, None)
    bed.associate(EDGE1, 1, 0, vid=110, type_id=42, version=1)
    assert _refused(bed)[-1].status == 0x40
    registry.put_profile(42, 1, {**body, "qos": {"rate_kbps": 7000, "burst_kb": 500}}, None)
    meters = bed.wire.fabric.switches[EDGE1].meters
    assert [m.bands[0].rate for i, m in meters.items() if i > VM_METER_BASE] == [7000]
    registry.delete_profile(42, 1, None)
    assert vdp_responses(bed.wire.to_stations)[-1].mode is VdpTlvType.DE_ASSOCIATE
    assert bed.vsi_flows(EDGE1) == []


def test_a_tenant_cannot_register_what_the_bridge_holds_for_another(service_bed):
    """Issue 10, against the real service: blue's VM is associated but not registered; red can
    neither register its VSI ID (404, as if it did not exist) nor its MAC (409)."""
    bed, service, registry = service_bed
    bed.associate(EDGE1, 1, 0)  # web 5/4, tenant blue
    red_db = {"type_id": 6, "type_version": 1, "macs": [MACS[0]]}
    with pytest.raises(NotFound):
        registry.put_vm(UUIDS[0], red_db, "red")
    with pytest.raises(Conflict):
        registry.put_vm(UUIDS[1], red_db, "red")
    with pytest.raises(NotFound):
        registry.delete_vm(UUIDS[0], "red")
    assert registry.state.vms == {}
    assert service.association(UUIDS[0])["state"] == "associated"
    registry.put_vm(UUIDS[0], {"type_id": 5, "type_version": 4, "macs": [MACS[0]]}, "blue")


def test_registrations_reach_the_authorizer(service_bed):
    bed, service, registry = service_bed
    registry.put_vm(UUIDS[1], {"type_id": 5, "type_version": 4, "macs": [MACS[1]]}, None)
    registry.put_vm(UUIDS[2], {"type_id": 7, "type_version": 1, "macs": [MACS[2]]}, None)
    bed.associate(EDGE1, 1, 1)
    assert _refused(bed)[-1].status == 0x40
    bed.associate(EDGE1, 2, 2)  # registered as batch 7/1, asks for web 5/4
    assert _refused(bed)[-1].error == VdpError.OTHER_FAILURE
    squatter = bed.stations.vdp(EDGE2, 1, ASSOCIATE, UUIDS[3], MACS[2], 0, 5, 4)
    bed.wire.frames([(EDGE2, 1, squatter)])  # the MAC registered for UUIDS[2]
    assert _refused(bed)[-1].error == VdpError.INVALID_VID_GROUP_MAC
    assert [v["vsi_id"] for v in service.associations()] == [UUIDS[1]]


def test_a_held_vm_its_registration_does_not_admit_is_deassociated(service_bed):
    """Keep-alives are not authorized again: a registration that no longer admits what the
    bridge holds (type, tenant, MACs) de-associates it, as a deregistration does."""
    bed, service, registry = service_bed
    bed.associate(EDGE1, 1, 0)  # web 5/4, MACS[0]
    bed.associate(EDGE1, 2, 1)
    web = {"type_id": 5, "type_version": 4}
    assert registry.put_vm(UUIDS[0], {**web, "macs": [MACS[0]]}, None).deassociated == ()
    assert service.association(UUIDS[0]) is not None
    assert registry.put_vm(UUIDS[0], {**web, "macs": [MACS[2]]}, None).deassociated == (UUIDS[0],)
    assert service.association(UUIDS[0]) is None
    batch = {"type_id": 7, "type_version": 1}
    assert registry.put_vm(UUIDS[1], batch, None).deassociated == (UUIDS[1],)
    assert vdp_responses(bed.wire.to_stations)[-1].mode is VdpTlvType.DE_ASSOCIATE
    assert service.associations() == []


def test_the_service_deassociates_through_the_switches(service_bed):
    bed, service, _ = service_bed
    bed.associate(EDGE1, 1, 0)
    assert bed.vsi_flows(EDGE1)
    assert service.deassociate(UUIDS[0], "operator") is True
    assert bed.vsi_flows(EDGE1) == []
    assert vdp_responses(bed.wire.to_stations)[-1].mode is VdpTlvType.DE_ASSOCIATE
    assert service.deassociate(UUIDS[0], "operator") is False
    assert [s["state"] for s in service.switches()] == ["ready"] * 3
