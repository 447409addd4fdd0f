"""Which role each Open vSwitch bridge gives each controller, and since when: ovs-vswitchd
writes every connection's role into its database (table Controller, columns target, role,
is_connected); `ovsdb-client monitor` pushes each change as it is committed, and a thread here
stamps it on arrival with time.perf_counter().

The times are those of the database, so they include ovs-vswitchd's delay in writing it there
(it commits connection status as it changes, a few ms) on top of the role change itself.
"""

import json
import subprocess
import threading
import time

DB = "unix:/var/run/openvswitch/db.sock"


def apply_update(rows: dict, update: dict, now: float) -> None:
    """One update of `ovsdb-client monitor --format=json` into rows: uuid -> {target, role,
    is_connected, since} (since: when its role last changed). Pure. A modified row comes as
    two: "old" with its uuid, then "new" with every column and an empty uuid."""
    headings = update.get("headings", [])
    previous = None
    for values in update.get("data", []):
        record = dict(zip(headings, values, strict=False))
        uuid, action = record.get("row") or previous, record.get("action")
        previous = uuid
        if action == "delete":
            rows.pop(uuid, None)
        elif action in ("initial", "insert", "new"):
            row = rows.setdefault(uuid, {"role": None, "since": now})
            for column in ("target", "role", "is_connected"):
                value = record.get(column)
                if isinstance(value, list):  # an empty OVSDB set, as JSON ["set", []]
                    value = None
                if column == "role" and value != row["role"]:
                    row["since"] = now
                row[column] = value


class OvsRoles:
    def __init__(self) -> None:
        self.rows: dict = {}
        self._lock = threading.Lock()
        self._proc = subprocess.Popen(
            [
                "ovsdb-client",
                "monitor",
                DB,
                "Open_vSwitch",
                "Controller",
                "target",
                "role",
                "is_connected",
                "--format=json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._proc.stdout:
            now = time.perf_counter()
            try:
                update = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                apply_update(self.rows, update, now)

    def master_since(self, target: str, bridges: int) -> float | None:
        """When the last of `bridges` bridges made `target` their MASTER (None: not all did)."""
        with self._lock:
            rows = [r for r in self.rows.values() if r.get("target") == target]
            if len(rows) < bridges or any(r["role"] != "master" for r in rows):
                return None
            return max(r["since"] for r in rows)

    def all_in_role(self, target: str, role: str, bridges: int) -> bool:
        """`bridges` bridges are connected to `target` and give it `role`."""
        with self._lock:
            rows = [r for r in self.rows.values() if r.get("target") == target]
            return len(rows) >= bridges and all(
                r.get("is_connected") is True and r["role"] == role for r in rows
            )

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._thread.join(5)
