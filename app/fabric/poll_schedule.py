"""Which switches to poll for VM statistics now: each once per interval, spread evenly over it.

Polling every switch at the same instant makes every reply arrive at once: at 20,000 VMs their
parsing held the controller's CPU for seconds, and the stations' ECP ACKs waited behind it into
retransmissions (docs/scale.md). Spread, one switch's reply is handled at a time. Pure: the
caller gives the time and the switches that may be polled; the schedule keeps a round-robin
cursor and the fraction of a poll owed since its last call.
"""

import bisect


class PollSchedule:
    def __init__(self, interval: float) -> None:
        """`interval`: seconds between two polls of one switch; 0 polls every switch at each
        call."""
        self.interval = interval
        self._after: int | None = None  # the last switch polled: the next round goes on from it
        self._owed = 0.0  # polls earned since the last call and not yet made
        self._last: float | None = None

    def due(self, targets: list[int], now: float) -> list[int]:
        """The switches of `targets` (sorted dpids) to poll now: len(targets) per interval,
        earned in proportion to the time since the last call, in round-robin order."""
        if not targets:
            self._owed = 0.0
            self._last = now
            return []
        if self.interval <= 0:
            count = len(targets)
        else:
            elapsed = now - self._last if self._last is not None else 0.0
            self._owed = min(len(targets), self._owed + len(targets) * elapsed / self.interval)
            count = int(self._owed + 1e-9)  # the sum of the fractions, not its rounding error
            self._owed = max(0.0, self._owed - count)
        self._last = now
        start = bisect.bisect_right(targets, self._after) if self._after is not None else 0
        due = [targets[(start + i) % len(targets)] for i in range(count)]
        if due:
            self._after = due[-1]
        return due
