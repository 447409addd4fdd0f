"""Fault subscribers (OPNFV Doctor's notifier role): whoever registered a webhook gets every
alarm change that concerns it, POSTed at once, in order, with retries, signed with the
subscription's secret (app/vcenter/notifier.py, signing.py), by one pool of workers shared by
all subscriptions. A URL must lead where the destination policy allows
(app/vcenter/destinations.py), and each principal (tenant, or the admins together) holds at most
``quota`` subscriptions.

An admin subscription gets every alarm; a tenant's subscription only alarms that affect VMs of
that tenant, listing only those VMs. Alarms on servers in maintenance are not sent (the operator
announced the work). The body follows the shape of an Aodh alarm notification, which Doctor
consumers read: alarm_id, alarm_name, current, previous, severity, reason, reason_data.
"""

import dataclasses
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from app.faults.alarms import KINDS, Notice
from app.registry import fields
from app.registry.errors import Conflict, InvalidInput, NotFound
from app.vcenter.destinations import DestinationPolicy, DestinationRefused
from app.vcenter.notifier import DeliveryPool, Webhook

URL_MAX = 2048
SECRET_MIN, SECRET_MAX = 16, 256
QUOTA = 20  # subscriptions per tenant (and for the admins together): Settings.subscription_quota
QUEUE = 200  # notifications waiting per subscription; the pool bounds them all together


@dataclass(frozen=True)
class Subscription:
    id: str
    url: str
    tenant: str | None  # None: an admin's subscription, every alarm
    kinds: tuple[str, ...]  # alarm kinds sent
    created: float
    secret: str = dataclasses.field(repr=False, default="")  # signs each POST; never listed

    def wants(self, notice: Notice) -> bool:
        alarm = notice.alarm
        return (
            alarm.kind in self.kinds
            and not alarm.maintenance
            and (self.tenant is None or self.tenant in alarm.tenants())
        )

    def as_dict(self) -> dict[str, Any]:
        """What the API lists (the secret is shown once, when it is created)."""
        return {
            "id": self.id,
            "url": self.url,
            "tenant": self.tenant,
            "kinds": list(self.kinds),
            "created": self.created,
        }

    def document(self) -> dict[str, Any]:
        """What the store keeps."""
        return {**self.as_dict(), "secret": self.secret}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Subscription":
        return cls(
            data["id"],
            data["url"],
            data.get("tenant"),
            tuple(data["kinds"]),
            float(data["created"]),
            # Stored before subscriptions had secrets: signed with one nobody knows (re-create).
            data.get("secret") or secrets.token_urlsafe(32),
        )


