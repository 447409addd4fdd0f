"""The controller's client of the VM manager: found / not found / unreachable answers, the cache
and its TTLs, the asynchronous API (never blocks, one lookup per query, bounded), slow, dead and
broken managers, and the authorizer seam."""

import threading
import time

import pytest

from app.codec.vdp import FilterEntry, FilterFormat, VdpError, VsiId
from app.fabric.ports import PortRef
from app.policy import VsiTypeDatabase, VsiTypeKey
from app.registry.documents import parse_profile
from app.vcenter.client import (
    LookupPending,
    LookupResult,
    LookupStatus,
    ProfileQuery,
    VcenterClient,
    VmQuery,
)
from app.vdp.authorizer import AuthRequest, Authorizer, VsiManagerUnreachable
from app.vdp.binding_index import BindingIndex
from tests.unit.test_vcenter_http import Scripted, closed_port_url, served

WEB_JSON = {
    "type_id": 5,
    "version": 4,
    "name": "web",
    "tenant": "blue",
    "vlans": [100, 101],
    "default_vlan": 100,
    "manager_ids": ["mgr1"],
}
WEB = parse_profile(WEB_JSON)
WEB_QUERY = ProfileQuery(5, 4, "mgr1")
VM_JSON = {
    "vsi_id": "a1b2c3d4-0000-0000-0000-000000001122",
    "tenant": "blue",
    "type_id": 5,
    "type_version": 4,
    "macs": ["52:00:00:11:22:33"],
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Done:
    """Collects on_done calls; ``wait`` for the n-th."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self._cond = threading.Condition()

    def __call__(self, query, result) -> None:
        with self._cond:
            self.calls.append((query, result, time.monotonic()))
            self._cond.notify_all()

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[tuple]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.calls) >= count, timeout), self.calls
            return list(self.calls)


def manager(routes: dict[str, tuple[int, object]], delay: float = 0.0) -> Scripted:
    """Answers by path; 404 for the rest."""

    def answer(number, environ):
        time.sleep(delay)
        return routes.get(environ["PATH_INFO"], (404, {"error": "no such thing"}))

    return Scripted(answer)


@pytest.fixture
def clock():
    return FakeClock()


def client(url: str, clock=None, **kwargs) -> VcenterClient:
    return VcenterClient(url, clock=clock or FakeClock(), **kwargs)


# answers


def test_found_profile():
    app = manager({"/v1/vsi-types/5/4": (200, WEB_JSON)})
    with served(app) as url:
        result = client(url).lookup_profile(5, 4, "mgr1")
    assert result.status is LookupStatus.FOUND and result.found
    assert result.value == WEB
    assert app.requests[0][:3] == ("GET", "/v1/vsi-types/5/4", "manager=mgr1")


def test_manager_id_is_url_encoded():
    app = manager({})
    with served(app) as url:
        client(url).lookup_profile(5, 4, "a&b=c/d")
    assert app.requests[0][2] == "manager=a%26b%3Dc%2Fd"


def test_not_found_profile():
    with served(manager({})) as url:
        result = client(url).lookup_profile(5, 4, "mgr1")
    assert result.status is LookupStatus.NOT_FOUND and result.value is None
    assert "not found: no such thing" in result.reason


def test_found_vm():
    app = manager({"/v1/vms/a1b2c3d4-0000-0000-0000-000000001122": (200, VM_JSON)})
    with served(app) as url:
        result = client(url).lookup_vm("A1B2C3D4-0000-0000-0000-000000001122")
    assert result.found and result.value.macs == ("52:00:00:11:22:33",)
    assert result.value.type_key == VsiTypeKey(5, 4)


def test_vm_id_is_quoted_in_the_path():
    app = manager({})
    with served(app) as url:
        assert client(url).lookup_vm("local:0a0b").status is LookupStatus.NOT_FOUND
    assert app.requests[0][1] == "/v1/vms/local:0a0b"


@pytest.mark.parametrize(
    "status, body, reason",
    [
        (500, {"error": "database down"}, "HTTP 500: database down"),
        (503, b"<html>maintenance</html>", "HTTP 503: <html>maintenance</html>"),
        (403, {"error": "who are you"}, "HTTP 403: who are you"),
        (302, b"", "HTTP 302"),
        (200, b"{not json", "bad JSON: "),
        (200, b'{"type_id": NaN}', "bad JSON: NaN"),
        (200, {**WEB_JSON, "vlans": [100, 5000]}, "vlans[1]: expected a VLAN ID 1-4094, got 5000"),
        (200, {**WEB_JSON, "ingress_acl": [{"action": "allow"}]}, "ingress_acl[0].action: "),
        (200, {**WEB_JSON, "tenant": None}, "tenant: required field is missing"),
        (200, {**WEB_JSON, "colour": "red"}, "colour: unknown field"),
        (
            200,
            {**WEB_JSON, "version": 5},
            "type_id: asked for VSI type 5 version 4, the manager answered VSI type 5 version 5",
        ),
        (200, [WEB_JSON], "invalid answer: expected a JSON object, got an array"),
    ],
)
def test_broken_answers_are_unreachable_with_a_reason(status, body, reason):
    with served(manager({"/v1/vsi-types/5/4": (status, body)})) as url:
        result = client(url).lookup_profile(5, 4, "mgr1")
    assert result.status is LookupStatus.UNREACHABLE and result.value is None
    assert reason in result.reason
    assert "/v1/vsi-types/5/4" in result.reason


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"macs": ["nope"]}, "macs[0]: expected a MAC address"),
        ({"tenant": None}, "tenant: required field is missing"),
        (
            {"vsi_id": "a1b2c3d4-0000-0000-0000-000000009999"},
            "vsi_id: a1b2c3d4-0000-0000-0000-000000009999 differs from",
        ),
    ],
)
def test_invalid_vm_is_unreachable_naming_the_field(change, reason):
    path = "/v1/vms/a1b2c3d4-0000-0000-0000-000000001122"
    with served(manager({path: (200, {**VM_JSON, **change})})) as url:
        result = client(url).lookup_vm(VM_JSON["vsi_id"])
    assert result.status is LookupStatus.UNREACHABLE
    assert f"{url}{path}: invalid answer: {reason}" in result.reason


def test_closed_port_is_unreachable():
    result = client(closed_port_url()).lookup_profile(5, 4, "mgr1")
    assert result.status is LookupStatus.UNREACHABLE
    assert "connection refused" in result.reason


# the cache


def test_found_is_cached_within_ttl_and_refreshed_after(clock):
    app = manager({"/v1/vsi-types/5/4": (200, WEB_JSON)})
    with served(app) as url:
        vcenter = client(url, clock, ttl=60, negative_ttl=5)
        assert vcenter.lookup_profile(5, 4, "mgr1").found
        clock.now += 59.9
        assert vcenter.lookup_profile(5, 4, "mgr1").found
        assert vcenter.request(WEB_QUERY).found
        assert app.count == 1
        clock.now += 0.1
        assert vcenter.lookup_profile(5, 4, "mgr1").found
        assert app.count == 2
    assert vcenter.stats() == {
        "url": url,
        "answers": {"found": 2, "not_found": 0, "unreachable": 0},
        "cached": 1,
        "in_progress": 0,
    }


def test_negative_answers_are_cached_for_negative_ttl(clock):
    app = manager({})
    with served(app) as url:
        vcenter = client(url, clock, ttl=60, negative_ttl=5)
        assert vcenter.lookup_profile(5, 4, "mgr1").status is LookupStatus.NOT_FOUND
        clock.now += 4.9
        assert vcenter.lookup_profile(5, 4, "mgr1").status is LookupStatus.NOT_FOUND
        assert app.count == 1
        clock.now += 0.1
        vcenter.lookup_profile(5, 4, "mgr1")
        assert app.count == 2


def test_unreachable_is_cached_for_negative_ttl(clock):
    vcenter = client(closed_port_url(), clock, negative_ttl=5)
    first = vcenter.lookup_profile(5, 4, "mgr1")
    assert vcenter.request(WEB_QUERY) is first
    clock.now += 5
    assert vcenter.request(WEB_QUERY) is None


def test_cache_is_keyed_by_type_version_and_manager(clock):
    app = manager({"/v1/vsi-types/5/4": (200, WEB_JSON)})
    with served(app) as url:
        vcenter = client(url, clock)
        for query in (
            WEB_QUERY,
            ProfileQuery(5, 4, "mgr2"),
            ProfileQuery(5, 3, "mgr1"),
            ProfileQuery(6, 4, "mgr1"),
            WEB_QUERY,
            ProfileQuery(5, 4, "mgr2"),
        ):
            vcenter.lookup(query)
        assert app.count == 4


def test_cache_size_is_bounded(clock):
    with served(manager({})) as url:
        vcenter = client(url, clock, max_cached=3)
        for type_id in range(5):
            vcenter.lookup_profile(type_id, 1, "mgr1")
        assert vcenter.stats()["cached"] == 3
        assert vcenter.request(ProfileQuery(4, 1, "mgr1")) is not None  # newest kept
        assert vcenter.request(ProfileQuery(0, 1, "mgr1")) is None  # oldest evicted


@pytest.mark.parametrize(
    "kwargs", [{"timeout": 0}, {"ttl": -1}, {"negative_ttl": 0}, {"base_url": "127.0.0.1:8090"}]
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        VcenterClient(**{"base_url": "http://127.0.0.1:8090", **kwargs})


# the asynchronous API


def test_request_starts_one_lookup_and_calls_on_done():
    done = Done()
    app = manager({"/v1/vsi-types/5/4": (200, WEB_JSON)}, delay=0.3)
    with served(app) as url:
        vcenter = client(url, on_done=done)
        assert all(vcenter.request(WEB_QUERY) is None for _ in range(20))
        assert vcenter.stats()["in_progress"] == 1
        [(query, result, _)] = done.wait()
        assert query == WEB_QUERY and result.found and result.value == WEB
        assert vcenter.request(WEB_QUERY) is result  # the replay finds the answer
        time.sleep(0.2)
        assert app.count == 1 and len(done.calls) == 1
        assert vcenter.stats()["in_progress"] == 0


def test_slow_manager_is_unreachable_within_timeout_and_never_blocks():
    done = Done()
    with served(manager({"/v1/vsi-types/5/4": (200, WEB_JSON)}, delay=3)) as url:
        vcenter = client(url, timeout=0.5, on_done=done)
        start = time.monotonic()
        assert vcenter.request(WEB_QUERY) is None
        assert vcenter.request(ProfileQuery(6, 1, "mgr1")) is None
        assert time.monotonic() - start < 0.4  # well before the 0.5 s timeout
        calls = done.wait(2)
        for _query, result, at in calls:
            assert result.status is LookupStatus.UNREACHABLE
            assert "no complete answer within 0.5 s" in result.reason
            assert 0.45 < at - start < 2.5  # at the timeout, not the manager's 3 s
        assert vcenter.request(WEB_QUERY).status is LookupStatus.UNREACHABLE


def test_synchronous_lookup_of_a_slow_manager_ends_at_timeout():
    with served(manager({}, delay=3)) as url:
        start = time.monotonic()
        result = client(url, timeout=0.4).lookup_vm("10.0.0.1")
        assert result.status is LookupStatus.UNREACHABLE
        assert time.monotonic() - start < 2.5  # at the timeout, not the manager's 3 s


def test_lookups_in_progress_are_bounded():
    done = Done()
    with served(manager({}, delay=0.2)) as url:
        vcenter = client(url, on_done=done, workers=1, max_pending=2)
        assert vcenter.request(ProfileQuery(1, 1, "m")) is None
        assert vcenter.request(ProfileQuery(2, 1, "m")) is None  # waits for the worker
        refused = vcenter.request(ProfileQuery(3, 1, "m"))
        assert refused.status is LookupStatus.UNREACHABLE
        assert "2 lookups to the VM manager are already in progress" in refused.reason
        done.wait(2)
        assert vcenter.request(ProfileQuery(3, 1, "m")) is None  # not cached: asked now
        done.wait(3)


def test_a_failing_on_done_does_not_stop_the_client():
    calls = []

    def broken(query, result):
        calls.append(query)
        raise RuntimeError("controller bug")

    with served(manager({})) as url:
        vcenter = client(url, on_done=broken, workers=1)
        vcenter.request(ProfileQuery(1, 1, "m"))
        vcenter.request(ProfileQuery(2, 1, "m"))
        deadline = time.monotonic() + 5
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert calls == [ProfileQuery(1, 1, "m"), ProfileQuery(2, 1, "m")]


def test_vm_queries_share_the_machinery():
    done = Done()
    path = "/v1/vms/a1b2c3d4-0000-0000-0000-000000001122"
    with served(manager({path: (200, VM_JSON)})) as url:
        vcenter = client(url, on_done=done)
        query = VmQuery("A1B2C3D4-0000-0000-0000-000000001122")
        assert query == VmQuery(VM_JSON["vsi_id"])
        assert vcenter.request(query) is None
        [(_, result, _)] = done.wait()
        assert result.found and vcenter.request(VmQuery(VM_JSON["vsi_id"])) is result


def test_closed_client_answers_unreachable():
    done = Done()
    with served(manager({}, delay=0.3)) as url:
        vcenter = client(url, on_done=done, workers=1)
        assert vcenter.request(ProfileQuery(1, 1, "m")) is None  # running
        assert vcenter.request(ProfileQuery(2, 1, "m")) is None  # waiting: cancelled
        vcenter.close()
        for type_id in (2, 3):
            result = vcenter.request(ProfileQuery(type_id, 1, "m"))
            assert result.status is LookupStatus.UNREACHABLE and "closed" in result.reason
        time.sleep(0.5)
    assert done.calls == [] and vcenter.stats()["in_progress"] == 0


# the authorizer seam

PORT = PortRef(1, 1)
VSI = VsiId.from_uuid("a1b2c3d4-0000-0000-0000-00000000000a")


def auth_request(type_id: int = 5, version: int = 4) -> AuthRequest:
    return AuthRequest(
        PORT,
        "mgr1",
        type_id,
        version,
        VSI,
        FilterFormat.MAC_VID,
        (FilterEntry(vid=0, mac="52:00:00:00:00:0a"),),
    )


def test_profile_lookup_prefers_the_database():
    known = parse_profile({**WEB_JSON, "name": "local"})
    vcenter = client(closed_port_url())
    assert vcenter.profile_lookup(VsiTypeDatabase([known]), "mgr1", VsiTypeKey(5, 4)) is known
    assert vcenter.stats()["answers"]["unreachable"] == 0


def test_profile_lookup_through_the_authorizer():
    """Unknown type: pending (park it), then the replay is granted; a dead manager gives the
    standard "unable to contact VSI manager" status, not hard."""
    done = Done()
    with served(manager({"/v1/vsi-types/5/4": (200, WEB_JSON)})) as url:
        vcenter = client(url, on_done=done)
        authorizer = Authorizer(VsiTypeDatabase, lookup=vcenter.profile_lookup)
        with pytest.raises(LookupPending) as pending:
            authorizer.authorize(auth_request(), BindingIndex())
        assert pending.value.query == WEB_QUERY
        done.wait()
        decision = authorizer.authorize(auth_request(), BindingIndex())
        assert decision.ok and decision.profile == WEB and decision.entries[0].vid == 100

        with pytest.raises(LookupPending):
            authorizer.authorize(auth_request(5, 3), BindingIndex())
        done.wait(2)
        decision = authorizer.authorize(auth_request(5, 3), BindingIndex())
        assert decision.error is VdpError.OTHER_FAILURE and decision.hard
        assert "unknown VSI type 5 version 3" in decision.reason

    dead = client(closed_port_url(), on_done=done)
    authorizer = Authorizer(VsiTypeDatabase, lookup=dead.profile_lookup)
    with pytest.raises(LookupPending):
        authorizer.authorize(auth_request(), BindingIndex())
    done.wait(3)
    decision = authorizer.authorize(auth_request(), BindingIndex())
    assert decision.error is VdpError.UNABLE_TO_CONTACT_VSI_MANAGER and not decision.hard
    assert "connection refused" in decision.reason


def test_profile_lookup_raises_unreachable_from_the_cache(clock):
    vcenter = client(closed_port_url(), clock)
    vcenter.lookup_profile(5, 4, "mgr1")
    with pytest.raises(VsiManagerUnreachable, match="connection refused"):
        vcenter.profile_lookup(VsiTypeDatabase(), "mgr1", VsiTypeKey(5, 4))


def test_lookup_result_found_property():
    assert LookupResult(LookupStatus.FOUND, WEB).found
    assert not LookupResult(LookupStatus.NOT_FOUND).found
