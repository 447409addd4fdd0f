"""A controller's caches following the store that other controllers write (--store etcd;
docs/ha.md, "Following the store"). One watch of the fabric's prefix (app/store/etcd_feed.py)
hands each change to whoever keeps it in memory here, as if it had been made here, minus the
store's write and the events (its writer made both):

    profiles/ vms/ pools/    the registry (Registry.follow): swapped in, the controller told
    inventory/               the registry's inventory (data centers, clusters, hosts)
    subscriptions/           the fault subscribers: webhooks opened or closed, one pool
    maintenance/ alarms/     the fault monitor
    events/                  the event index of GET /v1/events (EtcdStore)
    intent/                  IntentMirror: the intent a controller taking over restores

This module turns etcd's keys and JSON values into their owners' terms; a value no controller
writes is counted (`dropped`) and logged, never applied. The watch's thread applies the changes,
each owner under its own lock, as the REST calls do: not under the app's lock, which the
registry takes only after its own (it hands its changes to the controller)."""

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import unquote

from app.config import Settings
from app.faults.alarms import Alarm
from app.faults.maintenance import MaintenanceRecord
from app.faults.monitor import FaultMonitor
from app.faults.subscriptions import Subscription
from app.policy.errors import PolicyError
from app.policy.profile import VsiTypeKey
from app.registry.registry import Registry
from app.store.base import RegistryWrite
from app.store.etcd_feed import Change, StoreFeed
from app.store.etcd_kv import Compacted, EtcdKv
from app.store.etcd_store import EtcdStore
from app.store.intent_mirror import IntentMirror
from app.store.own_writes import OwnWrites

LOG = logging.getLogger("evb_nms.store")
INTENT = "intent"
REGISTRY_SEGMENTS = ("profiles", "vms", "pools", "inventory")
_BAD = (ValueError, LookupError, TypeError, AttributeError, PolicyError)


class Followed(Protocol):
    """What of the controller (app/controller/evb_app.py EvbApp) follows the store."""

    settings: Settings
    store: Any  # an EtcdStore
    registry: Registry
    monitor: FaultMonitor


def _document(value: bytes) -> dict:
    document = json.loads(value)
    if not isinstance(document, dict):
        raise TypeError(f"expected a JSON object, got {type(document).__name__}")
    return document


class _Table:
    dropped = 0

    def _drop(self, segment: str, name: str, err: Exception) -> None:
        self.dropped += 1
        LOG.warning("following the store: %s/%s left out, not valid: %s", segment, name, err)


class _Registry(_Table):
    """profiles/<type_id>/<version>, vms/<vsi_id>, pools/<tenant>, inventory/<kind>/<name>: one
    RegistryWrite a batch, so a group registration is one change of the registry."""

    def __init__(self, registry: Registry):
        self._registry = registry

    def apply(self, changes: list[Change]) -> None:
        self._follow(changes, whole=False)

    def reload(self, items: list[Change]) -> None:
        self._follow(items, whole=True)

    def _follow(self, changes: list[Change], whole: bool) -> None:
        written: dict[str, list[dict]] = {s: [] for s in REGISTRY_SEGMENTS}
        removed: dict[str, list] = {s: [] for s in REGISTRY_SEGMENTS}
        for segment, name, value in changes:
            try:
                if value is not None:
                    written[segment].append(_document(value))
                elif segment == "profiles":
                    type_id, version = name.split("/")
                    key = VsiTypeKey(int(unquote(type_id)), int(unquote(version)))
                    removed[segment].append((key.type_id, key.version))
                elif segment == "inventory":
                    kind, item = name.split("/")
                    removed[segment].append((unquote(kind), unquote(item)))
                else:
                    removed[segment].append(unquote(name))
            except _BAD as err:
                self._drop(segment, name, err)
        self.dropped += self._registry.follow(
            RegistryWrite(
                profiles=tuple(written["profiles"]),
                removed_profiles=tuple(removed["profiles"]),
                vms=tuple(written["vms"]),
                removed_vms=tuple(removed["vms"]),
                pools=tuple(written["pools"]),
                removed_pools=tuple(removed["pools"]),
                inventory=tuple(written["inventory"]),
                removed_inventory=tuple(removed["inventory"]),
            ),
            whole=whole,
        )


