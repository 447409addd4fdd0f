"""What the controller needs from its persistent store: `Store` (registry, faults, switches,
events) and `IntentStorage` (the accepted associations, links and reflective-relay ports).
SQLite is the embedded default (sqlite_store.py, intent_store.py), etcd v3 the shared one
(etcd_store.py, etcd_intent.py); app/store/opening.py picks them from the settings."""

import json
from dataclasses import dataclass, field
from typing import Protocol

from app.events import Event


class StoreError(RuntimeError):
    """The store cannot be used (a newer schema, an unreachable or refusing etcd): the message
    says why."""


class Fenced(StoreError):
    """A write refused because its writer no longer leads (docs/ha.md): it must stop."""


# A VM registration's fields, as the registry writes them and the stores give them back.
VM_FIELDS = (
    "vsi_id",
    "tenant",
    "type_id",
    "type_version",
    "macs",
    "name",
    "group",
    "registered",
    "updated",
    "ips",
    "network",
    "host",
)
INTENT_LISTS = ("links", "rr_ports", "channels")


@dataclass(frozen=True)
class RegistryWrite:
    """One all-or-nothing change of the pushed profiles and VM registrations (app/registry).
    Profiles are their JSON documents (app/registry/documents.py), VMs their records as dicts
    (app/registry/vms.py VmRecord.document)."""

    profiles: tuple[dict, ...] = ()  # insert or replace, keyed by
    removed_profiles: tuple[tuple[int, int], ...] = ()  # (type_id, version)
    vms: tuple[dict, ...] = ()  # insert or replace, keyed by vsi_id
    removed_vms: tuple[str, ...] = ()
    pools: tuple[dict, ...] = ()  # VLAN pools {"tenant", "vlans"}: insert or replace
    removed_pools: tuple[str, ...] = ()  # tenants
    # The inventory (app/registry/inventory.py): {"kind", "name", ...}: insert or replace
    inventory: tuple[dict, ...] = ()
    removed_inventory: tuple[tuple[str, str], ...] = ()  # (kind, name)


@dataclass
class IntentChanges:
    """What changed in the controller's saved intent since the last save, written as one
    transaction (app/store/intent_store.py). `vsis`: VSI key (vsi_key) -> all its records
    (app/vdp/bridge.py export_vsi), [] once it is gone; `links`, `rr_ports` and `channels` (the
    S-channels of the server ports, [dpid, port, SCID, S-VID]): the whole list, when it changed
    (a few per switch)."""

    vsis: dict[str, list[dict]] = field(default_factory=dict)
    links: list[list[int]] | None = None
    rr_ports: list[list[int]] | None = None
    channels: list[list[int]] | None = None


def vsi_key(vsi_format: int, value_hex: str) -> str:
    """A VSI's key in the saved intent, from its VSIID format and octets."""
    return f"{vsi_format}:{value_hex}"


def compact_json(value) -> str:
    """A saved value's JSON: compact, keys sorted (the same value, the same text)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def intent_document(vsis: list[dict], lists: dict[str, list]) -> dict | None:
    """The whole intent as IntentStorage.load gives it, from every VSI's records (in VSI key
    order) and the saved lists; None when nothing was ever saved."""
    if not vsis and not lists:
        return None
    return {"version": 1, "vsis": vsis, **{name: lists.get(name, []) for name in INTENT_LISTS}}


class IntentStorage(Protocol):
    def load(self) -> dict | None:
        """The whole intent ({"version", "vsis", "links", "rr_ports", "channels"}), None when
        nothing was ever saved."""

    def save(self, changes: IntentChanges) -> None:
        """Writes the changes whole (one transaction) or, on any error, none of them."""

    def close(self) -> None: ...


class Store(Protocol):
    def record_switch(self, dpid: str, name: str, ts: float) -> None: ...

    def switches(self) -> list[dict]: ...

    def append_event(self, event: Event) -> None:
        """Queues the event (the caller never waits for the disk or the network)."""

    def flush_events(self) -> None:
        """Writes the queued events and records now."""

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
        """Events with id > after_id in id order; ``tenant`` matches detail["tenant"], ``vsi``
        detail["vsi"] (a VSI ID as events write it); with
        ``latest`` the last ``limit`` of them rather than the first."""

    def profiles(self) -> list[dict]:
        """The pushed profile documents, by (type_id, version)."""

    def vms(self) -> list[dict]:
        """The VM registrations, by vsi_id."""

    def vlan_pools(self) -> list[dict]:
        """The VLAN pools assigned over the API ({"tenant", "vlans"}), by tenant."""

    def inventory(self) -> list[dict]:
        """The data centers, clusters and hosts ({"kind", "name", ...}), by kind and name."""

    def write_registry(self, write: RegistryWrite) -> None:
        """Applies the whole write or, on any error, none of it."""

    def save_alarms(self, saved: list[tuple[str, dict]], removed: list[str]) -> None:
        """Alarms to write, as (key, document), and the keys of those to delete; queued."""

    def alarms(self) -> list[dict]:
        """The alarm documents kept (app/faults/alarms.py Alarm.document)."""

    def save_locations(self, saved: list[tuple[str, float, list]], removed: list[str]) -> None:
        """Location histories to write, as (VSI key, last move, places), and the VSI keys of
        those to delete; queued."""

    def locations(self) -> list[tuple[str, float, list]]:
        """The location histories kept, the least recently moved first."""

    def subscriptions(self) -> list[dict]:
        """The fault subscriptions (app/faults/subscriptions.py Subscription.as_dict)."""

    def save_subscription(self, document: dict) -> None: ...

    def delete_subscription(self, sub_id: str) -> None: ...

    def maintenance(self) -> list[dict]:
        """The servers in maintenance (app/faults/maintenance.py MaintenanceRecord.as_dict)."""

    def save_maintenance(self, document: dict) -> None: ...

    def delete_maintenance(self, switch: str, port: str) -> None: ...

    def close(self) -> None: ...
