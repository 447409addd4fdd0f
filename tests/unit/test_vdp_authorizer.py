"""VSI admission: statuses and HARD for every refusal, VID resolution, anti-spoofing, limits, and
the seam for asking the VM manager about unknown types."""

from dataclasses import replace
from pathlib import Path

import pytest

from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpTlvType,
    VsiId,
    VsiIdFormat,
    VsiTlv,
)
from app.fabric.ports import PortRef
from app.policy import Limits, Qos, VsiTypeDatabase, VsiTypeKey, VsiTypeProfile, load_policies
from app.registry.vms import VmRecord
from app.vdp.admission import REGISTERED_ONLY, TYPE_ONLY, AdmissionPolicy
from app.vdp.authorizer import AuthRequest, Authorizer, VsiManagerUnreachable, lookup_in_database
from app.vdp.binding import BindingState, MacVid, VmBinding
from app.vdp.binding_index import BindingIndex
from app.vdp.port_tenants import PortTenantRule, PortTenants

POLICIES = Path(__file__).resolve().parents[2] / "policies"
P1, P2, OTHER_SWITCH = PortRef(1, 1), PortRef(1, 2), PortRef(2, 1)
VSI_A = VsiId.from_uuid("a1b2c3d4-0000-0000-0000-00000000000a")
VSI_B = VsiId.from_uuid("a1b2c3d4-0000-0000-0000-00000000000b")
MAC_A, MAC_B = "52:00:00:00:00:0a", "52:00:00:00:00:0b"


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


WEB = profile(5, 4, "web", {100, 101}, default_vlan=100)
DB = profile(6, 1, "db", {200})
BATCH = profile(7, 1, "batch", {102}, limits=Limits(max_per_port=2, max_per_switch=3))
MULTI = profile(8, 1, "multi", {300, 301})
# Group 7 is VLAN 400, group 8 VLAN 401; VSIs may own whole VLANs; PCP 5 assigned.
SEGMENTS = profile(
    9,
    1,
    "segments",
    {400, 401, 402},
    groups=((7, 400), (8, 401)),
    whole_vlan=True,
    qos=Qos(pcp=5),
)
DATABASE = VsiTypeDatabase([WEB, DB, BATCH, MULTI, SEGMENTS])


def authorizer(database: VsiTypeDatabase = DATABASE, **kwargs) -> Authorizer:
    return Authorizer(lambda: database, **kwargs)


def request(
    *entries: tuple[str | None, int],
    type_id: int = 5,
    version: int = 4,
    manager: str = "mgr1",
    vsi_id: VsiId = VSI_A,
    port: PortRef = P1,
    filter_format: FilterFormat = FilterFormat.MAC_VID,
    group_id: int = 7,
) -> AuthRequest:
    with_group = filter_format in (FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID)
    filters = tuple(
        FilterEntry(vid=vid, mac=mac, group_id=group_id if with_group else None)
        for mac, vid in entries
    )
    return AuthRequest(port, manager, type_id, version, vsi_id, filter_format, filters)


def binding(
    handle: int,
    vsi_id: VsiId,
    port: PortRef,
    mac: str,
    vid: int = 100,
    prof: VsiTypeProfile = WEB,
    state: BindingState = BindingState.FORWARDING,
) -> VmBinding:
    return VmBinding(handle, vsi_id, port, (MacVid(mac, vid),), prof, state)


def refused(decision, error: VdpError, hard: bool, reason: str = "") -> None:
    assert not decision.ok
    assert decision.error is error, decision.reason
    assert decision.hard is hard
    assert decision.entries == ()
    assert reason in decision.reason


# Granted


def test_granted_entries_keep_the_requested_order_and_vids():
    decision = authorizer().authorize(request((MAC_A, 101), (MAC_B, 100)), BindingIndex())
    assert decision.ok and decision.error is VdpError.SUCCESS and not decision.hard
    assert decision.entries == (MacVid(MAC_A, 101), MacVid(MAC_B, 100))
    assert decision.profile is WEB
    assert "web" in decision.reason


def test_vid_zero_gets_the_default_vlan():
    assert authorizer().authorize(request((MAC_A, 0)), BindingIndex()).entries == (
        MacVid(MAC_A, 100),
    )


def test_vid_zero_gets_the_only_vlan_of_a_single_vlan_type():
    decision = authorizer().authorize(request((MAC_A, 0), type_id=6, version=1), BindingIndex())
    assert decision.entries == (MacVid(MAC_A, 200),)


def test_one_mac_on_two_vlans_is_fine():
    decision = authorizer().authorize(request((MAC_A, 100), (MAC_A, 101)), BindingIndex())
    assert decision.ok


