"""The controller's accepted intent (associations, links, reflective-relay ports) as one JSON
document in the SQLite database, replaced atomically on every change and read back at start, so
that nothing the controller accepted is lost when it restarts."""
import json
import sqlite3
import threading
from pathlib import Path


class IntentStore:
    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # saved before the station hears "yes"
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute("CREATE TABLE IF NOT EXISTS intent "
                         "(id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)")
        self._lock = threading.Lock()
        self._last: str | None = None

    def load(self) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM intent WHERE id = 1").fetchone()
            self._last = row[0] if row else None
        return json.loads(row[0]) if row else None

    def save(self, document: dict) -> None:
        """Writes the document unless it is the one written last (a refusal, a link seen
        again: no change, no disk write)."""
        body = json.dumps(document, separators=(",", ":"), sort_keys=True)
        with self._lock:
            if body == self._last:
                return
            self._last = body
            self._db.execute("INSERT INTO intent (id, body) VALUES (1, ?) "
                             "ON CONFLICT (id) DO UPDATE SET body = excluded.body", (body,))

    def close(self) -> None:
        with self._lock:
            self._db.close()
