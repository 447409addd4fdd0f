"""The registry without HTTP: documents, override rules, atomicity, persistence."""

import dataclasses
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy import load_file, load_policies
from app.policy.database import VsiTypeDatabase
from app.registry import InvalidInput, NotFound, Registry, RegistryError
from app.registry.documents import parse_profile, profile_document, vlan_ranges
from app.registry.profiles import API, FILE, ProfileSet
from app.store.sqlite_store import SqliteStore
from tests.unit.test_rest_harness import POLICIES, VSI_A, FakeService, profile

VM_NEW = "a1b2c3d4-0000-0000-0000-0000000000c1"


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    yield store
    store.close()


def registry_on(store, service=None, clock=lambda: 100.0):
    return Registry(load_policies(POLICIES), store, service or FakeService(), clock=clock)


# documents ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "profile_",
    list(load_policies(POLICIES)) + list(load_file(POLICIES / "vsi-types.example.yaml")),
    ids=lambda p: p.name,
)
def test_documents_give_the_same_profile_back(profile_):
    assert parse_profile(profile_document(profile_)) == profile_


@given(st.sets(st.integers(1, 4094), min_size=1, max_size=60))
@settings(max_examples=200)
def test_vlan_ranges_round_trip(vids):
    document = profile(vlans=vlan_ranges(vids))
    assert parse_profile(document).vlans == frozenset(vids)
    assert all(isinstance(item, int) or item.count("-") == 1 for item in vlan_ranges(vids))


def test_vlan_ranges_are_compact():
    assert vlan_ranges({1, 2, 3, 5, 6, 8, 9, 10, 11}) == ["1-3", 5, 6, "8-11"]


def test_a_mac_in_a_document_stays_text():
    """10:20:30:40:50:59 is a base-60 integer in YAML 1.1: the JSON string must not become one."""
    document = profile(ingress_acl=[{"action": "deny", "eth_src": "10:20:30:40:50:59"}])
    assert str(parse_profile(document).ingress_acl[0].eth_src) == "10:20:30:40:50:59"


def test_parsed_profiles_say_they_came_from_the_api():
    parsed = parse_profile(profile())
    assert parsed.source == "api" and parsed.source_line is None


def test_errors_say_nothing_of_the_yaml_lines():
    with pytest.raises(InvalidInput) as info:
        parse_profile(profile(ingress_acl=[{"action": "deny"}, {"action": "permit"}]))
    assert "line" not in info.value.message and info.value.field == "ingress_acl[1]"


# profile sets -------------------------------------------------------------------------------
def test_pushed_profiles_win_over_files_and_deleting_them_brings_the_file_back():
    files = load_policies(POLICIES)
    pushed = parse_profile(profile(5, 4, vlans=[100]))
    profiles = ProfileSet(files).with_pushed([pushed])
    assert profiles.database.get(5, 4) is pushed and profiles.source(pushed.key) == API
    assert profiles.view(pushed)["replaces"].endswith("default.yaml:6")
    back = profiles.without_pushed([pushed.key])
    assert back.database.get(5, 4) == files.get(5, 4) and back.source(pushed.key) == FILE
    assert "replaces" not in back.view(back.database.get(5, 4))


# changes ------------------------------------------------------------------------------------
def test_changes_survive_a_restart(store, tmp_path):
    registry = registry_on(store)
    registry.register_group(
        {
            "group": "g",
            "profiles": [profile()],
            "vms": [{"vsi_id": VSI_A, "macs": ["52:00:00:00:00:01"]}],
        },
        None,
    )
    registry.put_profile(5, 4, profile(5, 4, vlans=[100, 101], name="web2"), None)
    store.close()
    reopened = registry_on(SqliteStore(str(tmp_path / "evb.db")), clock=lambda: 200.0)
    assert reopened.database() == registry.database()
    assert reopened.database().get(5, 4).name == "web2"
    assert reopened.vm(VSI_A) == registry.vm(VSI_A)
    assert reopened.vm(VSI_A).registered == 100.0
    assert reopened.vm_by_mac("52:00:00:00:00:01").vsi_id == VSI_A


def test_the_database_at_start_is_files_plus_pushed(store):
    registry_on(store).put_profile(9, 1, profile(), None)
    restarted = registry_on(store)
    assert [p.key.type_id for p in restarted.database()] == [5, 6, 7, 9]


def test_a_stored_profile_that_no_longer_validates_stops_the_start(store):
    registry_on(store).put_profile(9, 1, profile(), None)
    store._db.execute('UPDATE profiles SET document = \'{"type_id": 9, "version": 1}\'')
    with pytest.raises(RegistryError, match="stored profile 9/1"):
        registry_on(store)


