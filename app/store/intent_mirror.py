"""The intent on etcd (app/store/etcd_intent.py), kept in memory as the watch hands it over
(app/store/etcd_feed.py), so that a controller taking over gets the whole intent at once
(`intent()`, the document EtcdIntentStore.load reads) without reading etcd at that moment.

Each VSI's value is kept as the store holds it, one JSON text, checked when it arrives and
decoded only by `intent()`: a change costs its own VSIs, the mirror roughly the size of the
values (docs/ha.md: following the store). `revision` is the store revision up to which every
change of the fabric's prefix was applied; `wait_for` waits for one (the election's)."""

import json
import threading
from collections.abc import Iterable

from app.store.base import INTENT_LISTS, intent_document

VSIS, LISTS = "vsis/", "lists/"


class IntentMirror:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._vsis: dict[str, bytes] = {}  # escaped VSI key (as in etcd) -> its records' JSON
        self._lists: dict[str, bytes] = {}
        self.revision = 0
        self.dropped = 0  # values that were not what the intent store writes

    def __len__(self) -> int:
        return len(self._vsis)

    def apply(self, changes: Iterable[tuple[str, bytes | None]]) -> None:
        """Changes under the intent's prefix: (name after it, value or None once deleted)."""
        with self._cond:
            for name, value in changes:
                self._apply(name, value)

    def reload(self, items: Iterable[tuple[str, bytes | None]]) -> None:
        """Everything under the intent's prefix at one revision (then `caught_up` with it)."""
        with self._cond:
            self._vsis.clear()
            self._lists.clear()
            for name, value in items:
                self._apply(name, value)

    def _apply(self, name: str, value: bytes | None) -> None:
        if name.startswith(VSIS):
            table, key = self._vsis, name[len(VSIS) :]
        elif name.startswith(LISTS) and name[len(LISTS) :] in INTENT_LISTS:
            table, key = self._lists, name[len(LISTS) :]
        else:
            self.dropped += 1
            return
        if value is None:
            table.pop(key, None)
            return
        try:
            valid = isinstance(json.loads(value), list)  # both a VSI's records and a list are
        except ValueError:
            valid = False
        if valid:
            table[key] = value
        else:  # what the leader would restore must not fail at takeover: counted and left out
            self.dropped += 1

    def caught_up(self, revision: int) -> None:
        """Every change up to `revision` is applied."""
        with self._cond:
            if revision > self.revision:
                self.revision = revision
                self._cond.notify_all()

    def wait_for(self, revision: int, timeout: float) -> bool:
        """Whether every change up to `revision` was applied within `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self.revision >= revision, timeout)

    def intent(self) -> dict | None:
        """The whole intent, as EtcdIntentStore.load gives it (VSIs in key order)."""
        with self._cond:
            vsis = list(self._vsis.items())
            lists = dict(self._lists)
        vsis.sort()
        return intent_document(
            [record for _, value in vsis for record in json.loads(value)],
            {name: json.loads(value) for name, value in lists.items()},
        )
