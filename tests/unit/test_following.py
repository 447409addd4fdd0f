"""Following the store without etcd (the same on a real one: test_etcd_following.py): the feed's
batches and reloads, our own writes' echoes, the intent mirror, and each owner applying what
another controller stored."""

import threading

import pytest

from app.events import EventLog
from app.faults.alarms import Alarm, AlarmBook, VmPlace
from app.faults.maintenance import MaintenanceRecord
from app.faults.monitor import FaultMonitor
from app.faults.subscriptions import Subscribers, Subscription
from app.policy import load_policies
from app.registry import Registry
from app.registry.documents import parse_profile, profile_document
from app.registry.registry import DEREGISTERED
from app.registry.vms import VmRecord
from app.store.base import RegistryWrite, compact_json, intent_document
from app.store.etcd_feed import StoreFeed
from app.store.event_index import EventIndex
from app.store.intent_mirror import IntentMirror
from app.store.own_writes import OwnWrites
from app.store.sqlite_store import SqliteStore
from app.vcenter.notifier import DeliveryPool
from tests.unit.test_rest_harness import MAC_A, POLICIES, VSI_A, FakeService, profile

P = "/f/"


class FakeKv:
    """The reads a feed makes: the store's revision and a prefix at a revision (the latest)."""

    def __init__(self, data: dict[str, bytes], revision: int):
        self.data, self.rev = data, revision

    def revision(self) -> int:
        return self.rev

    def scan_prefix(self, prefix: str, revision: int | None = None):
        return [(k, v, 1) for k, v in sorted(self.data.items()) if k.startswith(prefix)]


class Recorder:
    def __init__(self, fail: bool = False):
        self.applied: list[list] = []
        self.reloaded: list[list] = []
        self.fail = fail

    def apply(self, changes):
        if self.fail:
            raise RuntimeError("a bug")
        self.applied.append(changes)

    def reload(self, items):
        self.reloaded.append(items)


def feed_of(tables, own=None, kv=None, progress=None):
    return StoreFeed(
        kv or FakeKv({}, 0),
        ["http://127.0.0.1:1"],
        P,
        tables,
        own or OwnWrites(),
        (progress if progress is not None else []).append,
    )


# the feed ---------------------------------------------------------------------------------------
def test_a_message_is_one_batch_a_table_with_the_last_change_of_each_key():
    vms, events, progress = Recorder(), Recorder(), []
    feed = feed_of({"vms": vms, "pools": vms, "events": events}, progress=progress)
    for key, value, revision in [
        (P + "vms/a", b"1", 5),
        (P + "pools/t", b"{}", 5),
        (P + "vms/b", b"2", 6),
        (P + "vms/a", None, 7),
        (P + "leader", b"x", 7),  # not followed
        (P + "switches/1", b"{}", 7),
        (P + "events-seq", b"9", 7),
        (P + "events/00000000000000000001", b"{}", 7),
    ]:
        feed._on_change(key, value, revision)
    feed._on_batch(7)
    assert vms.applied == [[("pools", "t", b"{}"), ("vms", "b", b"2"), ("vms", "a", None)]]
    assert events.applied == [[("events", "00000000000000000001", b"{}")]]
    assert progress == [7] and feed.applied == 4
    feed._on_change(P + "leader", b"{}", 9)  # an election: nothing to apply, but caught up
    feed._on_batch(9)
    assert progress == [7, 9] and len(vms.applied) == 1


def test_our_own_writes_come_back_skipped_and_a_failing_table_stops_no_other():
    own, broken, fine, progress = OwnWrites(), Recorder(fail=True), Recorder(), []
    own.write([P + "vms/a"], lambda: 10)
    feed = feed_of({"vms": broken, "alarms": fine}, own=own, progress=progress)
    feed._on_change(P + "vms/a", b"ours", 10)
    feed._on_change(P + "alarms/x", b"theirs", 10)
    feed._on_batch(10)
    assert fine.applied == [[("alarms", "x", b"theirs")]] and progress == [10]
    feed._on_change(P + "vms/a", b"theirs", 11)
    feed._on_batch(11)
    assert feed.failed == 1 and progress == [10, 11] and len(own) == 0


