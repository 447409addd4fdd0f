"""The controller's store on etcd v3 (--store etcd; docs/ha.md, Store): the same things as
SqliteStore, one JSON value per key under the prefix (``/evb-nms/<fabric>``):

    schema                          this layout's version (a newer one is left alone)
    switches/<dpid>                 {"dpid", "name", "first_seen", "last_seen"}
    profiles/<type_id>/<version>    a pushed profile's document
    vms/<vsi_id>                    a VM registration (VM_FIELDS)
    pools/<tenant>                  a VLAN pool {"tenant", "vlans"}
    subscriptions/<id>              a fault subscription (listed in the order last written)
    maintenance/<switch>/<port>     a server in maintenance
    alarms/<key>, locations/<vsi>   what the controller saw (written behind)
    events/<id, 20 digits>          {"id", "ts", "kind", "switch", "port", "detail"}
    events-seq                      the last event id given

(each name escaped as one key segment). What the controller accepts is written at once, one
transaction a call: a registry write whole or not at all. Events, alarms and locations are
written behind as with SQLite (app/store/write_behind.py): events take their ids from
events-seq in the transaction that writes them, on the condition that nobody else took some
meanwhile, so ids stay unique and in order with several writers. Which events a query wants is
decided by an index in memory (app/store/event_index.py), loaded at start; only those are read.
"""

import json
from collections.abc import Iterable

from app.events import Event
from app.store.base import VM_FIELDS, RegistryWrite, StoreError, compact_json
from app.store.etcd_kv import (
    DEFAULT_TXN_OPS,
    EtcdKv,
    delete,
    get,
    key_part,
    put,
    same_mod_revision,
    split,
    values,
)
from app.store.event_index import EventIndex
from app.store.own_writes import OwnWrites
from app.store.sqlite_store import EVENT_MAX_AGE, EVENT_MAX_ROWS, EVENT_PRUNE_CHUNK
from app.store.write_behind import WriteBehind

SCHEMA_VERSION = 1
SEQ_RETRIES = 10  # another writer took the next ids this many times in a row: give up


def _value(document) -> bytes:
    return compact_json(document).encode()


