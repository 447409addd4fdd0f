"""Webhooks: the controller's events POSTed as JSON, in order, signed, by a bounded pool of
workers.

A ``Webhook`` is one destination: its queue, its ``seq``, its counters, its signing secret.
``notify`` only enqueues (it never waits on the network): a full queue (the webhook's own, or
the pool's total) drops the event and counts it. A ``DeliveryPool`` of a few threads serves
every webhook given to it, one POST of a webhook at a time, so each destination sees its events
in order; a failed POST (no answer, HTTP 5xx or 429) is retried with doubling backoff before the
webhook's next event goes, and while it waits no worker is held; other HTTP errors are not
retried (the receiver refused the event). Every POST carries ``seq``, counting from 1 per
webhook, so the receiver can tell a gap (dropped or failed) from silence, and is signed
(app/vcenter/signing.py) when the webhook has a secret. A webhook given a DestinationPolicy
resolves and checks its host before each POST and connects to the address it checked.

``Notifier`` is the VM manager's webhook with a pool of its own, and an EventLog sink
(``event_log.add_sink(notifier)``): the body is ``Event.as_dict()`` (kind, ts, switch, port,
detail) plus ``seq``. Which kinds are sent is a parameter; a ``moved_from`` detail on
``vsi.associated`` marks a migration, ``vsi.activated`` tells that its destination forwards.
The fault subscriptions (app/faults/subscriptions.py) share one pool between all of their
webhooks.
"""

import heapq
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any

from app.events import Event
from app.vcenter.credentials import CredentialError
from app.vcenter.destinations import (
    DestinationPolicy,
    DestinationRefused,
    UnresolvedHost,
    parse_target,
)
from app.vcenter.signing import signed_headers
from app.vcenter.transport import TransportError, exchange

LOG = logging.getLogger("evb_nms.vcenter")

# The VSI decisions, and maintenance: the manager moves the VMs off a server in maintenance.
DEFAULT_KINDS = frozenset(
    {
        "vsi.associated",
        "vsi.activated",  # a migration's destination forwards: the VM runs there
        "vsi.deassociated",
        "vsi.refused",
        "vsi.expired",
        "vsi.suspended",
        "server.maintenance",
        "server.drained",
        "server.resumed",
        "vm.report",  # every stats interval: VMs' state and counters (app/vcenter/vm_report.py)
    }
)
MAX_BACKOFF = 5.0
COUNTERS = ("sent", "failed", "refused", "dropped", "retried")


