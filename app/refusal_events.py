"""Refusal events, bounded per port: a station that sends refused VDP requests by the thousand
must not cost an event row and a log line each (40 refused TLVs in a frame cost 12.5 ms that
way, so 80 frames/s saturated the controller).

Pure: per (port, error) and interval, the first ``in_full`` refusals are told as they are
(``vsi.refused``: the VM manager and the operator see which VM and why); the others are only
counted, and when the interval ends one ``vsi.refused_summary`` event says "this port refused N
TLVs for this error in the last interval" with the first reason. A refusal that released an
attachment changed state and is always told. Costs the refusals, not the ports: the windows are
kept in the order they opened, which is the order they end.
"""

from collections import deque
from dataclasses import dataclass
from typing import Any

from app.fabric.ports import PortRef

INTERVAL = 10.0  # seconds
IN_FULL = 5  # refusals told in full per port, error and interval


@dataclass
class _Window:
    start: float
    reason: str  # the first one's, for the summary
    refused: int = 0


class RefusalSummary:
    def __init__(self, interval: float = INTERVAL, in_full: int = IN_FULL) -> None:
        self.interval = interval
        self.in_full = in_full
        self._windows: dict[tuple[PortRef, str], _Window] = {}
        self._opened: deque[tuple[PortRef, str]] = deque()

    def admit(self, fields: dict[str, Any], now: float) -> bool:
        """Whether this ``vsi.refused`` event (its fields: ``at``, ``error``, ``reason``) is
        told; it is counted either way."""
        if "released" in fields:
            return True
        key = (fields["at"], str(fields["error"]))
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(now, str(fields.get("reason", "")))
            self._opened.append(key)
        window.refused += 1
        return window.refused <= self.in_full

    def due(self, now: float) -> list[tuple[str, dict[str, Any]]]:
        """The summaries of the windows that ended by ``now`` and held more than they told."""
        events = []
        while self._opened and self._windows[self._opened[0]].start + self.interval <= now:
            port, error = key = self._opened.popleft()
            window = self._windows.pop(key)
            if window.refused > self.in_full:
                events.append(
                    (
                        "vsi.refused_summary",
                        {
                            "at": port,
                            "error": error,
                            "refused": window.refused,
                            "told": self.in_full,
                            "since": window.start,
                            "interval": self.interval,
                            "reason": window.reason,
                        },
                    )
                )
        return events