class FailingStore:
    """A store whose registry writes fail, as a full disk would."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)

    def write_registry(self, write):
        raise OSError("disk full")


def test_a_failed_write_changes_nothing(store):
    service = FakeService()
    registry = Registry(load_policies(POLICIES), FailingStore(store), service)
    with pytest.raises(OSError):
        registry.register_group({"profiles": [profile()], "vms": [{"vsi_id": VSI_A}]}, None)
    with pytest.raises(OSError):
        registry.put_vm(VSI_A, {"type_id": 5, "type_version": 4}, None)
    assert registry.database().get(9, 1) is None and registry.vm(VSI_A) is None
    assert service.applied == [] and service.deassociated == []


def test_the_group_is_one_transaction(store):
    """A store error halfway through the group's statements leaves the earlier ones undone."""
    registry = registry_on(store)
    registry.put_vm(VSI_A, {"type_id": 5, "type_version": 4}, None)
    store._db.execute(
        "CREATE TRIGGER no_vms BEFORE INSERT ON vms "
        "WHEN NEW.vsi_id = 'a1b2c3d4-0000-0000-0000-0000000000c1' "
        "BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    with pytest.raises(Exception, match="refused"):
        registry.register_group(
            {
                "profiles": [profile()],
                "vms": [
                    {"vsi_id": VSI_A, "type_id": 5, "type_version": 4, "name": "renamed"},
                    {"vsi_id": VM_NEW},
                ],
            },
            None,
        )
    assert store.profiles() == [] and [v["name"] for v in store.vms()] == [None]
    assert registry.database().get(9, 1) is None and registry.vm(VSI_A).name is None


def test_profiles_reach_the_controller_in_the_order_they_were_stored(store):
    """Concurrent pushes: the last database applied is the one stored last."""
    service = FakeService()
    registry = registry_on(store, service)
    threads = [
        threading.Thread(target=registry.put_profile, args=(9, 1, profile(name=f"n{i}"), None))
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(service.applied) == 20
    assert service.applied[-1] == registry.database()
    assert registry_on(store).database() == registry.database()


def test_deregistration_asks_the_controller_to_deassociate(store):
    service = FakeService()
    registry = registry_on(store, service)
    registry.put_vm(VSI_A, {"type_id": 5, "type_version": 4}, None)
    result = registry.delete_vm(VSI_A.upper(), None)
    assert result.deassociated == (VSI_A,)
    assert service.deassociated == [(VSI_A, "deregistered by the VM manager")]
    with pytest.raises(NotFound):
        registry.delete_vm(VSI_A, None)


def test_vm_changes_do_not_reapply_profiles(store):
    service = FakeService()
    registry_on(store, service).put_vm(VSI_A, {"type_id": 5, "type_version": 4}, None)
    assert service.applied == []


def test_policy_files_cannot_give_one_vlan_to_two_tenants(store, tmp_path):
    """Finding: the file path skipped the VLAN ownership check (two tenants on VLAN 10)."""
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "a.yaml").write_text(
        "vsi_types:\n"
        "  - {type_id: 1, version: 1, name: a, tenant: blue, vlans: [10], manager_ids: [m]}\n"
        "  - {type_id: 2, version: 1, name: b, tenant: red, vlans: [10], manager_ids: [m]}\n"
    )
    with pytest.raises(RegistryError, match=r"a.yaml:3.*VLAN 10 belongs to tenant blue"):
        Registry(load_policies(policies), store, FakeService())


def test_a_pushed_profile_may_move_its_own_vlans(store):
    registry = registry_on(store)
    registry.put_profile(5, 4, profile(5, 4, vlans=[300], tenant="green"), None)
    assert registry.database().get(5, 4).tenant == "green"


def test_an_empty_files_database(store):
    registry = Registry(VsiTypeDatabase(), store, FakeService())
    registry.put_profile(9, 1, profile(), None)
    assert [p.key.type_id for p in registry.database()] == [9]


class CountedId(str):
    """A VSI ID that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other):
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_a_group_costs_its_size_in_vsi_id_comparisons(store, monkeypatch):
    """Finding: group registration was quadratic under the registry's lock (each VM was
    compared with every VM before it). The VSI IDs of a group are compared O(n) times in all."""
    from app.registry import registry as registry_module

    parse_vm = registry_module.parse_vm

    def counted_parse_vm(*args, **kwargs):
        vm = parse_vm(*args, **kwargs)
        return dataclasses.replace(vm, vsi_id=CountedId(vm.vsi_id))

    monkeypatch.setattr(registry_module, "parse_vm", counted_parse_vm)
    size = 400
    vms = [
        {
            "vsi_id": f"b0000000-0000-0000-0000-{n:012x}",
            "macs": [f"52:00:00:00:{n >> 8:02x}:{n & 255:02x}"],
        }
        for n in range(size)
    ]
    CountedId.comparisons = 0
    registry_on(store).register_group({"profiles": [profile()], "vms": vms}, None)
    # The VM table's persistent maps compare a key with the few others of its hash bucket:
    # about 6 comparisons per VM at any size. Quadratic: size * (size - 1) / 2 = 79,800.
    assert CountedId.comparisons <= 10 * size
    assert len(registry_on(store).state.vms) == size