class DeliveryPool:
    """``workers`` threads for any number of webhooks, at most ``queue_size`` events queued
    across them."""

    def __init__(self, workers: int = 4, queue_size: int = 10000, name: str = "webhook") -> None:
        self.queue_size = queue_size
        self._cond = threading.Condition()
        self._ready: deque[Webhook] = deque()  # webhooks whose next POST may go now
        self._waiting: list[tuple[float, int, Webhook]] = []  # (due, tie, webhook): retries
        self._tie = itertools.count()
        self._queued = 0
        self._dropped = 0
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def stats(self) -> dict[str, int]:
        """workers, queued (across webhooks), queue_size, dropped (the pool was full)."""
        with self._cond:
            return {
                "workers": len(self._threads),
                "queued": self._queued,
                "queue_size": self.queue_size,
                "dropped": self._dropped,
            }

    def close(self, timeout: float = 2.0) -> None:
        """Stops the workers after the POSTs in progress (close the webhooks first)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            with self._cond:
                hook = self._next()
                if hook is None:
                    return
                event, attempt = hook._take()
            outcome = hook._attempt(event)
            with self._cond:
                hook._done(event, attempt, outcome)
                self._cond.notify_all()

    def _next(self) -> "Webhook | None":
        """The next webhook to serve, waiting for one (called with the lock held)."""
        while not self._closed:
            now = time.monotonic()
            while self._waiting and self._waiting[0][0] <= now:
                self._ready.append(heapq.heappop(self._waiting)[2])
            while self._ready:
                hook = self._ready.popleft()
                if not hook._closed:
                    return hook
                hook._scheduled = False
            self._cond.wait(self._waiting[0][0] - now if self._waiting else None)
        return None


class Webhook:
    def __init__(
        self,
        url: str,
        pool: DeliveryPool,
        *,
        timeout: float = 1.0,
        queue_size: int = 1000,
        retries: int = 3,
        backoff: float = 0.2,
        secret: Callable[[], str | None] = lambda: None,
        destinations: DestinationPolicy | None = None,
    ) -> None:
        """``url``: where to POST. A POST is tried ``1 + retries`` times, waiting ``backoff``
        seconds, then twice as long each time (at most MAX_BACKOFF). ``secret()``: the
        signing secret at the time of the POST (None: unsigned). ``destinations``: checked
        before each POST (None: the URL is the operator's and trusted)."""
        self.url = url
        self._pool = pool
        self._timeout = timeout
        self._queue_size = queue_size
        self._retries = retries
        self._backoff = backoff
        self._secret = secret
        self._destinations = destinations
        # All below: guarded by the pool's lock.
        self._queue: deque[dict[str, Any]] = deque()
        self._current: tuple[dict[str, Any], int] | None = None  # (event, attempts made)
        self._busy = False  # a worker is POSTing _current
        self._scheduled = False  # in the pool's ready queue or retry heap, or being served
        self._closed = False
        self._seq = 0
        self._counts = dict.fromkeys(COUNTERS, 0)
        self.last_problem = ""

    def notify(self, event: dict[str, Any]) -> bool:
        """Queues ``event``; False if it was dropped (queue full, or closed)."""
        pool = self._pool
        with pool._cond:
            if self._closed or len(self._queue) >= self._queue_size:
                self._counts["dropped"] += 1
                return False
            if pool._queued >= pool.queue_size:
                self._counts["dropped"] += 1
                pool._dropped += 1
                return False
            self._seq += 1
            self._queue.append({**event, "seq": self._seq})
            pool._queued += 1
            if not self._scheduled:
                self._scheduled = True
                pool._ready.append(self)
                pool._cond.notify()
        return True

    def stats(self) -> dict[str, int]:
        """sent, failed (given up), refused (the destination is not allowed), dropped (queue
        full or closed), retried (POSTs repeated), queued (waiting now)."""
        with self._pool._cond:
            return {**self._counts, "queued": len(self._queue)}

    def flush(self, timeout: float) -> bool:
        """Waits until every queued event was sent or given up; False if ``timeout`` ended
        first."""
        with self._pool._cond:
            return self._pool._cond.wait_for(
                lambda: not self._queue and self._current is None, timeout
            )

    def close(self) -> None:
        """Stops after the POST in progress; events still queued are dropped (call ``flush``
        first to deliver them), one waiting for its retry is given up."""
        pool = self._pool
        with pool._cond:
            self._closed = True
            self._counts["dropped"] += len(self._queue)
            pool._queued -= len(self._queue)
            self._queue.clear()
            if self._current is not None and not self._busy:
                self._counts["failed"] += 1
                self._current = None
            pool._cond.notify_all()

    # the pool's side (with the pool's lock held, but _attempt) ------------------------------
    def _take(self) -> tuple[dict[str, Any], int]:
        if self._current is None:
            self._current = (self._queue.popleft(), 0)
            self._pool._queued -= 1
        self._busy = True
        return self._current

    def _done(self, event: dict[str, Any], attempt: int, outcome: str) -> None:
        pool = self._pool
        self._busy = False
        if outcome == "retry" and attempt < self._retries and not self._closed:
            self._counts["retried"] += 1
            self._current = (event, attempt + 1)
            delay = min(self._backoff * 2**attempt, MAX_BACKOFF)
            heapq.heappush(pool._waiting, (time.monotonic() + delay, next(pool._tie), self))
            return
        if outcome == "retry":
            outcome = "failed"
            LOG.warning(
                "webhook %s: gave up on %s seq %s: %s",
                self.url,
                event.get("kind"),
                event["seq"],
                self.last_problem,
            )
        self._counts[outcome] += 1
        self._current = None
        if self._queue and not self._closed:
            pool._ready.append(self)
        else:
            self._scheduled = False

    def _attempt(self, event: dict[str, Any]) -> str:
        """One POST: "sent", "retry", "failed" (not worth retrying) or "refused". Never
        raises: a worker serves every webhook."""
        try:
            return self._post(event)
        except Exception as err:  # a bug here must not end the worker
            LOG.exception("webhook %s seq %s", self.url, event.get("seq"))
            self.last_problem = repr(err)
            return "failed"

    def _post(self, event: dict[str, Any]) -> str:
        body = json.dumps(event, default=str).encode()
        try:
            address = None
            if self._destinations is not None:
                _, address = self._destinations.resolve(self.url)
            secret = self._secret()
            headers = signed_headers(secret, time.time(), body) if secret else {}
            answer = exchange(
                "POST", self.url, body=body, headers=headers, timeout=self._timeout, address=address
            )
        except (TransportError, UnresolvedHost) as err:
            self.last_problem = str(err)
            LOG.debug("webhook %s seq %s: %s", self.url, event["seq"], err)
            return "retry"
        except DestinationRefused as err:
            self.last_problem = str(err)
            LOG.warning("webhook %s: refused: %s", self.url, err)
            return "refused"
        except (CredentialError, ValueError) as err:
            self.last_problem = str(err)
            LOG.warning("webhook %s: %s", self.url, err)
            return "failed"
        if 200 <= answer.status < 300:
            return "sent"
        self.last_problem = f"HTTP {answer.status}"
        if answer.status >= 500 or answer.status == 429:
            return "retry"
        LOG.warning(
            "webhook %s: %s seq %s refused: HTTP %s",
            self.url,
            event.get("kind"),
            event["seq"],
            answer.status,
        )
        return "failed"


class Notifier(Webhook):
    """The VM manager's webhook, with its own one-thread pool; an EventLog sink."""

    def __init__(
        self,
        url: str,
        timeout: float = 1.0,
        queue_size: int = 1000,
        *,
        kinds: Collection[str] | None = DEFAULT_KINDS,
        retries: int = 3,
        backoff: float = 0.2,
        secret: Callable[[], str | None] = lambda: None,
    ) -> None:
        """``url``: the manager's webhook (…/v1/notifications). ``kinds``: the event kinds sent
        (None: all). ``secret``: as Webhook's (the manager's signing secret)."""
        try:
            parse_target(url)
        except DestinationRefused as err:
            raise ValueError(f"webhook URL {url!r}: {err}") from None
        super().__init__(
            url,
            DeliveryPool(1, queue_size, name="vcenter-notifier"),
            timeout=timeout,
            queue_size=queue_size,
            retries=retries,
            backoff=backoff,
            secret=secret,
        )
        self._kinds = None if kinds is None else frozenset(kinds)
        try:
            unsigned = not secret()
        except CredentialError:
            unsigned = False  # configured, unreadable now: each POST says so
        if unsigned:
            LOG.warning("webhook %s: no secret configured, notifications go unsigned", url)

    def __call__(self, event: Event) -> None:
        """The EventLog sink."""
        self.notify(event.as_dict())

    def notify(self, event: dict[str, Any]) -> bool:
        """Queues ``event`` (a dict with ``kind``) if its kind is one to send; False if it is
        not, or if it was dropped (queue full, or closed)."""
        if self._kinds is not None and event.get("kind") not in self._kinds:
            return False
        return super().notify(event)

    def close(self, timeout: float = 2.0) -> None:
        super().close()
        self._pool.close(timeout)
