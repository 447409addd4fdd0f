"""Two controllers on one prefix of a real etcd: what one stores appears in the other's memory
(registry, subscriptions, maintenance, alarms, events, the intent mirror), deletes too; one's
own writes do not come back to it as changes; a follower behind a compaction reads everything
again. Each test waits for the follower to catch up with the store's revision after the writes
(IntentMirror.wait_for), then compares."""

import uuid
from types import SimpleNamespace

import pytest
import requests

from app.config import Settings
from app.controller.store_following import follow_store
from app.events import Event, EventLog
from app.faults.monitor import FaultMonitor
from app.faults.subscriptions import Subscribers
from app.policy import load_policies
from app.registry import Registry
from app.store.base import IntentChanges
from app.store.etcd_intent import EtcdIntentStore
from app.store.etcd_kv import EtcdKv
from app.store.etcd_store import EtcdStore
from app.vcenter.destinations import DestinationPolicy
from tests.unit.test_rest_harness import POLICIES, FakeService, profile

pytestmark = pytest.mark.etcd

VM = "a1b2c3d4-0000-0000-0000-0000000000e1"
SERVER = ("edge1", "edge1-s1")
GREEN = profile(9, 1, tenant="green", vlans=[300])
CATCH_UP = 30.0  # seconds at most (a loaded machine); a pass takes milliseconds


def controller(endpoints, prefix, follow=True):
    settings = Settings(store="etcd", etcd_endpoints=tuple(endpoints), etcd_prefix=prefix)
    store = EtcdStore(EtcdKv(endpoints, 10.0), prefix)
    log = EventLog()
    log.add_sink(store.append_event)
    service = FakeService()
    app = SimpleNamespace(
        settings=settings,
        store=store,
        service=service,
        registry=Registry(load_policies(POLICIES), store, service, emit=log.emit),
        monitor=FaultMonitor(
            log,
            store,
            lambda where: [],
            subscribers=Subscribers(destinations=DestinationPolicy(["127.0.0.1"])),
        ),
        following=None,
    )
    log.add_sink(app.monitor)
    if follow:
        app.following = follow_store(app)
    return app


def close(*apps):
    for app in apps:
        if app.following is not None:
            app.following.stop()
        app.monitor.close()
        app.store.close()


@pytest.fixture
def pair(etcd_endpoints):
    prefix = f"/t/{uuid.uuid4().hex}"
    a, b = controller(etcd_endpoints, prefix), controller(etcd_endpoints, prefix)
    yield a, b
    close(a, b)


def caught_up(*apps) -> None:
    """Every follower has applied every change stored so far."""
    for app in apps:
        app.store.flush_events()
    revision = apps[0].store._kv.revision()
    for app in apps:
        assert app.following.mirror.wait_for(revision, CATCH_UP)


def held(app) -> dict:
    """What a controller holds in memory of what is followed."""
    return {
        "profiles": {k: p.name for k, p in app.registry.state.profiles.pushed.items()},
        "vms": dict(app.registry.state.vms),
        "pools": dict(app.registry.state.pools.assigned),
        "subscriptions": [{**s, "delivery": None} for s in app.monitor.subscribers.list(None)],
        "maintenance": app.monitor.maintenance.records(),
        "alarms": app.monitor.alarms(None, active_only=False),
    }


def test_what_one_controller_stores_the_other_holds_and_deletes_too(pair):
    a, b = pair
    a.registry.put_pool("green", {"vlans": ["300-309"]}, None)
    a.registry.put_profile(9, 1, GREEN, None)
    a.registry.put_vm(VM, {"type_id": 9, "type_version": 1, "macs": ["52:00:00:00:0e:01"]}, None)
    a.monitor.subscribe({"url": "http://127.0.0.1:9/doctor", "kinds": ["switch.down"]}, None)
    a.monitor.enter_maintenance(SERVER, "BIOS upgrade")
    a.monitor(Event("switch.disconnected", switch="edge2"))  # an alarm, written behind
    caught_up(a, b)
    assert held(b) == held(a)
    assert held(b)["vms"] and held(b)["subscriptions"] and held(b)["maintenance"]
    assert [x["id"] for x in held(b)["alarms"]] == ["switch.down:edge2"]
    assert len(b.service.applied) == 1  # the new profile, handed to its controller once
    assert b.store.events(kind_prefix="vm.registered")[0]["detail"]["vsi_id"] == VM

    a.registry.delete_vm(VM, None)
    a.registry.delete_profile(9, 1, None)
    a.registry.delete_pool("green", None)
    a.monitor.unsubscribe(held(a)["subscriptions"][0]["id"], None)
    a.monitor.leave_maintenance(SERVER)
    a.monitor(Event("switch.ready", switch="edge2"))
    caught_up(a, b)
    assert held(b) == held(a)
    assert not held(b)["vms"] and not held(b)["profiles"] and not held(b)["pools"]
    assert not held(b)["subscriptions"] and not held(b)["maintenance"]
    assert [x["state"] for x in held(b)["alarms"]] == ["ok"]
    assert b.service.deassociated[-1][0] == VM and b.following.dropped == 0