def test_group_mac_vid_vid_zero_gets_the_groups_vlan():
    decision = authorizer().authorize(
        request((MAC_A, 0), type_id=9, version=1, filter_format=FilterFormat.GROUP_MAC_VID),
        BindingIndex(),
    )
    assert decision.ok and decision.entries == (MacVid(MAC_A, 400),)
    assert decision.pcp == 5  # the type's PCP, returned with the PS bit


def test_vid_zero_resolves_per_entry_through_each_entrys_group():
    filters = (
        FilterEntry(vid=0, mac=MAC_A, group_id=7),
        FilterEntry(vid=0, mac=MAC_A, group_id=8),
        FilterEntry(vid=401, mac=MAC_B, group_id=8),
    )
    req = AuthRequest(P1, "mgr1", 9, 1, VSI_A, FilterFormat.GROUP_MAC_VID, filters)
    decision = authorizer().authorize(req, BindingIndex())
    assert decision.entries == (MacVid(MAC_A, 400), MacVid(MAC_A, 401), MacVid(MAC_B, 401))


@pytest.mark.parametrize(
    "vid, group_id, reason",
    [(0, 9, "group ID 9 is no group"), (401, 7, "group ID 7 is VLAN 400, not 401")],
)
def test_a_group_the_type_does_not_map_or_another_vlan_is_refused(vid, group_id, reason):
    decision = authorizer().authorize(
        request(
            (MAC_A, vid),
            type_id=9,
            version=1,
            filter_format=FilterFormat.GROUP_MAC_VID,
            group_id=group_id,
        ),
        BindingIndex(),
    )
    refused(decision, VdpError.INVALID_VID_GROUP_MAC, True, reason)


@pytest.mark.parametrize("filter_format", [FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID])
def test_group_formats_need_group_ids_agreed_on_the_port(filter_format):
    decision = authorizer(group_ids=lambda port: port != P1).authorize(
        request((MAC_A, 0), type_id=9, version=1, filter_format=filter_format), BindingIndex()
    )
    refused(decision, VdpError.INVALID_FORMAT, True, "BGID and SGID")


@pytest.mark.parametrize(
    "filter_format, entry, granted",
    [
        (FilterFormat.VID, (None, 402), MacVid(None, 402)),
        (FilterFormat.VID, (None, 0), None),  # no default VLAN and three VLANs: refused
        (FilterFormat.GROUP_VID, (None, 0), MacVid(None, 400)),
    ],
)
def test_formats_without_mac_own_a_whole_vlan_where_the_type_allows(filter_format, entry, granted):
    decision = authorizer().authorize(
        request(entry, type_id=9, version=1, filter_format=filter_format), BindingIndex()
    )
    assert decision.entries == ((granted,) if granted else ())


def test_a_station_insisting_on_another_pcp_is_refused():
    filters = (FilterEntry(vid=400, mac=MAC_A, ps=True, pcp=2),)
    req = AuthRequest(P1, "mgr1", 9, 1, VSI_A, FilterFormat.MAC_VID, filters)
    refused(authorizer().authorize(req, BindingIndex()), VdpError.OTHER_FAILURE, True, "PCP 5")
    same = AuthRequest(P1, "mgr1", 9, 1, VSI_A, FilterFormat.MAC_VID, (replace(filters[0], pcp=5),))
    assert authorizer().authorize(same, BindingIndex()).ok


def owner(handle: int, vsi_id: VsiId, port: PortRef, vid: int) -> VmBinding:
    return VmBinding(handle, vsi_id, port, (MacVid(None, vid),), SEGMENTS, BindingState.FORWARDING)


@pytest.mark.parametrize(
    "held, entry, port, reason",
    [
        (owner(1, VSI_B, OTHER_SWITCH, 402), (None, 402), P1, "VLAN 402 is owned by"),
        (binding(1, VSI_B, P1, MAC_B, 402, SEGMENTS), (None, 402), P1, "used at the port"),
        (owner(1, VSI_B, P1, 402), (MAC_A, 402), P1, "owned at the port by"),
    ],
)
def test_a_whole_vlan_is_one_vsis_in_the_fabric_and_alone_at_its_port(held, entry, port, reason):
    filter_format = FilterFormat.VID if entry[0] is None else FilterFormat.MAC_VID
    decision = authorizer().authorize(
        request(entry, type_id=9, version=1, filter_format=filter_format, port=port),
        BindingIndex.of([held]),
    )
    refused(decision, VdpError.INVALID_VID_GROUP_MAC, True, reason)


