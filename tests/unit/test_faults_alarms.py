"""Fault events become alarms naming the VMs they affect, and clear when the fault is over."""

import json

from hypothesis import given
from hypothesis import strategies as st

from app.events import Event, EventLog
from app.faults.alarms import Alarm, AlarmBook, VmPlace, places_of
from app.faults.monitor import FaultMonitor
from app.store.sqlite_store import SqliteStore

A = VmPlace("vsi-a", "blue", "edge1", "edge1-s1", ("52:00:00:00:00:0a",))
B = VmPlace("vsi-b", "red", "edge1", "edge1-s2", ("52:00:00:00:00:0b",))
C = VmPlace("vsi-c", "blue", "edge2", "edge2-s1", ("52:00:00:00:00:0c",))
VMS = [A, B, C]


def ev(kind: str, switch=None, port=None, ts=1.0, **detail) -> Event:
    return Event(kind, ts=ts, switch=switch, port=port, detail=detail)


def test_a_server_port_down_raises_one_alarm_naming_its_vms_and_up_clears_it():
    book = AlarmBook()
    [raised] = book.on_event(
        ev("port.modified", "edge1", "edge1-s1", role="server", up=False), VMS, set()
    )
    alarm = raised.alarm
    assert raised.state == "alarm" and alarm.id == "port.down:edge1/edge1-s1"
    assert alarm.kind == "port.down" and alarm.severity == "critical"
    assert alarm.affected == (A,) and not alarm.maintenance
    assert "edge1/edge1-s1 is down" in alarm.reason
    # The same fault reported again is the same alarm, not a second one.
    assert (
        book.on_event(ev("port.modified", "edge1", "edge1-s1", role="server", up=False), VMS, set())
        == []
    )
    [cleared] = book.on_event(
        ev("port.modified", "edge1", "edge1-s1", ts=2.0, role="server", up=True), VMS, set()
    )
    assert cleared.state == "ok" and cleared.alarm.cleared == 2.0 and cleared.alarm.raised == 1.0
    assert book.active() == [] and book.recent() == [cleared.alarm]


def test_a_removed_server_port_is_down():
    [raised] = AlarmBook().on_event(
        ev("port.deleted", "edge1", "edge1-s2", role="server", up=False), VMS, set()
    )
    assert raised.alarm.affected == (B,) and "was removed" in raised.alarm.reason


def test_trunk_and_other_ports_raise_no_port_alarm():
    book = AlarmBook()
    assert (
        book.on_event(ev("port.modified", "edge1", "edge1-up1", role="trunk", up=False), VMS, set())
        == []
    )


def test_switch_down_affects_every_vm_on_it_until_it_is_ready_again():
    book = AlarmBook()
    [raised] = book.on_event(ev("switch.disconnected", "edge1"), VMS, set())
    assert raised.alarm.id == "switch.down:edge1" and raised.alarm.affected == (A, B)
    assert book.on_event(ev("switch.connected", "edge1"), VMS, set()) == []  # not synced yet
    [cleared] = book.on_event(ev("switch.ready", "edge1"), VMS, set())
    assert cleared.state == "ok"


def test_a_hung_switch_is_down_with_its_vms_and_its_disconnection_adds_nothing():
    book = AlarmBook()
    hung = ev("switch.hung", "edge1", silent_s=0.9, timeout=0.6, address="127.0.0.1")
    [raised] = book.on_event(hung, VMS, set())
    alarm = raised.alarm
    assert alarm.id == "switch.down:edge1" and alarm.affected == (A, B)
    assert alarm.severity == "critical" and alarm.detail == {"cause": "hung"}
    assert "stopped answering" in alarm.reason and "within 0.6 s" in alarm.reason
    assert book.on_event(ev("switch.disconnected", "edge1"), VMS, set()) == []
    [cleared] = book.on_event(ev("switch.ready", "edge1"), VMS, set())
    assert cleared.state == "ok"


def test_a_followers_hung_slave_connection_raises_nothing():
    hung = ev("switch.hung", "edge1", silent_s=0.9, timeout=0.6, role="slave")
    assert AlarmBook().on_event(hung, VMS, set()) == []


def test_a_switch_absent_after_the_start_is_down_with_the_vms_restored_on_it():
    [raised] = AlarmBook().on_event(ev("switch.absent", "edge2", timeout=30.0), VMS, set())
    assert raised.alarm.id == "switch.down:edge2" and raised.alarm.affected == (C,)
    assert raised.alarm.detail == {"cause": "absent"}
    assert "has not connected within 30.0 s" in raised.alarm.reason


