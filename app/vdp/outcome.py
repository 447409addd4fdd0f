"""What the VDP bridge decided: frames to send, whether the bindings changed, and why."""
from dataclasses import dataclass, field
from typing import Any

from app.codec.vdp import ManagerIdTlv, VsiTlv
from app.fabric.ports import PortRef

Send = tuple[PortRef, ManagerIdTlv, VsiTlv]


@dataclass
class Outcome:
    """``responses`` answer station requests; send them only after the flows for the new
    bindings are installed, since a station starts using the VSI when it gets the answer.
    ``unsolicited``: bridge-initiated De-Associates (status without the response bit).
    ``events``: (kind, fields) decision events, in order; fields are plain JSON-able values
    with ``switch`` (16 hex digits) and ``port_no`` saying where."""
    responses: list[Send] = field(default_factory=list)
    unsolicited: list[Send] = field(default_factory=list)
    bindings_changed: bool = False
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def merge(self, *others: "Outcome") -> "Outcome":
        """This outcome followed by ``others``, as one."""
        merged = Outcome(list(self.responses), list(self.unsolicited), self.bindings_changed,
                         list(self.events))
        for other in others:
            merged.responses += other.responses
            merged.unsolicited += other.unsolicited
            merged.bindings_changed |= other.bindings_changed
            merged.events += other.events
        return merged
