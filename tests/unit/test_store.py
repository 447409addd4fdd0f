"""The store's behaviour, the same on both backends (SQLite; etcd, marked `etcd`, on a real
one-member cluster: tests/etcd_cluster.py), then what is SQLite's own."""

import json
import uuid

import pytest

from app.events import Event, EventLog
from app.store.base import IntentChanges, RegistryWrite, StoreError
from app.store.intent_store import IntentStore
from app.store.sqlite_store import SCHEMA_VERSION, SqliteStore


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request, tmp_path):
    """(name, open): open(**retention) opens a new store object on the same storage (a file,
    or a key prefix of the session's etcd), as a restarted controller does."""
    if request.param == "sqlite":
        path = str(tmp_path / "sub" / "evb.db")
        return "sqlite", lambda **kw: SqliteStore(path, **kw)
    from app.store.etcd_kv import EtcdKv
    from app.store.etcd_store import EtcdStore

    endpoints, prefix = request.getfixturevalue("etcd_endpoints"), f"/t/{uuid.uuid4().hex}"
    return "etcd", lambda **kw: EtcdStore(EtcdKv(endpoints, 5.0), prefix, **kw)


@pytest.fixture
def open_store(backend):
    return backend[1]


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)])
def open_intent(request, tmp_path):
    """Opens a new intent store on the same storage."""
    if request.param == "sqlite":
        return lambda: IntentStore(tmp_path / "intent.db")
    from app.store.etcd_intent import EtcdIntentStore
    from app.store.etcd_kv import EtcdKv

    endpoints, prefix = request.getfixturevalue("etcd_endpoints"), f"/t/{uuid.uuid4().hex}"
    return lambda: EtcdIntentStore(EtcdKv(endpoints, 5.0), prefix)


def test_switches_and_events_survive_reopening(open_store):
    store = open_store()
    store.record_switch("0000000000000001", "edge1", 10.0)
    store.record_switch("0000000000000001", "edge1", 20.0)
    store.append_event(Event("switch.ready", ts=1.0, switch="edge1", detail={"ports": 2}))
    store.close()

    store = open_store()
    assert store.switches() == [
        {"dpid": "0000000000000001", "name": "edge1", "first_seen": 10.0, "last_seen": 20.0}
    ]
    events = store.events()
    assert [(e["kind"], e["switch"], e["detail"]) for e in events] == [
        ("switch.ready", "edge1", {"ports": 2})
    ]


def test_events_filter_by_prefix_page_by_id_and_escape_like(open_store):
    store = open_store()
    for kind in ("switch.ready", "port.added", "switch.error", "switch_x"):
        store.append_event(Event(kind))
    assert [e["kind"] for e in store.events("switch.")] == ["switch.ready", "switch.error"]
    first = store.events(limit=1)
    assert [e["kind"] for e in store.events(after_id=first[0]["id"], limit=1)] == ["port.added"]
    assert [e["kind"] for e in store.events("switch_")] == ["switch_x"]


def test_a_newer_schema_is_left_alone(tmp_path):
    path = str(tmp_path / "evb.db")
    SqliteStore(path).close()
    import sqlite3

    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        SqliteStore(path)


def test_event_log_feeds_sinks_and_survives_a_broken_one():
    log = EventLog(capacity=2)
    seen = []
    log.add_sink(lambda e: 1 / 0)
    log.add_sink(seen.append)
    for n in range(3):
        log.emit("station.seen", switch="edge1", port="edge1-s1", n=n)
    assert [e.detail["n"] for e in seen] == [0, 1, 2]
    assert [e.detail["n"] for e in log.recent()] == [1, 2]
    assert seen[0].as_line() == "event=station.seen switch=edge1 port=edge1-s1 n=0"


PROFILE = {
    "type_id": 9,
    "version": 1,
    "name": "app",
    "tenant": "blue",
    "vlans": [110],
    "manager_ids": ["mgr1"],
}
VM = {
    "vsi_id": "a1b2c3d4-0000-0000-0000-000000000001",
    "tenant": "blue",
    "type_id": 9,
    "type_version": 1,
    "macs": ["52:00:00:00:00:01"],
    "name": "web-1",
    "group": "g",
    "registered": 1.0,
    "updated": 2.0,
    "ips": ["10.0.0.1", "fd00::1"],
    "network": "vn-blue",
    "host": "srv11",
}


