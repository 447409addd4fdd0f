"""The VM flows each switch is meant to hold, changed one binding at a time.

Pure. The programmer keeps what the flows are computed from (the bindings, the VLAN members,
the tree, the reflective-relay ports), not the flows themselves: a change plans only the pieces
it touches (app/flows/vm_flows.py), once as they were and once as they are, and returns the
difference per switch. The work of one Associate is its own flows, its MAC's entries on the
switches above its edge, and its VLAN's flood flow where that changes; never the number of VMs
held. `flows(dpid)` plans one whole switch, for the reconciliation at connect time (SwitchSync);
`plan_vm_flows` plans the whole fabric at once and must always agree (tests/unit/
test_programmer.py checks it on random histories).

Messages per switch, in an order that never opens a gap: new and changed meters, then new and
changed flows (an ADD of an existing flow replaces it in place, so a MAC moving between ports
never misses its entry), then the flows no longer wanted (deleted by cookie when a binding
leaves the switch altogether, one message instead of one per flow), then stale meters.
"""

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Set
from typing import TypeVar

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.fabric.links import Routes
from app.fabric.ports import PortRef
from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.reconcile import reconcile_meters
from app.flows.tables import CookieKind, Table, cookie
from app.flows.vm_flows import (
    LocalPort,
    binding_flows,
    binding_meters,
    edge_flows,
    local_port,
    switch_flows,
    transit_flows,
    vlan_flood_flows,
)
from app.vdp.binding import VmBinding
from app.vdp.outcome import BindingChanges

# What one piece of the plan puts on the switches: dpid -> (flows, meters)
_Planned = dict[int, tuple[list[FlowEntry], dict[int, MeterSpec]]]
_K = TypeVar("_K")


class FlowMods(list):
    """One switch's messages of a change, in planned order. `in_place`: the change replaces or
    deletes flows the switch holds, which traffic may be using, so it must be applied as one
    step (a bundle, app/fabric/bundles.py); a change that only adds flows no switch holds yet (a
    VM's first association) carries no traffic before its response and needs no bundle."""

    in_place = False


