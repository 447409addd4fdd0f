"""Per-VM and per-port traffic counters from one switch's flow stats and meter stats replies.

Pure: replies in, counters kept. The controller asks each ready switch, every stats interval,
for the flows of kind VSI (one flow stats request, filtered by cookie) and for its meters (one
meter stats request), never per VM; a reply costs that switch's flows. Which flow counts what
(docs/pipeline.md, Statistics), for a binding on its own edge switch:

| counter | flows (cookie VSI/handle) |
|---|---|
| packets_in, bytes_in | CLASSIFY admission (VM_ADMIT, VM_ADMIT_IP): what the VM sent |
| packets_out, bytes_out | EGRESS_ACL permits: what was delivered to the VM |
| acl_drops | INGRESS_ACL and EGRESS_ACL denies (no instruction: drop) |
| meter_drops | the band of its meter (vm_meter_id): what exceeded its rate |

A binding's unicast entries (on its edge and above) count nothing of their own: what they carry
is counted at admission and delivery. Counters are the switch's, so they start again from zero
when a flow is replaced (a migration's destination) or the switch restarts.

Kept: the last reply's counters per switch, only for the bindings held at that switch (a flow
of a binding no longer held is counted as unknown and dropped), replaced at each reply: a gone
binding's counters go at the next poll, a gone switch's at once (`forget`). An entry that is
not a flow or meter stats entry is counted as malformed and dropped.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from app.fabric.ports import PortRef
from app.flows.flow_stats_wire import FlowCounts
from app.flows.tables import (
    COOKIE_MASK_KIND,
    VM_METER_BASE,
    CookieKind,
    Priority,
    Table,
    cookie,
)

_OWNER = (1 << 48) - 1
_VSI_KIND = cookie(CookieKind.VSI)  # a VSI cookie's app and kind bytes, owner 0
# Plain ints: compared once per flow of a reply.
_ADMISSION = frozenset({int(Priority.VM_ADMIT), int(Priority.VM_ADMIT_IP)})
_CLASSIFY, _EGRESS_ACL = int(Table.CLASSIFY), int(Table.EGRESS_ACL)
_COUNTING = frozenset({_CLASSIFY, int(Table.INGRESS_ACL), _EGRESS_ACL})

# The port a binding (by handle) is held at; None when none is held.
PortOf = Callable[[int], PortRef | None]


COUNTERS = ("packets_in", "bytes_in", "packets_out", "bytes_out", "acl_drops", "meter_drops")


@dataclass(slots=True)
class Counters:
    packets_in: int = 0
    bytes_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    acl_drops: int = 0
    meter_drops: int = 0

    # By hand, not dataclasses.asdict: a poll sums every VM of the switch into its port.
    def add(self, other: "Counters") -> None:
        self.packets_in += other.packets_in
        self.bytes_in += other.bytes_in
        self.packets_out += other.packets_out
        self.bytes_out += other.bytes_out
        self.acl_drops += other.acl_drops
        self.meter_drops += other.meter_drops

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}


class _Switch:
    """One switch's last replies: flow counters and meter drops by handle, the port of each
    handle, the per-port totals, when the last reply came."""

    __slots__ = ("flows", "meters", "ports", "totals", "polled_at")

    def __init__(self) -> None:
        self.flows: dict[int, Counters] = {}
        self.meters: dict[int, int] = {}
        self.ports: dict[int, int] = {}  # handle -> port number
        self.totals: dict[int, Counters] = {}
        self.polled_at: float | None = None

    def vm(self, handle: int) -> Counters | None:
        if handle not in self.flows and handle not in self.meters:
            return None
        counters = Counters()
        flows = self.flows.get(handle)
        if flows is not None:
            counters.add(flows)
        counters.meter_drops = self.meters.get(handle, 0)
        return counters

    def sum_ports(self) -> None:
        totals: dict[int, Counters] = {}
        for handle, port_no in self.ports.items():
            counters = self.vm(handle)
            if counters is not None:
                totals.setdefault(port_no, Counters()).add(counters)
        self.totals = totals


class VmStats:
    def __init__(self) -> None:
        self._switches: dict[int, _Switch] = {}
        # Entries dropped: not flow or meter stats; of no binding held (a cookie of another
        # kind, which the filtered request excludes, or of a binding that has gone).
        self.malformed = 0
        self.unknown = 0

    def flow_stats(
        self, dpid: int, stats: Iterable[FlowCounts | None], port_of: PortOf, now: float
    ) -> None:
        """A flow stats reply of VSI flows, as app/flows/flow_stats_wire.py `counts` reads it:
        per flow (table, priority, cookie, packets, bytes, has instructions), None for an
        entry that could not be read."""
        switch = self._switches.setdefault(dpid, _Switch())
        flows: dict[int, Counters] = {}
        ports = {h: p for h, p in switch.ports.items() if h in switch.meters}
        # Per entry, inline: a poll reads thousands (bench.stats_cost); a function call or an
        # enum per entry doubled the counting's time.
        for item in stats:
            try:
                table, priority, value, packets, octets, instructions = item  # type: ignore[misc]
                if table not in _COUNTING:
                    continue  # unicast entries: most of a switch above the edges, cheap out
                if type(packets) is not int or type(octets) is not int or packets < 0 or octets < 0:
                    raise ValueError(f"not counters: {packets!r}, {octets!r}")
                handle = value & _OWNER if value & COOKIE_MASK_KIND == _VSI_KIND else None
            except (TypeError, ValueError):
                self.malformed += 1
                continue
            if handle not in ports and _held(handle, port_of, dpid, ports) is None:
                self.unknown += handle is None or port_of(handle) is None
                continue
            assert handle is not None  # _held: only a held binding's handle has a port
            counters = flows.get(handle)
            if counters is None:
                counters = flows[handle] = Counters()
            if table == _CLASSIFY:
                if priority in _ADMISSION:
                    counters.packets_in += packets
                    counters.bytes_in += octets
            elif not instructions:  # an ACL's deny
                counters.acl_drops += packets
            elif table == _EGRESS_ACL:
                counters.packets_out += packets
                counters.bytes_out += octets
        switch.flows, switch.ports, switch.polled_at = flows, ports, now
        switch.sum_ports()

    def meter_stats(self, dpid: int, stats: Iterable, port_of: PortOf, now: float) -> None:
        """A meter stats reply (OFPMeterStats: meter_id, band_stats with packet_band_count)."""
        switch = self._switches.setdefault(dpid, _Switch())
        meters: dict[int, int] = {}
        ports = {h: p for h, p in switch.ports.items() if h in switch.flows}
        for item in stats:
            try:
                meter_id = int(item.meter_id)
                drops = sum(_count(band.packet_band_count) for band in item.band_stats)
            except (AttributeError, TypeError, ValueError):
                self.malformed += 1
                continue
            if meter_id <= VM_METER_BASE:
                continue  # the pipeline's and the ports' punt meters
            handle = meter_id - VM_METER_BASE
            if _held(handle, port_of, dpid, ports) is None:
                self.unknown += port_of(handle) is None
                continue
            meters[handle] = drops
        switch.meters, switch.ports, switch.polled_at = meters, ports, now
        switch.sum_ports()

    def forget(self, dpid: int) -> None:
        self._switches.pop(dpid, None)

    def switches(self) -> set[int]:
        return set(self._switches)

    def vm(self, dpid: int, handle: int) -> tuple[Counters, float] | None:
        """A binding's counters at its edge switch and when they were polled; None before the
        switch's first reply that names it."""
        switch = self._switches.get(dpid)
        counters = switch.vm(handle) if switch is not None else None
        if switch is None or counters is None or switch.polled_at is None:
            return None
        return counters, switch.polled_at

    def port(self, dpid: int, port_no: int) -> Counters | None:
        """The sums of one port's VMs' counters; None before a poll counted any."""
        switch = self._switches.get(dpid)
        return switch.totals.get(port_no) if switch is not None else None

    def ports(self) -> list[tuple[int, int, Counters]]:
        """(dpid, port number, the sum of its VMs' counters) for every port with VMs counted."""
        return [
            (dpid, port_no, counters)
            for dpid, switch in self._switches.items()
            for port_no, counters in sorted(switch.totals.items())
        ]


def _held(handle: int | None, port_of: PortOf, dpid: int, ports: dict[int, int]) -> int | None:
    """The port number of `handle`'s binding if it is held at `dpid` (recorded in `ports`);
    None for another switch's binding (its unicast entries elsewhere) or no binding."""
    if handle is None:
        return None
    if handle in ports:
        return ports[handle]
    port = port_of(handle)
    if port is None or port.dpid != dpid:
        return None
    ports[handle] = port.port_no
    return port.port_no


def _count(value) -> int:
    """A counter as an int; a negative or non-integer one is malformed (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"not a counter: {value!r}")
    return value
