"""Following a fabric's prefix on etcd: one watch (app/store/etcd_watch.py) of everything under
it, each change handed to the table that keeps it in memory (app/controller/store_following.py
names them), the changes of one watch message together: etcd sends a transaction in one message,
so a group registration reaches the registry as one change.

A table follows the keys of one or more segments (`profiles/`, `vms/`, ...); the rest (the
switches, the leader's key, events-seq) is passed over. A change this controller wrote itself is
skipped (app/store/own_writes.py), and of several changes of one key in a message only the last
is handed over. When etcd compacted away what the watch still needed, every table is given all
it follows at one revision (`reload`) and the watch goes on from there. `on_progress(revision)`
says that every change up to `revision` was applied."""

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

from app.store.etcd_kv import EtcdKv
from app.store.etcd_watch import PrefixWatch
from app.store.own_writes import OwnWrites

LOG = logging.getLogger("evb_nms.store")

Change = tuple[str, str, bytes | None]  # segment, name under it, value (None: deleted)


class Table(Protocol):
    def apply(self, changes: list[Change]) -> None:
        """Changes of one message, one per key, in revision order."""

    def reload(self, items: list[Change]) -> None:
        """Everything stored under the table's segments, at one revision."""


class StoreFeed:
    def __init__(
        self,
        kv: EtcdKv,
        endpoints: Sequence[str],
        prefix: str,
        tables: Mapping[str, Table],
        own: OwnWrites,
        on_progress: Callable[[int], None],
    ):
        self._kv, self._endpoints = kv, endpoints
        self._prefix = prefix.rstrip("/") + "/"
        self._tables, self._own, self._on_progress = tables, own, on_progress
        self._batch: dict[tuple[str, str], bytes | None] = {}  # this message's, last per key
        self._watch: PrefixWatch | None = None
        self.applied = 0  # changes handed to the tables
        self.failed = 0  # of those, in batches a table failed to apply (logged)
        self.reloads = 0

    def read(self, segments: Iterable[str], revision: int) -> list[Change]:
        """What is stored under `segments` at `revision`."""
        return [
            (segment, key[len(self._prefix) + len(segment) + 1 :], value)
            for segment in segments
            for key, value, _ in self._kv.scan_prefix(f"{self._prefix}{segment}/", revision)
        ]

    def start(self, revision: int) -> None:
        """Follows every change after `revision` (the tables hold the store as it was there)."""
        self._watch = PrefixWatch(
            self._endpoints,
            self._prefix,
            revision,
            self._on_change,
            self.reload,
            on_batch=self._on_batch,
        )

    def _on_change(self, key: str, value: bytes | None, revision: int) -> None:
        segment, slash, name = key[len(self._prefix) :].partition("/")
        if not slash or segment not in self._tables or self._own.superseded(key, revision):
            return
        self._batch.pop((segment, name), None)  # the last change of a key, in its place
        self._batch[segment, name] = value

    def _on_batch(self, revision: int) -> None:
        batch, self._batch = self._batch, {}
        grouped: dict[Table, list[Change]] = {}
        for (segment, name), value in batch.items():
            grouped.setdefault(self._tables[segment], []).append((segment, name, value))
        for table, changes in grouped.items():
            self.applied += len(changes)
            try:
                table.apply(changes)
            except Exception:  # one table's bug must not stop the others following
                self.failed += len(changes)
                LOG.exception("following the store: %d changes failed", len(changes))
        self._own.passed(revision)
        self._on_progress(revision)

    def reload(self) -> int:
        """Every table anew at the revision now, which it returns (from the watch's thread after
        a compaction; a failed read raises, and the watch tries again)."""
        revision = self._kv.revision()
        segments: dict[Table, list[str]] = {}
        for segment, table in self._tables.items():
            segments.setdefault(table, []).append(segment)
        snapshots = [(table, self.read(names, revision)) for table, names in segments.items()]
        for table, items in snapshots:
            try:
                table.reload(items)
            except Exception:
                self.failed += len(items)
                LOG.exception("following the store: a reload of %d keys failed", len(items))
        self.reloads += 1
        self._own.passed(revision)
        self._on_progress(revision)
        return revision

    def stop(self) -> None:
        """Stops following (`start` goes on from a revision given)."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
