"""The events' filter fields in memory, for a store that cannot index or filter them itself
(etcd holds each event under a key in id order and nothing else): which events a query of
GET /v1/events wants is decided here, then only those are read.

One entry per event kept: (ts, kind, switch, tenant, vsi), strings interned (a few kinds,
switches and tenants; a VSI's events share its ID), so the index is bounded by the event
retention (event_retention_rows) at roughly 100 bytes an event. A VSI's events are also listed
apart, so ?vsi= costs that VSI's events as SQLite's index on it does; the other filters walk the
events from `after` (or back from the newest) until `limit` match, as SQLite's scan does."""

import bisect
import sys
import threading
from collections.abc import Iterable

from sortedcontainers import SortedDict

Fields = tuple[float, str, str | None, object, object]  # ts, kind, switch, tenant, vsi


def _intern(value):
    return sys.intern(value) if isinstance(value, str) else value


class EventIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: SortedDict = SortedDict()  # id -> Fields
        self._by_vsi: dict[object, list[int]] = {}  # in id order

    def __len__(self) -> int:
        return len(self._events)

    def add(self, event_id: int, event: dict) -> None:
        """`event` as the store keeps it: {"ts", "kind", "switch", "detail", ...}. Ids come in
        increasing order, but for those of other controllers, which may come a little late; an
        id indexed already is left as it is (an echo of our own)."""
        detail = event.get("detail")
        detail = detail if isinstance(detail, dict) else {}
        vsi = _intern(detail.get("vsi"))
        fields = (
            event["ts"],
            _intern(event["kind"]),
            _intern(event.get("switch")),
            _intern(detail.get("tenant")),
            vsi,
        )
        with self._lock:
            if event_id in self._events:
                return
            self._events[event_id] = fields
            if vsi is not None:
                ids = self._by_vsi.setdefault(vsi, [])
                if ids and ids[-1] > event_id:
                    bisect.insort(ids, event_id)
                else:
                    ids.append(event_id)

    def discard(self, event_id: int) -> None:
        """Forgets one event (another controller pruned it), if indexed."""
        with self._lock:
            fields = self._events.pop(event_id, None)
            if fields is None or fields[4] is None:
                return
            ids = self._by_vsi[fields[4]]
            del ids[bisect.bisect_left(ids, event_id)]
            if not ids:
                del self._by_vsi[fields[4]]

    def select(
        self,
        kind_prefix: str,
        after_id: int,
        limit: int,
        switch: str | None,
        tenant: str | None,
        vsi: str | None,
        latest: bool,
    ) -> list[int]:
        """The ids of the events a query wants, in id order."""
        found: list[int] = []
        with self._lock:
            if vsi is not None:
                ids = self._by_vsi.get(vsi, [])
                start = bisect.bisect_right(ids, after_id)
                candidates: Iterable[int] = (
                    (ids[n] for n in range(len(ids) - 1, start - 1, -1)) if latest else ids[start:]
                )
            else:
                candidates = self._events.irange(
                    minimum=after_id, inclusive=(False, True), reverse=latest
                )
            for event_id in candidates:
                if len(found) >= limit:
                    break
                _, kind, at, of_tenant, _ = self._events[event_id]
                if (
                    kind.startswith(kind_prefix)
                    and (switch is None or at == switch)
                    and (tenant is None or of_tenant == tenant)
                ):
                    found.append(event_id)
        return sorted(found) if latest else found

    def first_id(self) -> int:
        with self._lock:
            return self._events.peekitem(0)[0]

    def last_to_prune(self, max_age: float, max_rows: int) -> int | None:
        """The id up to which (inclusive) events go: the oldest ones while more than `max_age`
        older than the newest, and all beyond the newest `max_rows`; None: none go. By age it
        stops at the first event young enough (events come in time order, near enough)."""
        with self._lock:
            if not self._events:
                return None
            count = len(self._events)
            cut = None
            if count > max_rows:
                cut = self._events.peekitem(count - max_rows - 1)[0]
            oldest = self._events.peekitem(-1)[1][0] - max_age
            for event_id in self._events.irange(minimum=cut, inclusive=(False, True)):
                if self._events[event_id][0] >= oldest:
                    break
                cut = event_id
            return cut

    def drop_through(self, last_id: int) -> int:
        """Forgets the events with ids up to `last_id`; how many there were."""
        with self._lock:
            gone = list(self._events.irange(maximum=last_id))
            vsis = {self._events.pop(event_id)[4] for event_id in gone}
            vsis.discard(None)
            for vsi in vsis:
                ids = self._by_vsi[vsi]
                del ids[: bisect.bisect_right(ids, last_id)]
                if not ids:
                    del self._by_vsi[vsi]
            return len(gone)