def test_profiles_vms_and_pools_survive_reopening(open_store):
    store = open_store()
    pool = {"tenant": "blue", "vlans": ["100-110"]}
    store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=(VM,), pools=(pool,)))
    store.close()
    store = open_store()
    assert store.profiles() == [PROFILE] and store.vms() == [VM]
    assert store.vlan_pools() == [pool]
    store.write_registry(
        RegistryWrite(
            removed_profiles=((9, 1),), removed_vms=(VM["vsi_id"],), removed_pools=("blue",)
        )
    )
    store.close()
    store = open_store()
    assert store.profiles() == [] and store.vms() == [] and store.vlan_pools() == []


def test_registry_lists_come_in_key_order(open_store):
    store = open_store()
    store.write_registry(
        RegistryWrite(
            profiles=tuple(
                {**PROFILE, "type_id": t, "version": v} for t, v in ((10, 2), (9, 1), (10, 1))
            ),
            vms=tuple({**VM, "vsi_id": vsi} for vsi in ("c", "a/b", "b")),
            pools=({"tenant": "red", "vlans": [5]}, {"tenant": "blue", "vlans": [4]}),
        )
    )
    assert [(p["type_id"], p["version"]) for p in store.profiles()] == [(9, 1), (10, 1), (10, 2)]
    assert [v["vsi_id"] for v in store.vms()] == ["a/b", "b", "c"]
    assert [p["tenant"] for p in store.vlan_pools()] == ["blue", "red"]


def test_a_registry_write_replaces_by_key(open_store):
    store = open_store()
    store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=(VM,)))
    store.write_registry(
        RegistryWrite(
            profiles=({**PROFILE, "name": "new"},), vms=({**VM, "name": None, "group": None},)
        )
    )
    assert [p["name"] for p in store.profiles()] == ["new"]
    assert [(v["name"], v["group"]) for v in store.vms()] == [(None, None)]


def test_a_failing_registry_write_leaves_nothing(open_store):
    store = open_store()
    with pytest.raises(KeyError):  # the second VM lacks its macs: fails after the first rows
        store.write_registry(
            RegistryWrite(profiles=(PROFILE,), vms=(VM, {"vsi_id": "x", "tenant": "blue"}))
        )
    assert store.profiles() == [] and store.vms() == []
    store.write_registry(RegistryWrite(profiles=(PROFILE,)))  # the connection still works
    assert store.profiles() == [PROFILE]


def test_events_filter_by_switch_and_tenant(open_store):
    store = open_store()
    store.append_event(Event("vsi.associated", switch="edge1", detail={"tenant": "blue"}))
    store.append_event(Event("vsi.associated", switch="edge2", detail={"tenant": "red"}))
    store.append_event(Event("switch.ready", switch="edge1"))
    assert [e["switch"] for e in store.events(tenant="red")] == ["edge2"]
    assert [e["kind"] for e in store.events(switch="edge1")] == ["vsi.associated", "switch.ready"]
    assert store.events("switch.", switch="edge1", tenant="blue") == []


def test_events_filter_by_vsi_and_the_latest_come_in_id_order(open_store):
    store = open_store()
    for n in range(10):
        store.append_event(Event("vsi.associated", detail={"vsi": f"vm{n % 3}", "n": n}))
    store.append_event(Event("switch.ready", switch="edge1"))
    assert [e["detail"]["n"] for e in store.events(vsi="vm1")] == [1, 4, 7]
    assert [e["detail"]["n"] for e in store.events(vsi="vm1", latest=True, limit=2)] == [4, 7]
    first = store.events(vsi="vm0", limit=1)[0]
    assert [e["detail"]["n"] for e in store.events(vsi="vm0", after_id=first["id"])] == [3, 6, 9]
    latest = store.events("vsi.", latest=True, limit=3)
    assert [e["detail"]["n"] for e in latest] == [7, 8, 9]
    assert [e["id"] for e in latest] == sorted(e["id"] for e in latest)
    assert store.events(vsi="nobody") == []
    store.close()