def test_a_controllers_own_writes_do_not_come_back_to_it(pair):
    a, b = pair
    a.registry.put_profile(9, 1, profile(9, 1, vlans=[110]), None)
    a.registry.put_profile(9, 1, profile(9, 1, vlans=[111]), None)
    caught_up(a, b)
    assert len(a.service.applied) == 2  # its two changes; the echoes told it nothing
    assert a.registry.database().get(9, 1).vlans == {111} == b.registry.database().get(9, 1).vlans
    assert len(a.store.own_writes) == 0  # every echo passed


def test_the_intent_mirror_is_what_the_store_loads(pair, etcd_endpoints):
    a, b = pair
    intent = EtcdIntentStore(EtcdKv(etcd_endpoints, 10.0), a.settings.etcd_prefix)
    try:
        records = {f"1:{n:02x}": [{"vsi_id": [1, f"{n:02x}"], "state": n}] for n in range(40)}
        intent.save(IntentChanges(records, links=[[1, 2, 3, 4]], rr_ports=[[1, 5]]))
        intent.save(IntentChanges({"1:03": [], "1:07": [{"vsi_id": [1, "07"], "state": "x"}]}))
        intent.save(IntentChanges({"2:a/b": [{"vsi_id": [2, "a/b"]}]}, links=[]))
        caught_up(a, b)
        assert a.following.mirror.intent() == intent.load() == b.following.mirror.intent()
        assert len(b.following.mirror) == 40
    finally:
        intent.close()


def test_a_change_seen_twice_is_applied_once(etcd_endpoints):
    """A controller follows from the revision at which it started reading, so what was written
    while it loaded comes again."""
    prefix = f"/t/{uuid.uuid4().hex}"
    a = controller(etcd_endpoints, prefix)
    store = EtcdStore(EtcdKv(etcd_endpoints, 10.0), prefix)  # b starts reading here
    a.registry.put_profile(9, 1, profile(9, 1), None)
    store.close()
    b = controller(etcd_endpoints, prefix, follow=False)
    b.store.opened_revision = store.opened_revision
    b.following = follow_store(b)
    try:
        caught_up(a, b)
        assert b.registry.database().get(9, 1) is not None and b.service.applied == []
    finally:
        close(a, b)


def compact(endpoints) -> None:
    revision = EtcdKv(endpoints, 10.0).revision()
    requests.post(endpoints[0] + "/v3/kv/compaction", json={"revision": str(revision)}, timeout=10)


def test_a_follower_behind_a_compaction_reads_everything_again(pair, etcd_endpoints):
    a, b = pair
    a.registry.put_profile(9, 1, profile(9, 1), None)
    a.monitor.enter_maintenance(SERVER, "BIOS upgrade")
    caught_up(a, b)
    behind = b.following.mirror.revision
    b.following.feed.stop()  # b's watch away while etcd compacts what it would need
    a.registry.delete_profile(9, 1, None)
    a.registry.put_pool("green", {"vlans": [300]}, None)
    a.monitor.leave_maintenance(SERVER)
    a.monitor.subscribe({"url": "http://127.0.0.1:9/doctor"}, None)
    intent = EtcdIntentStore(EtcdKv(etcd_endpoints, 10.0), a.settings.etcd_prefix)
    intent.save(IntentChanges({"1:aa": [{"vsi_id": [1, "aa"]}]}, links=[[1, 2, 3, 4]]))
    compact(etcd_endpoints)
    b.following.feed.start(behind)
    try:
        caught_up(a, b)
        assert held(b) == held(a) and b.following.feed.reloads == 1
        assert b.following.mirror.intent() == intent.load()
        assert b.store.events(kind_prefix="subscription.added")
    finally:
        intent.close()


def test_a_start_slower_than_etcds_retention_reads_everything_again(etcd_endpoints):
    prefix = f"/t/{uuid.uuid4().hex}"
    a = controller(etcd_endpoints, prefix)
    b = controller(etcd_endpoints, prefix, follow=False)
    a.registry.put_vm(VM, {"type_id": 5, "type_version": 4, "macs": ["52:00:00:00:0e:01"]}, None)
    compact(etcd_endpoints)  # b's loads' revision is gone
    b.following = follow_store(b)
    try:
        caught_up(a, b)
        assert b.registry.vm(VM) == a.registry.vm(VM) and b.following.feed.reloads == 1
    finally:
        close(a, b)
