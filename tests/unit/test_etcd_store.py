"""What is etcd's own in the store (the behaviour both backends share is in test_store.py): a
write etcd refuses leaves nothing, a store opened again (after the whole cluster restarted)
reads back everything, a cluster that lost one member of three keeps working, an etcd that
does not answer is a clear error, several writers of events get distinct ids."""

import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from app.events import Event
from app.store.base import IntentChanges, RegistryWrite, StoreError
from app.store.etcd_intent import EtcdIntentStore
from app.store.etcd_kv import EtcdKv, delete, put, split
from app.store.etcd_store import SCHEMA_VERSION, EtcdStore
from app.store.etcd_watch import PrefixWatch
from app.store.event_index import EventIndex
from tests.etcd_cluster import etcd_cluster
from tests.unit.test_store import PROFILE, VM

pytestmark = pytest.mark.etcd


def _vms(count: int) -> tuple[dict, ...]:
    return tuple(
        {**VM, "vsi_id": f"vm-{n:06d}", "macs": [f"52:00:00:{n:06x}"]} for n in range(count)
    )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Three members, as the test bed runs them (scripts/etcd-cluster.sh)."""
    with etcd_cluster(tmp_path_factory.mktemp("etcd3"), 3) as started:
        yield started


def _fill(store: EtcdStore, intent: EtcdIntentStore) -> None:
    store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=_vms(3)))
    store.record_switch("0000000000000001", "edge1", 1.0)
    store.save_subscription({"id": "s1", "url": "http://x/"})
    store.save_maintenance({"switch": "edge1", "port": "edge1-s1"})
    store.save_alarms([("a1", {"id": "a1"})], [])
    store.save_locations([("1:aa", 5.0, [["edge1", "edge1-s1"]])], [])
    store.append_event(Event("vsi.associated", switch="edge1", detail={"vsi": "vm-000001"}))
    intent.save(IntentChanges({"1:aa": [{"vsi_id": [1, "aa"]}]}, links=[[1, 2, 3, 4]]))


def _everything(store: EtcdStore, intent: EtcdIntentStore) -> dict:
    return {
        "profiles": store.profiles(),
        "vms": store.vms(),
        "switches": store.switches(),
        "subscriptions": store.subscriptions(),
        "maintenance": store.maintenance(),
        "alarms": store.alarms(),
        "locations": store.locations(),
        "events": [(e["kind"], e["detail"]) for e in store.events()],
        "intent": intent.load(),
    }


def _open(endpoints, prefix, timeout=10.0):
    return (
        EtcdStore(EtcdKv(endpoints, timeout), prefix),
        EtcdIntentStore(EtcdKv(endpoints, timeout), prefix),
    )


def test_a_write_etcd_refuses_leaves_nothing(etcd_endpoints):
    """More operations than the cluster's --max-txn-ops (16,384 from scripts/etcd-cluster.sh):
    etcd refuses the whole transaction, the store says why, nothing of it is kept."""
    prefix = f"/t/{uuid.uuid4().hex}"
    store, intent = _open(etcd_endpoints, prefix)
    with pytest.raises(StoreError, match="too many operations"):
        store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=_vms(16_384)))
    assert store.profiles() == [] and store.vms() == []
    with pytest.raises(StoreError, match="too many operations"):
        intent.save(IntentChanges({f"1:{n:04x}": [{"n": n}] for n in range(16_385)}))
    assert intent.load() is None
    store.write_registry(RegistryWrite(profiles=(PROFILE,)))  # the store still works
    assert store.profiles() == [PROFILE]
    store.close()


def test_a_newer_layout_is_left_alone(etcd_endpoints):
    prefix = f"/t/{uuid.uuid4().hex}"
    EtcdKv(etcd_endpoints, 5.0).txn([put(prefix + "/schema", str(SCHEMA_VERSION + 1).encode())])
    with pytest.raises(StoreError, match="newer than this controller"):
        EtcdStore(EtcdKv(etcd_endpoints, 5.0), prefix)


def test_an_etcd_that_does_not_answer_is_a_clear_error():
    with pytest.raises(StoreError, match=r"no endpoint of http://127.0.0.1:1 answered"):
        EtcdStore(EtcdKv(["http://127.0.0.1:1"], 0.3), "/evb-nms/x")


def test_the_controller_does_not_start_on_an_etcd_that_does_not_answer(tmp_path):
    from topologies.controller_process import free_port

    done = subprocess.run(
        [sys.executable, "-m", "app.cli.evb_nms", "--store", "etcd"]
        + ["--etcd-endpoints", "http://127.0.0.1:1", "--etcd-timeout", "0.3"]
        + ["--of-port", str(free_port()), "--rest-listen", f"127.0.0.1:{free_port()}"]
        + ["--db-path", str(tmp_path / "evb.db")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert done.returncode == 2
    assert "evb-nms: etcd: no endpoint of http://127.0.0.1:1 answered" in done.stderr


def test_two_writers_of_events_take_distinct_ids_in_order(etcd_endpoints):
    prefix = f"/t/{uuid.uuid4().hex}"
    one, two = (EtcdStore(EtcdKv(etcd_endpoints, 5.0), prefix) for _ in range(2))
    for n in range(3):
        one.append_event(Event("port.added", detail={"by": 1, "n": n}))
        one.flush_events()
        two.append_event(Event("port.added", detail={"by": 2, "n": n}))
        two.flush_events()
    one.close(), two.close()
    events = EtcdStore(EtcdKv(etcd_endpoints, 5.0), prefix).events()
    assert [e["id"] for e in events] == list(range(1, 7))
    assert [(e["detail"]["by"], e["detail"]["n"]) for e in events] == [
        (1, 0),
        (2, 0),
        (1, 1),
        (2, 1),
        (1, 2),
        (2, 2),
    ]


def test_writes_behind_are_split_within_etcds_default_limits(etcd_endpoints):
    """Events and alarms are not one change: a batch larger than etcd's default 128 operations
    goes as several transactions."""
    store = EtcdStore(EtcdKv(etcd_endpoints, 5.0), f"/t/{uuid.uuid4().hex}")
    for n in range(300):
        store.append_event(Event("vsi.associated", detail={"vsi": f"vm{n}", "pad": "x" * 5000}))
    store.save_alarms([(f"a{n}", {"n": n}) for n in range(300)], [])
    assert len(store.events(limit=1000)) == 300 and len(store.alarms()) == 300
    assert store.events_dropped == 0
    store.close()


def test_split_keeps_order_and_both_limits():
    ops = [put(f"/k{n}", b"v" * (300 if n == 2 else 10)) for n in range(7)]
    chunks = split(ops, max_ops=3, max_bytes=400)
    assert [op for chunk in chunks for op in chunk] == ops
    assert [len(chunk) for chunk in chunks] == [2, 1, 3, 1]


def test_the_event_index_prunes_by_age_and_count():
    index = EventIndex()
    for n in range(1, 11):
        index.add(n, {"ts": float(n), "kind": "k", "detail": {"vsi": f"v{n % 2}"}})
    assert index.last_to_prune(max_age=100.0, max_rows=20) is None
    assert index.last_to_prune(max_age=100.0, max_rows=4) == 6
    assert index.last_to_prune(max_age=2.5, max_rows=20) == 7  # older than 10 - 2.5
    assert index.drop_through(6) == 6 and len(index) == 4 and index.first_id() == 7
    assert index.select("", 0, 10, None, None, "v0", False) == [8, 10]
    assert index.select("", 0, 10, None, None, "v1", True) == [7, 9]


def test_the_store_reads_back_everything_after_the_whole_cluster_restarted(cluster):
    prefix = f"/t/{uuid.uuid4().hex}"
    store, intent = _open(cluster.endpoints, prefix)
    _fill(store, intent)
    before = _everything(store, intent)
    store.close(), intent.close()
    cluster.stop()
    cluster.start()
    store, intent = _open(cluster.endpoints, prefix)
    assert _everything(store, intent) == before
    assert before["intent"]["links"] == [[1, 2, 3, 4]] and len(before["vms"]) == 3
    store.close(), intent.close()


def test_a_member_killed_leaves_a_quorum_and_the_store_keeps_working(cluster):
    """kill -9 of the first endpoint's member: calls go to the others (which may be electing a
    new leader meanwhile), nothing accepted is lost."""
    prefix = f"/t/{uuid.uuid4().hex}"
    store, intent = _open(cluster.endpoints, prefix)
    store.write_registry(RegistryWrite(profiles=(PROFILE,)))
    try:
        cluster.kill(0)
        _fill(store, intent)
        store.write_registry(RegistryWrite(removed_profiles=((9, 1),), vms=_vms(5)))
        assert store.profiles() == [] and len(store.vms()) == 5
        assert [e["kind"] for e in store.events()] == ["vsi.associated"]
        store.close(), intent.close()
        store, intent = _open(cluster.endpoints[1:], prefix)
        assert len(store.vms()) == 5 and intent.load()["links"] == [[1, 2, 3, 4]]
        store.close(), intent.close()
    finally:
        cluster.start()  # the killed member again (its data directory is kept)


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.02)


def test_a_watch_hands_over_every_change_in_order_across_a_member_killed(cluster):
    prefix = f"/t/{uuid.uuid4().hex}/"
    kv = EtcdKv(cluster.endpoints, 10.0)
    start = int(kv.txn([])["header"]["revision"])
    seen: list[tuple[str, bytes | None]] = []
    watch = PrefixWatch(
        cluster.endpoints, prefix, start, lambda k, v, r: seen.append((k, v)), lambda: 0
    )
    try:
        kv.txn([put(prefix + "a", b"1"), put(prefix + "b", b"2")])
        kv.txn([delete(prefix + "a")])
        kv.txn([put("/elsewhere", b"x")])
        _wait_for(lambda: len(seen) == 3)
        assert seen == [(prefix + "a", b"1"), (prefix + "b", b"2"), (prefix + "a", None)]
        cluster.kill(0)  # the member the watch streams from
        for n in range(5):
            kv.txn([put(prefix + f"n{n}", str(n).encode())])
        _wait_for(lambda: len(seen) == 8)
        assert seen[3:] == [(prefix + f"n{n}", str(n).encode()) for n in range(5)]
        assert watch.reconnects >= 1
    finally:
        watch.stop()
        cluster.start()


def test_a_watch_behind_a_compaction_reloads_and_goes_on(etcd_endpoints):
    prefix = f"/t/{uuid.uuid4().hex}/"
    kv = EtcdKv(etcd_endpoints, 5.0)
    old = int(kv.txn([put(prefix + "a", b"1")])["header"]["revision"])
    now = int(kv.txn([put(prefix + "a", b"2")])["header"]["revision"])
    requests.post(etcd_endpoints[0] + "/v3/kv/compaction", json={"revision": str(now)}, timeout=5)
    seen: list[tuple[str, bytes | None]] = []
    reloads = []

    def reload() -> int:
        reloads.append(kv.get(prefix + "a"))
        return int(kv.txn([])["header"]["revision"])

    watch = PrefixWatch(
        etcd_endpoints, prefix, old - 1, lambda k, v, r: seen.append((k, v)), reload
    )
    try:
        _wait_for(lambda: reloads)
        assert reloads[0][0] == b"2"
        kv.txn([put(prefix + "b", b"3")])
        _wait_for(lambda: seen)
        assert seen == [(prefix + "b", b"3")]
    finally:
        watch.stop()