class EtcdStore:
    def __init__(
        self,
        kv: EtcdKv,
        prefix: str,
        event_max_age: float = EVENT_MAX_AGE,
        event_max_rows: int = EVENT_MAX_ROWS,
    ):
        self._kv, self._prefix = kv, prefix.rstrip("/") + "/"
        # Read first: whatever this controller loads at start is at this revision or later, so
        # following the store from it misses nothing (app/controller/store_following.py).
        self.opened_revision = kv.revision()
        # Set while the store is followed: our writes, whose echoes the watch skips.
        self.own_writes: OwnWrites | None = None
        self._check_schema()
        self.event_max_age, self.event_max_rows = event_max_age, event_max_rows
        self.events_pruned = 0
        self._seq_key = self._prefix + "events-seq"
        self._seq, self._seq_revision = self._read_seq()
        self.reload_events(
            json.loads(value) for _, value, _ in self._kv.scan_prefix(self._prefix + "events/")
        )
        # Events as (ts, kind, switch, port, detail JSON), records as (key, value or None).
        self._writer = WriteBehind(self._write_batch, self.prune_events)

    @property
    def events_dropped(self) -> int:
        return self._writer.dropped

    def _key(self, table: str, *names) -> str:
        return self._prefix + table + "/" + "/".join(key_part(name) for name in names)

    def _check_schema(self) -> None:
        key = self._prefix + "schema"
        found = self._kv.get(key)
        if found is None:
            self._kv.txn([put(key, str(SCHEMA_VERSION).encode())], [same_mod_revision(key, 0)])
        elif int(found[0]) > SCHEMA_VERSION:
            raise StoreError(
                f"etcd {self._prefix}: schema version {int(found[0])} is newer than this "
                f"controller ({SCHEMA_VERSION}); refusing to touch it"
            )

    def _documents(self, table: str) -> list[dict]:
        return [json.loads(value) for _, value, _ in self._kv.scan_prefix(self._key(table, ""))]

    def _commit(self, changes: dict[str, bytes | None]) -> None:
        """One transaction: the keys with a value put, the others deleted."""
        if changes:
            self._txn(
                list(changes),
                [
                    delete(key) if value is None else put(key, value)
                    for key, value in changes.items()
                ],
            )

    def _txn(self, keys: list[str], ops: list[dict]) -> None:
        """A transaction of puts and deletes of `keys`, noted as ours while followed."""
        own = self.own_writes
        if own is None:
            self._kv.txn(ops)
        else:
            own.write(keys, lambda: int(self._kv.txn(ops)["header"]["revision"]))

    # switches ---------------------------------------------------------------------------
    def record_switch(self, dpid: str, name: str, ts: float) -> None:
        key = self._key("switches", dpid)
        found = self._kv.get(key)
        first_seen = json.loads(found[0])["first_seen"] if found else ts
        self._commit(
            {key: _value({"dpid": dpid, "name": name, "first_seen": first_seen, "last_seen": ts})}
        )

    def switches(self) -> list[dict]:
        return self._documents("switches")

    # events -----------------------------------------------------------------------------
    def append_event(self, event: Event) -> None:
        """Queues the event for the writer thread (the caller never waits for etcd)."""
        self._writer.add_event(
            (event.ts, event.kind, event.switch, event.port, json.dumps(event.detail, default=str))
        )

    def flush_events(self) -> None:
        self._writer.flush()

    def _write_batch(self, rows: list[tuple], records: list[tuple[str, bytes | None]]) -> None:
        events = [
            {"ts": ts, "kind": kind, "switch": switch, "port": port, "detail": json.loads(detail)}
            for ts, kind, switch, port, detail in rows
        ]
        # Chunks that fit etcd's default limits, one operation left for events-seq.
        weights = [put(self._event_key(0), _value(event)) for event in events]
        start = 0
        for chunk in split(weights, DEFAULT_TXN_OPS - 1):
            self._append(events[start : start + len(chunk)])
            start += len(chunk)
        latest: dict[str, bytes | None] = {}
        for key, value in records:  # one operation a key: the last one written
            latest.pop(key, None)
            latest[key] = value
        keys = list(latest)
        start = 0
        for chunk in split(
            [delete(key) if value is None else put(key, value) for key, value in latest.items()],
            DEFAULT_TXN_OPS,
        ):
            self._txn(keys[start : start + len(chunk)], chunk)
            start += len(chunk)

    def _event_key(self, event_id: int) -> str:
        return f"{self._prefix}events/{event_id:020d}"

    def _read_seq(self) -> tuple[int, int]:
        found = self._kv.get(self._seq_key)
        return (int(found[0]), found[1]) if found else (0, 0)

    def _append(self, events: list[dict]) -> None:
        """Writes `events` with the next ids, in one transaction that also moves events-seq."""
        for _ in range(SEQ_RETRIES):
            first = self._seq + 1
            documents = [{"id": first + n, **event} for n, event in enumerate(events)]
            response = self._kv.txn(
                [put(self._seq_key, str(self._seq + len(events)).encode())]
                + [put(self._event_key(d["id"]), _value(d)) for d in documents],
                [same_mod_revision(self._seq_key, self._seq_revision)],
            )
            if response.get("succeeded"):
                self._seq += len(events)
                self._seq_revision = int(response["header"]["revision"])
                for document in documents:
                    self._index.add(document["id"], document)
                return
            self._seq, self._seq_revision = self._read_seq()  # another writer took ids
        raise StoreError(f"etcd {self._seq_key}: taken by other writers {SEQ_RETRIES} times")

    def prune_events(self) -> int:
        """Deletes the events beyond the retention (EventIndex.last_to_prune), EVENT_PRUNE_CHUNK
        ids per transaction; how many were deleted."""
        cut = self._index.last_to_prune(self.event_max_age, self.event_max_rows)
        if cut is None:
            return 0
        first = self._index.first_id()
        for low in range(first, cut + 1, EVENT_PRUNE_CHUNK):
            high = min(low + EVENT_PRUNE_CHUNK, cut + 1)
            self._kv.txn([delete(self._event_key(low), self._event_key(high))])
        deleted = self._index.drop_through(cut)
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
        ids = self._index.select(kind_prefix, after_id, limit, switch, tenant, vsi, latest)
        found = []
        for start in range(0, len(ids), DEFAULT_TXN_OPS):
            chunk = ids[start : start + DEFAULT_TXN_OPS]
            response = self._kv.txn([get(self._event_key(event_id)) for event_id in chunk])
            found += [json.loads(value) for value in values(response) if value is not None]
        return found

    # what the controller saw, written behind --------------------------------------------
    def save_alarms(self, saved: list[tuple[str, dict]], removed: list[str]) -> None:
        self._writer.add_records(
            [(self._key("alarms", key), None) for key in removed]
            + [(self._key("alarms", key), _value(document)) for key, document in saved]
        )

    def alarms(self) -> list[dict]:
        self.flush_events()
        return self._documents("alarms")

    def save_locations(self, saved: list[tuple[str, float, list]], removed: list[str]) -> None:
        self._writer.add_records(
            [(self._key("locations", vsi), None) for vsi in removed]
            + [
                (self._key("locations", vsi), _value({"vsi": vsi, "moved": moved, "places": p}))
                for vsi, moved, p in saved
            ]
        )

    def locations(self) -> list[tuple[str, float, list]]:
        self.flush_events()
        kept = sorted(self._documents("locations"), key=lambda d: d["moved"])
        return [(d["vsi"], d["moved"], d["places"]) for d in kept]

    # the registry -----------------------------------------------------------------------
    def profiles(self) -> list[dict]:
        return sorted(self._documents("profiles"), key=lambda d: (d["type_id"], d["version"]))

    def vms(self) -> list[dict]:
        return sorted(self._documents("vms"), key=lambda d: d["vsi_id"])

    def vlan_pools(self) -> list[dict]:
        return sorted(self._documents("pools"), key=lambda d: d["tenant"])

    def inventory(self) -> list[dict]:
        return sorted(self._documents("inventory"), key=lambda d: (d["kind"], d["name"]))

    def write_registry(self, write: RegistryWrite) -> None:
        """One transaction, built whole before it is sent: a bad document sends nothing."""
        changes: dict[str, bytes | None] = {}
        for type_id, version in write.removed_profiles:
            changes[self._key("profiles", type_id, version)] = None
        for doc in write.profiles:
            changes[self._key("profiles", doc["type_id"], doc["version"])] = _value(doc)
        for vsi_id in write.removed_vms:
            changes[self._key("vms", vsi_id)] = None
        for vm in write.vms:
            record = {field: vm.get(field) for field in VM_FIELDS}
            record["ips"] = list(vm.get("ips") or [])
            changes[self._key("vms", vm["vsi_id"])] = _value({**record, "macs": vm["macs"]})
        for tenant in write.removed_pools:
            changes[self._key("pools", tenant)] = None
        for pool in write.pools:
            changes[self._key("pools", pool["tenant"])] = _value(pool)
        for kind, name in write.removed_inventory:
            changes[self._key("inventory", kind, name)] = None
        for doc in write.inventory:
            changes[self._key("inventory", doc["kind"], doc["name"])] = _value(doc)
        self._commit(changes)

    # faults -----------------------------------------------------------------------------
    def subscriptions(self) -> list[dict]:
        listed = self._kv.scan_prefix(self._key("subscriptions", ""))
        # In the order last written, as SQLite's INSERT OR REPLACE lists them.
        return [json.loads(value) for _, value, _ in sorted(listed, key=lambda kv: kv[2])]

    def save_subscription(self, document: dict) -> None:
        self._commit({self._key("subscriptions", document["id"]): _value(document)})

    def delete_subscription(self, sub_id: str) -> None:
        self._commit({self._key("subscriptions", sub_id): None})

    def maintenance(self) -> list[dict]:
        return sorted(self._documents("maintenance"), key=lambda d: (d["switch"], d["port"]))

    def save_maintenance(self, document: dict) -> None:
        key = self._key("maintenance", document["switch"], document["port"])
        self._commit({key: _value(document)})

    def delete_maintenance(self, switch: str, port: str) -> None:
        self._commit({self._key("maintenance", switch, port): None})

    # what other controllers write (app/controller/store_following.py) ---------------------
    def follow_events(self, written: Iterable[dict], removed: Iterable[int]) -> None:
        """Events other controllers wrote or pruned, into the index (ours are in it already)."""
        for event in written:
            self._index.add(event["id"], event)
        for event_id in removed:
            self._index.discard(event_id)

    def reload_events(self, events: Iterable[dict]) -> None:
        """The index anew, from every event kept."""
        index = EventIndex()
        for event in events:
            index.add(event["id"], event)
        self._index = index

    def close(self) -> None:
        self._writer.close()
        self._kv.close()
