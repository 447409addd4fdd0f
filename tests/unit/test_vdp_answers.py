"""Richer VDP answers: the type's PCP returned with the PS bit, VID 0 resolved per filter entry
through each entry's group, and a profile change under an associated VSI answered in the next
keep-alive with the standard error + KEEP bits."""

from dataclasses import replace

from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpTlvType,
    VsiId,
    VsiTlv,
)
from app.fabric.ports import PortRef
from app.policy import Qos, VsiTypeDatabase, VsiTypeKey, VsiTypeProfile
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge

P1 = PortRef(1, 1)
MGR = ManagerIdTlv.from_name("mgr1")
VSI = VsiId.from_uuid("a1b2c3d4-0000-0000-0000-000000000001")
MAC = "52:00:00:00:00:01"
KA = 17.45
KEEP = 0x20


def profile(**fields) -> VsiTypeProfile:
    values = dict(
        key=VsiTypeKey(9, 1),
        name="segments",
        tenant="blue",
        vlans=frozenset({400, 401}),
        manager_ids=frozenset({"mgr1"}),
        groups=((7, 400), (8, 401)),
        qos=Qos(pcp=5),
    )
    return VsiTypeProfile(**{**values, **fields})


class Db:
    def __init__(self, *profiles):
        self.database = VsiTypeDatabase(profiles)


def bridge_with(db: Db) -> VdpBridge:
    return VdpBridge(Authorizer(lambda: db.database))


def associate(*filters: FilterEntry, fmt=FilterFormat.GROUP_MAC_VID) -> VsiTlv:
    return VsiTlv(VdpTlvType.ASSOCIATE, 0, 9, 1, VSI, fmt, filters)


def answer(bridge: VdpBridge, request: VsiTlv, now: float = 0.0):
    outcome = bridge.on_request(P1, MGR, request, now, KA)
    ((_, _, response),) = outcome.responses
    return outcome, response


def test_vid_zero_per_entry_and_the_types_pcp_come_back_with_the_ps_bit():
    bridge = bridge_with(Db(profile()))
    request = associate(
        FilterEntry(vid=0, mac=MAC, group_id=7), FilterEntry(vid=0, mac=MAC, group_id=8)
    )
    _, response = answer(bridge, request)
    assert response.error == VdpError.SUCCESS
    assert [(f.group_id, f.vid, f.ps, f.pcp) for f in response.filters] == [
        (7, 400, True, 5),
        (8, 401, True, 5),
    ]
    # lldpad's keep-alive repeats what it adopted: the answer itself
    again, keepalive = answer(bridge, replace(response, status=0), now=5.0)
    assert keepalive == response and not again.changes


def test_a_type_without_pcp_echoes_the_stations_priority_bits():
    bridge = bridge_with(Db(profile(qos=Qos())))
    _, response = answer(bridge, associate(FilterEntry(vid=400, mac=MAC, group_id=7, pcp=3)))
    assert (response.filters[0].ps, response.filters[0].pcp) == (False, 3)


def test_a_changed_pcp_is_answered_at_the_next_keepalive_with_error_and_keep():
    db = Db(profile())
    bridge = bridge_with(db)
    request = associate(FilterEntry(vid=0, mac=MAC, group_id=7))
    answer(bridge, request)
    db.database = VsiTypeDatabase([profile(qos=Qos(pcp=2))])
    changed = bridge.update_profiles(db.database, 1.0)
    assert not changed.unsolicited and not changed.changes  # the old answer holds till then
    outcome, response = answer(bridge, request, now=2.0)
    assert response.status == 0x40 | KEEP | VdpError.OTHER_FAILURE
    assert [kind for kind, _ in outcome.events] == ["vsi.refused"]
    assert bridge.bindings()  # still associated: the station de-associates on KEEP
    deassociate = replace(request, mode=VdpTlvType.DE_ASSOCIATE)
    answer(bridge, deassociate, now=3.0)
    _, fresh = answer(bridge, request, now=4.0)
    assert fresh.error == VdpError.SUCCESS and fresh.filters[0].pcp == 2


def test_a_group_moved_to_another_vlan_is_an_invalid_vid_at_the_next_keepalive():
    db = Db(profile())
    bridge = bridge_with(db)
    request = associate(FilterEntry(vid=0, mac=MAC, group_id=7))
    answer(bridge, request)
    db.database = VsiTypeDatabase([profile(groups=((7, 401),))])
    bridge.update_profiles(db.database, 1.0)
    _, response = answer(bridge, request, now=2.0)
    assert response.status == 0x40 | KEEP | VdpError.INVALID_VID_GROUP_MAC


def test_a_change_undone_before_the_keepalive_leaves_the_answer_as_it_was():
    db = Db(profile())
    bridge = bridge_with(db)
    request = associate(FilterEntry(vid=0, mac=MAC, group_id=7))
    _, first = answer(bridge, request)
    for database in (VsiTypeDatabase([profile(qos=Qos(pcp=2))]), VsiTypeDatabase([profile()])):
        db.database = database
        bridge.update_profiles(database, 1.0)
    _, response = answer(bridge, request, now=2.0)
    assert response == first


def test_a_vlan_no_longer_allowed_is_still_deassociated_at_once():
    db = Db(profile())
    bridge = bridge_with(db)
    answer(bridge, associate(FilterEntry(vid=0, mac=MAC, group_id=7)))
    db.database = VsiTypeDatabase([profile(vlans=frozenset({401}), groups=((8, 401),))])
    outcome = bridge.update_profiles(db.database, 1.0)
    assert len(outcome.unsolicited) == 1 and not bridge.bindings()
