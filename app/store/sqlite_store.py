"""SQLite store. One connection shared by the os-ken and REST threads behind a lock; every write
is its own committed transaction, so what the controller accepted survives a crash or restart."""
import json
import os
import sqlite3
import threading

from app.events import Event

SCHEMA_VERSION = 1
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
"""


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
            raise StoreError(f"{path}: schema version {version} is newer than this controller "
                             f"({SCHEMA_VERSION}); refusing to touch it")
        with self._lock:
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
            (dpid, name, ts, ts))

    def switches(self) -> list[dict]:
        return [dict(row) for row in self._read("SELECT * FROM switches ORDER BY dpid")]

    def append_event(self, event: Event) -> None:
        self._write("INSERT INTO events (ts, kind, switch, port, detail) VALUES (?, ?, ?, ?, ?)",
                    (event.ts, event.kind, event.switch, event.port,
                     json.dumps(event.detail, default=str)))

    def events(self, kind_prefix: str = "", after_id: int = 0, limit: int = 100) -> list[dict]:
        rows = self._read(
            "SELECT * FROM events WHERE id > ? AND kind LIKE ? ESCAPE '\\' ORDER BY id LIMIT ?",
            (after_id, _like_prefix(kind_prefix), limit))
        return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _like_prefix(prefix: str) -> str:
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"