class _Keyed(_Table):
    """A segment whose keys name one thing each: `follow({key: thing or None}, whole=)`."""

    def __init__(
        self,
        key: Callable[[str], Any],
        parse: Callable[[dict], Any],
        follow: Callable[..., None],
    ):
        self._key, self._parse, self._follow = key, parse, follow

    def apply(self, changes: list[Change]) -> None:
        self._follow(self._stored(changes), whole=False)

    def reload(self, items: list[Change]) -> None:
        self._follow(self._stored(items), whole=True)

    def _stored(self, changes: list[Change]) -> dict:
        stored = {}
        for segment, name, value in changes:
            try:
                stored[self._key(name)] = None if value is None else self._parse(_document(value))
            except _BAD as err:
                self._drop(segment, name, err)
        return stored


def _server(name: str) -> tuple[str, str]:
    switch, port = name.split("/")
    return unquote(switch), unquote(port)


class _Events(_Table):
    """events/<id>: into the event index; the store's own are in it already."""

    def __init__(self, store: EtcdStore):
        self._store = store

    def apply(self, changes: list[Change]) -> None:
        written, removed = self._events(changes)
        self._store.follow_events(written, removed)

    def reload(self, items: list[Change]) -> None:
        self._store.reload_events(self._events(items)[0])

    def _events(self, changes: list[Change]) -> tuple[list[dict], list[int]]:
        written, removed = [], []
        for segment, name, value in changes:
            try:
                if value is None:
                    removed.append(int(name))
                    continue
                event = _document(value)
                if event.get("id") != int(name) or not isinstance(event.get("kind"), str):
                    raise ValueError("not an event of this key")
                float(event["ts"])
                written.append(event)
            except _BAD as err:
                self._drop(segment, name, err)
        return written, removed


class _Intent:
    def __init__(self, mirror: IntentMirror):
        self._mirror = mirror

    def apply(self, changes: list[Change]) -> None:
        self._mirror.apply(_named(changes))

    def reload(self, items: list[Change]) -> None:
        self._mirror.reload(_named(items))


def _named(changes: list[Change]) -> Iterable[tuple[str, bytes | None]]:
    return ((name, value) for _, name, value in changes)


@dataclass
class Following:
    feed: StoreFeed
    mirror: IntentMirror
    tables: list
    _store: EtcdStore
    _kv: EtcdKv

    @property
    def dropped(self) -> int:
        """Stored values left out because no controller writes them so."""
        return self.mirror.dropped + sum(table.dropped for table in self.tables)

    def stop(self) -> None:
        self._store.own_writes = None
        self.feed.stop()
        self._kv.close()


def follow_store(app: Followed) -> Following:
    """Follows the store from the revision at which the controller started reading it (all
    it loaded is that or later: a change seen twice is applied once more, to the same end).
    The intent mirror is read at that revision first (a read of the intent, once)."""
    settings, store, monitor = app.settings, app.store, app.monitor
    if not isinstance(store, EtcdStore):
        raise TypeError("only the etcd store is followed")
    registry = _Registry(app.registry)
    tables: dict[str, _Table] = {
        **dict.fromkeys(REGISTRY_SEGMENTS, registry),
        "subscriptions": _Keyed(unquote, Subscription.from_dict, monitor.subscribers.follow),
        "maintenance": _Keyed(_server, MaintenanceRecord.from_dict, monitor.follow_maintenance),
        "alarms": _Keyed(unquote, Alarm.from_document, monitor.follow_alarms),
        "events": _Events(store),
    }
    mirror = IntentMirror()
    intent = _Intent(mirror)
    own = OwnWrites()
    kv = EtcdKv(settings.etcd_endpoints, settings.etcd_timeout)
    feed = StoreFeed(
        kv,
        settings.etcd_endpoints,
        settings.etcd_prefix,
        {**tables, INTENT: intent},  # type: ignore[dict-item]  # both are Tables
        own,
        mirror.caught_up,
    )
    start = store.opened_revision
    try:
        intent.reload(feed.read([INTENT], start))
    except Compacted:  # the start took longer than etcd keeps revisions: all read again now
        start = feed.reload()
    mirror.caught_up(start)
    store.own_writes = own
    feed.start(start)
    return Following(feed, mirror, list(dict.fromkeys(tables.values())), store, kv)
