"""Fault subscriptions as a trust boundary (issue 10): a tenant's URL cannot reach loopback,
link-local or private addresses, nor hide a host behind user information; a tenant sees whether
its notifications arrived, not why not; a quota per tenant; one delivery pool whatever the
number of subscriptions; each subscription's secret signs its notifications, shown once."""

import threading
import time

import pytest
from webob import Request

from app.faults.subscriptions import Subscribers
from app.vcenter.destinations import DestinationPolicy
from app.vcenter.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.unit.test_rest_faults import PORT_DOWN, PORT_UP
from tests.unit.test_rest_harness import BLUE_TOKEN, RED_TOKEN, Harness
from tests.unit.test_vcenter_http import closed_port_url, served
from tests.unit.test_webhook_delivery import Receiver

LOOPBACK = DestinationPolicy(["127.0.0.0/8"])


@pytest.fixture
def strict(tmp_path):
    """The controller's defaults: webhooks to public addresses only."""
    harness = Harness(str(tmp_path / "evb.db"), subscribers=Subscribers)
    yield harness
    harness.close()


@pytest.fixture
def quota2(tmp_path):
    harness = Harness(
        str(tmp_path / "evb.db"),
        subscribers=lambda: Subscribers(destinations=LOOPBACK, quota=2),
    )
    yield harness
    harness.close()


def post(harness, url, token=BLUE_TOKEN, **extra):
    return harness.call("POST", "/v1/subscriptions", {"url": url, **extra}, token=token)


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:22/x", "127.0.0.1 is a loopback address"),
        ("http://localhost:6653/x", "loopback name"),
        ("http://[::1]:8080/x", "loopback"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1:8080/x", "private"),
        ("http://user:pw@example.com/x", "user information"),
        ("http://example.com@127.0.0.1:6653/x", "user information"),
        ("http:///x", "host is missing"),
        ("http://example.com:99999/x", "expected http"),
        ("http://example.com/x\r\nevent=switch.disconnected", "control"),
    ],
)
def test_urls_that_lead_inside_are_refused(strict, url, reason):
    status, body = post(strict, url)
    assert status == 400 and body["field"] == "url" and reason in body["error"], body
    assert strict.call("GET", "/v1/subscriptions") == (200, [])


def test_a_public_url_is_accepted_by_default(strict):
    assert post(strict, "http://doctor.example.com:8000/alarms")[0] == 201


def test_a_tenant_sees_whether_its_notifications_arrived_and_nothing_more(harness):
    receiver = Receiver()
    with served(receiver) as url:
        good = post(harness, url + "/ok")[1]
        dead = post(harness, closed_port_url() + "/x")[1]
        harness.events.emit("port.modified", **PORT_DOWN)
        assert harness.monitor.subscribers.flush(10)
    mine = {
        s["id"]: s["delivery"]
        for s in harness.call("GET", "/v1/subscriptions", token=BLUE_TOKEN)[1]
    }
    assert mine == {good["id"]: {"sent": 1, "failed": 0}, dead["id"]: {"sent": 0, "failed": 1}}
    admin = {s["id"]: s["delivery"] for s in harness.call("GET", "/v1/subscriptions")[1]}
    assert admin[dead["id"]]["retried"] == 3 and admin[dead["id"]]["failed"] == 1


def test_a_quota_per_tenant(quota2):
    ids = [post(quota2, f"http://127.0.0.1:9/{n}")[1]["id"] for n in range(2)]
    status, body = post(quota2, "http://127.0.0.1:9/3")
    assert status == 409 and "quota" in body["error"], body
    assert post(quota2, "http://127.0.0.1:9/red", token=RED_TOKEN)[0] == 201  # red's own quota
    assert quota2.call("DELETE", f"/v1/subscriptions/{ids[0]}", token=BLUE_TOKEN)[0] == 200
    assert post(quota2, "http://127.0.0.1:9/3")[0] == 201
    assert len(quota2.call("GET", "/v1/subscriptions")[1]) == 3


def test_subscriptions_share_one_delivery_pool(harness):
    """3,000 subscriptions once meant 3,000 threads, again at every restart."""
    before = threading.active_count()
    for n in range(20):
        assert post(harness, f"http://127.0.0.1:9/{n}", token=None if n % 2 else BLUE_TOKEN)
    for _ in range(2):
        harness.reopen()
    stats = harness.monitor.subscribers.pool_stats()
    assert stats is not None and threading.active_count() - before <= stats["workers"]


def test_the_secret_is_shown_once_and_signs_every_notification(harness):
    receiver = Receiver()
    with served(receiver) as url:
        status, created = harness.call(
            "POST", "/v1/subscriptions", {"url": url + "/hook"}, token=BLUE_TOKEN
        )
        given = post(harness, url + "/given", secret="my own secret of 24+ chars")[1]
        assert status == 201 and len(created["secret"]) >= 32
        assert given["secret"] == "my own secret of 24+ chars"
        listed = harness.call("GET", "/v1/subscriptions")[1]
        assert all("secret" not in s for s in listed)
        harness.reopen()  # the secret is kept with the subscription
        harness.events.emit("port.modified", **PORT_DOWN)
        harness.events.emit("port.modified", **PORT_UP)
        assert harness.monitor.subscribers.flush(5)
    by_path = {}
    for (headers, body), request in zip(receiver.posts, receiver.requests, strict=True):
        by_path.setdefault(request[1], []).append((headers, body))
    for path, secret in (("/hook", created["secret"]), ("/given", given["secret"])):
        assert len(by_path[path]) == 2
        for headers, body in by_path[path]:
            named = {
                TIMESTAMP_HEADER: headers["X-Evb-Timestamp"],
                SIGNATURE_HEADER: headers["X-Evb-Signature"],
            }
            assert verify(secret, named, body, time.time()), path


def test_the_answer_with_the_secret_is_not_cached(harness):
    request = Request.blank(
        "/v1/subscriptions",
        method="POST",
        headers={"Authorization": f"Bearer {BLUE_TOKEN}", "Content-Type": "application/json"},
        body=b'{"url": "http://127.0.0.1:9/x"}',
    )
    response = request.get_response(harness.api.wsgi)
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("secret", ["short", " padded secret of enough chars ", "x" * 257, 12])
def test_a_bad_secret_is_400(harness, secret):
    status, body = post(harness, "http://127.0.0.1:9/x", secret=secret)
    assert status == 400 and body["field"] == "secret", body
