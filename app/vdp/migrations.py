"""Every migration as a record: where a VM moved from and to, each step with its time, and how
it ended. Operators and the VM manager read it (GET /v1/migrations, ``evbctl migration list``).

Pure and bounded: fed the control plane's decision events (``observe``, fields typed as the VDP
bridge emits them: PortRefs, monotonic times), one dict lookup per event, never a scan.

A migration of VSI v starts when v gets a second place while associated somewhere (a
Pre-Associate or the VM manager's relocation with ``standby_for``), or, unprepared, when an
Associate takes v from another port (``moved_from``) or v, suspended at one port, is associated
at another, or when a VM's first frame activates a standby whose preparation the log did not
see. Its steps, in time order:

* ``prepared``: the destination D stands by (Pre-Associate(-RR), or the manager's relocation);
* ``activated``: the VM's first frame at D re-pointed the switches to D (timed by the frame);
* ``confirmed``: the Associate at D;
* ``source_released``: the source S de-associated, suspended (S-bit), timed out, or was
  de-associated by the bridge because D's Associate moved the VSI.

It is completed once confirmed and the source released; cancelled when D goes before that (the
VM stays at S), expired when D's standby timed out, refused when D's request was refused. A VSI
has at most one open record. If it stands by at several ports, the record follows the one the
VM shows up at; until then it names the first.
"""

import bisect
import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum

from app.fabric.ports import PortRef

LIMIT = 1000


class Step(str, Enum):
    PREPARED = "prepared"
    ACTIVATED = "activated"
    CONFIRMED = "confirmed"
    SOURCE_RELEASED = "source_released"


class Result(str, Enum):
    IN_PROGRESS = "in-progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REFUSED = "refused"


# How D's going ends a migration that D had not confirmed.
_ENDED_BY = {
    "vsi.deassociated": Result.CANCELLED,
    "vsi.suspended": Result.CANCELLED,
    "vsi.expired": Result.EXPIRED,
    "vsi.refused": Result.REFUSED,
}


@dataclass
class Migration:
    id: int
    vsi: str
    tenant: str | None
    source: PortRef
    destination: PortRef
    started: float
    steps: list[tuple[float, Step]] = field(default_factory=list)  # in time order
    result: Result = Result.IN_PROGRESS
    ended: float | None = None
    reason: str | None = None  # why it ended, unless completed
    relocation: bool = False  # D was prepared by the VM manager (draft 5.5)
    mac: str | None = None  # the frame that activated D
    activation_ms: float | None = None  # that frame -> the switches confirmed D's flows
    activation_failed: str | None = None  # a switch refused the activation's flows: why
    # Ports standing by for the VSI, not yet given up: port -> (prepared at, by the manager).
    standbys: dict[PortRef, tuple[float, bool]] = field(default_factory=dict)

    def step(self, step: Step) -> float | None:
        return next((t for t, s in self.steps if s is step), None)

    def add(self, step: Step, at: float) -> None:
        if self.step(step) is None:
            bisect.insort(self.steps, (at, step), key=lambda entry: entry[0])

    @property
    def order(self) -> str:
        return ", ".join(step.value for _, step in self.steps)

    @property
    def order_name(self) -> str | None:
        """The known order this migration followed: the VM manager's relocation; libvirt's
        (the source de-associates before the destination associates); Associate-first; or,
        unprepared, suspended at the source and resumed at the destination."""
        if self.relocation:
            return "relocation"
        seen = [step for _, step in self.steps]  # in time order; ties in the order seen
        if Step.CONFIRMED not in seen or Step.SOURCE_RELEASED not in seen:
            return None
        if seen.index(Step.CONFIRMED) < seen.index(Step.SOURCE_RELEASED):
            return "associate-first"
        return "libvirt" if Step.PREPARED in seen else "suspend-resume"


