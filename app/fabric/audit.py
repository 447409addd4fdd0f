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
sync. Only a piece whose digest differs, or a switch that was sent a change, is compared with
the intent (SwitchSync.desired_flows: a FlowEntry built, and one parsed from the reply, per
flow, several times the digest's cost). The intent is then computed once per turn (an
aggregation switch's is an entry per VM of the fabric). A change sent to the switch after that
(`sent`) leaves the flows it names (by key, or by cookie for a delete by cookie) out of the
turn's comparisons: the snapshot predates them, and a reply may show the switch before or
after them. A meter change, or a delete that names no cookie, ends the snapshot: the intent is
taken again at the next reply, and a piece whose request such a change crossed is not judged
(counted: `raced`; read again at the switch's next turn). So the audit keeps judging a switch
whose other flows change all the time (an aggregation switch under a stream of Associates).

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
# What a switch intends: its flows and its meters (SwitchSync.desired_flows, desired_meters).
Intent = Callable[[int], tuple[list[FlowEntry], Mapping[int, MeterSpec]]]


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


@dataclass
class _Intent:
    """A switch's intent at one moment, and what was sent to it since."""

    dpid: int
    flows: dict[int, list[FlowEntry]]  # by table
    meters: Mapping[int, MeterSpec]
    crossed: _Crossed = field(default_factory=_Crossed)


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
        self._intent: _Intent | None = None
        # Per switch not sent a change since: its pieces and, for those found in sync, their
        # digests (bounded: the pieces of the switches held).
        self._pieces: dict[int, list[Piece]] = {}
        self._in_sync: dict[int, dict[Piece, tuple[int, int]]] = {}
        self.requests = 0
        self.raced = 0  # pieces not compared: their switch changed while they were read

    # what the owner reports -----------------------------------------------------------------
    def sent(self, dpid: int, changes: list) -> None:
        """Flow or meter changes (flow-mods, meter-mods, bundle messages) sent to `dpid`."""
        self._pieces.pop(dpid, None)
        self._in_sync.pop(dpid, None)
        pending, snapshot = self._pending, self._intent
        for msg in changes:
            if pending is not None and pending.piece.dpid == dpid:
                pending.crossed.add(msg)
            if snapshot is not None and snapshot.dpid == dpid:
                snapshot.crossed.add(msg)

    def forget(self, dpid: int) -> None:
        """`dpid` disconnected."""
        self._pieces.pop(dpid, None)
        self._in_sync.pop(dpid, None)
        self._turn = [p for p in self._turn if p.dpid != dpid]
        if self._pending is not None and self._pending.piece.dpid == dpid:
            self._pending = None
        if self._intent is not None and self._intent.dpid == dpid:
            self._intent = None

    def owns(self, dpid: int, xid: int) -> bool:
        pending = self._pending
        return pending is not None and (pending.piece.dpid, pending.xid) == (dpid, xid)

    def error(self, dpid: int, xid: int) -> None:
        """The switch refused the request: the audit goes on with the next piece."""
        if self.owns(dpid, xid):
            self._pending = None

    # requests -------------------------------------------------------------------------------
    def due(self, now: float, ready: list[int], intent: Intent) -> list[tuple[int, object]]:
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
            self._next_turn(now, ready, intent)
        if not self._turn:
            return []
        piece = self._turn.pop(0)
        self._tokens = max(0.0, self._tokens - 1.0)
        self.requests += 1
        self._observer.audit_request()
        msg = self._xids.stamp(_request(piece))
        self._pending = _Pending(piece, msg.xid, now)
        return [(piece.dpid, msg)]

    def _next_turn(self, now: float, ready: list[int], intent: Intent) -> None:
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
        self._intent = None
        if dpid not in self._pieces:
            flows = self._intent_of(dpid, intent).flows
            self._pieces[dpid] = [Piece(dpid, None)] + [
                Piece(dpid, table, slices, k)
                for table in Table
                for slices in [_slices(len(flows.get(table, ())))]
                for k in range(slices)
            ]
        self._turn = list(self._pieces[dpid])

    def _intent_of(self, dpid: int, intent: Intent) -> _Intent:
        """The switch's intent: once a turn, again after a change that ends the snapshot."""
        cached = self._intent
        if cached is None or cached.dpid != dpid or cached.crossed.keys is None:
            flows, meters = intent(dpid)
            by_table: dict[int, list[FlowEntry]] = {}
            for entry in flows:
                by_table.setdefault(entry.table_id, []).append(entry)
            cached = self._intent = _Intent(dpid, by_table, meters)
        return cached

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
        if self._in_sync.get(dpid, {}).get(piece) == digest:
            return None  # as it was when last found in sync, and nobody changed it since
        wanted = self._intent_of(dpid, intent)
        clean = pending.crossed.empty and wanted.crossed.empty

        def judged(entry: FlowEntry) -> bool:
            return (
                piece.holds(entry)
                and pending.crossed.untouched(entry)
                and wanted.crossed.untouched(entry)
            )

        if piece.table is None:
            repair = _meter_repair(piece, wanted.meters, body)
            if repair is None and clean:
                self._in_sync.setdefault(dpid, {})[piece] = digest
            return repair
        # A reply's flows outside the piece (a switch answering more than asked) are not
        # judged: what this piece does not hold is not this piece's to delete.
        actual = [
            entry
            for entry in (ofmsg.flow_from_stats(s) for s in flow_stats_wire.flows(body))
            if judged(entry)
        ]
        desired = [e for e in wanted.flows.get(piece.table, ()) if judged(e)]
        differences = flow_differences(desired, actual)
        msgs = differences.messages()
        if not msgs:
            if clean:
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