class FlowProgrammer:
    def __init__(self) -> None:
        self._bindings: dict[int, VmBinding] = {}
        self._on_edge: dict[int, set[int]] = defaultdict(set)  # dpid -> handles
        self._on_port: dict[PortRef, set[int]] = defaultdict(set)  # port -> handles
        # VID -> dpid -> local port -> MAC -> forwarding entries (vm_flows.Members)
        self._members: dict[int, dict[int, dict[LocalPort, dict[str | None, int]]]] = {}
        self._routes = Routes()
        self._rr: frozenset[PortRef] = frozenset()

    # changes --------------------------------------------------------------------------------
    def update(self, changes: BindingChanges) -> dict[int, FlowMods]:
        """The bindings in `changes` (handle -> (before, after)) changed: the messages, per
        switch, that take the switches from the flows of `before` to those of `after`."""
        if not changes:
            return {}
        vlans = self._vlans_touched(changes)
        old = self._plan(changes, vlans, ())
        for before, after in changes.values():
            if before is not None:
                self._forget(before)
            if after is not None:
                self._learn(after)
        new = self._plan(changes, vlans, ())
        gone = {h: b.port.dpid for h, (b, a) in changes.items() if b is not None and a is None}
        return _difference(old, new, gone)

    def adopt(self, bindings: Iterable[VmBinding]) -> None:
        """Takes `bindings` as what the switches hold already (a restart: each switch is
        reconciled against them when it connects), with no plan and no message."""
        for binding in bindings:
            self._learn(binding)

    def set_routes(self, routes: Routes) -> dict[int, FlowMods]:
        """The tree changed (a link came or went): re-plans what hangs on the switches whose
        place on the tree changed; everything else stays as it is."""
        old_routes = self._routes
        moved = {
            d
            for d in old_routes.switches() | routes.switches()
            if old_routes.up.get(d) != routes.up.get(d)
            or old_routes.ancestors(d) != routes.ancestors(d)
        }
        guarded = {
            d
            for d in old_routes.switches() | routes.switches()
            if old_routes.guards.get(d) != routes.guards.get(d)
        }
        handles = {h for d in moved for h in self._on_edge.get(d, ())}
        vlans = {vid: None for vid, switches in self._members.items() if moved & switches.keys()}
        units = {h: (b, b) for h in handles for b in [self._bindings[h]]}
        old = self._plan(units, vlans, moved | guarded)
        self._routes = routes
        new = self._plan(units, vlans, moved | guarded)
        return _difference(old, new, {})

    def set_rr_ports(self, rr_ports: Set[PortRef]) -> dict[int, FlowMods]:
        """The ports granted reflective relay: hairpin flows of the VMs there follow."""
        changed = set(rr_ports) ^ self._rr
        if not changed:
            return {}
        handles = {h for port in changed for h in self._on_port.get(port, ())}
        vlans: dict[int, set[int]] = {}
        for port in changed:
            for vid, switches in self._members.items():
                if local_port(port) in switches.get(port.dpid, {}):
                    vlans.setdefault(vid, set()).add(port.dpid)
        units = {h: (b, b) for h in handles for b in [self._bindings[h]]}
        old = self._plan(units, vlans, ())
        self._rr = frozenset(rr_ports)
        new = self._plan(units, vlans, ())
        return _difference(old, new, {})

    # the intent of one switch ---------------------------------------------------------------
    def flows(
        self, dpid: int, table: int | None = None, handles: Callable[[int], bool] | None = None
    ) -> list[FlowEntry]:
        """Every VM flow switch `dpid` must hold (for reconciliation; costs that switch's flows,
        plus a look at each edge's routes); with `table`, at least those of that table, and
        with `handles`, of the bindings' flows only those of the handles it keeps (the intent
        audit reads a table, and a large one in slices of its owners: app/fabric/audit.py)."""
        keep = handles or (lambda handle: True)
        forward = table in (None, Table.FORWARD)  # a switch above holds FORWARD entries only
        flows: list[FlowEntry] = []
        for edge, held in self._on_edge.items():
            if edge == dpid:
                for binding in self._sorted(h for h in held if keep(h)):
                    flows += edge_flows(
                        binding, binding.port in self._rr, self._routes.uplink(dpid)
                    )
                continue
            down = next(
                (port for above, port in self._routes.ancestors(edge) if above == dpid), None
            )
            if down is not None and forward:
                flows += [
                    f
                    for b in self._sorted(h for h in held if keep(h))
                    if b.forwarding
                    for f in transit_flows(b, down, self._routes.uplink(dpid))
                ]
        if forward:
            for vid, members in self._members.items():
                flows += vlan_flood_flows(vid, members, self._routes, self._rr, (dpid,)).get(
                    dpid, []
                )
        return flows + switch_flows(dpid, self._routes)

    def meters(self, dpid: int) -> dict[int, MeterSpec]:
        """The meters of the VMs on edge `dpid` (no flow planning: they are the bindings' own)."""
        meters: dict[int, MeterSpec] = {}
        for binding in self._sorted(self._on_edge.get(dpid, ())):
            meters.update(binding_meters(binding))
        return meters

    @property
    def routes(self) -> Routes:
        return self._routes

    def vlan_members(self, vid: int) -> Mapping[int, Mapping[LocalPort, Mapping[str | None, int]]]:
        """Switch -> (port, S-VID) -> MAC (None: an entry without one) -> forwarding entries, of
        VLAN `vid` (read only)."""
        return self._members.get(vid, {})

    def edges(self) -> set[int]:
        """The switches with bindings at their ports (those whose VM statistics count)."""
        return set(self._on_edge)

    def port_of(self, handle: int) -> PortRef | None:
        """Where the binding with `handle` is held (None: no binding has it)."""
        binding = self._bindings.get(handle)
        return binding.port if binding is not None else None

    def _sorted(self, handles) -> list:
        return [self._bindings[h] for h in sorted(handles)]

    # bookkeeping ----------------------------------------------------------------------------
    def _learn(self, binding: VmBinding) -> None:
        self._bindings[binding.handle] = binding
        self._on_edge[binding.port.dpid].add(binding.handle)
        self._on_port[binding.port].add(binding.handle)
        if binding.forwarding:
            for entry in binding.entries:
                macs = (
                    self._members.setdefault(entry.vid, {})
                    .setdefault(binding.port.dpid, {})
                    .setdefault(local_port(binding.port), {})
                )
                macs[entry.mac] = macs.get(entry.mac, 0) + 1

    def _forget(self, binding: VmBinding) -> None:
        del self._bindings[binding.handle]
        _discard(self._on_edge, binding.port.dpid, binding.handle)
        _discard(self._on_port, binding.port, binding.handle)
        if binding.forwarding:
            for entry in binding.entries:
                switches = self._members[entry.vid]
                ports = switches[binding.port.dpid]
                macs = ports[local_port(binding.port)]
                macs[entry.mac] -= 1
                if not macs[entry.mac]:
                    del macs[entry.mac]
                if not macs:
                    del ports[local_port(binding.port)]
                if not ports:
                    del switches[binding.port.dpid]
                if not switches:
                    del self._members[entry.vid]

    def _vlans_touched(self, changes: BindingChanges) -> dict[int, set[int] | None]:
        """VID -> the switches whose flood flow of it may change (None: all of the VLAN's),
        from the membership before the change. A flood flow names the member ports and, on a
        reflective-relay port, whether two MACs share it: a VM joining a port that is a member
        already changes nothing. A switch joining or leaving the VLAN changes its paths on the
        tree: all of them."""
        delta: dict[tuple[int, int, LocalPort], dict[str | None, int]] = defaultdict(
            lambda: defaultdict(int)
        )
        for binding_before, binding_after in changes.values():
            for binding, sign in ((binding_before, -1), (binding_after, 1)):
                if binding is not None and binding.forwarding:
                    for entry in binding.entries:
                        port = binding.port
                        delta[(entry.vid, port.dpid, local_port(port))][entry.mac] += sign
        vlans: dict[int, set[int] | None] = {}
        switch_delta: dict[tuple[int, int], int] = defaultdict(int)
        for (vid, dpid, local), macs in delta.items():
            held = self._members.get(vid, {}).get(dpid, {}).get(local, {})
            after = {mac for mac in held.keys() | macs.keys() if held.get(mac, 0) + macs[mac] > 0}
            switch_delta[(vid, dpid)] += len(after) - len(held)
            relay = PortRef(dpid, *local) in self._rr
            if bool(after) != bool(held) or (relay and (len(after) > 1) != (len(held) > 1)):
                switches = vlans.setdefault(vid, set())
                if switches is not None:
                    switches.add(dpid)
        for (vid, dpid), change in switch_delta.items():
            ports = self._members.get(vid, {}).get(dpid, {})
            held_macs = sum(len(macs) for macs in ports.values())
            if (held_macs == 0) != (held_macs + change == 0):
                vlans[vid] = None
        return vlans

    def _plan(
        self,
        units: Mapping[int, tuple[VmBinding | None, VmBinding | None]],
        vlans: Mapping[int, set[int] | None],
        switches: Iterable[int],
    ) -> _Planned:
        """The flows and meters, per switch, of the current state of: the bindings of `units`
        (by handle; those not bound now plan nothing), the VLANs' flood flows on the given
        switches (None: all), and the tree-placed flows of `switches`."""
        planned: _Planned = defaultdict(lambda: ([], {}))
        for handle in units:
            binding = self._bindings.get(handle)
            if binding is None:
                continue
            for dpid, flows in binding_flows(
                binding, self._routes, binding.port in self._rr
            ).items():
                planned[dpid][0].extend(flows)
            planned[binding.port.dpid][1].update(binding_meters(binding))
        for vid, where in vlans.items():
            members = self._members.get(vid, {})
            if members or where is None:
                for dpid, flows in vlan_flood_flows(
                    vid, members, self._routes, self._rr, where
                ).items():
                    planned[dpid][0].extend(flows)
        for dpid in switches:
            planned[dpid][0].extend(switch_flows(dpid, self._routes))
        return planned


