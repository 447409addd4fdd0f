"""VLAN pools per tenant and the profile quota, on every source of profiles: REST pushes and
groups, the policy files at start, and the VM manager's lookup answers."""

import pytest

from app.codec.vdp import VdpError
from app.config import ConfigError, build_settings, load_file
from app.policy import VsiTypeDatabase, load_policies
from app.registry import Conflict, Forbidden, Registry, RegistryError
from app.registry.documents import parse_profile
from app.registry.pools import VlanPools
from app.store.sqlite_store import SqliteStore
from app.vcenter.client import LookupPending
from app.vdp.authorizer import Authorizer
from app.vdp.binding_index import BindingIndex
from tests.unit.test_rest_harness import BLUE_TOKEN, POLICIES, RED_TOKEN, FakeService, Harness
from tests.unit.test_rest_harness import profile as document
from tests.unit.test_vcenter_client import WEB_JSON, Done, auth_request, client, manager
from tests.unit.test_vcenter_http import served

GREEDY = ["1-99", "103-199", "201-4094"]  # every VLAN the demo's files leave free
POOLS = VlanPools({"blue": frozenset(range(100, 110)), "red": frozenset(range(200, 210))})


@pytest.fixture
def pooled(tmp_path):
    harness = Harness(str(tmp_path / "evb.db"), pools=POOLS)
    yield harness
    harness.close()


