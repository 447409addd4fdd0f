"""The registered VMs, with indexes by MAC, VSI type, group, host, virtual network and IP, as one
immutable value.

A change builds the next table from the current one in the time of what it writes and removes
(O(log n) per VM and per MAC), never of the VMs held (issue 9, docs/scale.md). The maps are
pyrsistent's persistent maps: a new table shares all but a few nodes with the old one, so the
registry swaps tables whole and readers (REST views, the VDP authorizer) keep reading the
snapshot they took, without a lock and without a copy. A mutable dict with indexes would need
either the lock on every VDP look-up (the controller reads the registry while holding its own
locks) or an O(n) copy per change, which is what this replaces.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping

from pyrsistent import PMap, PSet, pmap, pset

from app.policy.profile import VsiTypeKey
from app.registry.vms import VmRecord

EMPTY: PMap = pmap()


# The secondary indexes: name -> the keys a VM is listed under (a VM may have several IPs).
INDEXES: dict[str, Callable[[VmRecord], Iterable]] = {
    "type": lambda vm: (vm.type_key,),
    "group": lambda vm: () if vm.group is None else (vm.group,),
    "host": lambda vm: () if vm.host is None else (vm.host,),
    "network": lambda vm: () if vm.network is None else (vm.network,),
    "ip": lambda vm: vm.ips,
}


class VmTable(Mapping[str, VmRecord]):
    """VSI ID -> VmRecord, plus ``by_mac`` (each registered MAC's VM: the registry lets no MAC
    be registered twice) and ``listed(index, key)``: the VSI IDs registered with a type, in a
    group, on a host, in a virtual network, with an IP (INDEXES). Iteration order is not
    sorted: sort where an order is shown."""

    __slots__ = ("_by_id", "_by_mac", "_indexes")

    def __init__(
        self,
        by_id: PMap[str, VmRecord] = EMPTY,
        by_mac: PMap[str, VmRecord] = EMPTY,
        indexes: PMap[str, PMap[object, PSet[str]]] = EMPTY,
    ) -> None:
        self._by_id = by_id
        self._by_mac = by_mac
        self._indexes = indexes

    @classmethod
    def of(cls, vms: Iterable[VmRecord]) -> "VmTable":
        """The table of ``vms`` (at start: O(n) once)."""
        return cls().changed(vms, ())

    def __getitem__(self, vsi_id: str) -> VmRecord:
        return self._by_id[vsi_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, vsi_id: object) -> bool:
        return vsi_id in self._by_id

    def by_mac(self, mac: str) -> VmRecord | None:
        return self._by_mac.get(mac)

    def listed(self, index: str, key) -> PSet[str]:
        """The VSI IDs listed under ``key`` in ``index`` (INDEXES)."""
        return self._indexes.get(index, EMPTY).get(key, pset())

    def keys_of(self, index: str) -> Iterable:
        """Every key of ``index`` (the groups, the hosts, ...)."""
        return self._indexes.get(index, EMPTY).keys()

    def of_type(self, key: VsiTypeKey) -> PSet[str]:
        return self.listed("type", key)

    def changed(self, written: Iterable[VmRecord], removed: Iterable[str]) -> "VmTable":
        """The table with ``written`` VMs put in (replacing the registration of the same VSI ID)
        and the ``removed`` VSI IDs taken out; this table is left as it was. A MAC two VMs claim
        goes to the last: check_vms refuses such a change before its table is swapped in."""
        by_id, by_mac = self._by_id.evolver(), self._by_mac.evolver()
        # VSI IDs per index key, applied per key at the end: one set evolved per key, not per VM
        left: dict[tuple[str, object], set[str]] = defaultdict(set)
        joined: dict[tuple[str, object], set[str]] = defaultdict(set)
        for vsi_id in removed:
            _drop(by_mac, left, by_id[vsi_id])
            del by_id[vsi_id]
        for vm in written:
            if vm.vsi_id in by_id:
                _drop(by_mac, left, by_id[vm.vsi_id])
            by_id[vm.vsi_id] = vm
            for mac in vm.macs:
                by_mac[mac] = vm
            for index, keys_of in INDEXES.items():
                for key in keys_of(vm):
                    joined[(index, key)].add(vm.vsi_id)
        indexes = self._indexes.evolver()
        for index, key in left.keys() | joined.keys():
            listed = indexes[index] if index in indexes else EMPTY
            ids = listed.get(key, pset()).evolver()
            for vsi_id in left[(index, key)] - joined[(index, key)]:
                ids.remove(vsi_id)
            for vsi_id in joined[(index, key)]:
                ids.add(vsi_id)
            if len(ids):
                indexes[index] = listed.set(key, ids.persistent())
            elif key in listed:
                indexes[index] = listed.remove(key)
        return VmTable(by_id.persistent(), by_mac.persistent(), indexes.persistent())


def _drop(by_mac, left: dict[tuple[str, object], set[str]], vm: VmRecord) -> None:
    """Takes ``vm`` out of the MAC index (an evolver being built) and notes it in ``left``; a
    MAC another VM of the change took already stays that VM's."""
    for mac in vm.macs:
        if mac in by_mac and by_mac[mac] is vm:
            del by_mac[mac]
    for index, keys_of in INDEXES.items():
        for key in keys_of(vm):
            left[(index, key)].add(vm.vsi_id)
