"""Webhooks to the VM manager: in order, retried with backoff, dropped (and counted) when the queue
is full, never blocking the caller; filtered by kind; an EventLog sink."""

import json
import threading
import time

import pytest

from app.events import EventLog
from app.vcenter.notifier import DEFAULT_KINDS, Notifier
from tests.unit.test_vcenter_http import Scripted, answering, closed_port_url, served

ZERO = {"sent": 0, "failed": 0, "refused": 0, "dropped": 0, "retried": 0, "queued": 0}


def bodies(app: Scripted) -> list[dict]:
    return [json.loads(body) for method, path, query, body in app.requests]


def event(n: int, kind: str = "vsi.associated") -> dict:
    return {"kind": kind, "n": n}


def test_events_are_posted_in_order():
    app = answering(204, b"")
    with served(app) as url:
        notifier = Notifier(url + "/v1/notifications")
        assert all(notifier.notify(event(n)) for n in range(50))
        assert notifier.flush(5)
    assert [(b["n"], b["seq"]) for b in bodies(app)] == [(n, n + 1) for n in range(50)]
    assert {r[:2] for r in app.requests} == {("POST", "/v1/notifications")}
    assert notifier.stats() == {**ZERO, "sent": 50}
    notifier.close()


def test_failures_are_retried_with_backoff_and_order_is_kept():
    """The first event fails twice (503, then 500), the next one waits for it."""
    times = []

    def answer(number, environ):
        times.append(time.monotonic())
        return {1: (503, b""), 2: (500, b"")}.get(number, (200, b"{}"))

    app = Scripted(answer)
    with served(app) as url:
        notifier = Notifier(url, retries=3, backoff=0.1)
        notifier.notify(event(1))
        notifier.notify(event(2))
        assert notifier.flush(5)
    assert [b["n"] for b in bodies(app)] == [1, 1, 1, 2]
    assert times[1] - times[0] >= 0.1 and times[2] - times[1] >= 0.2  # doubling
    assert notifier.stats() == {**ZERO, "sent": 2, "retried": 2}


def test_gives_up_after_the_retries():
    app = answering(500, {"error": "down"})
    with served(app) as url:
        notifier = Notifier(url, retries=2, backoff=0.01)
        notifier.notify(event(1))
        notifier.notify(event(2))
        assert notifier.flush(5)
    assert [b["n"] for b in bodies(app)] == [1, 1, 1, 2, 2, 2]
    assert notifier.stats()["failed"] == 2 and notifier.stats()["retried"] == 4


def test_refused_event_is_not_retried():
    app = answering(400, {"error": "bad event"})
    with served(app) as url:
        notifier = Notifier(url, retries=3, backoff=0.01)
        notifier.notify(event(1))
        assert notifier.flush(5)
    assert app.count == 1 and notifier.stats()["failed"] == 1


def test_unreachable_manager():
    notifier = Notifier(closed_port_url(), retries=2, backoff=0.01)
    notifier.notify(event(1))
    assert notifier.flush(5)
    assert notifier.stats() == {**ZERO, "failed": 1, "retried": 2}


def _held_manager():
    """A manager that takes the first notification and answers only once `release` is set."""
    received, release = threading.Event(), threading.Event()

    def answer(number, environ):
        received.set()
        release.wait(5)
        return 204, b""

    return Scripted(answer), received, release


def test_full_queue_drops_and_counts_and_never_blocks():
    app, received, release = _held_manager()
    with served(app) as url:
        notifier = Notifier(url, timeout=5, queue_size=2)
        notifier.notify(event(0))
        assert received.wait(5)  # event 0 is in flight, stuck at the manager
        start = time.monotonic()
        accepted = [notifier.notify(event(n)) for n in range(1, 10)]
        assert time.monotonic() - start < 2  # the manager holds event 0 for 5 s
        assert accepted == [True, True] + [False] * 7
        assert notifier.stats()["dropped"] == 7 and notifier.stats()["queued"] == 2
        release.set()
        assert notifier.flush(5)
    assert [b["n"] for b in bodies(app)] == [0, 1, 2]
    assert [b["seq"] for b in bodies(app)] == [1, 2, 3]
    assert notifier.stats()["sent"] == 3


def test_notify_does_not_wait_for_a_slow_manager():
    with served(answering(204, b"", delay=3)) as url:
        notifier = Notifier(url, timeout=0.3, retries=0)
        start = time.monotonic()
        for n in range(5):
            notifier.notify(event(n))
        assert time.monotonic() - start < 0.25  # one blocking POST would take 0.3 s
        assert notifier.flush(5)
        assert notifier.stats()["failed"] == 5
        assert time.monotonic() - start < 3  # each POST ended at its timeout, not at 3 s


def test_kinds_filter():
    app = answering(204, b"")
    with served(app) as url:
        notifier = Notifier(url, kinds={"vsi.refused"})
        assert not notifier.notify(event(1, "vsi.associated"))
        assert notifier.notify(event(2, "vsi.refused"))
        everything = Notifier(url, kinds=None)
        assert everything.notify(event(3, "switch.connected"))
        assert notifier.flush(5) and everything.flush(5)
    assert sorted(b["n"] for b in bodies(app)) == [2, 3]
    assert notifier.stats()["dropped"] == 0


def test_default_kinds():
    assert DEFAULT_KINDS == {
        "vsi.associated",
        "vsi.activated",
        "vsi.deassociated",
        "vsi.refused",
        "vsi.expired",
        "vsi.suspended",
        "server.maintenance",
        "server.drained",
        "server.resumed",
        "vm.report",
    }


def test_event_log_sink():
    app = answering(204, b"")
    with served(app) as url:
        notifier = Notifier(url)
        log = EventLog()
        log.add_sink(notifier)
        log.emit("switch.connected", switch="edge1")
        moved = log.emit(
            "vsi.associated",
            switch="edge2",
            port="edge2-s1",
            vsi="a1b2c3d4-0000-0000-0000-000000001122",
            moved_from="edge1/edge1-s1",
        )
        log.emit("vsi.refused", switch="edge1", port="edge1-s2", error="other_failure")
        assert notifier.flush(5)
    first, second = bodies(app)
    assert first == {
        "kind": "vsi.associated",
        "ts": moved.ts,
        "switch": "edge2",
        "port": "edge2-s1",
        "seq": 1,
        "detail": {"vsi": "a1b2c3d4-0000-0000-0000-000000001122", "moved_from": "edge1/edge1-s1"},
    }
    assert second["kind"] == "vsi.refused" and second["seq"] == 2


def test_close_drops_what_is_queued_and_stops():
    app, received, release = _held_manager()
    with served(app) as url:
        notifier = Notifier(url, timeout=5)
        for n in range(3):
            notifier.notify(event(n))
        assert received.wait(5)
        threading.Timer(0.2, release.set).start()  # after close() emptied the queue
        notifier.close(timeout=5)
        assert not notifier.notify(event(9))
    stats = notifier.stats()
    assert stats["sent"] == 1 and stats["dropped"] == 3 and stats["queued"] == 0


def test_close_interrupts_the_backoff():
    notifier = Notifier(closed_port_url(), retries=5, backoff=10)
    notifier.notify(event(1))
    time.sleep(0.1)
    start = time.monotonic()
    notifier.close(timeout=5)
    assert time.monotonic() - start < 5  # not the 10 s backoff
    assert notifier.stats()["failed"] == 1


def test_bad_url():
    with pytest.raises(ValueError, match="webhook URL"):
        Notifier("127.0.0.1:8090/v1/notifications")
