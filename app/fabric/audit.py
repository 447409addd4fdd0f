"""The continuous intent audit: every ready switch's flows and meters read back, a piece at a
time, compared with what the controller intends, and the differences repaired.

The canary (app/fabric/switch_sync.py) notices a switch that lost everything; this notices one
flow deleted or altered (an operator's `ovs-ofctl del-flows`, a switch bug, an overflow). Its cost
is bounded by `rate`, multipart requests per second, whatever the fabric holds: one request is
outstanding at a time, and each reads one piece of one switch: its meters, or one table's flows
of ours, in cookie slices of about SLICE_FLOWS flows when the table holds more (an aggregation
switch's FORWARD table holds an entry per VM of the fabric). The switches take their turn in
dpid order, round robin, every piece of one switch in a turn.

A switch nobody changed since its last turn is judged by a digest: each piece's flows as the
switch sent them (their counters left out) against the same piece's when it was last found in
sync. Only a piece whose digest differs, or a piece of a switch that was sent a change, is
compared with the intent, computed for that piece alone (its table, and for an aggregation
switch's FORWARD slices only the VMs of the slice): a FlowEntry built, and one parsed from the
reply, per flow, several times the digest's cost, and never more than a slice's worth under
the lock. A change sent to the switch between a piece's request and its reply (`sent`) leaves
the flows it names (by key, or by cookie for a delete by cookie) out of that piece's
comparison: the reply shows the switch before it, the intent after it. A meter change, or a
delete that names no cookie, leaves the piece unjudged (counted: `raced`; read again at the
switch's next turn). So the audit keeps judging a switch whose other flows change all the time
(an aggregation switch under a stream of Associates). How many slices a table takes follows
how many flows of ours it held when last read; a piece far larger than planned (a switch read
the first time, a table that grew) is not judged but read again in slices at the next turn.

What differs becomes a Repair: the messages reconciliation would send for that piece
(app/flows/reconcile.py), which the owner sends as a barrier-checked batch
(app/fabric_control.py) and reports as the event audit.repaired. Pure: the owner gives the
time, the switches ready and their intent.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric.xids import Xids
from app.flows import flow_stats_wire, ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.programmer import FlowProgrammer
from app.flows.reconcile import flow_differences, reconcile_meters
from app.flows.tables import (
    COOKIE_APP,
    COOKIE_MASK_APP,
    COOKIE_MASK_OWNER,
    Table,
    is_swept_meter,
)
from app.observer import Observer

# A table holding more flows than this is read in cookie slices (a power of two of them), so
# one reply stays about this size: parsing and comparing it holds the controller's lock.
SLICE_FLOWS = 1000
MAX_SLICES = 1 << 16
# A reply not in after this long is given up (the switch's connection, or the canary, tells
# what is wrong with it); the audit goes on with the next piece.
REQUEST_TIMEOUT = 30.0
EXAMPLES = 3  # differing flows or meters named in a repair's event, at most
# What a switch intends for one piece: the flows (at least those of its table and slice) and,
# for the meters, its meters.
Intent = Callable[[int, "Piece"], tuple[list[FlowEntry], Mapping[int, MeterSpec]]]


@dataclass(frozen=True)
class Piece:
    """What one request reads: a switch's meters (`table` None) or one table's flows of ours
    whose cookie is `slice` modulo `slices`."""

    dpid: int
    table: int | None
    slices: int = 1
    slice: int = 0

    def describe(self) -> str:
        if self.table is None:
            return "meters"
        name = Table(self.table).name if self.table in Table._value2member_map_ else self.table
        return f"table {name}" + (f" slice {self.slice}/{self.slices}" if self.slices > 1 else "")

    def holds(self, entry: FlowEntry) -> bool:
        return entry.table_id == self.table and entry.cookie % self.slices == self.slice


@dataclass
class Repair:
    """What one piece of a switch had wrong, and the messages that put it right."""

    piece: Piece
    found: dict[str, int]  # flows_missing, flows_unexpected, flows_changed, meters_...: count
    examples: list[str]
    msgs: list
    in_place: bool  # it replaces or deletes what the switch holds (a bundle, where taken)


class _Crossed:
    """What changes sent to a switch since some moment touched: flow keys and cookies, or
    anything (`keys` None: a meter, whose deletion takes its flows, or a wider delete)."""

    def __init__(self) -> None:
        self.keys: set | None = set()
        self.cookies: set[int] = set()

    def add(self, msg) -> None:
        if isinstance(msg, parser.ONFBundleAddMsg):
            msg = msg.message
        if self.keys is None or isinstance(msg, parser.ONFBundleCtrlMsg):
            return
        if isinstance(msg, parser.OFPFlowMod):
            if msg.command != ofp.OFPFC_DELETE:
                self.keys.add((msg.table_id, msg.priority, tuple(sorted(msg.match.items()))))
                return
            if msg.cookie_mask == COOKIE_MASK_OWNER:
                self.cookies.add(msg.cookie)
                return
        self.keys = None

    def untouched(self, entry: FlowEntry) -> bool:
        return entry.key not in (self.keys or ()) and entry.cookie not in self.cookies

    @property
    def empty(self) -> bool:
        return self.keys == set() and not self.cookies


@dataclass
class _Pending:
    piece: Piece
    xid: int
    sent: float
    crossed: _Crossed = field(default_factory=_Crossed)  # since the request


class IntentAudit:
    def __init__(self, rate: float, xids: Xids, observer: Observer | None = None) -> None:
        """`rate`: multipart requests per second (0: no audit)."""
        self.rate = rate
        self._xids = xids
        self._observer = observer if observer is not None else Observer()
        self._tokens = 1.0
        self._last: float | None = None
        self._turn: list[Piece] = []  # the pieces of the switch whose turn it is, still to read
        self._after: int | None = None  # the switch of the last turn
        self._pass_started: float | None = None
        self._pending: _Pending | None = None
        # Per switch: each piece's flows when last read (how to slice its tables) and, while
        # the switch is sent no change, the digests of the pieces found in sync. Bounded: the
        # pieces of the switches held.
        self._read: dict[int, dict[Piece, int]] = {}
        self._in_sync: dict[int, dict[Piece, tuple[int, int]]] = {}
        self.requests = 0
        self.raced = 0  # pieces not compared: their switch changed while they were read
        self.resliced = 0  # pieces not compared: too large, read in slices at the next turn

    # what the owner reports -----------------------------------------------------------------
    def sent(self, dpid: int, changes: list) -> None:
        """Flow or meter changes (flow-mods, meter-mods, bundle messages) sent to `dpid`."""
        self._in_sync.pop(dpid, None)
        pending = self._pending
        if pending is not None and pending.piece.dpid == dpid:
            for msg in changes:
                pending.crossed.add(msg)

    def forget(self, dpid: int) -> None:
        """`dpid` disconnected."""
        self._read.pop(dpid, None)
        self._in_sync.pop(dpid, None)
        self._turn = [p for p in self._turn if p.dpid != dpid]
        if self._pending is not None and self._pending.piece.dpid == dpid:
            self._pending = None

    def owns(self, dpid: int, xid: int) -> bool:
        pending = self._pending
        return pending is not None and (pending.piece.dpid, pending.xid) == (dpid, xid)

    def error(self, dpid: int, xid: int) -> None:
        """The switch refused the request: the audit goes on with the next piece."""
        if self.owns(dpid, xid):
            self._pending = None

    # requests -------------------------------------------------------------------------------
    def due(self, now: float, ready: list[int]) -> list[tuple[int, object]]:
        """The request to send now, if the budget allows one and none is outstanding: the next
        piece of the switch whose turn it is (`ready`: the switches that may be read, sorted)."""
        if self.rate <= 0:
            return []
        if self._last is not None:
            self._tokens = min(1.0, self._tokens + (now - self._last) * self.rate)
        self._last = now
        pending = self._pending
        if pending is not None and now - pending.sent < REQUEST_TIMEOUT:
            return []
        self._pending = None
        if self._tokens < 1.0 - 1e-9:  # the sum of the fractions, not its rounding error
            return []
        self._turn = [p for p in self._turn if p.dpid in ready]
        if not self._turn:
            self._next_turn(now, ready)
        if not self._turn:
            return []
        piece = self._turn.pop(0)
        self._tokens = max(0.0, self._tokens - 1.0)
        self.requests += 1
        self._observer.audit_request()
        msg = self._xids.stamp(_request(piece))
        self._pending = _Pending(piece, msg.xid, now)
        return [(piece.dpid, msg)]

    def _next_turn(self, now: float, ready: list[int]) -> None:
        if not ready:
            return
        following = [d for d in ready if self._after is None or d > self._after]
        if not following:  # every ready switch had its turn: a pass is over
            if self._pass_started is not None:
                self._observer.audit_pass(now - self._pass_started)
            self._pass_started = None
            following = ready
        if self._pass_started is None:
            self._pass_started = now
        dpid = self._after = following[0]
        held: dict[int, int] = {}
        for piece, flows in self._read.get(dpid, {}).items():
            if piece.table is not None:
                held[piece.table] = held.get(piece.table, 0) + flows
        self._turn = [Piece(dpid, None)] + [
            Piece(dpid, table, slices, k)
            for table in Table
            for slices in [_slices(held.get(table, 0))]
            for k in range(slices)
        ]

    # replies --------------------------------------------------------------------------------
    def reply(self, dpid: int, xid: int, body: Iterable, intent: Intent) -> Repair | None:
        """The whole reply to the outstanding request: what to repair, if anything."""
        pending = self._pending
        if pending is None or not self.owns(dpid, xid):
            return None
        self._pending = None
        if pending.crossed.keys is None:
            self.raced += 1
            return None
        piece = pending.piece
        body = list(body)
        digest = _digest(piece, body)
        read = self._read.setdefault(dpid, {})
        read[piece] = digest[0]
        if digest[0] > 2 * SLICE_FLOWS and piece.slices < MAX_SLICES:
            # Larger than planned (a switch read the first time, a table that grew): judged
            # at the next turn, in slices, rather than all of it now under the lock.
            self.resliced += 1
            return None
        if self._in_sync.get(dpid, {}).get(piece) == digest:
            return None  # as it was when last found in sync, and nobody changed it since
        flows, meters = intent(dpid, piece)
        if piece.table is None:
            repair = _meter_repair(piece, meters, body)
            if repair is None and pending.crossed.empty:
                self._in_sync.setdefault(dpid, {})[piece] = digest
            return repair

        def judged(entry: FlowEntry) -> bool:
            return piece.holds(entry) and pending.crossed.untouched(entry)

        # A reply's flows outside the piece (a switch answering more than asked) are not
        # judged: what this piece does not hold is not this piece's to delete.
        actual = [
            entry
            for entry in (ofmsg.flow_from_stats(s) for s in flow_stats_wire.flows(body))
            if judged(entry)
        ]
        desired = [e for e in flows if judged(e)]
        differences = flow_differences(desired, actual)
        msgs = differences.messages()
        if not msgs:
            if pending.crossed.empty:
                self._in_sync.setdefault(dpid, {})[piece] = digest
            return None
        found = {
            f"flows_{name}": len(entries)
            for name, entries in (
                ("missing", differences.missing),
                ("unexpected", differences.unexpected),
                ("changed", differences.changed),
            )
            if entries
        }
        listed = [*differences.missing, *differences.unexpected, *differences.changed]
        examples = [_describe_flow(e) for e in listed[:EXAMPLES]]
        in_place = bool(differences.unexpected or differences.changed)
        return Repair(piece, found, examples, msgs, in_place)


class PieceIntent:
    """The VM flows a piece of a switch should hold, from the flow programmer: at least those
    of the piece's table, of the VMs of its slice (handles are the low bits of their cookies).
    An edge's VMs' flows span the tables: planned once for all of them and kept until a change
    is sent to the switch (`changed`); a switch above holds FORWARD entries only, planned per
    table, so its other tables cost nothing and its FORWARD slices a slice each."""

    def __init__(self, programmer: FlowProgrammer) -> None:
        self._programmer = programmer
        self._planned: tuple[tuple, list[FlowEntry]] | None = None  # (its key, the flows)

    def flows(self, dpid: int, piece: Piece) -> list[FlowEntry]:
        table = None if dpid in self._programmer.edges() else piece.table
        key = (dpid, table, piece.slices, piece.slice)
        if self._planned is None or self._planned[0] != key:
            slices, part = piece.slices, piece.slice
            flows = self._programmer.flows(dpid, table, lambda handle: handle % slices == part)
            self._planned = (key, flows)
        return self._planned[1]

    def changed(self, dpid: int) -> None:
        if self._planned is not None and self._planned[0][0] == dpid:
            self._planned = None


def _request(piece: Piece):
    if piece.table is None:
        return parser.OFPMeterConfigStatsRequest(None, 0, ofp.OFPM_ALL)
    return ofmsg.flow_stats_request(
        COOKIE_APP | piece.slice, COOKIE_MASK_APP | (piece.slices - 1), piece.table
    )


def _digest(piece: Piece, body: list) -> tuple[int, int]:
    """The piece's flows (or meters) in the reply, whatever their order and counters: how many,
    and the sum of their identities' hashes."""
    count = total = 0
    if piece.table is None:
        for config in body:
            count += 1
            total += hash((config.meter_id, ofmsg.meter_from_config(config)))
        return count, total & 0xFFFFFFFFFFFFFFFF
    for stats in flow_stats_wire.flows(body):
        if stats.table_id == piece.table and stats.cookie % piece.slices == piece.slice:
            count += 1
            total += hash(_identity(stats))
    return count, total & 0xFFFFFFFFFFFFFFFF