def test_a_reload_gives_each_table_all_it_follows_at_one_revision():
    kv = FakeKv({P + "vms/a": b"1", P + "pools/t": b"2", P + "alarms/x": b"3"}, 42)
    registry, alarms, progress = Recorder(), Recorder(), []
    feed = feed_of({"vms": registry, "pools": registry, "alarms": alarms}, kv=kv, progress=progress)
    assert feed.reload() == 42 and progress == [42] and feed.reloads == 1
    assert registry.reloaded == [[("vms", "a", b"1"), ("pools", "t", b"2")]]
    assert alarms.reloaded == [[("alarms", "x", b"3")]]


# our own writes -----------------------------------------------------------------------------
def test_own_writes_skip_their_echo_and_older_changes_but_not_newer_ones():
    own = OwnWrites()
    own.write(["k"], lambda: 10)
    assert own.superseded("k", 10) and own.superseded("k", 9)
    assert not own.superseded("k", 11) and not own.superseded("other", 10)
    own.passed(10)
    assert not own.superseded("k", 10) and len(own) == 0


def test_a_failed_write_notes_nothing():
    own = OwnWrites()
    with pytest.raises(RuntimeError):
        own.write(["k"], _raise)
    own.write(["j"], lambda: None)  # nothing written
    assert not own.superseded("k", 1) and not own.superseded("j", 1) and len(own) == 0


def _raise():
    raise RuntimeError("etcd away")


def test_an_echo_that_overtakes_its_write_waits_for_the_revision():
    """The watch may hand the echo over before etcd's answer reaches the writer."""
    own, sending, answered = OwnWrites(), threading.Event(), threading.Event()

    def send():
        sending.set()
        answered.wait()
        return 12

    writer = threading.Thread(target=own.write, args=(["k"], send))
    writer.start()
    sending.wait()
    decided = []
    watcher = threading.Thread(target=lambda: decided.append(own.superseded("k", 12)))
    watcher.start()
    answered.set()
    watcher.join()
    writer.join()
    assert decided == [True]


def test_only_the_last_write_of_a_key_is_kept_until_passed():
    own = OwnWrites()
    own.write(["k"], lambda: 10)
    own.write(["k", "j"], lambda: 12)
    own.passed(11)
    assert own.superseded("k", 12) and own.superseded("j", 12) and len(own) == 2
    own.passed(12)
    assert len(own) == 0


# the intent mirror ----------------------------------------------------------------------------
def _vsi(key: str) -> bytes:
    return compact_json([{"vsi_id": key.split("%3A")}]).encode()


def test_the_mirror_gives_the_intent_as_the_store_loads_it():
    mirror = IntentMirror()
    assert mirror.intent() is None
    mirror.apply([("vsis/1%3Abb", _vsi("1%3Abb")), ("vsis/1%3Aaa", _vsi("1%3Aaa"))])
    mirror.apply([("lists/links", b"[[1,2,3,4]]"), ("vsis/1%3Acc", _vsi("1%3Acc"))])
    mirror.apply([("vsis/1%3Acc", None)])
    assert mirror.intent() == intent_document(
        [{"vsi_id": ["1", "aa"]}, {"vsi_id": ["1", "bb"]}], {"links": [[1, 2, 3, 4]]}
    )
    mirror.reload([("lists/rr_ports", b"[[1,5]]"), ("lists/channels", b"[[1,1,2,4000]]")])
    assert mirror.intent() == {
        "version": 1,
        "vsis": [],
        "links": [],
        "rr_ports": [[1, 5]],
        "channels": [[1, 1, 2, 4000]],
    }
    assert len(mirror) == 0


def test_the_mirror_counts_and_leaves_out_what_the_intent_store_does_not_write():
    mirror = IntentMirror()
    mirror.apply(
        [
            ("vsis/1%3Aaa", b"not json"),
            ("vsis/1%3Abb", b'{"a": 1}'),
            ("lists/other", b"[]"),
            ("elsewhere", b"[]"),
            ("vsis/1%3Acc", _vsi("1%3Acc")),
        ]
    )
    assert mirror.dropped == 4 and len(mirror) == 1


def test_waiting_for_a_revision():
    mirror = IntentMirror()
    mirror.caught_up(5)
    assert mirror.wait_for(5, 0) and not mirror.wait_for(6, 0)
    threading.Thread(target=mirror.caught_up, args=(6,)).start()
    assert mirror.wait_for(6, 60)
    mirror.caught_up(3)  # never backwards
    assert mirror.revision == 6