class MigrationLog:
    def __init__(self, limit: int = LIMIT) -> None:
        """Keeps at most ``limit`` records: the ones finished longest ago are dropped first,
        then (a flood of migrations that never end) the oldest open ones."""
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self._limit = limit
        self._ids = itertools.count(1)
        self._records: dict[int, Migration] = {}  # by id: oldest first
        self._finished: OrderedDict[int, None] = OrderedDict()  # finished longest ago first
        self._open: dict[str, Migration] = {}  # by VSI
        self._latest: dict[str, Migration] = {}  # the latest finished record of each VSI
        # VSIs suspended (S-bit) with no migration open: where and when, oldest first.
        self._suspended: OrderedDict[str, tuple[PortRef, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def records(
        self, vsi: str | None = None, tenant: str | None = None, limit: int = LIMIT
    ) -> list[Migration]:
        """Newest first; only ``vsi``'s, only ``tenant``'s (None: any), at most ``limit``."""
        found: list[Migration] = []
        for record in reversed(self._records.values()):
            if len(found) >= limit:
                break
            if (vsi is None or record.vsi == vsi) and (tenant is None or record.tenant == tenant):
                found.append(record)
        return found

    def observe(self, kind: str, fields: dict, now: float) -> None:
        """One decision event of the control plane; kinds that tell nothing of a migration,
        and events without a VSI and port, are ignored."""
        handler = self._handlers.get(kind)
        vsi, at = fields.get("vsi"), fields.get("at")
        if handler is not None and isinstance(vsi, str) and isinstance(at, PortRef):
            handler(self, kind, vsi, at, fields, now)

    # the events -----------------------------------------------------------------------------
    def _prepared(self, kind: str, vsi: str, at: PortRef, fields: dict, now: float) -> None:
        by_manager = kind == "vsi.prepared"
        record = self._open.get(vsi)
        if record is not None:
            if at != record.source:
                record.standbys.setdefault(at, (now, by_manager))
            return
        source = fields.get("standby_for")
        if not isinstance(source, PortRef) or source == at:
            return  # not associated anywhere else: a start, not a migration
        record = self._start(vsi, fields, source, at, now)
        record.standbys[at] = (now, by_manager)
        record.relocation = by_manager
        record.add(Step.PREPARED, now)

    def _activated(self, kind: str, vsi: str, at: PortRef, fields: dict, now: float) -> None:
        # Emitted once the switches confirmed the flows: a record may have ended meanwhile.
        first = fields.get("first_frame_at", now)
        record = self._open.get(vsi)
        late = self._latest.get(vsi)
        if (
            record is None
            and late is not None
            and late.destination == at
            and late.step(Step.ACTIVATED) is None
            and late.started <= first
        ):
            self._note_activation(late, kind, fields, first)
            return
        record = self._moved_to(vsi, at, fields, first)
        if record is not None:
            self._note_activation(record, kind, fields, first)

    def _associated(self, kind: str, vsi: str, at: PortRef, fields: dict, now: float) -> None:
        record = self._open.get(vsi)
        if record is not None and at == record.source:
            # The source's station associates anew: after an activation the VM is back there
            # (D stands by again); before one it has not moved yet.
            if record.step(Step.ACTIVATED) is not None and record.step(Step.CONFIRMED) is None:
                self._finish(record, Result.CANCELLED, now, "the VM went back to its source")
            return
        suspended = self._suspended.pop(vsi, None)
        if record is None and suspended is not None and suspended[0] != at:
            record = self._start(vsi, fields, suspended[0], at, suspended[1])
            record.add(Step.SOURCE_RELEASED, suspended[1])
        record = self._moved_to(vsi, at, fields, now)
        if record is not None:
            record.add(Step.CONFIRMED, now)
            self._complete_if_done(record, now)

    def _gone(self, kind: str, vsi: str, at: PortRef, fields: dict, now: float) -> None:
        record = self._open.get(vsi)
        if record is None:
            self._note_suspension(kind, vsi, at, now)
            return
        if kind == "vsi.refused" and "released" not in fields:
            return  # refused with KEEP: the attachment there stays as it was
        if at == record.source:
            record.add(Step.SOURCE_RELEASED, now)
            self._complete_if_done(record, now)
            return
        record.standbys.pop(at, None)
        if at != record.destination:
            return
        if record.step(Step.ACTIVATED) is None and record.standbys:
            self._retarget(record, min(record.standbys, key=lambda p: record.standbys[p]))
            return
        reason = fields.get("reason")
        self._finish(record, _ENDED_BY[kind], now, reason if isinstance(reason, str) else None)

    _handlers: dict[str, Callable[..., None]] = {
        "vsi.preassociated": _prepared,
        "vsi.prepared": _prepared,
        "vsi.activated": _activated,
        "vsi.activation_failed": _activated,
        "vsi.associated": _associated,
        **dict.fromkeys(_ENDED_BY, _gone),
    }

    # records --------------------------------------------------------------------------------
    def _moved_to(self, vsi: str, at: PortRef, fields: dict, now: float) -> Migration | None:
        """The open record the VM's arrival at ``at`` belongs to: the VSI's open one (following
        the VM to another of its standbys), else a new one if the VM came from a port
        (``moved_from``)."""
        record = self._open.get(vsi)
        if record is not None and at == record.source:
            return None  # the VM is still (or again) at its source
        if record is not None and at != record.destination:
            if record.step(Step.ACTIVATED) is None and record.step(Step.CONFIRMED) is None:
                self._retarget(record, at)
            else:  # the VM, already at D, moves on before D was confirmed
                self._finish(record, Result.CANCELLED, now, "the VM moved on to another port")
                record = None
        if record is None:
            source = fields.get("moved_from")
            if not isinstance(source, PortRef) or source == at:
                return None
            record = self._start(vsi, fields, source, at, now)
        return record

    def _note_suspension(self, kind: str, vsi: str, at: PortRef, now: float) -> None:
        """A VSI suspended where it ran may resume elsewhere: a migration with no
        preparation. Its hold ending (or the VSI removed) forgets it."""
        if kind == "vsi.suspended":
            self._suspended.pop(vsi, None)
            self._suspended[vsi] = (at, now)
            if len(self._suspended) > self._limit:
                self._suspended.popitem(last=False)
        elif kind != "vsi.refused" and self._suspended.get(vsi, (None,))[0] == at:
            del self._suspended[vsi]

    def _retarget(self, record: Migration, port: PortRef) -> None:
        record.destination = port
        record.steps = [(t, s) for t, s in record.steps if s is not Step.PREPARED]
        prepared = record.standbys.get(port)
        record.relocation = prepared is not None and prepared[1]
        if prepared is not None:
            record.add(Step.PREPARED, prepared[0])

    @staticmethod
    def _note_activation(record: Migration, kind: str, fields: dict, first: float) -> None:
        record.add(Step.ACTIVATED, first)
        mac, took = fields.get("mac"), fields.get("took_ms")
        record.mac = mac if isinstance(mac, str) else None
        record.activation_ms = took if isinstance(took, (int, float)) else None
        if kind == "vsi.activation_failed":
            record.activation_failed = str(fields.get("reason", "flows refused"))

    def _start(
        self, vsi: str, fields: dict, source: PortRef, destination: PortRef, now: float
    ) -> Migration:
        while len(self._records) >= self._limit:
            self._drop_oldest()
        tenant = fields.get("tenant")
        record = Migration(
            next(self._ids),
            vsi,
            tenant if isinstance(tenant, str) else None,
            source,
            destination,
            now,
        )
        self._records[record.id] = self._open[vsi] = record
        return record

    def _drop_oldest(self) -> None:
        if self._finished:
            record = self._records.pop(self._finished.popitem(last=False)[0])
            if self._latest.get(record.vsi) is record:
                del self._latest[record.vsi]
        else:  # all open: the one open longest goes
            record = self._records.pop(next(iter(self._records)))
            del self._open[record.vsi]

    def _complete_if_done(self, record: Migration, now: float) -> None:
        if (
            record.step(Step.CONFIRMED) is not None
            and record.step(Step.SOURCE_RELEASED) is not None
        ):
            self._finish(record, Result.COMPLETED, now, None)

    def _finish(self, record: Migration, result: Result, now: float, reason: str | None) -> None:
        record.result, record.ended, record.reason = result, now, reason
        record.standbys.clear()
        del self._open[record.vsi]
        self._finished[record.id] = None
        self._latest[record.vsi] = record


def iter_steps(record: Migration) -> Iterator[tuple[Step, float, float | None]]:
    """Each step, its time and the milliseconds since the step before it (None for the
    first)."""
    previous = None
    for at, step in record.steps:
        yield step, at, None if previous is None else round(1000 * (at - previous), 3)
        previous = at


def document(
    record: Migration, names: Callable[[PortRef], tuple[str, str]], wall_offset: float
) -> dict:
    """A record as JSON: ports by switch and port name, times ISO 8601 UTC (``wall_offset``:
    time.time() - time.monotonic(), taken once per view so that its records agree)."""

    def where(port: PortRef) -> dict:
        switch, port_name = names(port)
        return {"switch": switch, "port": port_name}

    def when(monotonic: float | None) -> str | None:
        if monotonic is None:
            return None
        wall = datetime.fromtimestamp(monotonic + wall_offset, UTC)
        return wall.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    end = record.ended
    return {
        "id": record.id,
        "vsi_id": record.vsi,
        "tenant": record.tenant,
        "source": where(record.source),
        "destination": where(record.destination),
        "outcome": record.result.value,
        "reason": record.reason,
        "order": record.order,
        "order_name": record.order_name,
        "started": when(record.started),
        "ended": when(end),
        "ms": None if end is None else round(1000 * (end - record.started), 3),
        "steps": [
            {"step": step.value, "at": when(at), "ms": ms} for step, at, ms in iter_steps(record)
        ],
        "activation": None
        if record.step(Step.ACTIVATED) is None
        else {
            "mac": record.mac,
            "first_frame": when(record.step(Step.ACTIVATED)),
            "took_ms": record.activation_ms,
            "failed": record.activation_failed,
        },
    }