def _identity(stats) -> object:
    if isinstance(stats, flow_stats_wire.WireFlowStats):
        return stats.identity()
    entry = ofmsg.flow_from_stats(stats)  # another kind of entry (the tests' fakes)
    return entry.key, entry.cookie, entry.body


def _slices(flows: int) -> int:
    slices = 1
    while flows > SLICE_FLOWS * slices and slices < MAX_SLICES:
        slices *= 2
    return slices


def _meter_repair(piece: Piece, desired: Mapping[int, MeterSpec], body: Iterable) -> Repair | None:
    actual = {config.meter_id: ofmsg.meter_from_config(config) for config in body}
    msgs = reconcile_meters(desired, actual)
    if not msgs:
        return None
    kinds = {
        "meters_missing": [m for m in desired if m not in actual],
        "meters_changed": [m for m in desired if m in actual and actual[m] != desired[m]],
        "meters_unexpected": [m for m in actual if is_swept_meter(m) and m not in desired],
    }
    found = {name: len(ids) for name, ids in kinds.items() if ids}
    examples = [
        f"{name.removeprefix('meters_')} meter {meter_id}"
        for name, ids in kinds.items()
        for meter_id in sorted(ids)
    ][:EXAMPLES]
    # A changed meter is modified in place; missing ones are added before any flow names them.
    return Repair(piece, found, examples, msgs, in_place=False)


def _describe_flow(entry: FlowEntry) -> str:
    match = ",".join(f"{name}={value}" for name, value in entry.match)
    return f"table={entry.table_id} priority={entry.priority} cookie={entry.cookie:#x} {match}"[
        :200
    ]
