from app.events import Event, EventLog
from app.store.sqlite_store import SCHEMA_VERSION, SqliteStore, StoreError

import pytest


def test_switches_and_events_survive_reopening(tmp_path):
    path = str(tmp_path / "sub" / "evb.db")
    store = SqliteStore(path)
    store.record_switch("0000000000000001", "edge1", 10.0)
    store.record_switch("0000000000000001", "edge1", 20.0)
    store.append_event(Event("switch.ready", ts=1.0, switch="edge1", detail={"ports": 2}))
    store.close()

    store = SqliteStore(path)
    assert store.switches() == [{"dpid": "0000000000000001", "name": "edge1",
                                 "first_seen": 10.0, "last_seen": 20.0}]
    events = store.events()
    assert [(e["kind"], e["switch"], e["detail"]) for e in events] == [
        ("switch.ready", "edge1", {"ports": 2})]


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