def test_a_duplicate_connection_raises_one_alarm_until_the_switch_next_connects_cleanly():
    book = AlarmBook()
    checking = ev("switch.duplicate", "edge1", address="10.0.0.9", outcome="checking")
    [raised] = book.on_event(checking, VMS, set())
    assert raised.alarm.id == "switch.duplicate:edge1" and raised.alarm.severity == "major"
    assert raised.alarm.affected == (A, B) and "10.0.0.9" in raised.alarm.reason
    refused = ev("switch.duplicate", "edge1", address="10.0.0.9", outcome="refused")
    assert book.on_event(refused, VMS, set()) == []
    [cleared] = book.on_event(ev("switch.ready", "edge1", ts=5.0), VMS, set())
    assert cleared.state == "ok" and cleared.alarm.id == "switch.duplicate:edge1"


def test_link_down_and_up_match_whichever_end_reports():
    book = AlarmBook()
    [raised] = book.on_event(
        ev("link.down", "agg1", "agg1-dn1", peer="edge1/edge1-up1"), VMS, set()
    )
    assert raised.alarm.id == "link.down:agg1/agg1-dn1~edge1/edge1-up1"
    assert raised.alarm.severity == "major" and raised.alarm.affected == (A, B)
    [cleared] = book.on_event(ev("link.up", "edge1", "edge1-up1", peer="agg1/agg1-dn1"), VMS, set())
    assert cleared.alarm.id == raised.alarm.id


def test_an_expired_vm_is_lost_until_it_associates_again():
    book = AlarmBook()
    [raised] = book.on_event(
        ev(
            "vsi.expired",
            "edge2",
            "edge2-s1",
            vsi="vsi-c",
            tenant="blue",
            macs=["52:00:00:00:00:0c"],
            reason="no keep-alive for 3 s",
        ),
        [],
        set(),
    )
    assert raised.alarm.id == "vm.lost:vsi-c" and raised.alarm.affected == (C,)
    assert "no keep-alive for 3 s" in raised.alarm.reason
    assert (
        book.on_event(ev("vsi.associated", "edge1", "edge1-s1", vsi="vsi-other"), [], set()) == []
    )
    [cleared] = book.on_event(ev("vsi.associated", "edge1", "edge1-s1", vsi="vsi-c"), [], set())
    assert cleared.state == "ok"


def test_alarms_on_a_server_in_maintenance_are_flagged():
    book = AlarmBook()
    maintenance = {("edge1", "edge1-s1")}
    [port] = book.on_event(
        ev("port.modified", "edge1", "edge1-s1", role="server", up=False), VMS, maintenance
    )
    [lost] = book.on_event(
        ev("vsi.expired", "edge1", "edge1-s1", vsi="vsi-a", tenant="blue"), [], maintenance
    )
    [switch] = book.on_event(ev("switch.disconnected", "edge1"), VMS, maintenance)
    assert port.alarm.maintenance and lost.alarm.maintenance
    assert not switch.alarm.maintenance  # a whole switch is not one server's planned work


def test_tenant_view_lists_only_its_vms():
    [raised] = AlarmBook().on_event(ev("switch.disconnected", "edge1"), VMS, set())
    assert raised.alarm.tenants() == {"blue", "red"}
    assert [vm["vsi_id"] for vm in raised.alarm.as_dict("red")["affected_vms"]] == ["vsi-b"]
    assert len(raised.alarm.as_dict()["affected_vms"]) == 2


def test_other_events_are_not_faults():
    book = AlarmBook()
    for kind in ("vsi.refused", "switch.connected", "station.seen", "frame.dropped"):
        assert book.on_event(ev(kind, "edge1", "edge1-s1"), VMS, set()) == []


def test_places_of_takes_the_associated_attachments_only():
    associations = [
        {
            "vsi_id": "vsi-a",
            "attachments": [
                {
                    "state": "associated",
                    "tenant": "blue",
                    "switch": "edge2",
                    "port": "edge2-s1",
                    "entries": [{"mac": "52:00:00:00:00:0a", "vid": 100}],
                },
                {
                    "state": "pre-associated",
                    "tenant": "blue",
                    "switch": "edge1",
                    "port": "edge1-s1",
                    "entries": [{"mac": "52:00:00:00:00:0a", "vid": 100}],
                },
            ],
        }
    ]
    assert places_of(associations) == [
        VmPlace("vsi-a", "blue", "edge2", "edge2-s1", ("52:00:00:00:00:0a",))
    ]


EVENT_KINDS = [
    "switch.disconnected",
    "switch.ready",
    "port.modified",
    "port.deleted",
    "link.down",
    "link.up",
    "vsi.expired",
    "vsi.associated",
]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(EVENT_KINDS),
            st.sampled_from(["edge1", "edge2"]),
            st.sampled_from(["edge1-s1", "edge1-s2", "edge2-s1"]),
            st.booleans(),
            st.sampled_from(["vsi-a", "vsi-c"]),
        ),
        max_size=40,
    )
)
def test_each_alarm_is_raised_once_and_cleared_at_most_once(script):
    """Whatever order faults come and go in: raise and clear alternate per alarm id, and the
    active list is exactly the alarms raised and not yet cleared."""
    book, state = AlarmBook(), {}
    for n, (kind, switch, port, up, vsi) in enumerate(script):
        event = ev(
            kind,
            switch,
            port,
            ts=float(n),
            role="server",
            up=up,
            vsi=vsi,
            tenant="blue",
            peer="agg1/agg1-dn1",
        )
        for notice in book.on_event(event, VMS, set()):
            was_active = state.get(notice.alarm.id, False)
            assert was_active != notice.alarm.active
            state[notice.alarm.id] = notice.alarm.active
    assert {a.id for a in book.active()} == {k for k, active in state.items() if active}


