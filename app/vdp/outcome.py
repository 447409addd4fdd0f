"""What the VDP bridge decided: frames to send, how the bindings changed, and why."""

from dataclasses import dataclass, field
from typing import Any

from app.codec.vdp import ManagerIdTlv, VsiId, VsiTlv
from app.fabric.ports import PortRef
from app.vdp.binding import VmBinding

Send = tuple[PortRef, ManagerIdTlv, VsiTlv]
# handle -> (the binding before, the binding after); None where there was or is none.
BindingChanges = dict[int, tuple[VmBinding | None, VmBinding | None]]


@dataclass
class Outcome:
    """``responses`` answer station requests; send them only after the flows for the new
    bindings are installed, since a station starts using the VSI when it gets the answer.
    ``unsolicited``: bridge-initiated De-Associates (status without the response bit).
    ``changes``: the bindings that changed, by handle, net of everything in this outcome: the
    flow plan touches exactly these. ``dirty``: the VSIs whose saved record changed (a
    Pre-Associate changes no binding but must survive a restart).
    ``events``: (kind, fields) decision events, in order; fields are plain JSON-able values
    with ``switch`` (16 hex digits) and ``port_no`` saying where."""

    responses: list[Send] = field(default_factory=list)
    unsolicited: list[Send] = field(default_factory=list)
    changes: BindingChanges = field(default_factory=dict)
    dirty: set[VsiId] = field(default_factory=set)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def bindings_changed(self) -> bool:
        return bool(self.changes)

    def change(self, handle: int, before: VmBinding | None, after: VmBinding | None) -> None:
        """Records that ``handle`` went from ``before`` to ``after`` (after what is recorded)."""
        if handle in self.changes:
            before = self.changes[handle][0]
        if before == after:
            self.changes.pop(handle, None)
        else:
            self.changes[handle] = (before, after)

    def merge(self, *others: "Outcome") -> "Outcome":
        """This outcome followed by ``others``, as one."""
        merged = Outcome(
            list(self.responses),
            list(self.unsolicited),
            dict(self.changes),
            set(self.dirty),
            list(self.events),
        )
        for other in others:
            merged.responses += other.responses
            merged.unsolicited += other.unsolicited
            for handle, (before, after) in other.changes.items():
                merged.change(handle, before, after)
            merged.dirty |= other.dirty
            merged.events += other.events
        return merged
