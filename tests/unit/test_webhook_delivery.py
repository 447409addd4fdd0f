"""Webhook delivery (app/vcenter/notifier.py, signing.py, transport.py): one bounded pool of
workers for every subscription, order per webhook, counted drops; every POST signed; the
connection goes to the address the destination policy checked; nothing a webhook does ends a
worker."""

import json
import threading
import time

import pytest

from app.vcenter.destinations import DestinationPolicy, DestinationRefused
from app.vcenter.notifier import DeliveryPool, Notifier, Webhook
from app.vcenter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, signature, verify
from tests.unit.test_vcenter_http import Scripted, closed_port_url, served

SECRET = "s3cret-of-the-subscriber"


class Receiver(Scripted):
    """Answers 204 (or what ``answer`` says); keeps each POST's headers and body."""

    def __init__(self, answer=lambda number, environ: (204, b"")) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        super().__init__(self._record(answer))

    def _record(self, answer):
        def record(number, environ):
            headers = {
                key[5:].replace("_", "-").title(): value
                for key, value in environ.items()
                if key.startswith("HTTP_")
            }
            with self._lock:
                self.posts.append((headers, self.requests[number - 1][3]))
            return answer(number, environ)

        return record

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.posts]


def held():
    """A receiver that holds every POST until ``release`` is set."""
    release = threading.Event()
    return Receiver(lambda number, environ: (release.wait(10), (204, b""))[1]), release


@pytest.fixture
def pool():
    pool = DeliveryPool(workers=2, queue_size=100)
    yield pool
    pool.close()


def test_every_post_is_signed_with_the_webhook_secret(pool):
    receiver = Receiver()
    with served(receiver) as url:
        hook = Webhook(url + "/hook", pool, secret=lambda: SECRET)
        hook.notify({"kind": "alarm", "n": 1})
        assert hook.flush(5)
    [(headers, body)] = receiver.posts
    stamp = headers["X-Evb-Timestamp"]
    assert abs(int(stamp) - time.time()) < 5
    assert headers["X-Evb-Signature"] == signature(SECRET, int(stamp), body)
    named = {TIMESTAMP_HEADER: stamp, SIGNATURE_HEADER: headers["X-Evb-Signature"]}
    assert verify(SECRET, named, body, time.time())
    assert not verify("another secret of 24 chars", named, body, time.time())
    assert not verify(SECRET, named, body.replace(b'"n": 1', b'"n": 2'), time.time())
    assert not verify(SECRET, named, body, time.time() + 301)  # replayed later
    assert not verify(SECRET, {SIGNATURE_HEADER: named[SIGNATURE_HEADER]}, body, time.time())


def test_the_vm_managers_notifications_are_signed_with_its_secret():
    receiver = Receiver()
    with served(receiver) as url:
        notifier = Notifier(url + "/v1/notifications", secret=lambda: SECRET)
        notifier.notify({"kind": "vsi.associated"})
        assert notifier.flush(5)
        notifier.close()
    [(headers, body)] = receiver.posts
    named = {
        TIMESTAMP_HEADER: headers["X-Evb-Timestamp"],
        SIGNATURE_HEADER: headers["X-Evb-Signature"],
    }
    assert verify(SECRET, named, body, time.time())


def test_the_connection_goes_to_the_address_checked(pool):
    """The name is resolved once, by the policy; the POST goes to that address (the system
    resolver does not know the name at all), with the name in the Host header."""
    lookups = []

    def resolve(host, port):
        lookups.append(host)
        return ["127.0.0.1"]

    receiver = Receiver()
    with served(receiver) as url:
        port = url.rsplit(":", 1)[1]
        policy = DestinationPolicy(["127.0.0.1"], resolver=resolve)
        hook = Webhook(f"http://hooks.invalid:{port}/x", pool, destinations=policy)
        hook.notify({"kind": "alarm"})
        assert hook.flush(5)
    assert lookups == ["hooks.invalid"]
    assert receiver.posts[0][0]["Host"] == f"hooks.invalid:{port}"
    assert hook.stats()["sent"] == 1


def test_a_name_rebound_to_a_refused_address_gets_nothing(pool):
    """DNS rebinding: the name was public when subscribed; now it resolves to loopback."""
    receiver = Receiver()
    with served(receiver) as url:
        port = url.rsplit(":", 1)[1]
        policy = DestinationPolicy(resolver=lambda host, port: ["127.0.0.1"])
        hook = Webhook(f"http://rebind.example:{port}/x", pool, destinations=policy)
        hook.notify({"kind": "alarm"})
        assert hook.flush(5)
    assert receiver.count == 0
    assert hook.stats()["refused"] == 1 and hook.stats()["retried"] == 0
    assert "127.0.0.1 is a loopback address" in hook.last_problem