def _discard(index: dict[_K, set[int]], key: _K, handle: int) -> None:
    index[key].discard(handle)
    if not index[key]:
        del index[key]


def _difference(old: _Planned, new: _Planned, gone: dict[int, int]) -> dict[int, FlowMods]:
    """Per switch, the messages from `old` to `new`; `gone`: handle -> edge of each binding
    that no longer exists (its flows everywhere are deleted by cookie)."""
    gone_cookies = {cookie(CookieKind.VSI, handle) for handle in gone}
    changes = {}
    for dpid in sorted(old.keys() | new.keys()):
        old_flows, old_meters = old.get(dpid, ([], {}))
        new_flows, new_meters = new.get(dpid, ([], {}))
        want = {entry.key: entry for entry in new_flows}
        have = {entry.key: entry for entry in old_flows}
        changed = [
            key
            for key, entry in want.items()
            if key not in have or have[key].cookie != entry.cookie or have[key].body != entry.body
        ]
        adds = [ofmsg.add_flow(want[key]) for key in changed]
        swept = {
            entry.cookie
            for key, entry in have.items()
            if key not in want and entry.cookie in gone_cookies
        }
        deletes = [ofmsg.delete_by_cookie(c) for c in sorted(swept)]
        deletes += [
            ofmsg.delete_flow_strict(entry)
            for key, entry in have.items()
            if key not in want and entry.cookie not in swept
        ]
        meter_msgs = reconcile_meters(new_meters, old_meters)
        sets = [m for m in meter_msgs if m.command != ofp.OFPMC_DELETE]
        stale = [m for m in meter_msgs if m.command == ofp.OFPMC_DELETE]
        msgs = FlowMods([*sets, *adds, *deletes, *stale])
        if msgs:
            msgs.in_place = bool(deletes) or any(key in have for key in changed)
            changes[dpid] = msgs
    return changes