def test_a_mac_vm_elsewhere_in_an_owned_vlan_is_fine():
    held = BindingIndex.of([owner(1, VSI_B, OTHER_SWITCH, 402)])
    assert authorizer().authorize(request((MAC_A, 402), type_id=9, version=1), held).ok


def test_the_requesting_vsis_own_bindings_never_conflict():
    own = [binding(1, VSI_A, P2, MAC_A)]
    assert authorizer().authorize(request((MAC_A, 100)), BindingIndex.of(own)).ok


def test_shipped_default_policies_admit_the_demo_station():
    database = load_policies(POLICIES)
    decision = Authorizer(lambda: database).authorize(request((MAC_A, 0)), BindingIndex())
    assert decision.ok and decision.entries == (MacVid(MAC_A, 100),)


def test_request_from_tlv_normalizes_the_manager_id():
    tlv = VsiTlv(
        VdpTlvType.ASSOCIATE, 0, 5, 4, VSI_A, FilterFormat.MAC_VID, (FilterEntry(vid=0, mac=MAC_A),)
    )
    req = AuthRequest.from_tlv(P1, ManagerIdTlv.from_name("mgr1"), tlv)
    assert req == request((MAC_A, 0))


def test_database_is_read_at_every_decision():
    current = [VsiTypeDatabase()]
    auth = Authorizer(lambda: current[0])
    refused(
        auth.authorize(request((MAC_A, 0)), BindingIndex()), VdpError.OTHER_FAILURE, True, "unknown"
    )
    current[0] = DATABASE
    assert auth.authorize(request((MAC_A, 0)), BindingIndex()).ok


# Refused: format


def test_zero_entries_is_invalid_format():
    refused(
        authorizer().authorize(request(), BindingIndex()),
        VdpError.INVALID_FORMAT,
        True,
        "no filter",
    )


@pytest.mark.parametrize("filter_format", [FilterFormat.VID, FilterFormat.GROUP_VID])
def test_formats_without_mac_need_a_type_with_whole_vlan(filter_format):
    decision = authorizer().authorize(
        request((None, 100), filter_format=filter_format), BindingIndex()
    )
    refused(decision, VdpError.INVALID_FORMAT, True, "whole_vlan")


@pytest.mark.parametrize(
    "vsi_id, reason",
    [
        (VsiId.from_local(bytes(16)), "all zeros"),
        (VsiId(VsiIdFormat.IPV4, bytes(15) + b"\x01"), "does not fit"),
        (VsiId(VsiIdFormat.MAC, b"\x01" * 16), "does not fit"),
    ],
)
def test_vsi_id_that_does_not_fit_its_format_is_invalid_format(vsi_id, reason):
    refused(
        authorizer().authorize(request((MAC_A, 100), vsi_id=vsi_id), BindingIndex()),
        VdpError.INVALID_FORMAT,
        True,
        reason,
    )


def test_same_mac_vid_twice_is_invalid_format_also_after_resolving_vid_zero():
    refused(
        authorizer().authorize(request((MAC_A, 0), (MAC_A, 100)), BindingIndex()),
        VdpError.INVALID_FORMAT,
        True,
        "twice",
    )


