"""Structured events: what the controller saw and decided, for operators and the VM manager.

Every event is logged on one line (`event=kind key=value ...`) and handed to the sinks (the store,
later webhooks). Sinks must not raise into the caller: a failing sink is logged and skipped.
"""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from app.logfmt import quote_value

LOG = logging.getLogger("evb_nms.events")


@dataclass(frozen=True)
class Event:
    kind: str  # e.g. switch.connected, station.seen, frame.dropped
    ts: float = field(default_factory=time.time)
    switch: str | None = None  # dpid as 16 hex digits
    port: str | None = None  # port name
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_line(self) -> str:
        """One line whatever the values hold: they are quoted where needed (app/logfmt.py)."""
        parts = [f"event={self.kind}"]
        if self.switch:
            parts.append(f"switch={quote_value(self.switch)}")
        if self.port:
            parts.append(f"port={quote_value(self.port)}")
        parts.extend(f"{key}={quote_value(value)}" for key, value in self.detail.items())
        return " ".join(parts)


class EventLog:
    """Keeps the latest events in memory and fans every event out to the sinks."""

    def __init__(self, capacity: int = 10000):
        self._recent: deque[Event] = deque(maxlen=capacity)
        self._sinks: list[Callable[[Event], None]] = []
        self._lock = threading.Lock()

    def add_sink(self, sink: Callable[[Event], None]) -> None:
        self._sinks.append(sink)

    def emit(
        self,
        kind: str,
        switch: str | None = None,
        port: str | None = None,
        level: int = logging.INFO,
        **detail,
    ) -> Event:
        event = Event(kind, switch=switch, port=port, detail=detail)
        LOG.log(level, "%s", event.as_line())
        with self._lock:
            self._recent.append(event)
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken sink must not stop the controller
                LOG.exception("event sink %r failed", sink)
        return event

    def recent(self, kind_prefix: str = "", limit: int = 100) -> list[Event]:
        with self._lock:
            matching = [e for e in self._recent if e.kind.startswith(kind_prefix)]
        return matching[-limit:]
