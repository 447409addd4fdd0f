"""The controller's accepted intent (associations, links, reflective-relay ports, S-channels) in
the SQLite database: a row per VSI and one per list (links, RR ports, S-channels), changed in
one transaction per save and read back at start, so that nothing the controller accepted is lost
when it restarts.

A save writes what changed (app/control_plane.py IntentChanges), never the whole intent: the
disk work of a request is its own VSIs' rows, and requests handled together share one commit
(one fsync). A database written by an older controller (one JSON document in table `intent`) is
converted on open.
"""

import json
import sqlite3
import threading
from pathlib import Path

from app.store.base import (
    INTENT_LISTS,
    IntentChanges,
    compact_json,
    intent_document,
    vsi_key,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS intent_vsis (vsi TEXT PRIMARY KEY, records TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS intent_lists (name TEXT PRIMARY KEY, body TEXT NOT NULL);
"""


class IntentStore:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # saved before the station hears "yes"
        self._db.execute("PRAGMA busy_timeout=5000")
        self._lock = threading.Lock()
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._convert_document()

    def _convert_document(self) -> None:
        """The single-document table of older versions becomes rows (once)."""
        if not self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'intent'"
        ).fetchone():
            return
        row = self._db.execute("SELECT body FROM intent WHERE id = 1").fetchone()
        document = json.loads(row[0]) if row else {}
        by_vsi: dict[str, list] = {}
        for record in document.get("vsis", []):
            by_vsi.setdefault(vsi_key(*record["vsi_id"]), []).append(record)
        self._write(
            IntentChanges(by_vsi, document.get("links", []), document.get("rr_ports", [])),
            drop_document=True,
        )

    def load(self) -> dict | None:
        with self._lock:
            vsis = [
                record
                for (body,) in self._db.execute("SELECT records FROM intent_vsis ORDER BY vsi")
                for record in json.loads(body)
            ]
            lists = {
                name: json.loads(body)
                for name, body in self._db.execute("SELECT name, body FROM intent_lists")
            }
        return intent_document(vsis, lists)

    def save(self, changes: IntentChanges) -> None:
        with self._lock:
            self._write(changes)

    def _write(self, changes: IntentChanges, drop_document: bool = False) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            for vsi, records in changes.vsis.items():
                if records:
                    db.execute(
                        "INSERT INTO intent_vsis (vsi, records) VALUES (?, ?) ON CONFLICT "
                        "(vsi) DO UPDATE SET records = excluded.records",
                        (vsi, compact_json(records)),
                    )
                else:
                    db.execute("DELETE FROM intent_vsis WHERE vsi = ?", (vsi,))
            for name in INTENT_LISTS:
                value = getattr(changes, name)
                if value is not None:
                    db.execute(
                        "INSERT INTO intent_lists (name, body) VALUES (?, ?) ON CONFLICT "
                        "(name) DO UPDATE SET body = excluded.body",
                        (name, compact_json(value)),
                    )
            if drop_document:
                db.execute("DROP TABLE intent")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()