@pytest.mark.parametrize("mac", ["01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "00:00:00:00:00:00"])
def test_group_or_zero_mac_is_invalid_mac(mac):
    refused(
        authorizer().authorize(request((mac, 100)), BindingIndex()),
        VdpError.INVALID_VID_GROUP_MAC,
        True,
        mac,
    )


# Refused: policy


def test_unknown_type_or_version_is_other_failure_and_hard():
    refused(
        authorizer().authorize(request((MAC_A, 100), version=5), BindingIndex()),
        VdpError.OTHER_FAILURE,
        True,
        "unknown VSI type 5 version 5",
    )


def test_manager_not_allowed_is_other_failure_and_hard():
    decision = authorizer().authorize(request((MAC_A, 100), manager="intruder"), BindingIndex())
    refused(decision, VdpError.OTHER_FAILURE, True, "'intruder' is not allowed")
    assert decision.profile is WEB


@pytest.mark.parametrize("vid", [1, 102, 4094, 4095])
def test_vid_not_allowed_is_invalid_vid_and_hard(vid):
    refused(
        authorizer().authorize(request((MAC_A, 100), (MAC_B, vid)), BindingIndex()),
        VdpError.INVALID_VID_GROUP_MAC,
        True,
        f"VID {vid} is not allowed",
    )


def test_vid_zero_without_a_default_vlan_is_invalid_vid():
    refused(
        authorizer().authorize(request((MAC_A, 0), type_id=8, version=1), BindingIndex()),
        VdpError.INVALID_VID_GROUP_MAC,
        True,
        "no default VLAN",
    )


@pytest.mark.parametrize("state", list(BindingState))
def test_mac_bound_to_another_vsi_is_refused_anywhere(state):
    other = [binding(1, VSI_B, OTHER_SWITCH, MAC_A, state=state)]
    decision = authorizer().authorize(request((MAC_B, 100), (MAC_A, 101)), BindingIndex.of(other))
    refused(decision, VdpError.INVALID_VID_GROUP_MAC, True, f"MAC {MAC_A} is bound to VSI")


# Refused: limits


def batch(handle: int, vsi_byte: int, port: PortRef) -> VmBinding:
    vsi_id = VsiId.from_uuid(f"a1b2c3d4-0000-0000-0000-0000000001{vsi_byte:02x}")
    return binding(
        handle, vsi_id, port, f"52:00:00:00:01:{vsi_byte:02x}", 102, BATCH, BindingState.PREPARED
    )


def batch_request(port: PortRef = P1, vsi_id: VsiId = VSI_A) -> AuthRequest:
    return request((MAC_A, 0), type_id=7, version=1, port=port, vsi_id=vsi_id)


def test_limit_per_port_counts_prepared_bindings_of_the_type():
    two_on_p1 = [batch(1, 1, P1), batch(2, 2, P1), binding(3, VSI_B, P1, MAC_B)]
    refused(
        authorizer().authorize(batch_request(P1), BindingIndex.of(two_on_p1)),
        VdpError.INSUFFICIENT_RESOURCES,
        False,
        "2 VMs per port",
    )
    assert authorizer().authorize(batch_request(P2), BindingIndex.of(two_on_p1)).ok


def test_limit_per_switch():
    three = [batch(1, 1, P1), batch(2, 2, P2), batch(3, 3, P2)]
    refused(
        authorizer().authorize(batch_request(P1), BindingIndex.of(three)),
        VdpError.INSUFFICIENT_RESOURCES,
        False,
        "3 VMs per switch",
    )
    assert authorizer().authorize(batch_request(OTHER_SWITCH), BindingIndex.of(three)).ok


def test_limits_do_not_count_the_requesting_vsi():
    mine = batch(2, 2, P1)
    two_on_p1 = [batch(1, 1, P1), mine]
    assert (
        authorizer().authorize(batch_request(P1, vsi_id=mine.vsi_id), BindingIndex.of(two_on_p1)).ok
    )


def test_a_server_in_maintenance_takes_no_new_vm_but_keeps_its_own():
    in_maintenance = authorizer(maintenance=lambda port: "BIOS upgrade" if port == P1 else None)
    refused(
        in_maintenance.authorize(request((MAC_A, 100)), BindingIndex()),
        VdpError.INSUFFICIENT_RESOURCES,
        False,
        "in maintenance (BIOS upgrade)",
    )
    assert in_maintenance.authorize(request((MAC_A, 100), port=P2), BindingIndex()).ok
    # The VM already bound there: its keep-alives (and a re-association) pass.
    assert in_maintenance.authorize(
        request((MAC_A, 100)), BindingIndex.of([binding(1, VSI_A, P1, MAC_A)])
    ).ok
    # A VM bound elsewhere migrating to the server in maintenance is new to it.
    refused(
        in_maintenance.authorize(
            request((MAC_A, 100)), BindingIndex.of([binding(1, VSI_A, P2, MAC_A)])
        ),
        VdpError.INSUFFICIENT_RESOURCES,
        False,
        "maintenance",
    )


# The seam for the VM manager


def test_lookup_can_resolve_a_type_the_database_lacks():
    asked = []

    def lookup(database, manager_id, key):
        asked.append((manager_id, key))
        return lookup_in_database(database, manager_id, key) or profile(
            key.type_id, key.version, "from-manager", {400}
        )

    decision = authorizer(lookup=lookup).authorize(request((MAC_A, 0), type_id=42), BindingIndex())
    assert decision.entries == (MacVid(MAC_A, 400),)
    assert asked == [("mgr1", VsiTypeKey(42, 4))]


def test_unreachable_vsi_manager_is_status_3_and_not_hard():
    def lookup(database, manager_id, key):
        raise VsiManagerUnreachable("connection refused")

    refused(
        authorizer(lookup=lookup).authorize(request((MAC_A, 0)), BindingIndex()),
        VdpError.UNABLE_TO_CONTACT_VSI_MANAGER,
        False,
        "connection refused",
    )


# The VM manager's registrations (draft 5.1) and who may associate where


class Registered:
    """The registry's two reads over a few VmRecords."""

    def __init__(self, *vms: VmRecord) -> None:
        self._vms = {vm.vsi_id: vm for vm in vms}

    def vm(self, vsi_id: str) -> VmRecord | None:
        return self._vms.get(vsi_id)

    def vm_by_mac(self, mac: str) -> VmRecord | None:
        return next((vm for vm in self._vms.values() if mac in vm.macs), None)


TEXT_A, TEXT_B = (str(v.uuid) for v in (VSI_A, VSI_B))
WITH_RED = VsiTypeDatabase([WEB, profile(6, 1, "db", {200}, tenant="red")])


def registered(*vms: VmRecord, mode: str = TYPE_ONLY, **tenants: str) -> Authorizer:
    policy = AdmissionPolicy(mode=mode, by_tenant=tenants)
    return authorizer(WITH_RED, policy=policy, registrations=lambda: Registered(*vms))


def vm(vsi_id: str = TEXT_A, type_id: int = 5, version: int = 4, macs=(MAC_A,), tenant="blue"):
    return VmRecord(vsi_id, tenant, type_id, version, tuple(macs))


@pytest.mark.parametrize("mode", [TYPE_ONLY, REGISTERED_ONLY])
def test_a_registered_vm_must_match_its_registration(mode):
    assert registered(vm(), mode=mode).authorize(request((MAC_A, 100)), BindingIndex()).ok
    for registration, error, words in [
        (vm(type_id=7, version=1), VdpError.OTHER_FAILURE, "registered with VSI type 7"),
        (vm(macs=(MAC_B,)), VdpError.INVALID_VID_GROUP_MAC, f"MAC {MAC_A} is not registered"),
        (vm(tenant="red"), VdpError.OTHER_FAILURE, "another tenant"),
    ]:
        refused(
            registered(registration, mode=mode).authorize(request((MAC_A, 100)), BindingIndex()),
            error,
            True,
            words,
        )


def test_a_registered_mac_belongs_to_its_vm():
    """Issue 10: a station that bound a MAC first got the rightful VM refused. A MAC the VM
    manager registered for a VM is that VM's: another VSI claiming it is refused."""
    squatter = registered(vm(TEXT_B, macs=(MAC_A,)))
    refused(
        squatter.authorize(request((MAC_A, 100)), BindingIndex()),
        VdpError.INVALID_VID_GROUP_MAC,
        True,
        f"MAC {MAC_A} is registered for another VM",
    )
    assert squatter.authorize(request((MAC_A, 100), vsi_id=VSI_B), BindingIndex()).ok


def test_registered_only_admits_only_registered_vms_with_their_macs():
    refused(
        registered(mode=REGISTERED_ONLY).authorize(request((MAC_A, 100)), BindingIndex()),
        VdpError.OTHER_FAILURE,
        False,  # the registration may arrive a moment later
        "not registered",
    )
    refused(
        registered(vm(macs=()), mode=REGISTERED_ONLY).authorize(
            request((MAC_A, 100)), BindingIndex()
        ),
        VdpError.INVALID_VID_GROUP_MAC,
        True,
        "lists no MACs",
    )
    assert registered(vm(macs=())).authorize(request((MAC_A, 100)), BindingIndex()).ok


def test_admission_is_set_per_tenant():
    red_only = registered(mode=TYPE_ONLY, red=REGISTERED_ONLY)
    assert red_only.authorize(request((MAC_A, 100)), BindingIndex()).ok  # blue's type
    refused(
        red_only.authorize(request((MAC_A, 200), type_id=6, version=1), BindingIndex()),
        VdpError.OTHER_FAILURE,
        False,
        "tenant red admits only registered VMs",
    )
    blue_open = registered(mode=REGISTERED_ONLY, blue=TYPE_ONLY)
    assert blue_open.authorize(request((MAC_A, 100)), BindingIndex()).ok


def test_port_tenant_allow_lists():
    names = {P1: ("edge1", "edge1-s1"), P2: ("edge1", "edge1-s2"), OTHER_SWITCH: ("edge2", "x")}
    rules = [PortTenantRule("edge1", "edge1-s1", frozenset({"red"}))]
    checked = authorizer(WITH_RED, port_tenants=PortTenants(rules, names.__getitem__).refusal)
    refused(
        checked.authorize(request((MAC_A, 100)), BindingIndex()),
        VdpError.OTHER_FAILURE,
        True,
        "tenant blue may not associate VMs at edge1/edge1-s1",
    )
    assert checked.authorize(request((MAC_A, 200), type_id=6, version=1), BindingIndex()).ok
    assert checked.authorize(request((MAC_A, 100), port=P2), BindingIndex()).ok  # no rule