def test_alarms_locations_subscriptions_and_maintenance_survive_reopening(open_store):
    store = open_store()
    store.save_alarms([("a1", {"id": "a1", "n": 1}), ("a2", {"id": "a2"})], [])
    store.save_alarms([("a1", {"id": "a1", "n": 2})], ["a2"])
    store.save_locations([("1:bb", 20.0, [["edge1", "p1"]]), ("1:aa", 10.0, [])], [])
    for sub in ("s2", "s1", "s2"):  # listed in the order last written
        store.save_subscription({"id": sub, "url": f"http://x/{sub}"})
    store.save_subscription({"id": "gone"})
    store.delete_subscription("gone")
    store.save_maintenance({"switch": "edge2", "port": "edge2/s1", "reason": "BIOS"})
    store.save_maintenance({"switch": "edge1", "port": "edge1-s1", "reason": "x"})
    store.save_maintenance({"switch": "edge1", "port": "edge1-s2"})
    store.delete_maintenance("edge1", "edge1-s2")
    store.close()
    store = open_store()
    assert store.alarms() == [{"id": "a1", "n": 2}]
    assert store.locations() == [("1:aa", 10.0, []), ("1:bb", 20.0, [["edge1", "p1"]])]
    assert [s["id"] for s in store.subscriptions()] == ["s1", "s2"]
    assert [(m["switch"], m["port"]) for m in store.maintenance()] == [
        ("edge1", "edge1-s1"),
        ("edge2", "edge2/s1"),
    ]
    store.save_locations([], ["1:aa"])
    assert [vsi for vsi, _, _ in store.locations()] == ["1:bb"]
    store.close()


def test_the_intent_survives_reopening_and_saves_only_what_changed(open_intent):
    store = open_intent()
    assert store.load() is None
    a, b = {"vsi_id": [1, "aa"], "n": 1}, {"vsi_id": [1, "bb"], "n": 2}
    store.save(IntentChanges({"1:aa": [a], "1:bb": [b]}, links=[[1, 101, 256, 1]]))
    store.save(IntentChanges({"1:aa": []}, rr_ports=[[1, 1]]))
    store.save(IntentChanges({"1:bb": [b, {**b, "n": 3}]}))
    store.close()
    assert open_intent().load() == {
        "version": 1,
        "vsis": [b, {**b, "n": 3}],
        "links": [[1, 101, 256, 1]],
        "rr_ports": [[1, 1]],
        "channels": [],
    }


def test_the_inventory_survives_reopening_and_is_replaced_by_kind_and_name(open_store):
    store = open_store()
    east = {"kind": "datacenter", "name": "east", "description": None}
    host = {"kind": "host", "name": "srv/11", "cluster": "c1", "macs": ["02:00:00:00:00:01"]}
    store.write_registry(RegistryWrite(inventory=(host, east, {**east, "name": "a"})))
    store.close()
    store = open_store()
    assert store.inventory() == [{**east, "name": "a"}, east, host]
    store.write_registry(
        RegistryWrite(
            inventory=({**host, "cluster": "c2"},), removed_inventory=(("datacenter", "a"),)
        )
    )
    store.close()
    assert open_store().inventory() == [east, {**host, "cluster": "c2"}]


def test_a_version_4_database_keeps_its_vms_and_gains_their_new_fields(tmp_path):
    store = _old_database(
        str(tmp_path / "evb.db"),
        "CREATE TABLE vms (vsi_id TEXT PRIMARY KEY, tenant TEXT NOT NULL, type_id INTEGER NOT "
        "NULL, type_version INTEGER NOT NULL, macs TEXT NOT NULL, name TEXT, grp TEXT, "
        "registered REAL NOT NULL, updated REAL NOT NULL);"
        "INSERT INTO vms VALUES ('v1', 'blue', 9, 1, '[]', NULL, 'g', 1.0, 2.0);"
        "PRAGMA user_version=4;",
    )
    (vm,) = store.vms()
    assert (vm["group"], vm["ips"], vm["network"], vm["host"]) == ("g", [], None, None)
    store.write_registry(RegistryWrite(vms=({**VM, "vsi_id": "v2"},)))
    assert store.vms()[1] == {**VM, "vsi_id": "v2"}


def _old_database(path: str, script: str) -> SqliteStore:
    """A database an older controller left (``script``), opened by this one."""
    import sqlite3

    db = sqlite3.connect(path)
    db.executescript(script)
    db.close()
    return SqliteStore(path)


