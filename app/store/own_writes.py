"""This process's own writes to etcd, so that following the store (app/store/etcd_feed.py) skips
their echoes: the watch hands every change back, ours too, and an echo may arrive after this
process changed the same key again in memory (an alarm cleared, a subscription deleted): applying
it would step back to the older value.

Per key, the revision of our last write whose echo the watch has not passed yet. A change the
watch hands over is superseded when that revision is at or above its own: our echo, or a change
our later write replaced in the store. A write's revision is known only once etcd answers, and
the watch may deliver the echo first: a key with a write under way is decided once it is done.
Bounded: an entry goes once the watch passes its revision (`passed`, kept in a heap so that this
costs the entries passed, never all of them)."""

import heapq
import threading
from collections import Counter
from collections.abc import Callable, Iterable

SEND_WAIT = 60.0  # seconds the watch waits for a write under way at most (etcd_timeout's bound)


class OwnWrites:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._sending: Counter[str] = Counter()  # keys with a write under way
        self._last: dict[str, int] = {}  # key -> revision of our last write, not yet passed
        self._heap: list[tuple[int, str]] = []  # (revision, key) of every entry of _last

    def __len__(self) -> int:
        return len(self._last)

    def write(self, keys: Iterable[str], send: Callable[[], int | None]) -> None:
        """Runs `send()`, the write of `keys` returning its revision (None: nothing written), and
        notes it; an error of send() passes on, nothing noted."""
        keys = list(keys)
        with self._cond:
            self._sending.update(keys)
        revision = None
        try:
            revision = send()
        finally:
            with self._cond:
                self._sending.subtract(keys)
                for key in keys:
                    if self._sending[key] <= 0:
                        del self._sending[key]
                    if revision is not None and revision > self._last.get(key, 0):
                        self._last[key] = revision
                        heapq.heappush(self._heap, (revision, key))
                self._cond.notify_all()

    def superseded(self, key: str, revision: int) -> bool:
        """Whether the change of `key` at `revision` is ours, or older than ours."""
        with self._cond:
            if key in self._sending:
                self._cond.wait_for(lambda: key not in self._sending, SEND_WAIT)
            return revision <= self._last.get(key, 0)

    def passed(self, revision: int) -> None:
        """The watch handed over every change up to `revision`: our writes up to it are done."""
        with self._cond:
            while self._heap and self._heap[0][0] <= revision:
                written, key = heapq.heappop(self._heap)
                if self._last.get(key) == written:
                    del self._last[key]
