"""Maintenance mode for servers (OPNFV Doctor's maintenance flow): the operator announces work
on a server; the network stops admitting new VMs there, tells the VM manager which VMs to move
away, and says when the server is empty (drained) so that the work can start.

Pure: the caller persists the records (``as_dict``/``from_dict``) and calls ``poll`` with the
VMs forwarding now; ``poll`` returns the events to emit. A server is its edge port, named
``(switch, port)`` by bridge and port names, which survive restarts.
"""

from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any

from app.faults.alarms import VmPlace

ServerKey = tuple[str, str]  # (switch name, port name)


@dataclass(frozen=True)
class MaintenanceRecord:
    switch: str
    port: str
    reason: str
    since: float  # wall clock
    drained: bool = False  # the server.drained event was emitted

    @property
    def key(self) -> ServerKey:
        return (self.switch, self.port)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "MaintenanceRecord":
        return cls(
            data["switch"],
            data["port"],
            data["reason"],
            float(data["since"]),
            bool(data.get("drained", False)),
        )


class Maintenance:
    def __init__(self, records: Iterable[MaintenanceRecord] = ()) -> None:
        self._records = {r.key: r for r in records}

    def get(self, key: ServerKey) -> MaintenanceRecord | None:
        return self._records.get(key)

    def keys(self) -> set[ServerKey]:
        return set(self._records)

    def records(self) -> list[MaintenanceRecord]:
        return [self._records[k] for k in sorted(self._records)]

    def enter(self, key: ServerKey, reason: str, now: float) -> MaintenanceRecord:
        """Starts (or, with a new reason, updates) maintenance of a server."""
        old = self._records.get(key)
        record = (
            replace(old, reason=reason) if old else MaintenanceRecord(key[0], key[1], reason, now)
        )
        self._records[key] = record
        return record

    def put(self, record: MaintenanceRecord) -> None:
        """A record as another controller stored it."""
        self._records[record.key] = record

    def leave(self, key: ServerKey) -> MaintenanceRecord | None:
        return self._records.pop(key, None)

    def poll(self, vms: Iterable[VmPlace]) -> list[MaintenanceRecord]:
        """The servers in maintenance that have just become empty (each reported once per
        maintenance; a VM arriving again re-arms it)."""
        occupied = {(vm.switch, vm.port) for vm in vms}
        drained = []
        for key, record in self._records.items():
            empty = key not in occupied
            if empty and not record.drained:
                drained.append(replace(record, drained=True))
            elif not empty and record.drained:
                self._records[key] = replace(record, drained=False)
        for record in drained:
            self._records[record.key] = record
        return drained
