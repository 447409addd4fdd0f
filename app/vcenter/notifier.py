"""Webhooks to the VM manager: the controller's decisions about VSIs, POSTed as JSON in order.

``notify`` only enqueues (it never waits on the network): a full queue drops the event and
counts it. One background thread POSTs the queue in order; a failed POST (no answer, HTTP 5xx
or 429) is retried with doubling backoff before the next event goes, so the manager never sees
events out of order; other HTTP errors are not retried (the manager refused the event). Every
POST carries ``seq``, counting from 1 per Notifier, so the manager can tell a gap (dropped or
failed) from silence.

Plugs in as an EventLog sink (``event_log.add_sink(notifier)``): the body is
``Event.as_dict()`` (kind, ts, switch, port, detail) plus ``seq``. Which kinds are sent is a
parameter; a ``moved_from`` detail on ``vsi.associated`` marks a migration.
"""

import logging
import threading
from collections import deque
from collections.abc import Collection
from typing import Any

from app.events import Event
from app.vcenter.transport import TransportError, exchange

LOG = logging.getLogger("evb_nms.vcenter")

# The VSI decisions, and maintenance: the manager moves the VMs off a server in maintenance.
DEFAULT_KINDS = frozenset(
    {
        "vsi.associated",
        "vsi.deassociated",
        "vsi.refused",
        "vsi.expired",
        "vsi.suspended",
        "server.maintenance",
        "server.drained",
        "server.resumed",
    }
)
MAX_BACKOFF = 5.0


class Notifier:
    def __init__(
        self,
        url: str,
        timeout: float = 1.0,
        queue_size: int = 1000,
        *,
        kinds: Collection[str] | None = DEFAULT_KINDS,
        retries: int = 3,
        backoff: float = 0.2,
    ) -> None:
        """``url``: the manager's webhook (…/v1/notifications). ``kinds``: the event kinds sent
        (None: all). A POST is tried ``1 + retries`` times, waiting ``backoff`` seconds, then
        twice as long each time (at most MAX_BACKOFF)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL: expected http://HOST:PORT/PATH, got {url!r}")
        self.url = url
        self._timeout = timeout
        self._queue_size = queue_size
        self._kinds = None if kinds is None else frozenset(kinds)
        self._retries = retries
        self._backoff = backoff
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._busy = False  # the worker holds an event taken off the queue
        self._closed = False
        self._seq = 0
        self._counts = {"sent": 0, "failed": 0, "dropped": 0, "retried": 0}
        self._thread = threading.Thread(target=self._run, name="vcenter-notifier", daemon=True)
        self._thread.start()

    def __call__(self, event: Event) -> None:
        """The EventLog sink."""
        self.notify(event.as_dict())

    def notify(self, event: dict[str, Any]) -> bool:
        """Queues ``event`` (a dict with ``kind``) if its kind is one to send; False if it is
        not, or if it was dropped (queue full, or closed)."""
        if self._kinds is not None and event.get("kind") not in self._kinds:
            return False
        with self._cond:
            if self._closed or len(self._queue) >= self._queue_size:
                self._counts["dropped"] += 1
                return False
            self._seq += 1
            self._queue.append({**event, "seq": self._seq})
            self._cond.notify_all()
        return True

    def stats(self) -> dict[str, int]:
        """sent, failed (given up), dropped (queue full or closed), retried (POSTs repeated),
        queued (waiting now)."""
        with self._cond:
            return {**self._counts, "queued": len(self._queue)}

    def flush(self, timeout: float) -> bool:
        """Waits until every queued event was sent or given up; False if ``timeout`` ended
        first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stops after the POST in progress; events still queued are dropped (call ``flush``
        first to deliver them)."""
        with self._cond:
            self._closed = True
            self._counts["dropped"] += len(self._queue)
            self._queue.clear()
            self._cond.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closed)
                if self._closed:
                    return
                event = self._queue.popleft()
                self._busy = True
            outcome = self._deliver(event)
            with self._cond:
                self._counts[outcome] += 1
                self._busy = False
                self._cond.notify_all()

    def _deliver(self, event: dict[str, Any]) -> str:
        """ "sent" or "failed"."""
        delay = self._backoff
        for attempt in range(1 + self._retries):
            if attempt:
                with self._cond:
                    self._counts["retried"] += 1
                    if self._cond.wait_for(lambda: self._closed, delay):
                        return "failed"
                delay = min(delay * 2, MAX_BACKOFF)
            try:
                answer = exchange("POST", self.url, body=event, timeout=self._timeout)
            except TransportError as err:
                problem = str(err)
            else:
                if 200 <= answer.status < 300:
                    return "sent"
                problem = f"HTTP {answer.status}"
                if answer.status < 500 and answer.status != 429:
                    break
            LOG.debug("webhook %s seq %s: %s", self.url, event["seq"], problem)
        LOG.warning(
            "webhook %s: gave up on %s seq %s: %s",
            self.url,
            event.get("kind"),
            event["seq"],
            problem,
        )
        return "failed"
