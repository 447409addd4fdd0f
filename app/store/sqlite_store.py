"""SQLite store. One connection shared by the os-ken and REST threads behind a lock; every write
of what the controller accepted is its own committed transaction, so it survives a crash or
restart. Events are the exception: they are the controller's log, not its state, so they are
written by a thread of their own in batches (one commit per batch, at most EVENT_FLUSH_INTERVAL
late), never on the path of a request; a read of the events writes the waiting ones first."""

import json
import logging
import os
import sqlite3
import threading
from collections import deque

from app.events import Event
from app.store.base import RegistryWrite

LOG = logging.getLogger("evb_nms.store")

SCHEMA_VERSION = 3  # 2: profiles and vms; 3: fault subscriptions and maintenance
EVENT_FLUSH_INTERVAL = 0.1  # seconds an event may wait for its batch
EVENT_BACKLOG = 100_000  # events waiting at most; beyond, the oldest are dropped and counted
SCHEMA = """
CREATE TABLE IF NOT EXISTS switches (
    dpid TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    switch TEXT,
    port TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events (kind);
CREATE TABLE IF NOT EXISTS profiles (
    type_id INTEGER NOT NULL,
    version INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (type_id, version)
);
CREATE TABLE IF NOT EXISTS vms (
    vsi_id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL,
    type_id INTEGER NOT NULL,
    type_version INTEGER NOT NULL,
    macs TEXT NOT NULL,
    name TEXT,
    grp TEXT,
    registered REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS maintenance (
    switch TEXT NOT NULL,
    port TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (switch, port)
);
"""
_VM_COLUMNS = (
    "vsi_id",
    "tenant",
    "type_id",
    "type_version",
    "macs",
    "name",
    "group",
    "registered",
    "updated",
)
# "group" is an SQL keyword: the column is grp.
_VM_SQL_COLUMNS = ", ".join("grp" if column == "group" else column for column in _VM_COLUMNS)


class StoreError(RuntimeError):
    pass


