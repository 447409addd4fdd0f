"""Every binding and attachment of the fabric, indexed for the questions admission asks.

Pure. The VDP bridge adds and removes bindings (PREPARED/FORWARDING: they hold MACs) and
attachments (every state at a port, a plain Pre-Associate too: they count against limits) as
they change; the authorizer asks who holds a MAC, how many VSIs (of a type, or of any) a port or
switch holds, and whether a VSI is bound at a port. Each answer costs the same with ten VMs held
or a hundred thousand.
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
        # Entries without a MAC own their VLAN: by VID; and every binding by (port, VID).
        self._by_vlan: dict[int, list[VmBinding]] = defaultdict(list)
        self._by_port_vid: dict[tuple[PortRef, int], list[VmBinding]] = defaultdict(list)
        self._ports_of: dict[VsiId, dict[PortRef, int]] = defaultdict(dict)
        # Attachments per (type, port), (type, switch), port and switch: VSI ID -> how many of
        # its attachments are there (a migrating VSI may have two on one switch; it counts once).
        self._attached: dict[tuple, dict[VsiId, int]] = defaultdict(dict)
        self._at: dict[int, dict[PortRef, dict[int, VmBinding]]] = defaultdict(dict)

    @classmethod
    def of(cls, bindings: Iterable[VmBinding]) -> "BindingIndex":
        """Bindings that are their VSIs' only attachments (as tests build them)."""
        index = cls()
        for binding in bindings:
            index.add(binding)
            index.attach(binding.vsi_id, binding.port, binding.profile.key)
        return index

    def add(self, binding: VmBinding) -> None:
        if binding.handle in self._by_handle:
            raise ValueError(f"handle {binding.handle} is indexed already")
        self._by_handle[binding.handle] = binding
        self._at[binding.port.dpid].setdefault(binding.port, {})[binding.handle] = binding
        for table, keys in self._keys(binding):
            for key in keys:
                table[key].append(binding)
        _count(self._ports_of, binding.vsi_id, binding.port, 1)

    def remove(self, binding: VmBinding) -> None:
        del self._by_handle[binding.handle]
        ports = self._at[binding.port.dpid]
        del ports[binding.port][binding.handle]
        if not ports[binding.port]:
            del ports[binding.port]
            if not ports:
                del self._at[binding.port.dpid]
        for table, keys in self._keys(binding):
            for key in keys:
                holders = table[key]
                holders.remove(binding)
                if not holders:
                    del table[key]
        _count(self._ports_of, binding.vsi_id, binding.port, -1)

    def attach(self, vsi_id: VsiId, port: PortRef, key: VsiTypeKey) -> None:
        """``vsi_id`` is attached at ``port`` with type ``key`` (in any state)."""
        for where in _places(port, key):
            _count(self._attached, where, vsi_id, 1)

    def detach(self, vsi_id: VsiId, port: PortRef, key: VsiTypeKey) -> None:
        for where in _places(port, key):
            _count(self._attached, where, vsi_id, -1)

    # questions -------------------------------------------------------------------------------
    def holders_of(self, mac: str) -> list[VmBinding]:
        """The bindings (prepared or forwarding) that list ``mac``."""
        return list(self._by_mac.get(mac, ()))

    def owners_of(self, vid: int) -> list[VmBinding]:
        """The bindings that own VLAN ``vid`` whole (an entry without a MAC), anywhere."""
        return list(self._by_vlan.get(vid, ()))

    def using(self, port: PortRef, vid: int) -> list[VmBinding]:
        """The bindings at ``port`` with an entry in VLAN ``vid``."""
        return list(self._by_port_vid.get((port, vid), ()))

    def count_on_port(self, key: VsiTypeKey | None, port: PortRef, besides: VsiId) -> int:
        """VSIs of type ``key`` (None: of any type) attached at ``port`` (in any of its
        S-channels), not counting ``besides``."""
        return self._counted(("port", key, port.physical), besides)

    def count_on_switch(self, key: VsiTypeKey | None, dpid: int, besides: VsiId) -> int:
        return self._counted(("switch", key, dpid), besides)

    def _counted(self, where: tuple, besides: VsiId) -> int:
        counts = self._attached.get(where, {})
        return len(counts) - (besides in counts)

    def bound_at(self, vsi_id: VsiId, port: PortRef) -> bool:
        """Whether ``vsi_id`` has a binding (prepared or forwarding) at ``port``."""
        return port in self._ports_of.get(vsi_id, {})

    def at(self, dpid: int, port_no: int | None = None) -> list[VmBinding]:
        """The bindings on switch ``dpid`` (at its port ``port_no`` only, if given, in all its
        S-channels: costs the switch's ports with bindings)."""
        ports = self._at.get(dpid, {})
        return [
            b
            for port, bindings in ports.items()
            if port_no is None or port.port_no == port_no
            for b in bindings.values()
        ]

    def __iter__(self) -> Iterator[VmBinding]:
        return iter(self._by_handle.values())

    def _keys(self, binding: VmBinding) -> list[tuple[dict, set]]:
        return [
            (self._by_mac, {e.mac for e in binding.entries if e.mac is not None}),
            (self._by_vlan, {e.vid for e in binding.entries if e.mac is None}),
            (self._by_port_vid, {(binding.port, e.vid) for e in binding.entries}),
        ]


def _places(port: PortRef, key: VsiTypeKey) -> tuple[tuple, ...]:
    """The counters an attachment at ``port`` with type ``key`` takes part in: a port's limits
    count its S-channels' VSIs together (one server, one switch port's flows)."""
    port = port.physical
    return (
        ("port", key, port),
        ("switch", key, port.dpid),
        ("port", None, port),
        ("switch", None, port.dpid),
    )


def _count(table: dict, key, member, sign: int) -> None:
    """Reference count of ``member`` under ``key``; empty entries go."""
    counts = table[key]
    counts[member] = counts.get(member, 0) + sign
    if not counts[member]:
        del counts[member]
    if not counts:
        del table[key]
