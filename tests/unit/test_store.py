import json

import pytest

from app.events import Event, EventLog
from app.store.base import RegistryWrite
from app.store.sqlite_store import SCHEMA_VERSION, SqliteStore, StoreError


def test_switches_and_events_survive_reopening(tmp_path):
    path = str(tmp_path / "sub" / "evb.db")
    store = SqliteStore(path)
    store.record_switch("0000000000000001", "edge1", 10.0)
    store.record_switch("0000000000000001", "edge1", 20.0)
    store.append_event(Event("switch.ready", ts=1.0, switch="edge1", detail={"ports": 2}))
    store.close()

    store = SqliteStore(path)
    assert store.switches() == [
        {"dpid": "0000000000000001", "name": "edge1", "first_seen": 10.0, "last_seen": 20.0}
    ]
    events = store.events()
    assert [(e["kind"], e["switch"], e["detail"]) for e in events] == [
        ("switch.ready", "edge1", {"ports": 2})
    ]


def test_events_filter_by_prefix_page_by_id_and_escape_like(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
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
}


def test_profiles_and_vms_survive_reopening(tmp_path):
    path = str(tmp_path / "evb.db")
    store = SqliteStore(path)
    store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=(VM,)))
    store.close()
    store = SqliteStore(path)
    assert store.profiles() == [PROFILE] and store.vms() == [VM]
    store.write_registry(RegistryWrite(removed_profiles=((9, 1),), removed_vms=(VM["vsi_id"],)))
    store.close()
    store = SqliteStore(path)
    assert store.profiles() == [] and store.vms() == []


def test_a_registry_write_replaces_by_key(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    store.write_registry(RegistryWrite(profiles=(PROFILE,), vms=(VM,)))
    store.write_registry(
        RegistryWrite(
            profiles=({**PROFILE, "name": "new"},), vms=({**VM, "name": None, "group": None},)
        )
    )
    assert [p["name"] for p in store.profiles()] == ["new"]
    assert [(v["name"], v["group"]) for v in store.vms()] == [(None, None)]


def test_a_failing_registry_write_leaves_nothing(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    with pytest.raises(KeyError):  # the second VM lacks its macs: fails after the first rows
        store.write_registry(
            RegistryWrite(profiles=(PROFILE,), vms=(VM, {"vsi_id": "x", "tenant": "blue"}))
        )
    assert store.profiles() == [] and store.vms() == []
    store.write_registry(RegistryWrite(profiles=(PROFILE,)))  # the connection still works
    assert store.profiles() == [PROFILE]


def test_events_filter_by_switch_and_tenant(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    store.append_event(Event("vsi.associated", switch="edge1", detail={"tenant": "blue"}))
    store.append_event(Event("vsi.associated", switch="edge2", detail={"tenant": "red"}))
    store.append_event(Event("switch.ready", switch="edge1"))
    assert [e["switch"] for e in store.events(tenant="red")] == ["edge2"]
    assert [e["kind"] for e in store.events(switch="edge1")] == ["vsi.associated", "switch.ready"]
    assert store.events("switch.", switch="edge1", tenant="blue") == []


def test_a_version_1_database_is_upgraded_in_place(tmp_path):
    import sqlite3

    path = str(tmp_path / "evb.db")
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE switches (dpid TEXT PRIMARY KEY, name TEXT NOT NULL, "
        "first_seen REAL NOT NULL, last_seen REAL NOT NULL);"
        "INSERT INTO switches VALUES ('1', 'edge1', 1.0, 2.0);"
        "PRAGMA user_version=1;"
    )
    db.close()
    store = SqliteStore(path)
    assert [s["name"] for s in store.switches()] == ["edge1"] and store.vms() == []
    store.write_registry(RegistryWrite(vms=(VM,)))
    assert store.vms() == [VM]


def test_intent_is_saved_per_vsi_in_one_transaction_and_survives_reopen(tmp_path):
    from app.store.base import IntentChanges
    from app.store.intent_store import IntentStore

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
    }


def test_an_intent_document_of_an_older_version_is_converted_to_rows(tmp_path):
    import sqlite3

    from app.store.intent_store import IntentStore

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
    assert IntentStore(path).load() == document
    assert IntentStore(path).load() == document  # converted once, the old table is gone


def test_events_are_written_in_batches_off_the_callers_path_and_read_back_at_once(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    commits = store._db.total_changes
    log = EventLog()
    log.add_sink(store.append_event)
    for n in range(500):
        log.emit("vsi.associated", switch="edge1", vsi=f"vm{n}")
    assert len(store.events("vsi.", limit=1000)) == 500  # a read writes what waits first
    assert store._db.total_changes - commits == 500
    log.emit("vsi.expired", switch="edge1")
    store.close()  # closing writes what is left
    reopened = SqliteStore(str(tmp_path / "evb.db"))
    assert [e["kind"] for e in reopened.events("vsi.expired")] == ["vsi.expired"]
    reopened.close()


def test_events_are_kept_no_longer_and_no_more_than_the_retention_says(tmp_path, monkeypatch):
    """Issue 10: the events table had no retention."""
    monkeypatch.setattr("app.store.sqlite_store.EVENT_PRUNE_CHUNK", 7)  # several chunks
    store = SqliteStore(str(tmp_path / "evb.db"), event_max_age=100.0, event_max_rows=20)
    for n in range(50):
        store.append_event(Event("vsi.refused", ts=800.0 + n * 5, detail={"n": n}))
    store.flush_events()
    # More than 100 s older than the newest (1045): n < 29 by age; then all but the newest 20
    # by rows: n = 29.
    assert store.prune_events() == 30
    assert [e["detail"]["n"] for e in store.events(limit=100)] == list(range(30, 50))
    assert store.events_pruned == 30 and store.prune_events() == 0
    store.close()


def test_the_event_writer_prunes_by_itself(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"), event_max_rows=3)
    for n in range(10):
        store.append_event(Event("port.added", detail={"n": n}))
    store.close()  # the writer wrote and pruned once on its first batch
    reopened = SqliteStore(str(tmp_path / "evb.db"), event_max_rows=3)
    assert len(reopened.events(limit=100)) <= 10
    assert reopened.prune_events() >= 0 and len(reopened.events(limit=100)) == 3
    reopened.close()
