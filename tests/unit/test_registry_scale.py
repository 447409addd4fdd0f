"""Issue 9: a registry change costs what it changes, never the VMs held. The held registrations
count which of them a change reads (no timing), at two sizes: the same few at both."""

import pytest

from app.registry import registry as registry_module
from app.registry.vms import VmRecord
from app.store.sqlite_store import SqliteStore
from tests.unit.test_registry import registry_on
from tests.unit.test_rest_harness import profile

NEW_VSI = "c0000000-0000-0000-0000-0000ffffffff"


class CountedVm(VmRecord):
    """A held registration that notes its VSI ID when any of its fields is read."""

    read: set[str] = set()

    def __getattribute__(self, name):
        if not name.startswith("__"):
            CountedVm.read.add(object.__getattribute__(self, "vsi_id"))
        return super().__getattribute__(name)


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    yield store
    store.close()


def vsi(n: int) -> str:
    return f"b0000000-0000-0000-0000-{n:012x}"


def mac(n: int) -> str:
    return f"52:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def held_registry(tmp_path, monkeypatch, size: int):
    """A registry restarted on ``size`` stored VMs of type 9/1, each held as a CountedVm."""
    store = SqliteStore(str(tmp_path / f"evb-{size}.db"))
    vms = [{"vsi_id": vsi(n), "macs": [mac(n)]} for n in range(size)]
    registry_on(store).register_group({"profiles": [profile()], "vms": vms}, None)
    monkeypatch.setattr(registry_module, "VmRecord", CountedVm)
    registry = registry_on(store)
    monkeypatch.undo()
    CountedVm.read = set()
    return store, registry


def reads_of_changes(registry) -> list[set[str]]:
    """The held registrations each change (and the VDP look-up after it) reads."""
    steps = [
        lambda: registry.put_vm(
            NEW_VSI, {"type_id": 9, "type_version": 1, "macs": [mac(0xFFFFFF)]}, None
        ),
        lambda: registry.vm_by_mac(mac(0xFFFFFF)),
        lambda: registry.put_vm(
            vsi(7), {"type_id": 9, "type_version": 1, "macs": [mac(0xFFFFFE)]}, None
        ),
        lambda: registry.vm_by_mac(mac(8)),
        lambda: registry.delete_vm(vsi(9), None),
        lambda: registry.put_profile(10, 1, profile(type_id=10, vlans=[111]), None),
    ]
    reads = []
    for step in steps:
        CountedVm.read = set()
        step()
        reads.append(set(CountedVm.read))
    return reads


def test_a_change_reads_what_it_changes_whatever_the_vms_held(tmp_path, monkeypatch):
    """Finding: each change copied, sorted and checked every registered VM, and the first VDP
    look-up after it rebuilt the MAC index over all of them."""
    reads = {}
    for size in (1_000, 10_000):
        store, registry = held_registry(tmp_path, monkeypatch, size)
        try:
            reads[size] = reads_of_changes(registry)
        finally:
            store.close()
    # a new VM: none; a look-up: none (it returns the VM found); an update: that VM; a
    # deregistration: that VM; a profile of a type without VMs: none
    assert reads[1_000] == [set(), set(), {vsi(7)}, set(), {vsi(9)}, set()]
    assert reads[10_000] == reads[1_000]


def test_a_profile_change_reads_the_vms_of_its_type_only(tmp_path, monkeypatch):
    store, registry = held_registry(tmp_path, monkeypatch, 50)
    try:
        registry.register_group(
            {
                "profiles": [profile(type_id=10, vlans=[111])],
                "vms": [{"vsi_id": NEW_VSI, "macs": [mac(0xFFFFFF)]}],
            },
            None,
        )
        CountedVm.read = set()
        registry.put_profile(10, 1, profile(type_id=10, vlans=[112]), None)
        assert CountedVm.read == set()  # NEW_VSI is a plain VmRecord, written by this registry
        with pytest.raises(registry_module.Conflict, match="deregister it first"):
            registry.delete_profile(9, 1, None)
        assert CountedVm.read == {vsi(0)}  # the first VM of type 9/1, named in the error
    finally:
        store.close()


def test_readers_keep_their_snapshot_while_changes_go_on(store):
    """The REST views read the state without the registry's lock: a snapshot taken before a
    change is never changed under them (a dict changed in place would break their loop)."""
    registry = registry_on(store)
    registry.register_group(
        {"profiles": [profile()], "vms": [{"vsi_id": vsi(n), "macs": [mac(n)]} for n in range(20)]},
        None,
    )
    snapshot = registry.state.vms
    seen = []
    for n, vsi_id in enumerate(snapshot):
        seen.append(vsi_id)
        registry.put_vm(vsi(100 + n), {"type_id": 9, "type_version": 1}, None)
        registry.delete_vm(vsi(n), None)
    assert sorted(seen) == [vsi(n) for n in range(20)] and len(snapshot) == 20
    assert len(registry.state.vms) == 20 and registry.vm(vsi(0)) is None


def test_vms_may_swap_macs_in_one_group_and_the_index_follows(store):
    registry = registry_on(store)
    registry.register_group(
        {"profiles": [profile()], "vms": [{"vsi_id": vsi(n), "macs": [mac(n)]} for n in (1, 2)]},
        None,
    )
    registry.register_group(
        {
            "vms": [{"vsi_id": vsi(1), "macs": [mac(2)]}, {"vsi_id": vsi(2), "macs": [mac(1)]}],
            "profiles": [profile()],
        },
        None,
    )
    assert registry.vm_by_mac(mac(1)).vsi_id == vsi(2)
    assert registry.vm_by_mac(mac(2)).vsi_id == vsi(1)
    registry.put_vm(vsi(1), {"type_id": 9, "type_version": 1, "macs": [mac(3)]}, None)
    assert registry.vm_by_mac(mac(2)) is None and registry.vm_by_mac(mac(3)).vsi_id == vsi(1)
    assert registry.state.vms.of_type(registry.vm(vsi(1)).type_key) == {vsi(1), vsi(2)}


def test_a_refused_change_leaves_the_indexes_as_they_were(store):
    registry = registry_on(store)
    registry.register_group(
        {"profiles": [profile()], "vms": [{"vsi_id": vsi(n), "macs": [mac(n)]} for n in (1, 2)]},
        None,
    )
    before = registry.state
    with pytest.raises(registry_module.Conflict, match="registered for VM"):
        registry.register_group(
            {
                "profiles": [profile()],
                "vms": [
                    {"vsi_id": vsi(3), "macs": [mac(3)]},
                    {"vsi_id": vsi(1), "macs": [mac(2)]},  # VM 2's
                ],
            },
            None,
        )
    assert registry.state is before and registry.vm(vsi(3)) is None
    assert registry.vm_by_mac(mac(3)) is None and registry.vm_by_mac(mac(2)).vsi_id == vsi(2)
    assert registry.vm_by_mac(mac(1)).vsi_id == vsi(1)
