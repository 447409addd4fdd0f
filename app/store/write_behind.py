"""Writes that may be a little late: the events (the controller's log, not its state) and the
records of what the controller saw (alarms, location history), queued by any thread and written
by a thread of their own in batches, at most FLUSH_INTERVAL late and never on the path of a
request. The queue is bounded: beyond BACKLOG the oldest are dropped and counted. The store says
how a batch is written and how its events are pruned (every PRUNE_INTERVAL at most)."""

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

LOG = logging.getLogger("evb_nms.store")

FLUSH_INTERVAL = 0.1  # seconds an event may wait for its batch
BACKLOG = 100_000  # events (and records) waiting at most; beyond, the oldest are dropped
PRUNE_INTERVAL = 60.0  # seconds between two prunes of the events


class WriteBehind:
    def __init__(
        self,
        write: Callable[[list, list], None],
        prune: Callable[[], int],
    ):
        """`write(events, records)` writes one batch or raises; `prune()` deletes the events
        beyond the retention."""
        self._write, self._prune = write, prune
        self._events: deque = deque()
        self._records: deque = deque()
        self._ready = threading.Condition()
        # Taking a batch and writing it happen under this lock, so a reader that flushes first
        # sees every event queued before.
        self._flushing = threading.Lock()
        self._closing = False
        self.dropped = 0
        self._next_prune = 0.0  # time.monotonic() of the next prune
        self._thread = threading.Thread(target=self._run, name="event-writer", daemon=True)
        self._thread.start()

    def add_event(self, event) -> None:
        with self._ready:
            if len(self._events) >= BACKLOG:
                self._events.popleft()
                self.dropped += 1
            self._events.append(event)
            if len(self._events) == 1:
                self._ready.notify()

    def add_records(self, records: list) -> None:
        with self._ready:
            for record in records:
                if len(self._records) >= BACKLOG:
                    self._records.popleft()
                    self.dropped += 1
                self._records.append(record)
            self._ready.notify()

    def flush(self) -> None:
        """Writes what waits now, as one batch; a failed batch is counted in `dropped`."""
        with self._flushing:
            with self._ready:
                events, self._events = list(self._events), deque()
                records, self._records = list(self._records), deque()
            if not events and not records:
                return
            try:
                self._write(events, records)
            except BaseException:
                self.dropped += len(events) + len(records)
                raise

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._events and not self._records and not self._closing:
                    self._ready.wait()
                if self._closing and not self._events and not self._records:
                    return
            try:
                self.flush()
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_INTERVAL
                    self._prune()
            except Exception:  # a full disk, an etcd away: counted, logged, the thread goes on
                LOG.exception("events could not be written")
            with self._ready:  # let a burst gather into one batch
                self._ready.wait_for(lambda: self._closing, FLUSH_INTERVAL)

    def close(self) -> None:
        """Stops the thread once it has written what waits, then writes what is left."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()
        self._thread.join()
        self.flush()