def test_a_url_without_host_fails_its_event_and_the_worker_lives_on():
    """``http:///x`` (stored before URLs were checked) once ended the notifier's thread."""
    pool = DeliveryPool(workers=1)
    receiver = Receiver()
    with served(receiver) as url:
        broken = Webhook("http:///x", pool)
        secret_bug = Webhook(url + "/y", pool, secret=lambda: 1 / 0)  # a bug while signing
        good = Webhook(url + "/z", pool)
        for hook in (broken, secret_bug, good):
            hook.notify({"kind": "alarm"})
        assert good.flush(5) and broken.flush(5) and secret_bug.flush(5)
    assert broken.stats()["failed"] == 1 and secret_bug.stats()["failed"] == 1
    assert good.stats()["sent"] == 1 and receiver.count == 1
    pool.close()


def test_many_webhooks_share_the_pools_threads():
    before = threading.active_count()
    pool = DeliveryPool(workers=3)
    hooks = [Webhook(f"http://198.51.100.1:9/{n}", pool) for n in range(500)]
    assert threading.active_count() - before == 3
    assert len(hooks) == 500
    pool.close()


def test_a_slow_receiver_does_not_delay_the_others():
    pool = DeliveryPool(workers=2)
    slow_receiver, release = held()
    fast_receiver = Receiver()
    with served(slow_receiver) as slow_url, served(fast_receiver) as fast_url:
        slow = Webhook(slow_url + "/s", pool, timeout=10)
        fast = Webhook(fast_url + "/f", pool)
        for n in range(3):
            slow.notify({"n": n})
        for n in range(3):
            fast.notify({"n": n})
        assert fast.flush(5)  # while the slow one still holds its first POST
        assert slow.stats()["queued"] == 2
        release.set()
        assert slow.flush(5)
    assert [b["n"] for b in slow_receiver.bodies()] == [0, 1, 2]  # in order, one at a time
    assert [b["seq"] for b in fast_receiver.bodies()] == [1, 2, 3]
    pool.close()


def test_a_retry_waits_without_holding_a_worker():
    pool = DeliveryPool(workers=1)
    receiver = Receiver()
    with served(receiver) as url:
        dead = Webhook(closed_port_url() + "/x", pool, retries=2, backoff=3)
        live = Webhook(url + "/y", pool)
        dead.notify({"n": 1})
        time.sleep(0.2)  # the dead one failed once and waits 3 s for its retry
        start = time.monotonic()
        live.notify({"n": 2})
        assert live.flush(2) and time.monotonic() - start < 1
        dead.close()
    assert dead.stats()["failed"] == 1
    pool.close()


def test_the_pool_bounds_what_waits_across_webhooks():
    pool = DeliveryPool(workers=1, queue_size=3)
    receiver, release = held()
    with served(receiver) as url:
        first = Webhook(url + "/a", pool, timeout=10)
        second = Webhook(url + "/b", pool, timeout=10)
        first.notify({"n": 0})
        deadline = time.monotonic() + 5
        while receiver.count == 0 and time.monotonic() < deadline:
            time.sleep(0.01)  # the worker holds event 0 at the receiver
        accepted = [first.notify({"n": n}) for n in (1, 2)] + [
            second.notify({"n": n}) for n in (3, 4)
        ]
        assert accepted == [True, True, True, False]
        assert pool.stats()["dropped"] == 1 and pool.stats()["queued"] == 3
        assert second.stats()["dropped"] == 1
        release.set()
        assert first.flush(5) and second.flush(5)
    assert pool.stats()["queued"] == 0
    pool.close()


def test_closing_a_webhook_drops_its_queue_and_frees_the_pool():
    pool = DeliveryPool(workers=1, queue_size=10)
    receiver, release = held()
    with served(receiver) as url:
        hook = Webhook(url + "/a", pool, timeout=10)
        for n in range(5):
            hook.notify({"n": n})
        time.sleep(0.2)
        hook.close()
        assert pool.stats()["queued"] == 0
        assert not hook.notify({"n": 9})
        release.set()
        assert hook.flush(5)
    assert hook.stats()["dropped"] == 5  # 4 queued, and the one after close
    pool.close()


def test_the_policy_is_not_applied_to_the_operators_own_url():
    """The VM manager's URL is the operator's: a loopback manager is fine."""
    receiver = Receiver()
    with served(receiver) as url:
        notifier = Notifier(url + "/v1/notifications")
        notifier.notify({"kind": "vsi.associated"})
        assert notifier.flush(5)
        notifier.close()
    assert receiver.count == 1


def test_a_notifier_url_must_be_well_formed():
    with pytest.raises(ValueError, match="user information"):
        Notifier("http://a:b@127.0.0.1:8090/v1/notifications")
    with pytest.raises(DestinationRefused):
        DestinationPolicy().check_url("http://a:b@127.0.0.1:8090/v1/notifications")