def test_a_version_1_database_is_upgraded_in_place(tmp_path):
    store = _old_database(
        str(tmp_path / "evb.db"),
        "CREATE TABLE switches (dpid TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "first_seen REAL NOT NULL, last_seen REAL NOT NULL);"
        "INSERT INTO switches VALUES ('1', 'edge1', 1.0, 2.0);"
        "PRAGMA user_version=1;",
    )
    assert [s["name"] for s in store.switches()] == ["edge1"] and store.vms() == []
    store.write_registry(RegistryWrite(vms=(VM,)))
    assert store.vms() == [VM]


def test_intent_is_saved_per_vsi_in_one_transaction_and_survives_reopen(tmp_path):
    path = tmp_path / "intent.db"
    store = IntentStore(path)
    assert store.load() is None
    a, b = {"vsi_id": [1, "aa"], "n": 1}, {"vsi_id": [1, "bb"], "n": 2}
    store.save(IntentChanges({"1:aa": [a], "1:bb": [b]}, links=[[1, 101, 256, 1]]))
    changes = store._db.total_changes
    store.save(IntentChanges({"1:aa": []}, rr_ports=[[1, 1]]))  # only what changed is written
    assert store._db.total_changes - changes == 2
    store.close()
    reopened = IntentStore(path)
    assert reopened.load() == {
        "version": 1,
        "vsis": [b],
        "links": [[1, 101, 256, 1]],
        "rr_ports": [[1, 1]],
        "channels": [],
    }


def test_an_intent_document_of_an_older_version_is_converted_to_rows(tmp_path):
    import sqlite3

    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    document = {
        "version": 1,
        "vsis": [{"vsi_id": [1, "aa"]}, {"vsi_id": [1, "aa"], "x": 1}],
        "links": [[1, 101, 256, 1]],
        "rr_ports": [],
    }
    old.execute("CREATE TABLE intent (id INTEGER PRIMARY KEY CHECK (id = 1), body TEXT NOT NULL)")
    old.execute("INSERT INTO intent VALUES (1, ?)", (json.dumps(document),))
    old.commit()
    old.close()
    # An older controller had no S-channels: the list reads back empty.
    assert IntentStore(path).load() == {**document, "channels": []}
    assert IntentStore(path).load() == {**document, "channels": []}  # converted once, gone


def test_events_are_written_in_batches_off_the_callers_path_and_read_back_at_once(backend):
    name, open_store = backend
    store = open_store()
    commits = store._db.total_changes if name == "sqlite" else 0
    log = EventLog()
    log.add_sink(store.append_event)
    for n in range(500):
        log.emit("vsi.associated", switch="edge1", vsi=f"vm{n}")
    assert len(store.events("vsi.", limit=1000)) == 500  # a read writes what waits first
    if name == "sqlite":
        assert store._db.total_changes - commits == 500
    log.emit("vsi.expired", switch="edge1")
    store.close()  # closing writes what is left
    reopened = open_store()
    assert [e["kind"] for e in reopened.events("vsi.expired")] == ["vsi.expired"]
    reopened.close()


def test_events_are_kept_no_longer_and_no_more_than_the_retention_says(backend, monkeypatch):
    """Issue 10: the events table had no retention."""
    name, open_store = backend
    monkeypatch.setattr(f"app.store.{name}_store.EVENT_PRUNE_CHUNK", 7)  # several chunks
    store = open_store(event_max_age=100.0, event_max_rows=20)
    for n in range(50):
        store.append_event(Event("vsi.refused", ts=800.0 + n * 5, detail={"n": n}))
    store.flush_events()
    # More than 100 s older than the newest (1045): n < 29 by age; then all but the newest 20
    # by rows: n = 29.
    assert store.prune_events() == 30
    assert [e["detail"]["n"] for e in store.events(limit=100)] == list(range(30, 50))
    assert store.events_pruned == 30 and store.prune_events() == 0
    store.close()


def test_the_event_writer_prunes_by_itself(open_store):
    store = open_store(event_max_rows=3)
    for n in range(10):
        store.append_event(Event("port.added", detail={"n": n}))
    store.close()  # the writer wrote and pruned once on its first batch
    reopened = open_store(event_max_rows=3)
    assert len(reopened.events(limit=100)) <= 10
    assert reopened.prune_events() >= 0 and len(reopened.events(limit=100)) == 3
    reopened.close()