def parse_subscription(
    body, tenant: str | None, now: float, destinations: DestinationPolicy
) -> Subscription:
    """A new subscription from a REST body {"url", "kinds"?, "secret"?}; errors name the
    field. Without a secret, one is made."""
    present = fields.mapping(body, "", ("url", "kinds", "secret"), required=("url",))
    url = fields.text(present["url"], "url", URL_MAX)
    try:
        destinations.check_url(url)
    except DestinationRefused as err:
        raise InvalidInput(str(err), "url") from None
    secret = secrets.token_urlsafe(32)
    if "secret" in present:
        secret = fields.text(present["secret"], "secret", SECRET_MAX)
        if len(secret) < SECRET_MIN or secret != secret.strip() or not secret.isprintable():
            raise InvalidInput(
                f"expected {SECRET_MIN}-{SECRET_MAX} printable characters, no surrounding "
                "spaces; leave it out to get one made",
                "secret",
            )
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
    return Subscription(secrets.token_hex(8), url, tenant, kinds, now, secret)


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
    """The subscriptions, each a Webhook served by one shared DeliveryPool."""

    def __init__(
        self,
        subscriptions: Iterable[Subscription] = (),
        *,
        destinations: DestinationPolicy | None = None,
        quota: int = QUOTA,
        pool: Callable[[], DeliveryPool] = DeliveryPool,
        timeout: float = 1.0,
    ) -> None:
        """``pool``: makes the delivery pool (at the first subscription: no threads without
        subscribers)."""
        self.destinations = destinations if destinations is not None else DestinationPolicy()
        self.quota = quota
        self._new_pool = pool
        self._pool: DeliveryPool | None = None
        self._timeout = timeout
        self._lock = threading.Lock()
        self._subs: dict[str, tuple[Subscription, Webhook]] = {}
        for subscription in subscriptions:
            self.add(subscription)

    def parse(self, body, tenant: str | None, now: float) -> Subscription:
        return parse_subscription(body, tenant, now, self.destinations)

    def admit(self, subscription: Subscription, save: Callable[[dict], None]) -> None:
        """A new subscription within its principal's quota (Conflict beyond it): saved with
        ``save(document)``, then served."""
        with self._lock:
            held = sum(s.tenant == subscription.tenant for s, _ in self._subs.values())
            if held >= self.quota:
                who = f"tenant {subscription.tenant}" if subscription.tenant else "the admins"
                raise Conflict(
                    f"{who} hold {held} subscriptions, the quota (subscription_quota); "
                    "delete one first"
                )
            save(subscription.document())
            self._add(subscription)

    def add(self, subscription: Subscription) -> None:
        """A subscription accepted before (restored at start): no quota check."""
        with self._lock:
            self._add(subscription)

    def _add(self, subscription: Subscription) -> None:
        if self._pool is None:
            self._pool = self._new_pool()
        secret = subscription.secret
        webhook = Webhook(
            subscription.url,
            self._pool,
            timeout=self._timeout,
            queue_size=QUEUE,
            secret=lambda: secret,
            destinations=self.destinations,
        )
        self._subs[subscription.id] = (subscription, webhook)

    def follow(self, stored: dict[str, Subscription | None], *, whole: bool = False) -> None:
        """Subscriptions another controller stored (None: deleted), served here too without
        a quota check (its writer made it); one held already as it is stays as it is.
        ``whole``: ``stored`` is every subscription, the others go. A subscription replaced
        or gone has its webhook closed; the delivery pool stays the one pool."""
        closing = []
        with self._lock:
            gone = [sub_id for sub_id in self._subs if sub_id not in stored] if whole else []
            for sub_id in gone:
                closing.append(self._subs.pop(sub_id)[1])
            for sub_id, subscription in stored.items():
                held = self._subs.get(sub_id)
                if held is not None and held[0] == subscription:
                    continue
                if held is not None:
                    closing.append(self._subs.pop(sub_id)[1])
                if subscription is not None:
                    self._add(subscription)
        for webhook in closing:
            webhook.close()

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
        """The subscriptions a principal sees (admin: all), with their delivery counters: an
        admin gets every counter, a tenant whether its notifications arrived (``sent``) or not
        (``failed``: given up, refused or dropped), never why, so that the counters cannot
        map what answers where."""
        with self._lock:
            subs = [(s, w) for s, w in self._subs.values() if tenant is None or s.tenant == tenant]
        return [
            {**s.as_dict(), "delivery": _delivery(w.stats(), tenant)}
            for s, w in sorted(subs, key=lambda pair: pair[0].created)
        ]

    def deliver(self, notices: Iterable[Notice]) -> None:
        """Queues each notice for the subscriptions that want it (never waits)."""
        with self._lock:
            subs = list(self._subs.values())
        for notice in notices:
            for subscription, webhook in subs:
                if subscription.wants(notice):
                    webhook.notify(notification(notice, subscription.tenant))

    def pool_stats(self) -> dict[str, int] | None:
        return self._pool.stats() if self._pool is not None else None

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            webhooks = [w for _, w in self._subs.values()]
        return all(w.flush(max(0.0, deadline - time.monotonic())) for w in webhooks)

    def close(self) -> None:
        with self._lock:
            webhooks = [w for _, w in self._subs.values()]
            self._subs.clear()
            pool, self._pool = self._pool, None
        for webhook in webhooks:
            webhook.close()
        if pool is not None:
            pool.close()


def _delivery(stats: dict[str, int], tenant: str | None) -> dict[str, int]:
    if tenant is None:
        return stats
    return {"sent": stats["sent"], "failed": stats["failed"] + stats["refused"] + stats["dropped"]}