# the registry --------------------------------------------------------------------------------
VM_1 = "a1b2c3d4-0000-0000-0000-0000000000f1"


@pytest.fixture
def registry(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    service, events = FakeService(), []
    registry = Registry(
        load_policies(POLICIES), store, service, emit=lambda kind, **kw: events.append(kind)
    )
    yield registry, service, store, events
    store.close()


def _vm(vsi_id: str, type_id: int = 9, version: int = 1, mac: str = "52:00:00:00:0f:01") -> dict:
    return VmRecord(vsi_id, "blue", type_id, version, (mac,)).document()


def test_a_stored_change_is_swapped_in_and_handed_to_the_controller_without_a_write(registry):
    registry_, service, store, events = registry
    pushed = profile_document(_profile(9))
    dropped = registry_.follow(
        RegistryWrite(
            profiles=(pushed,), vms=(_vm(VM_1),), pools=({"tenant": "blue", "vlans": [110]},)
        )
    )
    assert dropped == 0
    assert registry_.database().get(9, 1).name == "app9" and registry_.vm(VM_1).type_id == 9
    assert registry_.state.pools.assigned == {"blue": frozenset({110})}
    assert len(service.applied) == 1 and events == []  # told; no event: its writer emitted it
    assert store.profiles() == [] and store.vms() == [] and store.vlan_pools() == []
    # The same again (an echo, a change seen twice) changes nothing, tells nobody.
    registry_.follow(RegistryWrite(profiles=(pushed,), vms=(_vm(VM_1),)))
    assert len(service.applied) == 1
    registry_.follow(
        RegistryWrite(removed_profiles=((9, 1),), removed_vms=(VM_1,), removed_pools=("blue",))
    )
    assert registry_.database().get(9, 1) is None and registry_.vm(VM_1) is None
    assert registry_.state.pools.assigned == {} and len(service.applied) == 2
    assert service.deassociated == [(VM_1, DEREGISTERED)]


def _profile(type_id: int):
    return parse_profile(profile(type_id, 1))


def test_a_vm_deregistered_elsewhere_is_deassociated_here(registry):
    registry_, service, _, _ = registry
    registry_.follow(RegistryWrite(vms=(_vm(VSI_A, 5, 4, MAC_A),)))
    assert service.deassociated == []  # held as its registration admits
    registry_.follow(RegistryWrite(removed_vms=(VSI_A,)))
    assert service.deassociated == [(VSI_A, DEREGISTERED)] and service.association(VSI_A) is None


def test_a_whole_reload_drops_what_the_store_no_longer_has(registry):
    registry_, service, _, _ = registry
    registry_.follow(
        RegistryWrite(
            profiles=(profile_document(_profile(9)), profile_document(_profile(10))),
            vms=(_vm(VM_1),),
            pools=({"tenant": "blue", "vlans": [110]},),
        )
    )
    registry_.follow(RegistryWrite(profiles=(profile_document(_profile(10)),)), whole=True)
    assert registry_.database().get(9, 1) is None and registry_.database().get(10, 1)
    assert registry_.vm(VM_1) is None and registry_.state.pools.assigned == {}


def test_stored_documents_that_are_not_valid_are_counted_and_left_out(registry):
    registry_, _, _, _ = registry
    dropped = registry_.follow(
        RegistryWrite(
            profiles=({"type_id": 9},),
            vms=({"vsi_id": VM_1},),
            pools=({"tenant": "blue", "vlans": ["x"]},),
        )
    )
    assert dropped == 3 and registry_.vm(VM_1) is None


def test_the_inventory_follows_and_stays_through_other_registry_changes(registry):
    registry_, service, _, _ = registry
    east = {"kind": "datacenter", "name": "east"}
    host = {"kind": "host", "name": "srv11", "datacenter": "east", "macs": ["02:00:00:00:00:01"]}
    assert registry_.follow(RegistryWrite(inventory=(east, host))) == 0
    registry_.follow(RegistryWrite(vms=(_vm(VM_1),), profiles=(profile_document(_profile(9)),)))
    inventory = registry_.state.inventory
    assert inventory.host_at("s", "p", "02:00:00:00:00:01").name == "srv11"
    registry_.follow(RegistryWrite(removed_inventory=(("host", "srv11"),)))
    assert registry_.state.inventory.get("host", "srv11") is None
    registry_.follow(RegistryWrite(inventory=(host,)), whole=True)  # east is gone from the store
    assert registry_.state.inventory.get("datacenter", "east") is None
    assert registry_.follow(RegistryWrite(inventory=({"kind": "host"},))) == 1


# faults -------------------------------------------------------------------------------------
class Pools:
    def __init__(self):
        self.made = []

    def __call__(self):
        self.made.append(DeliveryPool(workers=1))
        return self.made[-1]


def _subscription(sub_id: str, url: str = "http://127.0.0.1:9/") -> Subscription:
    return Subscription(sub_id, url, None, ("vm.lost",), 1.0, "s" * 32)


def test_subscriptions_follow_with_one_pool_and_their_webhooks_closed():
    pools = Pools()
    subscribers = Subscribers(pool=pools)
    subscribers.follow({"s1": _subscription("s1"), "s2": _subscription("s2")})
    webhook = subscribers._subs["s1"][1]
    subscribers.follow({"s1": _subscription("s1")})  # held as it is: the same webhook
    assert subscribers._subs["s1"][1] is webhook
    subscribers.follow({"s1": _subscription("s1", "http://127.0.0.1:8/")})  # replaced
    assert webhook._closed and subscribers._subs["s1"][0].url == "http://127.0.0.1:8/"
    subscribers.follow({"s2": None})
    assert [s["id"] for s in subscribers.list(None)] == ["s1"]
    subscribers.follow({}, whole=True)
    assert subscribers.list(None) == [] and len(pools.made) == 1
    subscribers.close()


def test_maintenance_follows_without_events(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    log, seen = EventLog(), []
    log.add_sink(lambda event: seen.append(event.kind))
    monitor = FaultMonitor(log, store, lambda where: [])
    record = MaintenanceRecord("edge1", "edge1-s1", "BIOS", 5.0)
    monitor.follow_maintenance({record.key: record})
    assert monitor.in_maintenance(record.key) == record
    monitor.follow_maintenance(
        {("edge1", "edge1-s2"): MaintenanceRecord("edge1", "edge1-s2", "", 1)}
    )
    monitor.follow_maintenance({record.key: None})
    assert monitor.in_maintenance(record.key) is None
    monitor.follow_maintenance({}, whole=True)
    assert monitor.maintenance.keys() == set() and seen == [] and store.maintenance() == []
    monitor.close()
    store.close()


def _lost(vsi: str, raised: float, cleared: float | None = None) -> Alarm:
    place = VmPlace(vsi, "blue", "edge1", "edge1-s1")
    return Alarm(
        f"vm.lost:{vsi}", "vm.lost", "critical", "edge1", "edge1-s1", "r", (place,), raised, cleared
    )


def test_alarms_follow_within_the_books_bounds_with_nothing_to_write_back():
    book = AlarmBook(recent_cleared=2, active_vm_lost=2)
    a, b, c = _lost("a", 1.0), _lost("b", 2.0), _lost("c", 3.0)
    book.follow({a.key: a, b.key: b})
    book.follow({c.key: c})  # beyond the bound: the oldest goes (its writer retires it too)
    assert [x.id for x in book.active()] == [b.id, c.id]
    cleared = Alarm(**{**vars(b), "cleared": 4.0})
    book.follow({b.key: cleared})
    assert book.active() == [c] and book.recent() == [c, cleared]
    book.follow({cleared.key: None})
    assert book.recent() == [c]
    book.follow({}, whole=True)
    assert book.recent() == [] and book.take_changes() == ([], [])


# the event index ------------------------------------------------------------------------------
def test_the_index_takes_late_events_in_order_once_and_forgets_pruned_ones():
    index = EventIndex()
    for event_id in (1, 5, 3, 5):
        index.add(event_id, {"ts": float(event_id), "kind": "vsi.x", "detail": {"vsi": "v"}})
    assert index.select("", 0, 10, None, None, "v", False) == [1, 3, 5]
    index.discard(3)
    index.discard(99)
    assert index.select("", 0, 10, None, None, "v", False) == [1, 5] and len(index) == 2
