"""The work the os-ken threads hand to the worker thread: bounded FIFOs, switch events before
punted frames, and the slow switch events one per batch.

A barrier reply, a port status or a multipart reply must not wait behind thousands of punted
frames: a VDP response waits for its barrier reply, and a flow batch whose barrier reply is
late by BatchTracker's timeout is taken for failed. A flow stats reply is different: the last
part of one reconciles its switch, seconds for a switch above 20,000 VMs, and when a restarted
controller's switches reconnect all together, stations' keep-alives waited behind every one
of them (bench.scale --restart 64 x 32 x 20,000: answered after 8.3 s at the median, 4,709 VMs
given up). So those go in a third FIFO of which each batch takes one, after the other events
and before the frames. Each FIFO keeps its order and drops (and counts) what arrives when full.
"""

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Work = Callable[[float], Any]


class WorkQueues:
    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._events: deque[Work] = deque()
        self._frames: deque[Work] = deque()
        self._slow: deque[Work] = deque()
        self._ready = threading.Condition()
        self.dropped = 0

    def put_event(self, work: Work) -> None:
        self._put(self._events, work)

    def put_frame(self, work: Work) -> None:
        self._put(self._frames, work)

    def put_slow(self, work: Work) -> None:
        self._put(self._slow, work)

    def _put(self, fifo: deque, work: Work) -> None:
        with self._ready:
            if len(fifo) >= self._limit:
                self.dropped += 1
                return
            fifo.append(work)
            self._ready.notify()

    def take(self, max_frames: int, timeout: float) -> tuple[list[Work], list[Work]]:
        """Every switch event waiting, then at most one slow one, and up to `max_frames`
        frames; empty lists after `timeout` seconds with nothing to do."""
        with self._ready:
            if not self._events and not self._frames and not self._slow:
                self._ready.wait(timeout)
            events, self._events = list(self._events), deque()
            if self._slow:
                events.append(self._slow.popleft())
            frames = [self._frames.popleft() for _ in range(min(max_frames, len(self._frames)))]
        return events, frames

    def __len__(self) -> int:
        with self._ready:
            return len(self._events) + len(self._frames) + len(self._slow)
