"""SQLite store. One connection shared by the os-ken and REST threads behind a lock; every write
of what the controller accepted is its own committed transaction, so it survives a crash or
restart. Events are the exception: they are the controller's log, not its state, so they are
written behind (app/store/write_behind.py: a thread of their own, one commit per batch), never on
the path of a request; a read of the events writes the waiting ones first. The events table is
bounded: the writer deletes events older than ``event_max_age`` and beyond the newest
``event_max_rows`` (settings event_retention_days, event_retention_rows) at most every
PRUNE_INTERVAL, in chunks, so no delete holds the database long. The alarms and the location
history are written the same way (what the controller saw, bounded by their owners)."""

import json
import os
import sqlite3
import threading

from app.events import Event
from app.store.base import VM_FIELDS, RegistryWrite, StoreError
from app.store.write_behind import WriteBehind

# 2: profiles and vms; 3: fault subscriptions and maintenance; 4: VLAN pools; 5: the VMs' IPs,
# virtual network and host, and the inventory (data centers, clusters, hosts)
SCHEMA_VERSION = 5
EVENT_MAX_AGE = 30 * 86400.0  # seconds an event is kept
EVENT_MAX_ROWS = 500_000  # events kept at most (about 200 MB)
EVENT_PRUNE_CHUNK = 10_000  # rows deleted per transaction
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
CREATE INDEX IF NOT EXISTS events_ts ON events (ts);
-- A VM's own events (GET /v1/events?vsi=): the same expression as the query's, or no use.
CREATE INDEX IF NOT EXISTS events_vsi ON events (json_extract(detail, '$.vsi'));
CREATE TABLE IF NOT EXISTS alarms (
    key TEXT PRIMARY KEY,
    document TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS locations (
    vsi TEXT PRIMARY KEY,
    moved REAL NOT NULL,
    places TEXT NOT NULL
);
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
    updated REAL NOT NULL,
    ips TEXT,
    network TEXT,
    host TEXT
);
CREATE TABLE IF NOT EXISTS inventory (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE TABLE IF NOT EXISTS vlan_pools (
    tenant TEXT PRIMARY KEY,
    document TEXT NOT NULL
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
_VM_COLUMNS = VM_FIELDS
_VM_JSON = ("macs", "ips")  # lists, kept as JSON text
_VM_ADDED = ("ips", "network", "host")  # in schema 5: added to an older table
# "group" is an SQL keyword: the column is grp.
_VM_SQL_COLUMNS = ", ".join("grp" if column == "group" else column for column in _VM_COLUMNS)


class SqliteStore:
    def __init__(
        self,
        path: str,
        event_max_age: float = EVENT_MAX_AGE,
        event_max_rows: int = EVENT_MAX_ROWS,
    ):
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
            columns = {row["name"] for row in self._db.execute("PRAGMA table_info(vms)")}
            for column in _VM_ADDED:
                if column not in columns:
                    self._db.execute(f"ALTER TABLE vms ADD COLUMN {column} TEXT")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self.event_max_age, self.event_max_rows = event_max_age, event_max_rows
        self.events_pruned = 0
        # Events as rows, records as (statement, parameters): alarms, locations.
        self._writer = WriteBehind(self._write_batch, self.prune_events)

    @property
    def events_dropped(self) -> int:
        return self._writer.dropped

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
        self._writer.add_event(
            (event.ts, event.kind, event.switch, event.port, json.dumps(event.detail, default=str))
        )

    def flush_events(self) -> None:
        """Writes the queued events and records now, in one transaction."""
        self._writer.flush()

    def _write_batch(self, rows: list[tuple], records: list[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO events (ts, kind, switch, port, detail) VALUES (?, ?, ?, ?, ?)",
                    rows,
                )
                for statement, params in records:
                    self._db.execute(statement, params)
                self._db.execute("COMMIT")
            except sqlite3.Error:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def _queue_records(self, records: list[tuple[str, tuple]]) -> None:
        self._writer.add_records(records)

    def save_alarms(self, saved: list[tuple[str, dict]], removed: list[str]) -> None:
        """Queues alarms to write ((key, document)) and the keys of those to delete."""
        self._queue_records(
            [("DELETE FROM alarms WHERE key = ?", (key,)) for key in removed]
            + [
                (
                    "INSERT OR REPLACE INTO alarms (key, document) VALUES (?, ?)",
                    (key, json.dumps(d)),
                )
                for key, d in saved
            ]
        )

    def alarms(self) -> list[dict]:
        self.flush_events()
        return [json.loads(row["document"]) for row in self._read("SELECT document FROM alarms")]

    def save_locations(self, saved: list[tuple[str, float, list]], removed: list[str]) -> None:
        """Queues VSIs' location histories to write ((VSI key, when it last moved, places))
        and the VSI keys of those to delete."""
        self._queue_records(
            [("DELETE FROM locations WHERE vsi = ?", (vsi,)) for vsi in removed]
            + [
                (
                    "INSERT OR REPLACE INTO locations (vsi, moved, places) VALUES (?, ?, ?)",
                    (vsi, moved, json.dumps(places)),
                )
                for vsi, moved, places in saved
            ]
        )

    def locations(self) -> list[tuple[str, float, list]]:
        """Every VSI's location history, the least recently moved first."""
        self.flush_events()
        rows = self._read("SELECT vsi, moved, places FROM locations ORDER BY moved")
        return [(row["vsi"], row["moved"], json.loads(row["places"])) for row in rows]

    def prune_events(self) -> int:
        """Deletes the events more than event_max_age older than the newest one (the writer
        prunes when it has just written, so that is now, and a wrong clock cannot wipe the
        table) and those beyond the newest event_max_rows, a chunk per transaction; how many
        were deleted."""
        with self._lock:
            newest = self._db.execute("SELECT MAX(ts) FROM events").fetchone()[0]
        if newest is None:
            return 0
        oldest = newest - self.event_max_age
        deleted = 0
        for sql, param in (
            ("SELECT id FROM events WHERE ts < ? ORDER BY ts LIMIT ?", oldest),
            (
                "SELECT id FROM events WHERE id <= (SELECT MAX(id) FROM events) - ? "
                "ORDER BY id LIMIT ?",
                self.event_max_rows,
            ),
        ):
            while True:
                with self._lock:
                    count = self._db.execute(
                        f"DELETE FROM events WHERE id IN ({sql})", (param, EVENT_PRUNE_CHUNK)
                    ).rowcount
                deleted += count
                if count < EVENT_PRUNE_CHUNK:
                    break
        self.events_pruned += deleted
        return deleted

    def events(
        self,
        kind_prefix: str = "",
        after_id: int = 0,
        limit: int = 100,
        *,
        switch: str | None = None,
        tenant: str | None = None,
        vsi: str | None = None,
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
        if vsi is not None:
            sql += " AND json_extract(detail, '$.vsi') = ?"
            params.append(vsi)
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
            {
                **dict(zip(_VM_COLUMNS, row, strict=True)),
                **{column: json.loads(row[column] or "[]") for column in _VM_JSON},
            }
            for row in rows
        ]

    def inventory(self) -> list[dict]:
        return [
            json.loads(row["document"])
            for row in self._read("SELECT document FROM inventory ORDER BY kind, name")
        ]

    def vlan_pools(self) -> list[dict]:
        return [
            json.loads(row["document"])
            for row in self._read("SELECT document FROM vlan_pools ORDER BY tenant")
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
                    json.dumps(vm["macs"] if column == "macs" else vm.get(column) or [])
                    if column in _VM_JSON
                    else vm.get(column)
                    for column in _VM_COLUMNS
                )
                for vm in write.vms
            ],
        )
        self._db.executemany(
            "DELETE FROM inventory WHERE kind = ? AND name = ?", write.removed_inventory
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO inventory (kind, name, document) VALUES (?, ?, ?)",
            [(doc["kind"], doc["name"], json.dumps(doc)) for doc in write.inventory],
        )
        self._db.executemany(
            "DELETE FROM vlan_pools WHERE tenant = ?", [(tenant,) for tenant in write.removed_pools]
        )
        self._db.executemany(
            "INSERT OR REPLACE INTO vlan_pools (tenant, document) VALUES (?, ?)",
            [(pool["tenant"], json.dumps(pool)) for pool in write.pools],
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
        self._writer.close()
        with self._lock:
            self._db.close()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
