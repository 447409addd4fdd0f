"""Every binding of the fabric, indexed for the questions admission asks.

Pure. The VDP bridge adds and removes bindings as they change; the authorizer asks who holds a
MAC, how many VSIs of a type a port or switch holds, and whether a VSI is bound at a port. Each
answer costs the same with ten VMs held or a hundred thousand.
"""

from collections import defaultdict
from collections.abc import Iterable, Iterator

from app.codec.vdp import VsiId
from app.fabric.ports import PortRef
from app.policy.profile import VsiTypeKey
from app.vdp.binding import VmBinding


class BindingIndex:
    def __init__(self) -> None:
        self._by_handle: dict[int, VmBinding] = {}
        self._by_mac: dict[str, list[VmBinding]] = defaultdict(list)
        # Per (type, port) and (type, switch): VSI ID -> how many of its bindings are there
        # (a migrating VSI may have two on one switch; it counts once).
        self._on_port: dict[tuple[VsiTypeKey, PortRef], dict[VsiId, int]] = defaultdict(dict)
        self._on_switch: dict[tuple[VsiTypeKey, int], dict[VsiId, int]] = defaultdict(dict)
        self._ports_of: dict[VsiId, dict[PortRef, int]] = defaultdict(dict)
        self._at: dict[int, dict[PortRef, dict[int, VmBinding]]] = defaultdict(dict)

    @classmethod
    def of(cls, bindings: Iterable[VmBinding]) -> "BindingIndex":
        index = cls()
        for binding in bindings:
            index.add(binding)
        return index

    def add(self, binding: VmBinding) -> None:
        if binding.handle in self._by_handle:
            raise ValueError(f"handle {binding.handle} is indexed already")
        self._by_handle[binding.handle] = binding
        self._at[binding.port.dpid].setdefault(binding.port, {})[binding.handle] = binding
        for mac in {e.mac for e in binding.entries}:
            self._by_mac[mac].append(binding)
        for table, key, member in self._counted(binding):
            counts = table[key]
            counts[member] = counts.get(member, 0) + 1

    def remove(self, binding: VmBinding) -> None:
        del self._by_handle[binding.handle]
        ports = self._at[binding.port.dpid]
        del ports[binding.port][binding.handle]
        if not ports[binding.port]:
            del ports[binding.port]
            if not ports:
                del self._at[binding.port.dpid]
        for mac in {e.mac for e in binding.entries}:
            holders = self._by_mac[mac]
            holders.remove(binding)
            if not holders:
                del self._by_mac[mac]
        for table, key, member in self._counted(binding):
            counts = table[key]
            counts[member] -= 1
            if not counts[member]:
                del counts[member]
            if not counts:
                del table[key]

    def _counted(self, binding: VmBinding) -> tuple:
        """(table, key, member) of each reference count the binding takes part in."""
        key, vsi_id = binding.profile.key, binding.vsi_id
        return (
            (self._on_port, (key, binding.port), vsi_id),
            (self._on_switch, (key, binding.port.dpid), vsi_id),
            (self._ports_of, vsi_id, binding.port),
        )

    # questions -------------------------------------------------------------------------------
    def holders_of(self, mac: str) -> list[VmBinding]:
        """The bindings (prepared or forwarding) that list ``mac``."""
        return list(self._by_mac.get(mac, ()))

    def count_on_port(self, key: VsiTypeKey, port: PortRef, besides: VsiId) -> int:
        """VSIs of type ``key`` bound at ``port``, not counting ``besides``."""
        counts = self._on_port.get((key, port), {})
        return len(counts) - (besides in counts)

    def count_on_switch(self, key: VsiTypeKey, dpid: int, besides: VsiId) -> int:
        counts = self._on_switch.get((key, dpid), {})
        return len(counts) - (besides in counts)

    def bound_at(self, vsi_id: VsiId, port: PortRef) -> bool:
        """Whether ``vsi_id`` has a binding (prepared or forwarding) at ``port``."""
        return port in self._ports_of.get(vsi_id, {})

    def at(self, dpid: int, port_no: int | None = None) -> list[VmBinding]:
        """The bindings on switch ``dpid`` (at its port ``port_no`` only, if given)."""
        ports = self._at.get(dpid, {})
        if port_no is not None:
            return list(ports.get(PortRef(dpid, port_no), {}).values())
        return [b for bindings in ports.values() for b in bindings.values()]

    def __iter__(self) -> Iterator[VmBinding]:
        return iter(self._by_handle.values())