def test_a_ready_switch_brings_its_port_alarms_up_to_date():
    """Port changes while the switch was away (or before a controller restart) come as the
    list of server ports down when it is ready again."""
    book = AlarmBook()
    book.on_event(ev("port.modified", "edge1", "edge1-s2", role="server", up=False), VMS, set())
    book.on_event(ev("port.modified", "edge2", "edge2-s1", role="server", up=False), VMS, set())
    notices = book.on_event(ev("switch.ready", "edge1", server_ports_down=["edge1-s1"]), VMS, set())
    assert [(n.alarm.id, n.state) for n in notices] == [
        ("port.down:edge1/edge1-s1", "alarm"),
        ("port.down:edge1/edge1-s2", "ok"),
    ]
    assert notices[0].alarm.affected == (A,)
    assert {a.id for a in book.active()} == {"port.down:edge1/edge1-s1", "port.down:edge2/edge2-s1"}
    assert (
        book.on_event(ev("switch.ready", "edge1", server_ports_down=["edge1-s1"]), VMS, set()) == []
    )


def _lost(book, n, ts):
    return book.on_event(
        ev("vsi.expired", "edge1", "edge1-s1", ts=ts, vsi=f"vsi-{n}", tenant="blue"), VMS, set()
    )


def test_vm_lost_alarms_are_bounded_the_oldest_retired_without_a_notice():
    """Issue 10: a vm.lost alarm of a VM that never came back was kept forever."""
    book = AlarmBook(recent_cleared=3, active_vm_lost=2)
    for n in range(4):
        assert len(_lost(book, n, float(n))) == 1  # each raise is notified
    assert [a.id for a in book.active()] == ["vm.lost:vsi-2", "vm.lost:vsi-3"]
    retired = [a for a in book.recent() if not a.active]
    assert [a.id for a in retired] == ["vm.lost:vsi-1", "vm.lost:vsi-0"]
    assert all("retired" in a.detail for a in retired)
    # Cleared alarms are bounded too: the oldest are dropped, and said so for the store.
    book.take_changes()
    for n in range(4, 8):
        _lost(book, n, float(n))
    changed, dropped = book.take_changes()
    assert len([a for a in book.recent() if not a.active]) == 3
    assert len(dropped) == 3 and all(key.startswith("vm.lost:vsi-") for key in dropped)
    assert {a.key for a in changed} >= {a.key for a in book.recent()}


def test_the_book_comes_back_from_its_documents():
    book = AlarmBook()
    _lost(book, 1, 1.0)
    book.on_event(ev("switch.disconnected", "edge1", ts=2.0), VMS, set())
    book.on_event(ev("switch.ready", "edge1", ts=3.0), VMS, set())
    changed, _ = book.take_changes()
    latest = {a.key: a.document() for a in changed}  # the store keeps the last per key
    again = AlarmBook(Alarm.from_document(json.loads(json.dumps(d))) for d in latest.values())
    assert again.recent() == book.recent()
    assert again.take_changes() == ([], [])
    # It goes on where it was: the VM comes back and clears the alarm raised before.
    [cleared] = again.on_event(ev("vsi.associated", ts=4.0, vsi="vsi-1"), VMS, set())
    assert cleared.alarm.raised == 1.0 and cleared.alarm.cleared == 4.0


def test_alarms_survive_a_restart_of_the_controller(tmp_path):
    """Issue 10: the cleared alarms were lost at every restart."""
    path = str(tmp_path / "evb.db")

    def started():
        store, log = SqliteStore(path), EventLog()
        monitor = FaultMonitor(log, store, lambda where: [])
        log.add_sink(monitor)
        return store, log, monitor

    store, log, _ = started()
    log.emit("vsi.expired", switch="edge1", port="edge1-s1", vsi="v1", tenant="blue")
    log.emit("vsi.associated", vsi="v1")
    log.emit("vsi.expired", switch="edge1", port="edge1-s2", vsi="v2", tenant="red")
    store.close()
    store, log, monitor = started()
    alarms = monitor.alarms(None, active_only=False)
    assert [(a["id"], a["state"]) for a in alarms] == [
        ("vm.lost:v2", "alarm"),
        ("vm.lost:v1", "ok"),
    ]
    log.emit("vsi.associated", vsi="v2")  # the alarm raised before the restart clears
    assert monitor.alarms(None, active_only=True) == []
    store.close()
