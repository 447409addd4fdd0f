"""The VDP22 bridge: request sequences and their statuses and bindings, keep-alive and its
timeout, VID 0, anti-spoofing, limits, migration and suspension, bridge-initiated removal, and
invariants over arbitrary request sequences."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.vdp import (
    STATUS_M,
    STATUS_S,
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpTlvType,
    VsiId,
    VsiTlv,
    make_response,
)
from app.fabric.ports import PortRef
from app.policy import Limits, VsiTypeDatabase, VsiTypeKey, VsiTypeProfile
from app.vdp import bridge as bridge_module
from app.vdp.admission import AdmissionPolicy
from app.vdp.authorizer import Authorizer
from app.vdp.binding import BindingState, MacVid, VmBinding
from app.vdp.bridge import VdpBridge, VsiState
from app.vdp.outcome import Outcome

PA, RR, AS, DA = (
    VdpTlvType.PRE_ASSOCIATE,
    VdpTlvType.PRE_ASSOCIATE_RR,
    VdpTlvType.ASSOCIATE,
    VdpTlvType.DE_ASSOCIATE,
)
P1, P2, P3 = PortRef(1, 1), PortRef(1, 2), PortRef(2, 1)
MGR = ManagerIdTlv.from_name("mgr1")
KA = 17.45
VSIS = [VsiId.from_uuid(f"a1b2c3d4-0000-0000-0000-00000000000{n}") for n in range(4)]
A, B = VSIS[0], VSIS[1]
MACS = [f"52:00:00:00:00:0{n}" for n in range(4)]
MAC_A, MAC_B = MACS[0], MACS[1]

OK = 0x40
KEEP, HARD = 0x20, 0x10


def profile(type_id: int, version: int, name: str, vlans, **fields) -> VsiTypeProfile:
    values = dict(
        key=VsiTypeKey(type_id, version),
        name=name,
        tenant="blue",
        vlans=frozenset(vlans),
        manager_ids=frozenset({"mgr1"}),
    )
    values.update(fields)
    return VsiTypeProfile(**values)


DATABASE = VsiTypeDatabase(
    [
        profile(5, 4, "web", {100, 101}, default_vlan=100),
        profile(6, 1, "db", {200}),
        profile(7, 1, "batch", {102}, limits=Limits(max_per_port=2, max_per_switch=3)),
    ]
)
WEB, DB, BATCH = (5, 4), (6, 1), (7, 1)


def new_bridge() -> VdpBridge:
    return VdpBridge(Authorizer(lambda: DATABASE))


def tlv(
    mode: VdpTlvType,
    vsi: VsiId = A,
    mac: str = MAC_A,
    vid: int = 0,
    type_=WEB,
    status: int = 0,
    pcp: int = 0,
) -> VsiTlv:
    return VsiTlv(
        mode,
        status,
        type_[0],
        type_[1],
        vsi,
        FilterFormat.MAC_VID,
        (FilterEntry(vid=vid, pcp=pcp, mac=mac),),
    )


def send(
    bridge: VdpBridge, port: PortRef, request: VsiTlv, now: float = 0.0, manager: ManagerIdTlv = MGR
) -> Outcome:
    return bridge.on_request(port, manager, request, now, KA)


def only_response(outcome: Outcome) -> VsiTlv:
    assert len(outcome.responses) == 1
    return outcome.responses[0][2]


def placed(bridge: VdpBridge) -> set[tuple[VsiId, PortRef, BindingState]]:
    return {(b.vsi_id, b.port, b.state) for b in bridge.bindings()}


def kinds(outcome: Outcome) -> list[str]:
    return [kind for kind, _ in outcome.events]


# A table of request sequences: (port, request) steps, the status of each response, and the
# bindings left at the end.

SEQUENCES = {
    "associate": ([(P1, tlv(AS))], [OK], {(A, P1, BindingState.FORWARDING)}),
    "pre-associate installs nothing": ([(P1, tlv(PA))], [OK], set()),
    "pre-associate with RR prepares": ([(P1, tlv(RR))], [OK], {(A, P1, BindingState.PREPARED)}),
    "the whole ladder": (
        [(P1, tlv(PA)), (P1, tlv(RR)), (P1, tlv(AS))],
        [OK, OK, OK],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "RR back to plain pre-associate releases": ([(P1, tlv(RR)), (P1, tlv(PA))], [OK, OK], set()),
    "de-associate": ([(P1, tlv(AS)), (P1, tlv(DA))], [OK, OK], set()),
    "de-associate an unknown VSI": ([(P1, tlv(DA))], [OK], set()),
    "de-associate at another port": (
        [(P1, tlv(AS)), (P2, tlv(DA))],
        [OK, OK],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "unknown type": ([(P1, tlv(AS, type_=(5, 9)))], [OK | HARD | VdpError.OTHER_FAILURE], set()),
    "VID not allowed": (
        [(P1, tlv(AS, vid=4000))],
        [OK | HARD | VdpError.INVALID_VID_GROUP_MAC],
        set(),
    ),
    "changed type refused keeps the association": (
        [(P1, tlv(AS)), (P1, tlv(AS, type_=(5, 9)))],
        [OK, OK | KEEP | HARD | VdpError.OTHER_FAILURE],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "changed VID refused keeps the association": (
        [(P1, tlv(AS, vid=101)), (P1, tlv(AS, vid=4000))],
        [OK, OK | KEEP | HARD | VdpError.INVALID_VID_GROUP_MAC],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "pre-associate while associated is refused, association kept": (
        [(P1, tlv(AS)), (P1, tlv(PA))],
        [OK, OK | KEEP | HARD | VdpError.OTHER_FAILURE],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "refused associate after RR releases the reservation": (
        [(P1, tlv(RR)), (P1, tlv(AS, type_=(5, 9)))],
        [OK, OK | HARD | VdpError.OTHER_FAILURE],
        set(),
    ),
    "changed VID granted": (
        [(P1, tlv(AS)), (P1, tlv(AS, vid=101))],
        [OK, OK],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "keep-alive": ([(P1, tlv(AS)), (P1, tlv(AS))], [OK, OK], {(A, P1, BindingState.FORWARDING)}),
    "per-port limit": (
        [(P1, tlv(AS, vsi=VSIS[n], mac=MACS[n], type_=BATCH)) for n in range(3)],
        [OK, OK, OK | VdpError.INSUFFICIENT_RESOURCES],
        {(VSIS[0], P1, BindingState.FORWARDING), (VSIS[1], P1, BindingState.FORWARDING)},
    ),
    "spoofed MAC on another port": (
        [(P1, tlv(AS)), (P3, tlv(AS, vsi=B, mac=MAC_A))],
        [OK, OK | HARD | VdpError.INVALID_VID_GROUP_MAC],
        {(A, P1, BindingState.FORWARDING)},
    ),
    "a prepared MAC is held too": (
        [(P1, tlv(RR)), (P3, tlv(AS, vsi=B, mac=MAC_A))],
        [OK, OK | HARD | VdpError.INVALID_VID_GROUP_MAC],
        {(A, P1, BindingState.PREPARED)},
    ),
    "a plain pre-association holds nothing": (
        [(P1, tlv(PA)), (P3, tlv(AS, vsi=B, mac=MAC_A)), (P1, tlv(AS))],
        [OK, OK, OK | HARD | VdpError.INVALID_VID_GROUP_MAC],
        {(B, P3, BindingState.FORWARDING)},
    ),
}


@pytest.mark.parametrize("steps, statuses, bindings", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_request_sequences(steps, statuses, bindings):
    bridge = new_bridge()
    got = [
        only_response(send(bridge, port, request, now=i)).status
        for i, (port, request) in enumerate(steps)
    ]
    assert [hex(s) for s in got] == [hex(s) for s in statuses]
    assert placed(bridge) == bindings


def test_manager_not_allowed_is_hard_other_failure():
    bridge = new_bridge()
    response = only_response(send(bridge, P1, tlv(AS), manager=ManagerIdTlv.from_name("evil")))
    assert response.status == OK | HARD | VdpError.OTHER_FAILURE
    assert bridge.vsis() == []


def test_responses_echo_the_request_and_carry_the_chosen_vid():
    request = tlv(AS, vid=0, pcp=3, status=STATUS_M)
    response = only_response(send(new_bridge(), P1, request))
    assert response == replace(
        request, status=OK, filters=(FilterEntry(vid=100, pcp=3, mac=MAC_A),)
    )


def test_requested_vid_is_kept_and_single_vlan_type_resolves_vid_zero():
    bridge = new_bridge()
    assert only_response(send(bridge, P1, tlv(AS, vid=101))).filters[0].vid == 101
    assert (
        only_response(send(bridge, P2, tlv(AS, vsi=B, mac=MAC_B, type_=DB))).filters[0].vid == 200
    )
    assert {b.entries for b in bridge.bindings()} == {(MacVid(MAC_A, 101),), (MacVid(MAC_B, 200),)}


def test_refused_response_echoes_the_request_filters():
    request = tlv(AS, vid=4000)
    assert only_response(send(new_bridge(), P1, request)) == make_response(
        request, VdpError.INVALID_VID_GROUP_MAC, hard=True
    )


def test_refused_requests_leave_state_untouched():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P2, tlv(RR, vsi=B, mac=MAC_B))
    before = (bridge.bindings(), bridge.vsis())
    refusals = [
        (P3, tlv(AS, vsi=VSIS[2], mac=MAC_A)),  # spoof
        (P1, tlv(AS, type_=(9, 9))),  # changed, refused with KEEP
        (P1, tlv(RR)),  # downgrade of an association
        (P3, tlv(AS, vid=4000)),  # migration target refused
        (P3, tlv(AS, vsi=VSIS[3], mac=MACS[3], vid=7)),
    ]
    for port, request in refusals:
        outcome = send(bridge, port, request, now=5)
        assert only_response(outcome).error != VdpError.SUCCESS
        assert not outcome.bindings_changed and outcome.unsolicited == []
        assert kinds(outcome) == ["vsi.refused"]
    assert (bridge.bindings(), bridge.vsis()) == before


def test_refused_event_says_who_what_and_why():
    outcome = send(new_bridge(), P3, tlv(AS, vid=4000))
    [(kind, fields)] = outcome.events
    assert kind == "vsi.refused"
    assert fields["at"] == PortRef(2, 1)
    assert fields["vsi"] == str(A.uuid) and fields["manager"] == "mgr1"
    assert fields["macs"] == [MAC_A] and fields["vids"] == [4000]
    assert (fields["mode"], fields["type_id"], fields["type_version"]) == ("associate", 5, 4)
    assert fields["error"] == "invalid_vid_group_mac" and fields["hard"] and not fields["keep"]
    assert "VID 4000" in fields["reason"] and fields["status"] == "0x55"


# Keep-alive


def test_keepalive_answers_the_same_response_and_refreshes_the_timer():
    bridge = new_bridge()
    first = send(bridge, P1, tlv(AS), now=0)
    again = send(bridge, P1, tlv(AS), now=10)
    assert again.responses == first.responses
    assert not again.bindings_changed and again.events == []
    assert bridge.expire(10 + KA - 0.01) == Outcome()
    assert bridge.vsis()[0].attachments[0].refreshed == 10


def test_keepalive_with_the_vid_the_bridge_chose_is_a_keepalive():
    # lldpad adopts the VID of our response to a VID 0 request and repeats that one.
    bridge = new_bridge()
    first = send(bridge, P1, tlv(AS, vid=0), now=0)
    chosen = only_response(first).filters[0].vid
    again = send(bridge, P1, tlv(AS, vid=chosen), now=10)
    assert again.responses == first.responses and again.events == []
    assert not again.bindings_changed


def test_keepalive_ignores_the_hints():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS, status=STATUS_M))
    outcome = send(bridge, P1, tlv(AS), now=5)
    assert outcome.events == [] and only_response(outcome).status == OK


def test_keepalive_is_not_reauthorized():
    database = [DATABASE]
    bridge = VdpBridge(Authorizer(lambda: database[0]))
    send(bridge, P1, tlv(AS))
    database[0] = VsiTypeDatabase()
    assert only_response(send(bridge, P1, tlv(AS), now=1)).status == OK


def test_keepalive_timeout_deassociates_unsolicited():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS, vid=0), now=0)
    send(bridge, P2, tlv(PA, vsi=B, mac=MAC_B), now=5)
    outcome = bridge.expire(KA)
    assert outcome.responses == [] and outcome.bindings_changed
    [(port, manager, deassoc)] = outcome.unsolicited
    assert (port, manager) == (P1, MGR)
    assert deassoc.mode is DA and deassoc.status == 0 and not deassoc.is_response
    assert deassoc.filters == (FilterEntry(vid=100, mac=MAC_A),)  # the VID the station adopted
    assert kinds(outcome) == ["vsi.expired"]
    assert placed(bridge) == set()
    later = bridge.expire(5 + KA)
    assert not later.bindings_changed and len(later.unsolicited) == 1
    assert bridge.vsis() == []


def test_changed_request_refused_does_not_refresh_the_association():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS), now=0)
    send(bridge, P1, tlv(AS, vid=4000), now=10)
    assert len(bridge.expire(KA).unsolicited) == 1


def test_station_deassociate_is_not_a_keepalive():
    """lldpad's bridge answers a De-Associate like a keep-alive and keeps the VSI until the
    timeout; here the VSI is gone at once and nothing is sent later."""
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    outcome = send(bridge, P1, tlv(DA, vid=100), now=1)
    assert only_response(outcome) == replace(tlv(DA, vid=100), status=OK)
    assert outcome.bindings_changed and kinds(outcome) == ["vsi.deassociated"]
    assert outcome.events[0][1]["initiator"] == "station"
    assert bridge.expire(100) == Outcome() and bridge.vsis() == []


def test_deassociate_removes_exactly_that_vsi():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P1, tlv(AS, vsi=B, mac=MAC_B))
    send(bridge, P2, tlv(RR, vsi=VSIS[2], mac=MACS[2]))
    send(bridge, P1, tlv(DA, vsi=B, mac=MAC_B), now=1)
    assert placed(bridge) == {
        (A, P1, BindingState.FORWARDING),
        (VSIS[2], P2, BindingState.PREPARED),
    }


def test_response_bit_from_a_station_is_ignored():
    bridge = new_bridge()
    outcome = send(bridge, P1, tlv(AS, status=OK))
    assert outcome.responses == [] and kinds(outcome) == ["vsi.ignored"]
    assert bridge.vsis() == []


# Limits across ports


def test_limit_per_switch_and_release_frees_a_slot():
    bridge = new_bridge()
    ports = [P1, P1, P2, P2]
    statuses = [
        only_response(send(bridge, port, tlv(RR, vsi=VSIS[n], mac=MACS[n], type_=BATCH))).status
        for n, port in enumerate(ports)
    ]
    assert statuses == [OK, OK, OK, OK | VdpError.INSUFFICIENT_RESOURCES]
    send(bridge, P1, tlv(DA, vsi=VSIS[0], mac=MACS[0], type_=BATCH))
    assert (
        only_response(send(bridge, P2, tlv(RR, vsi=VSIS[3], mac=MACS[3], type_=BATCH))).status == OK
    )
    assert (
        only_response(send(bridge, P3, tlv(AS, vsi=VSIS[0], mac=MACS[0], type_=BATCH))).status == OK
    )


def pre_associate_many(bridge: VdpBridge, count: int, port: PortRef = P1, type_=BATCH) -> list:
    statuses = []
    for n in range(count):
        vsi = VsiId.from_uuid(f"a1b2c3d4-0000-0000-0000-0000000a{n:04x}")
        request = tlv(PA, vsi=vsi, mac=f"52:00:00:0a:{n >> 8:02x}:{n & 255:02x}", type_=type_)
        statuses.append(only_response(send(bridge, port, request)).status)
    return statuses


def test_plain_pre_associates_count_against_the_type_limit():
    """Issue 10: 300 of 300 Pre-Associates were granted for a type limited to 2 per port."""
    bridge = new_bridge()
    statuses = pre_associate_many(bridge, 300)
    assert statuses[:2] == [OK, OK]
    assert set(statuses[2:]) == {OK | VdpError.INSUFFICIENT_RESOURCES}
    assert len(bridge) == 2


def test_the_bridge_caps_vsis_per_port_and_per_switch_of_any_type():
    policy = AdmissionPolicy(max_per_port=3, max_per_switch=5)
    bridge = VdpBridge(Authorizer(lambda: DATABASE, policy=policy))
    assert pre_associate_many(bridge, 4, P1, WEB)[3] == OK | VdpError.INSUFFICIENT_RESOURCES
    request = tlv(PA, vsi=VSIS[3], mac=MACS[3], type_=WEB)
    assert only_response(send(bridge, P2, request)).status == OK
    assert only_response(send(bridge, P2, tlv(AS, type_=WEB))).status == OK  # 5 on switch 1
    refused = send(bridge, P2, tlv(AS, vsi=VSIS[2], mac=MACS[2], type_=WEB))
    assert only_response(refused).status == OK | VdpError.INSUFFICIENT_RESOURCES
    assert "the bridge allows 5 VMs per switch" in refused.events[0][1]["reason"]
    assert only_response(send(bridge, P3, tlv(AS, vsi=VSIS[2], mac=MACS[2]))).status == OK
    # A VSI counts once where it is: its own keep-alives and changes pass at the cap.
    assert only_response(send(bridge, P2, tlv(AS, vid=101, type_=WEB))).status == OK


# Handles


def test_handles_from_one_unique_and_not_reused_at_once():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P2, tlv(RR, vsi=B, mac=MAC_B))
    assert [b.handle for b in bridge.bindings()] == [1, 2]
    send(bridge, P1, tlv(DA))
    send(bridge, P1, tlv(AS, vsi=VSIS[2], mac=MACS[2]))
    assert [b.handle for b in bridge.bindings()] == [2, 3]


def test_plain_pre_association_keeps_its_handle_when_it_associates():
    bridge = new_bridge()
    send(bridge, P1, tlv(PA))
    send(bridge, P1, tlv(AS))
    [binding] = bridge.bindings()
    assert binding.handle == bridge.vsis()[0].attachments[0].handle


def test_handles_wrap_below_the_limit_and_skip_live_ones(monkeypatch):
    monkeypatch.setattr(bridge_module, "HANDLE_LIMIT", 4)
    bridge = new_bridge()
    for n in range(3):
        send(bridge, P1, tlv(AS, vsi=VSIS[n], mac=MACS[n]))
    send(bridge, P1, tlv(DA, vsi=VSIS[1], mac=MACS[1]))
    send(bridge, P1, tlv(AS, vsi=VSIS[3], mac=MACS[3]))
    assert sorted(b.handle for b in bridge.bindings()) == [1, 2, 3]


# Migration and suspension


def test_migration_prepare_then_associate_at_the_destination():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS, vid=0), now=0)
    prepared = send(bridge, P3, tlv(RR, status=STATUS_M), now=1)
    assert only_response(prepared).status == OK and prepared.unsolicited == []
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING), (A, P3, BindingState.STANDBY)}
    assert bridge.vsis()[0].migrating
    handle = next(b.handle for b in bridge.bindings() if b.port == P3)

    moved = send(bridge, P3, tlv(AS, status=STATUS_M), now=2)
    assert only_response(moved).status == OK and moved.bindings_changed
    assert moved.unsolicited == [(P1, MGR, replace(tlv(DA, vid=100), status=0))]
    assert kinds(moved) == ["vsi.associated", "vsi.deassociated"]
    assert moved.events[0][1]["moved_from"] == P1
    assert moved.events[1][1]["moved_to"] == P3
    [binding] = bridge.bindings()
    assert (binding.port, binding.state, binding.handle) == (P3, BindingState.FORWARDING, handle)


def test_migration_source_deassociates_first():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(PA, status=STATUS_M))
    gone = send(bridge, P1, tlv(DA, vid=100, status=STATUS_S))
    assert kinds(gone) == ["vsi.deassociated"]  # not suspended: P3 holds it
    moved = send(bridge, P3, tlv(AS, status=STATUS_M))
    assert moved.unsolicited == [] and "moved_from" not in moved.events[0][1]
    assert placed(bridge) == {(A, P3, BindingState.FORWARDING)}


def test_associate_elsewhere_with_the_migrate_to_hint_moves_the_vsi():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    moved = send(bridge, P2, tlv(AS, status=STATUS_M))
    assert [port for port, _, _ in moved.unsolicited] == [P1]
    assert placed(bridge) == {(A, P2, BindingState.FORWARDING)}


def test_a_bare_associate_elsewhere_cannot_take_a_running_vsi():
    """Issue 10: a station on another port Associated with a victim's VSI ID and MAC and was
    granted; the victim got an unsolicited De-Associate and its traffic left at the attacker's
    port. A move needs a migration; the victim keeps its VSI and its keep-alives pass."""
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    stolen = send(bridge, P3, tlv(AS), now=1)
    assert only_response(stolen).status == OK | VdpError.OTHER_FAILURE  # no KEEP, not hard
    assert stolen.unsolicited == [] and not stolen.bindings_changed
    [(kind, fields)] = stolen.events
    assert kind == "vsi.refused" and fields["held_at"] == P1 and "migration" in fields["reason"]
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING)}
    assert only_response(send(bridge, P1, tlv(AS), now=2)).status == OK
    # Once the source is gone (here: its keep-alive timed out), the VSI may start anywhere.
    bridge.expire(2 + KA)
    assert only_response(send(bridge, P3, tlv(AS), now=3 + KA)).status == OK


def test_a_station_cannot_take_a_mac_bound_to_another_vsi_nor_disturb_it():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS, vsi=A, mac=MAC_A))
    for mode in (RR, AS):
        outcome = send(bridge, P3, tlv(mode, vsi=B, mac=MAC_A))
        assert only_response(outcome).status == OK | HARD | VdpError.INVALID_VID_GROUP_MAC
        assert outcome.unsolicited == [] and not outcome.bindings_changed
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING)}


def test_other_pre_associations_survive_the_move():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P2, tlv(RR))
    send(bridge, P3, tlv(AS, status=STATUS_M))
    assert placed(bridge) == {(A, P2, BindingState.STANDBY), (A, P3, BindingState.FORWARDING)}


def test_suspend_holds_the_record_and_forwards_nothing():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    outcome = send(bridge, P1, tlv(DA, vid=100, status=STATUS_S), now=3)
    assert only_response(outcome).status == OK and outcome.bindings_changed
    assert kinds(outcome) == ["vsi.suspended"]
    assert bridge.bindings() == []
    [info] = bridge.vsis()
    assert info.state is VsiState.SUSPENDED
    [held] = info.attachments
    assert (held.port, held.binding, held.since, held.expires) == (P1, None, 3, 3 + KA)

    resumed = send(bridge, P3, tlv(AS, status=STATUS_M), now=4)
    assert resumed.unsolicited == [] and resumed.events[0][1]["resumed"]
    assert placed(bridge) == {(A, P3, BindingState.FORWARDING)}
    assert [a.port for a in bridge.vsis()[0].attachments] == [P3]


def test_suspended_record_expires_silently():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P1, tlv(DA, status=STATUS_S), now=1)
    assert bridge.expire(1 + KA - 0.01) == Outcome()
    outcome = bridge.expire(1 + KA)
    assert outcome.unsolicited == [] and kinds(outcome) == ["vsi.expired"]
    assert not outcome.bindings_changed and bridge.vsis() == []


def test_refused_migration_leaves_the_source_alone():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    response = only_response(send(bridge, P3, tlv(AS, vid=4000, status=STATUS_M)))
    assert response.status == OK | HARD | VdpError.INVALID_VID_GROUP_MAC  # no KEEP at P3
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING)}


# Bridge-initiated


def test_bridge_deassociate_tells_every_station():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(RR))
    outcome = bridge.deassociate(A, "operator", now=1)
    assert sorted(port for port, _, _ in outcome.unsolicited) == [P1, P3]
    assert all(t.mode is DA and t.status == 0 for _, _, t in outcome.unsolicited)
    assert outcome.bindings_changed and kinds(outcome) == ["vsi.deassociated"] * 2
    assert all(f["initiator"] == "bridge" and f["reason"] == "operator" for _, f in outcome.events)
    assert bridge.vsis() == []
    with pytest.raises(KeyError):
        bridge.deassociate(A, "again", now=2)


def test_port_down_drops_that_port_silently():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P1, tlv(PA, vsi=B, mac=MAC_B))
    send(bridge, P2, tlv(AS, vsi=VSIS[2], mac=MACS[2]))
    outcome = bridge.port_down(P1, now=1)
    assert outcome.unsolicited == [] and outcome.responses == [] and outcome.bindings_changed
    assert kinds(outcome) == ["vsi.deassociated"] * 2
    assert placed(bridge) == {(VSIS[2], P2, BindingState.FORWARDING)}
    assert only_response(send(bridge, P1, tlv(AS), now=2)).status == OK  # next keep-alive


def test_vsis_snapshot():
    bridge = new_bridge()
    send(bridge, P1, tlv(PA), now=1)
    send(bridge, P1, tlv(AS), now=2)
    send(bridge, P1, tlv(AS), now=4)
    [info] = bridge.vsis()
    assert (info.vsi_id, info.name, info.state, info.migrating) == (
        A,
        str(A.uuid),
        VsiState.ASSOCIATED,
        False,
    )
    [att] = info.attachments
    assert (
        att.port,
        att.state,
        att.binding,
        att.manager_id,
        att.type_id,
        att.type_version,
        att.profile,
    ) == (P1, VsiState.ASSOCIATED, BindingState.FORWARDING, "mgr1", 5, 4, "web")
    assert att.entries == (MacVid(MAC_A, 100),)
    assert (att.since, att.refreshed, att.expires) == (2, 4, 4 + KA)


def test_outcomes_merge_and_net_out_their_binding_changes():
    one, two = (
        VmBinding(7, A, P1, (MacVid(MAC_A, 100),), DATABASE.get(*WEB), state)
        for state in (BindingState.PREPARED, BindingState.FORWARDING)
    )
    first = Outcome(
        responses=[(P1, MGR, tlv(AS))], changes={7: (None, one)}, dirty={A}, events=[("a", {})]
    )
    second = Outcome(unsolicited=[(P2, MGR, tlv(DA))], changes={7: (one, two)}, events=[("b", {})])
    merged = first.merge(second, Outcome())
    assert merged == Outcome(
        [(P1, MGR, tlv(AS))], [(P2, MGR, tlv(DA))], {7: (None, two)}, {A}, [("a", {}), ("b", {})]
    )
    assert first.changes == {7: (None, one)}
    assert not first.merge(Outcome(changes={7: (one, None)})).bindings_changed


# Invariants over arbitrary sequences

PORTS = [P1, P2, P3]
# Mostly requests that can be granted, so that VSIs meet (same MACs, ports, limits).
TYPE_VIDS = [
    (WEB, 0),
    (WEB, 100),
    (WEB, 101),
    (DB, 0),
    (DB, 200),
    (BATCH, 0),
    (BATCH, 102),
    (WEB, 4000),
    ((5, 9), 0),
]
operations = st.one_of(
    st.tuples(
        st.just("request"),
        st.sampled_from(PORTS),
        st.sampled_from([PA, RR, AS, AS, DA]),
        st.integers(0, 3),
        st.integers(0, 3),
        st.sampled_from(TYPE_VIDS),
        st.sampled_from([0, STATUS_M, STATUS_S]),
        st.sampled_from(["mgr1"] * 5 + ["evil"]),
    ),
    st.tuples(st.just("wait"), st.floats(0, 10)),
    st.tuples(st.just("port_down"), st.sampled_from(PORTS)),
    st.tuples(st.just("deassociate"), st.integers(0, 3)),
    st.tuples(st.just("activate"), st.sampled_from(PORTS), st.integers(0, 3)),
)


def check_invariants(bridge: VdpBridge) -> None:
    bindings = bridge.bindings()
    handles = [b.handle for b in bindings]
    assert len(set(handles)) == len(handles) and all(0 < h < 2**31 for h in handles)
    forwarding = [b for b in bindings if b.forwarding]
    for mac in {e.mac for b in bindings for e in b.entries}:
        assert len({b.port for b in forwarding if mac in {e.mac for e in b.entries}}) <= 1
        assert len({b.vsi_id for b in bindings if mac in {e.mac for e in b.entries}}) == 1
    assert len({b.vsi_id for b in forwarding}) == len(forwarding)
    # A standby admission flow has a forwarding one's match only if they were one binding.
    admitted = {(b.port, e.mac) for b in forwarding for e in b.entries}
    standby = [b for b in bindings if b.state is BindingState.STANDBY]
    assert not {(b.port, e.mac) for b in standby for e in b.entries} & admitted
    for b in bindings:
        assert {e.vid for e in b.entries} <= b.profile.vlans
    batch = [b for b in bindings if b.profile.name == "batch"]
    for port in PORTS:
        assert len([b for b in batch if b.port == port]) <= 2
    assert len([b for b in batch if b.port.dpid == 1]) <= 3


@settings(max_examples=400)
@given(st.lists(operations, max_size=60))
def test_arbitrary_sequences_keep_the_invariants(ops):
    bridge, now = new_bridge(), 0.0
    for op in ops:
        before = bridge.bindings()
        if op[0] == "request":
            _, port, mode, vsi, mac, (type_, vid), status, manager = op
            outcome = send(
                bridge,
                port,
                tlv(mode, VSIS[vsi], MACS[mac], vid, type_, status),
                now,
                ManagerIdTlv.from_name(manager),
            )
            [(to, _, response)] = outcome.responses
            assert to == port and response.is_response and response.mode is mode
            assert response.vsi_id == VSIS[vsi]
        elif op[0] == "wait":
            now += op[1]
            outcome = bridge.expire(now)
        elif op[0] == "port_down":
            outcome = bridge.port_down(op[1], now)
        elif op[0] == "activate":
            outcome = bridge.activate(op[1], MACS[op[2]], now) or Outcome()
        else:
            vsi_id = VSIS[op[1]]
            known = any(info.vsi_id == vsi_id for info in bridge.vsis())
            if not known:
                continue
            outcome = bridge.deassociate(vsi_id, "test", now)
        assert all(t.mode is DA and t.status == 0 for _, _, t in outcome.unsolicited)
        assert outcome.bindings_changed == (bridge.bindings() != before)
        # The changes take the bindings from before to after, exactly: the flow plan follows
        # them and nothing else.
        applied = {b.handle: b for b in before}
        for handle, (was, after) in outcome.changes.items():
            assert applied.get(handle) == was
            if after is None:
                del applied[handle]
            else:
                applied[handle] = after
        assert sorted(applied.values(), key=lambda b: b.handle) == bridge.bindings()
        assert sorted(bridge.bound, key=lambda b: b.handle) == bridge.bindings()
        at_ports: dict = {}
        for info in bridge.vsis():
            for att in info.attachments:
                if att.state is not VsiState.SUSPENDED:
                    at_ports.setdefault(att.port, set()).add(info.vsi_id)
        assert dict(bridge._vsis_at) == at_ports  # the index port_down uses
        # The pages (vsis_after) list every VSI held once, in order, wherever they start.
        every = [info.vsi_id for info in bridge.vsis_after(None)]
        assert sorted(every, key=lambda v: (v.format, v.value)) == every
        assert set(every) == {info.vsi_id for info in bridge.vsis()} and len(set(every)) == len(
            every
        )
        if every:
            assert [info.vsi_id for info in bridge.vsis_after(every[0])] == every[1:]
        check_invariants(bridge)


# activation on the first frame (issue 11) ------------------------------------------------------
def test_a_preassociation_while_the_vsi_forwards_elsewhere_stands_by():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    outcome = send(bridge, P3, tlv(PA, vid=100, status=STATUS_M))
    assert only_response(outcome).status == OK and outcome.bindings_changed
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING), (A, P3, BindingState.STANDBY)}
    assert outcome.events[0][1]["standby_for"] == P1
    [info] = bridge.vsis()
    assert {(a.port, a.binding) for a in info.attachments} == {
        (P1, BindingState.FORWARDING),
        (P3, BindingState.STANDBY),
    }


def test_a_preassociation_of_a_vsi_forwarding_nowhere_does_not_stand_by():
    bridge = new_bridge()
    send(bridge, P1, tlv(PA))
    send(bridge, P3, tlv(RR, vsi=B, mac=MAC_B))
    assert placed(bridge) == {(B, P3, BindingState.PREPARED)}
    assert bridge.activate(P1, MAC_A, 1.0) is None
    assert bridge.activate(P3, MAC_B, 1.0) is None


def test_libvirt_order_the_first_frame_moves_the_vm_and_vdp_confirms_it():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS), now=0)
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M), now=1)
    handle = next(b.handle for b in bridge.bindings() if b.port == P3)
    activated = bridge.activate(P3, MAC_A, 2.0)
    assert activated is not None
    assert activated.responses == [] and activated.unsolicited == []
    assert len(activated.changes) == 2 and handle in activated.changes  # source and destination
    assert placed(bridge) == {(A, P3, BindingState.FORWARDING)}
    [(kind, fields)] = activated.events
    assert kind == "vsi.activated"
    assert (fields["at"], fields["moved_from"], fields["mac"]) == (P3, P1, MAC_A)
    assert fields["first_frame_at"] == 2.0
    # The frames punted while the activation is on its way change nothing.
    assert bridge.activate(P3, MAC_A, 2.001) is None
    # The source's station still holds its association: a keep-alive is answered, no flows.
    keepalive = send(bridge, P1, tlv(AS), now=2.5)
    assert only_response(keepalive).status == OK and not keepalive.bindings_changed
    gone = send(bridge, P1, tlv(DA, vid=100, status=STATUS_S), now=3)
    assert kinds(gone) == ["vsi.deassociated"] and not gone.bindings_changed
    confirmed = send(bridge, P3, tlv(AS, vid=100, status=STATUS_M), now=4)
    assert only_response(confirmed).status == OK
    assert not confirmed.bindings_changed and confirmed.unsolicited == []
    assert confirmed.events[0][1]["activated"] is True
    [binding] = bridge.bindings()
    assert (binding.port, binding.state, binding.handle) == (P3, BindingState.FORWARDING, handle)


def test_an_associate_after_activation_releases_a_source_that_did_not_deassociate():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(RR, vid=100, status=STATUS_M))
    bridge.activate(P3, MAC_A, 1.0)
    moved = send(bridge, P3, tlv(AS, vid=100, status=STATUS_M), now=2)
    assert moved.unsolicited == [(P1, MGR, replace(tlv(DA, vid=100), status=0))]
    assert kinds(moved) == ["vsi.associated", "vsi.deassociated"]
    assert not moved.bindings_changed
    assert placed(bridge) == {(A, P3, BindingState.FORWARDING)}


def test_only_the_standby_port_and_mac_activate():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P2, tlv(AS, vsi=B, mac=MAC_B))
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M))
    before = placed(bridge)
    assert bridge.activate(P2, MAC_A, 1.0) is None  # the VM's MAC at another port
    assert bridge.activate(P1, MAC_A, 1.0) is None  # at its source
    assert bridge.activate(P3, MAC_B, 1.0) is None  # another MAC at the standby port
    assert placed(bridge) == before


def test_a_cancelled_migration_leaves_the_source_forwarding():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M))
    cancelled = send(bridge, P3, tlv(DA, vid=100))
    assert cancelled.bindings_changed
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING)}
    assert bridge.activate(P3, MAC_A, 1.0) is None


def test_a_standby_never_confirmed_expires_and_the_source_keeps_forwarding():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS), now=0)
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M), now=5)
    send(bridge, P1, tlv(AS), now=KA)  # the source's keep-alive
    expired = bridge.expire(5 + KA + 0.01)
    assert kinds(expired) == ["vsi.expired"] and expired.events[0][1]["at"] == P3
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING)}


def test_the_managers_relocation_stands_by_and_is_activated_by_the_first_frame():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    prepared = bridge.prepare(A, P3, 1.0, 120.0, "relocation")
    assert prepared.events[0][1]["standby_for"] == P1
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING), (A, P3, BindingState.STANDBY)}
    assert bridge.activate(P3, MAC_A, 2.0) is not None
    assert placed(bridge) == {(A, P3, BindingState.FORWARDING)}


def test_a_vm_that_goes_back_to_its_source_is_forwarded_there_again():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M))
    bridge.activate(P3, MAC_A, 1.0)
    back = send(bridge, P1, tlv(AS, vid=101))  # the source's station associates anew
    assert only_response(back).status == OK
    assert placed(bridge) == {(A, P1, BindingState.FORWARDING), (A, P3, BindingState.STANDBY)}


def test_activation_survives_a_restart():
    bridge = new_bridge()
    send(bridge, P1, tlv(AS))
    send(bridge, P3, tlv(PA, vid=100, status=STATUS_M))
    send(bridge, P2, tlv(AS, vsi=B, mac=MAC_B))
    send(bridge, PortRef(2, 2), tlv(PA, vsi=B, mac=MAC_B, vid=100, status=STATUS_M))
    bridge.activate(P3, MAC_A, 1.0)
    restored = new_bridge()
    restored.restore(bridge.export(), DATABASE, 5.0)
    assert placed(restored) == placed(bridge)
    assert [i.vsi_id for i in restored.vsis_after(None)] == [
        i.vsi_id for i in bridge.vsis_after(None)
    ]
    assert restored.activate(PortRef(2, 2), MAC_B, 6.0) is not None
