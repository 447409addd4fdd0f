"""The fault monitor: an EventLog sink that turns fault events into alarms for the subscribers
within the emitting call (no polling), and the keeper of maintenance mode.

Add it as the LAST sink: the server.drained event it emits from inside a VSI event reaches the
other sinks after that VSI event, not before. What it accepted (subscriptions, maintenance) is
written to the store before the call returns.
"""

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from app.events import Event, EventLog
from app.faults.alarms import Alarm, AlarmBook, VmPlace
from app.faults.maintenance import Maintenance, MaintenanceRecord, ServerKey
from app.faults.subscriptions import Subscribers, Subscription
from app.registry.errors import NotFound

# Events after which a server in maintenance may have become empty.
_VM_LEFT = ("vsi.deassociated", "vsi.expired", "vsi.associated", "vsi.suspended")
# Events whose alarm names the VMs of the whole switch.
_WHOLE_SWITCH = (
    "switch.disconnected",
    "switch.hung",
    "switch.absent",
    "switch.duplicate",
    "switch.ready",
)
# (switch name, port name or None for the whole switch): where to look for VMs.
Places = set[tuple[str, str | None]]


def _affected_places(event: Event) -> Places:
    """Where the VMs an alarm of ``event`` names can be (nothing for most events)."""
    kind = event.kind
    if kind in _WHOLE_SWITCH and event.switch:
        return {(event.switch, None)}
    if kind.startswith("port.") and event.detail.get("role") == "server" and event.switch:
        return {(event.switch, event.port)}
    if kind in ("link.down", "probe.lost") and event.switch:
        peer = str(event.detail.get("peer", "")).split("/")[0]
        return {(event.switch, None), (peer, None)}
    return set()


class FaultMonitor:
    def __init__(
        self,
        event_log: EventLog,
        store,
        vms: Callable[[Places], list[VmPlace]],
        subscribers: Subscribers | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``store``: app/store/base.py Store (subscriptions and maintenance are kept there);
        ``vms``: the VMs forwarding now at the given places (it may take the control plane's
        lock); asked only for the places an event concerns, so a fault costs the VMs it
        affects, never every VM of the fabric."""
        self._log = event_log
        self._store = store
        self._vms = vms
        self._clock = clock
        self._lock = threading.Lock()
        # The alarms of before a restart; the book's changes are written after each event.
        self.book = AlarmBook(Alarm.from_document(doc) for doc in store.alarms())
        self.maintenance = Maintenance(MaintenanceRecord.from_dict(d) for d in store.maintenance())
        self.subscribers = subscribers if subscribers is not None else Subscribers()
        for data in store.subscriptions():
            self.subscribers.add(Subscription.from_dict(data))

    def __call__(self, event: Event) -> None:
        """The EventLog sink."""
        kind = event.kind
        where = _affected_places(event)
        places = self._vms(where) if where else []
        with self._lock:
            notices = self.book.on_event(event, places, self.maintenance.keys())
            changed, dropped = self.book.take_changes()
        if changed or dropped:
            self._store.save_alarms([(a.key, a.document()) for a in changed], dropped)
        self.subscribers.deliver(notices)
        for notice in notices:
            alarm = notice.alarm
            self._log.emit(
                "alarm." + ("raised" if alarm.active else "cleared"),
                switch=alarm.switch,
                port=alarm.port,
                level=logging.WARNING if alarm.active else logging.INFO,
                alarm=alarm.id,
                severity=alarm.severity,
                vms=[vm.vsi_id for vm in alarm.affected],
                maintenance=alarm.maintenance,
            )
        if kind in _VM_LEFT and self.maintenance.keys():
            self._check_drained()

    # alarms ---------------------------------------------------------------------------------
    def alarms(self, tenant: str | None, active_only: bool) -> list[dict[str, Any]]:
        """Newest first; a tenant sees the alarms that affect its VMs, and only those VMs."""
        with self._lock:
            alarms = self.book.active()[::-1] if active_only else self.book.recent()
        return [a.as_dict(tenant) for a in alarms if tenant is None or tenant in a.tenants()]

    # subscriptions ----------------------------------------------------------------------------
    def subscribe(self, body, tenant: str | None) -> dict[str, Any]:
        """The new subscription, with its signing secret: the only time it is shown."""
        subscription = self.subscribers.parse(body, tenant, self._clock())
        self.subscribers.admit(subscription, self._store.save_subscription)
        self._log.emit(
            "subscription.added",
            id=subscription.id,
            url=subscription.url,
            tenant=subscription.tenant,
            kinds=list(subscription.kinds),
        )
        return {**subscription.as_dict(), "secret": subscription.secret}

    def unsubscribe(self, sub_id: str, tenant: str | None) -> None:
        removed = self.subscribers.remove(sub_id, tenant)
        self._store.delete_subscription(sub_id)
        self._log.emit("subscription.removed", id=removed.id, tenant=removed.tenant)

    # maintenance ------------------------------------------------------------------------------
    def in_maintenance(self, key: ServerKey | None) -> MaintenanceRecord | None:
        with self._lock:
            return self.maintenance.get(key) if key else None

    def enter_maintenance(self, key: ServerKey, reason: str) -> dict[str, Any]:
        """Starts maintenance of a server; the VM manager is told which VMs to move away."""
        with self._lock:
            record = self.maintenance.enter(key, reason, self._clock())
            self._store.save_maintenance(record.as_dict())
        moving = [vm.vsi_id for vm in self._vms({key})]
        self._log.emit("server.maintenance", switch=key[0], port=key[1], reason=reason, vms=moving)
        self._check_drained()
        return {**self.in_maintenance(key).as_dict(), "vms": moving}

    def leave_maintenance(self, key: ServerKey) -> None:
        with self._lock:
            record = self.maintenance.leave(key)
            if record is None:
                raise NotFound(f"server {key[0]}/{key[1]} is not in maintenance", "server")
            self._store.delete_maintenance(*key)
        self._log.emit("server.resumed", switch=key[0], port=key[1])

    # what other controllers stored (app/controller/store_following.py) --------------------
    def follow_maintenance(
        self, stored: dict[ServerKey, MaintenanceRecord | None], *, whole: bool = False
    ) -> None:
        """Servers another controller put in maintenance or out (None), or whose record it
        changed; ``whole``: ``stored`` is every server in maintenance. Nothing is emitted: that
        controller did."""
        with self._lock:
            for key in (self.maintenance.keys() - stored.keys()) if whole else ():
                self.maintenance.leave(key)
            for key, record in stored.items():
                if record is None:
                    self.maintenance.leave(key)
                else:
                    self.maintenance.put(record)

    def follow_alarms(self, stored: dict[str, Alarm | None], *, whole: bool = False) -> None:
        with self._lock:
            self.book.follow(stored, whole=whole)

    def _check_drained(self) -> None:
        with self._lock:
            keys = self.maintenance.keys()
        places = self._vms(set(keys))
        with self._lock:
            drained = self.maintenance.poll(places)
            for record in drained:
                self._store.save_maintenance(record.as_dict())
        for record in drained:
            self._log.emit(
                "server.drained", switch=record.switch, port=record.port, reason=record.reason
            )

    def close(self) -> None:
        self.subscribers.flush(1.0)
        self.subscribers.close()