class SqliteStore:
    def __init__(self, path: str):
        if path != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{path}: schema version {version} is newer than this controller "
                f"({SCHEMA_VERSION}); refusing to touch it"
            )
        with self._lock:
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._events: deque[tuple] = deque()
        self._events_ready = threading.Condition()
        self._closing = False
        self.events_dropped = 0
        self._event_writer = threading.Thread(
            target=self._write_events, name="event-writer", daemon=True
        )
        self._event_writer.start()

    def _write(self, sql: str, params: tuple) -> None:
        with self._lock:
            self._db.execute(sql, params)

    def _read(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def record_switch(self, dpid: str, name: str, ts: float) -> None:
        self._write(
            "INSERT INTO switches (dpid, name, first_seen, last_seen) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(dpid) DO UPDATE SET name=excluded.name, last_seen=excluded.last_seen",
            (dpid, name, ts, ts),
        )

    def switches(self) -> list[dict]:
        return [dict(row) for row in self._read("SELECT * FROM switches ORDER BY dpid")]

    def append_event(self, event: Event) -> None:
        """Queues the event for the writer thread (the caller never waits for the disk)."""
        row = (
            event.ts,
            event.kind,
            event.switch,
            event.port,
            json.dumps(event.detail, default=str),
        )
        with self._events_ready:
            if len(self._events) >= EVENT_BACKLOG:
                self._events.popleft()
                self.events_dropped += 1
            self._events.append(row)
            if len(self._events) == 1:
                self._events_ready.notify()

    def flush_events(self) -> None:
        """Writes the queued events now, in one transaction. Taking and writing happen under
        the database lock, so a reader that flushes first sees every event emitted before."""
        with self._lock:
            with self._events_ready:
                rows, self._events = list(self._events), deque()
            if not rows:
                return
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO events (ts, kind, switch, port, detail) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self.events_dropped += len(rows)
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _write_events(self) -> None:
        while True:
            with self._events_ready:
                while not self._events and not self._closing:
                    self._events_ready.wait()
                if self._closing and not self._events:
                    return
            try:
                self.flush_events()
            except sqlite3.Error:  # a full disk must not end the thread: counted, logged
                LOG.exception("events could not be written")
            with self._events_ready:  # let a burst gather into one batch
                self._events_ready.wait_for(lambda: self._closing, EVENT_FLUSH_INTERVAL)

    def events(
        self,
        kind_prefix: str = "",
        after_id: int = 0,
        limit: int = 100,
        *,
        switch: str | None = None,
        tenant: str | None = None,
        latest: bool = False,
    ) -> list[dict]:
        self.flush_events()
        sql = "SELECT * FROM events WHERE id > ? AND kind LIKE ? ESCAPE '\\'"
        params: list = [after_id, _like_prefix(kind_prefix)]
        if switch is not None:
            sql += " AND switch = ?"
            params.append(switch)
        if tenant is not None:
            sql += " AND json_extract(detail, '$.tenant') = ?"
            params.append(tenant)
        order = " ORDER BY id DESC LIMIT ?" if latest else " ORDER BY id LIMIT ?"
        rows = self._read(sql + order, (*params, limit))
        rows = sorted(rows, key=lambda row: row["id"]) if latest else rows
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]

    def profiles(self) -> list[dict]:
        return [
            json.loads(row["document"])
            for row in self._read("SELECT document FROM profiles ORDER BY type_id, version")
        ]

    def vms(self) -> list[dict]:
        rows = self._read(f"SELECT {_VM_SQL_COLUMNS} FROM vms ORDER BY vsi_id")
        return [
            {**dict(zip(_VM_COLUMNS, row, strict=True)), "macs": json.loads(row["macs"])}
            for row in rows
        ]

    def write_registry(self, write: RegistryWrite) -> None:
        with self._lock:
            # One transaction: a group registration is stored whole or not at all.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._registry_statements(write)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _registry_statements(self, write: RegistryWrite) -> None:
        self._db.executemany(
            "DELETE FROM profiles WHERE type_id = ? AND version = ?", write.removed_profiles
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO profiles (type_id, version, tenant, document) "
            "VALUES (?, ?, ?, ?)",
            [
                (doc["type_id"], doc["version"], doc["tenant"], json.dumps(doc))
                for doc in write.profiles
            ],
        )
        self._db.executemany(
            "DELETE FROM vms WHERE vsi_id = ?", [(vsi_id,) for vsi_id in write.removed_vms]
        )
        self._db.executemany(
            f"INSERT OR REPLACE INTO vms ({_VM_SQL_COLUMNS}) "
            f"VALUES ({', '.join('?' * len(_VM_COLUMNS))})",
            [
                tuple(
                    json.dumps(vm["macs"]) if column == "macs" else vm.get(column)
                    for column in _VM_COLUMNS
                )
                for vm in write.vms
            ],
        )

    def subscriptions(self) -> list[dict]:
        return [
            json.loads(row["document"])
            for row in self._read("SELECT document FROM subscriptions ORDER BY rowid")
        ]

    def save_subscription(self, document: dict) -> None:
        self._write(
            "INSERT OR REPLACE INTO subscriptions (id, document) VALUES (?, ?)",
            (document["id"], json.dumps(document)),
        )

    def delete_subscription(self, sub_id: str) -> None:
        self._write("DELETE FROM subscriptions WHERE id = ?", (sub_id,))

    def maintenance(self) -> list[dict]:
        return [
            json.loads(row["document"])
            for row in self._read("SELECT document FROM maintenance ORDER BY switch, port")
        ]

    def save_maintenance(self, document: dict) -> None:
        self._write(
            "INSERT OR REPLACE INTO maintenance (switch, port, document) VALUES (?, ?, ?)",
            (document["switch"], document["port"], json.dumps(document)),
        )

    def delete_maintenance(self, switch: str, port: str) -> None:
        self._write("DELETE FROM maintenance WHERE switch = ? AND port = ?", (switch, port))

    def close(self) -> None:
        with self._events_ready:
            self._closing = True
            self._events_ready.notify_all()
        self._event_writer.join()
        self.flush_events()
        with self._lock:
            self._db.close()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