@pytest.fixture
def store(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    yield store
    store.close()


# pushes -------------------------------------------------------------------------------------
def test_without_pools_a_tenant_can_still_take_every_free_vlan(harness):
    """Today's behaviour when no pool is set (the demo): documented, and warned about."""
    status, _ = harness.call("PUT", "/v1/profiles/9/1", document(vlans=GREEDY), BLUE_TOKEN)
    assert status == 201


def test_a_tenant_takes_its_vlans_from_its_pool(pooled):
    """Finding: a tenant could claim every free VLAN and lock the others out."""
    status, body = pooled.call("PUT", "/v1/profiles/9/1", document(vlans=GREEDY), BLUE_TOKEN)
    assert status == 409 and body["field"] == "vlans"
    assert (
        "VLAN 1-99, 110-199, 201-4094 not" in body["error"]
        and "pool of tenant blue" in body["error"]
    )
    assert pooled.registry.database().get(9, 1) is None
    assert pooled.call("PUT", "/v1/profiles/9/1", document(vlans=[103]), BLUE_TOKEN)[0] == 201


def test_a_group_takes_its_vlans_from_the_pool_too(pooled):
    body = {"profiles": [document(vlans=[103]), document(10, 1, vlans=[300])], "vms": []}
    status, answer = pooled.call("POST", "/v1/groups", body, BLUE_TOKEN)
    assert status == 409 and answer["field"] == "profiles[1].vlans"
    assert pooled.registry.database().get(9, 1) is None


def test_a_tenant_without_a_pool_takes_no_vlan_of_a_pool(pooled):
    status, body = pooled.call("PUT", "/v1/profiles/9/1", document(tenant="green", vlans=[105]))
    assert status == 409 and "VLAN 105 is in the VLAN pool of tenant blue" in body["error"]
    assert pooled.call("PUT", "/v1/profiles/9/1", document(tenant="green", vlans=[300]))[0] == 201


def test_pools_required_leaves_a_tenant_without_one_no_vlan(tmp_path):
    pools = VlanPools(POOLS.configured, required=True)
    harness = Harness(str(tmp_path / "evb.db"), pools=pools)
    try:
        status, body = harness.call("PUT", "/v1/profiles/9/1", document(tenant="green"))
        assert status == 409 and "has no VLAN pool" in body["error"]
    finally:
        harness.close()


# the policy files, at start -----------------------------------------------------------------
def test_a_file_profile_outside_its_tenants_pool_stops_the_start(store):
    """Finding: the file path skipped the VLAN checks."""
    pools = VlanPools({"blue": frozenset([100, 101])})  # the files give blue 102 too
    with pytest.raises(RegistryError, match=r"default.yaml:\d+.*VLAN 102 not in the VLAN pool"):
        Registry(load_policies(POLICIES), store, FakeService(), pools=pools)


def test_files_without_a_pool_under_pools_required_stop_the_start(store):
    with pytest.raises(RegistryError, match="tenant red has no VLAN pool"):
        Registry(
            load_policies(POLICIES),
            store,
            FakeService(),
            pools=VlanPools({"blue": frozenset(range(100, 103))}, required=True),
        )


def test_tenants_without_a_pool_are_warned_of_at_start(store, caplog):
    Registry(
        load_policies(POLICIES),
        store,
        FakeService(),
        pools=VlanPools({"blue": POOLS.pools["blue"]}),
    )
    assert "may take any VLAN no pool holds: red" in caplog.text


def test_an_empty_pool_leaves_a_tenant_no_vlan(pooled):
    assert pooled.call("PUT", "/v1/vlan-pools/green", {"vlans": []})[0] == 201
    status, body = pooled.call("PUT", "/v1/profiles/9/1", document(tenant="green", vlans=[300]))
    assert status == 409 and "pool of tenant green (none)" in body["error"]


def test_the_demo_files_fit_pools_and_quota(store):
    Registry(load_policies(POLICIES), store, FakeService(), pools=POOLS, max_profiles=2)


# the pools themselves -----------------------------------------------------------------------
def test_only_an_admin_sees_or_sets_pools(pooled):
    for method, body in (("GET", None), ("PUT", {"vlans": GREEDY}), ("DELETE", None)):
        status, _ = pooled.call(method, "/v1/vlan-pools/blue", body, BLUE_TOKEN)
        assert status == 403, method
    assert pooled.call("GET", "/v1/vlan-pools", token=RED_TOKEN)[0] == 403
    with pytest.raises(Forbidden):
        pooled.registry.put_pool("blue", {"vlans": GREEDY}, "blue")


def test_an_admin_assigns_lists_and_removes_pools(pooled):
    status, body = pooled.call("PUT", "/v1/vlan-pools/green", {"vlans": [300, "310-319"]})
    assert status == 201 and body == {
        "pool": {"tenant": "green", "vlans": [300, "310-319"], "source": "api"},
        "created": True,
    }
    status, pools = pooled.call("GET", "/v1/vlan-pools")
    assert [(p["tenant"], p["source"]) for p in pools] == [
        ("blue", "settings"),
        ("green", "api"),
        ("red", "settings"),
    ]
    assert pooled.call("PUT", "/v1/profiles/9/1", document(tenant="green", vlans=[301]))[0] == 409
    pooled.reopen()  # stored
    assert pooled.call("GET", "/v1/vlan-pools/green")[1]["vlans"] == [300, "310-319"]
    assert pooled.call("DELETE", "/v1/vlan-pools/green")[1] == {"deleted": "green", "pool": None}
    assert pooled.call("GET", "/v1/vlan-pools/green")[0] == 404
    assert pooled.call("DELETE", "/v1/vlan-pools/green")[0] == 404
    kinds = [e["kind"] for e in pooled.store.events("vlan_pool.")]
    assert kinds == ["vlan_pool.assigned", "vlan_pool.removed"]


def test_an_assigned_pool_replaces_the_settings_pool_until_deleted(pooled):
    status, body = pooled.call("PUT", "/v1/vlan-pools/blue", {"vlans": ["100-120"]})
    assert status == 201 and body["pool"]["source"] == "api"
    assert pooled.call("PUT", "/v1/profiles/9/1", document(vlans=[115]))[0] == 201
    status, body = pooled.call("DELETE", "/v1/vlan-pools/blue")
    assert status == 409 and "VLAN 115 not in the VLAN pool of tenant blue" in body["error"]
    pooled.call("DELETE", "/v1/profiles/9/1")
    status, body = pooled.call("DELETE", "/v1/vlan-pools/blue")
    assert status == 200 and body["pool"]["source"] == "settings"
    status, body = pooled.call("DELETE", "/v1/vlan-pools/blue")
    assert status == 409 and "settings" in body["error"]


@pytest.mark.parametrize(
    "tenant, vlans, words",
    [
        ("green", [205], "VLAN 205 is in the VLAN pools of tenants"),  # red's pool
        ("blue", [100, 101], "VLAN 102 not in the VLAN pool of tenant blue"),  # batch 7/1 uses 102
        ("green", [200], "VLAN 200"),  # red's db 6/1 uses it
    ],
)
def test_a_pool_is_not_taken_from_under_profiles(pooled, tenant, vlans, words):
    status, body = pooled.call("PUT", f"/v1/vlan-pools/{tenant}", {"vlans": vlans})
    assert status == 409 and body["field"] == "vlans" and words in body["error"]
    assert pooled.registry.state.pools == POOLS


@pytest.mark.parametrize(
    "body, field",
    [
        ({"vlans": [5000]}, "vlans[0]"),
        ({"vlans": ["9-3"]}, "vlans[0]"),
        ({"vlans": [True]}, "vlans[0]"),
        ({"vlans": "100"}, "vlans"),
        ({}, "vlans"),
        ({"vlans": [1], "tenant": "red"}, "tenant"),
        ({"vlans": [1], "extra": 1}, "extra"),
        ([1], ""),
        ({"vlans": [100] * 4095}, "vlans"),
    ],
)
def test_bad_pools_name_the_field(pooled, body, field):
    status, answer = pooled.call("PUT", "/v1/vlan-pools/blue", body)
    assert status == 400 and (answer["field"] or "") == field, answer


def test_pools_in_the_settings(tmp_path):
    config = tmp_path / "evb.yaml"
    config.write_text("vlan_pools:\n  blue: [100-199]\n  red: ['200-299', 300]\n")
    settings = build_settings(load_file(str(config)), {})
    assert settings.vlan_pools == {
        "blue": frozenset(range(100, 200)),
        "red": frozenset(range(200, 301)),
    }
    config.write_text("vlan_pools:\n  blue: [100-199]\n  red: [150]\n")
    with pytest.raises(ConfigError, match="VLAN 150 is in the pool of blue"):
        build_settings(load_file(str(config)), {})
    config.write_text("vlan_pools:\n  blue: [100, 4095]\n")
    with pytest.raises(ConfigError, match=r"vlan_pools.blue\[1\]: expected a VLAN ID"):
        load_file(str(config))
    for values in ({"max_profiles_per_tenant": 0}, {"vlan_pools_required": "yes"}):
        with pytest.raises(ConfigError, match=next(iter(values))):
            build_settings(values, {})


# the quota ----------------------------------------------------------------------------------
def test_a_tenant_holds_at_most_its_quota_of_profiles(tmp_path):
    """blue holds 5/4 and 7/1 from the files; a quota of 3 leaves it one more."""
    harness = Harness(str(tmp_path / "evb.db"), max_profiles=3)
    try:
        assert harness.call("PUT", "/v1/profiles/9/1", document(), BLUE_TOKEN)[0] == 201
        status, body = harness.call("PUT", "/v1/profiles/10/1", document(10, 1), BLUE_TOKEN)
        assert status == 409 and "at most 3" in body["error"] and body["field"] == "type_id"
        assert harness.call("PUT", "/v1/profiles/9/1", document(name="n"), BLUE_TOKEN)[0] == 200
        group = {"profiles": [document(11, 1, tenant="red", vlans=[210])], "vms": []}
        assert harness.call("POST", "/v1/groups", group, RED_TOKEN)[0] == 200
        group = {
            "profiles": [document(n, 1, tenant="red", vlans=[210]) for n in (12, 13)],
            "vms": [],
        }
        status, body = harness.call("POST", "/v1/groups", group, RED_TOKEN)
        assert status == 409 and body["field"] == "profiles[1].type_id"
        assert harness.registry.database().get(12, 1) is None
    finally:
        harness.close()


def test_files_over_the_quota_stop_the_start(store):
    with pytest.raises(RegistryError, match=r"tenant blue holds 2 VSI types, more than"):
        Registry(load_policies(POLICIES), store, FakeService(), max_profiles=1)


# the VM manager's answers -------------------------------------------------------------------
def looked_up(registry: Registry, answer: dict):
    """The authorizer's decision on a station asking for 5/4, which only the manager knows."""
    done = Done()
    with served(manager({"/v1/vsi-types/5/4": (200, answer)})) as url:
        vcenter = client(url, on_done=done, vet=registry.refusal_of_looked_up)
        authorizer = Authorizer(VsiTypeDatabase, lookup=vcenter.profile_lookup)
        with pytest.raises(LookupPending):
            authorizer.authorize(auth_request(), BindingIndex())
        done.wait()
        return authorizer.authorize(auth_request(), BindingIndex())


@pytest.mark.parametrize(
    "pools, change, words",
    [
        (POOLS, {"vlans": GREEDY, "default_vlan": 1}, "not in the VLAN pool of tenant blue"),
        (POOLS, {"tenant": "green", "vlans": [105], "default_vlan": 105}, "another tenant"),
        (  # no pools: still no VLAN of another tenant's profile (red's db 6/1)
            VlanPools(),
            {"tenant": "green", "vlans": [200], "default_vlan": 200},
            "VLAN 200 belongs to another tenant",
        ),
    ],
)
def test_the_managers_profiles_obey_the_pools(store, pools, change, words):
    """Finding: the lookup path skipped the VLAN ownership check."""
    registry = Registry(load_policies(POLICIES), store, FakeService(), pools=pools)
    decision = looked_up(registry, {**WEB_JSON, "type_id": 5, "version": 4, **change})
    assert decision.error is VdpError.OTHER_FAILURE and decision.hard
    assert words in decision.reason and "red" not in decision.reason


def test_the_managers_profiles_count_against_the_quota(store):
    files = VsiTypeDatabase(p for p in load_policies(POLICIES) if p.key.type_id != 5)
    answer = {**WEB_JSON, "vlans": [103], "default_vlan": 103}
    registry = Registry(files, store, FakeService(), pools=POOLS, max_profiles=2)
    assert looked_up(registry, answer).ok  # blue holds 7/1: the answer is its second
    registry.put_profile(8, 1, document(8, 1, vlans=[104]), None)
    decision = looked_up(registry, answer)
    assert not decision.ok and "holds 2 VSI types already" in decision.reason


def test_a_pushed_profile_is_refused_the_same_as_a_looked_up_one(store):
    registry = Registry(load_policies(POLICIES), store, FakeService(), pools=POOLS)
    with pytest.raises(Conflict, match="not in the VLAN pool"):
        registry.put_profile(9, 1, document(vlans=GREEDY), "blue")
    assert "not in the VLAN pool" in registry.refusal_of_looked_up(
        parse_profile(document(vlans=GREEDY))
    )
