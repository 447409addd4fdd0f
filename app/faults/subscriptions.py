"""Fault subscribers (OPNFV Doctor's notifier role): whoever registered a webhook gets every
alarm change that concerns it, POSTed at once, in order, with retries (app/vcenter/notifier.py).

An admin subscription gets every alarm; a tenant's subscription only alarms that affect VMs of
that tenant, listing only those VMs. Alarms on servers in maintenance are not sent (the operator
announced the work). The body follows the shape of an Aodh alarm notification, which Doctor
consumers read: alarm_id, alarm_name, current, previous, severity, reason, reason_data.
"""

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.faults.alarms import KINDS, Notice
from app.registry import fields
from app.registry.errors import InvalidInput, NotFound
from app.vcenter.notifier import Notifier

URL_MAX = 2048


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    tenant: str | None  # None: an admin's subscription, every alarm
    kinds: tuple[str, ...]  # alarm kinds sent
    created: float

    def wants(self, notice: Notice) -> bool:
        alarm = notice.alarm
        return (
            alarm.kind in self.kinds
            and not alarm.maintenance
            and (self.tenant is None or self.tenant in alarm.tenants())
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "tenant": self.tenant,
            "kinds": list(self.kinds),
            "created": self.created,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Subscription":
        return cls(
            data["id"],
            data["url"],
            data.get("tenant"),
            tuple(data["kinds"]),
            float(data["created"]),
        )


def parse_subscription(body, tenant: str | None, now: float) -> Subscription:
    """A new subscription from a REST body {"url", "kinds"?}; errors name the field."""
    present = fields.mapping(body, "", ("url", "kinds"), required=("url",))
    url = fields.text(present["url"], "url", URL_MAX)
    if not url.startswith(("http://", "https://")) or "/" not in url.split("://", 1)[1]:
        raise InvalidInput("expected http://HOST:PORT/PATH", "url")
    kinds = tuple(sorted(KINDS))
    if "kinds" in present:
        given = fields.array(present["kinds"], "kinds")
        if not given:
            raise InvalidInput("an empty list would send nothing; leave it out for all", "kinds")
        for index, kind in enumerate(given):
            if kind not in KINDS:
                raise InvalidInput(
                    f"expected one of {', '.join(sorted(KINDS))}, got {kind!r}", f"kinds[{index}]"
                )
        kinds = tuple(sorted(set(given)))
    return Subscription(secrets.token_hex(8), url, tenant, kinds, now)


def notification(notice: Notice, tenant: str | None) -> dict[str, Any]:
    """The POSTed body (the Notifier adds ``seq``)."""
    alarm = notice.alarm
    current = notice.state
    return {
        "kind": "alarm",
        "alarm_id": alarm.id,
        "alarm_name": alarm.kind,
        "current": current,
        "previous": "ok" if current == "alarm" else "alarm",
        "severity": alarm.severity,
        "reason": alarm.reason,
        "reason_data": alarm.as_dict(tenant),
        "ts": alarm.raised if current == "alarm" else alarm.cleared,
    }


class Subscribers:
    """The subscriptions and one Notifier (queue, order, retries) per subscription."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription] = (),
        notifier: Callable[[str], Notifier] = lambda url: Notifier(url, kinds=None),
    ) -> None:
        self._new_notifier = notifier
        self._lock = threading.Lock()
        self._subs: dict[str, tuple[Subscription, Notifier]] = {}
        for subscription in subscriptions:
            self.add(subscription)

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            self._subs[subscription.id] = (subscription, self._new_notifier(subscription.url))

    def remove(self, sub_id: str, tenant: str | None) -> Subscription:
        """Removes a subscription; a tenant can only remove its own (others are not found)."""
        with self._lock:
            found = self._subs.get(sub_id)
            if found is None or (tenant is not None and found[0].tenant != tenant):
                raise NotFound(f"no subscription {sub_id!r}", "id")
            del self._subs[sub_id]
        found[1].close()
        return found[0]

    def list(self, tenant: str | None) -> list[dict[str, Any]]:
        """The subscriptions a principal sees (admin: all), with their delivery counters."""
        with self._lock:
            subs = [(s, n) for s, n in self._subs.values() if tenant is None or s.tenant == tenant]
        return [
            {**s.as_dict(), "delivery": n.stats()}
            for s, n in sorted(subs, key=lambda pair: pair[0].created)
        ]

    def deliver(self, notices: Iterable[Notice]) -> None:
        """Queues each notice for the subscriptions that want it (never waits)."""
        with self._lock:
            subs = list(self._subs.values())
        for notice in notices:
            for subscription, notifier in subs:
                if subscription.wants(notice):
                    notifier.notify(notification(notice, subscription.tenant))

    def flush(self, timeout: float) -> bool:
        with self._lock:
            notifiers = [n for _, n in self._subs.values()]
        return all(n.flush(timeout) for n in notifiers)

    def close(self) -> None:
        with self._lock:
            notifiers = [n for _, n in self._subs.values()]
            self._subs.clear()
        for notifier in notifiers:
            notifier.close()
