"""The migration log: every known order driven through the real VDP bridge, cancellation, expiry,
refusal, a VM with several standbys, activations reported after the migration ended, bounds,
and invariants over arbitrary event sequences."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.vdp import STATUS_M, STATUS_S
from app.fabric.ports import PortRef
from app.vdp.bridge import VdpBridge
from app.vdp.migrations import MigrationLog, Result, Step, document
from app.vdp.outcome import Outcome
from tests.unit.test_vdp_bridge import AS, DA, MAC_A, P1, P2, P3, PA, RR, A, new_bridge, send, tlv

VSI = "a1b2c3d4-0000-0000-0000-000000000000"  # the bridge tests' VSI A
TOOK_MS = 3.5


class Fabric:
    """The bridge and the log as the control plane joins them: every decision event observed
    at the time it is emitted; an activation once its flows are confirmed (``TOOK_MS``
    later)."""

    def __init__(self) -> None:
        self.bridge: VdpBridge = new_bridge()
        self.log = MigrationLog()

    def feed(self, outcome: Outcome | None, now: float) -> None:
        assert outcome is not None
        for kind, fields in outcome.events:
            if kind == "vsi.activated":
                now = fields["first_frame_at"] + TOOK_MS / 1000
                fields = {**fields, "took_ms": TOOK_MS}
            self.log.observe(kind, fields, now)

    def request(self, port: PortRef, request, now: float) -> None:
        self.feed(send(self.bridge, port, request, now=now), now)

    def frame(self, port: PortRef, now: float) -> None:
        self.feed(self.bridge.activate(port, MAC_A, now), now)

    def only(self):
        [record] = self.log.records()
        return record


@pytest.fixture
def fabric() -> Fabric:
    fabric = Fabric()
    fabric.request(P1, tlv(AS), 0.0)
    return fabric


def steps(record) -> list[tuple[str, float]]:
    return [(step.value, at) for at, step in record.steps]


# the known orders ---------------------------------------------------------------------------
def test_libvirt_order_with_activation(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.0)
    fabric.frame(P3, 2.0)
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 3.0)
    fabric.request(P3, tlv(AS, vid=100, status=STATUS_M), 4.0)
    record = fabric.only()
    assert (record.vsi, record.source, record.destination) == (VSI, P1, P3)
    assert record.result is Result.COMPLETED and record.ended == 4.0
    assert record.order == "prepared, activated, source_released, confirmed"
    assert record.order_name == "libvirt"
    assert steps(record)[1] == ("activated", 2.0)  # timed by the frame, not the confirmation
    assert (record.mac, record.activation_ms, record.tenant) == (MAC_A, TOOK_MS, "blue")


def test_libvirt_order_without_a_frame(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.0)
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 2.0)
    fabric.request(P3, tlv(AS, vid=100, status=STATUS_M), 3.0)
    record = fabric.only()
    assert record.order == "prepared, source_released, confirmed"
    assert (record.order_name, record.result) == ("libvirt", Result.COMPLETED)


def test_associate_first_after_a_preparation(fabric):
    fabric.request(P3, tlv(RR, vid=100, status=STATUS_M), 1.0)
    fabric.frame(P3, 2.0)
    fabric.request(P3, tlv(AS, vid=100, status=STATUS_M), 3.0)
    record = fabric.only()
    assert record.order == "prepared, activated, confirmed, source_released"
    assert (record.order_name, record.result) == ("associate-first", Result.COMPLETED)


def test_associate_first_unprepared(fabric):
    fabric.request(P2, tlv(AS, status=STATUS_M), 5.0)
    record = fabric.only()
    assert steps(record) == [("confirmed", 5.0), ("source_released", 5.0)]
    assert (record.order_name, record.result, record.started) == (
        "associate-first",
        Result.COMPLETED,
        5.0,
    )


def test_suspended_at_the_source_and_resumed_elsewhere(fabric):
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 2.0)
    fabric.request(P3, tlv(AS, vid=100), 5.0)
    record = fabric.only()
    assert (record.source, record.destination, record.started) == (P1, P3, 2.0)
    assert steps(record) == [("source_released", 2.0), ("confirmed", 5.0)]
    assert (record.order_name, record.result) == ("suspend-resume", Result.COMPLETED)


def test_a_suspension_resumed_in_place_or_ended_is_no_migration(fabric):
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 2.0)
    fabric.request(P1, tlv(AS, vid=100), 3.0)
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 4.0)
    fabric.feed(fabric.bridge.expire(60.0), 60.0)  # the hold ends
    fabric.request(P3, tlv(AS, vid=100), 61.0)
    assert fabric.log.records() == []


def test_the_managers_relocation(fabric):
    fabric.feed(fabric.bridge.prepare(A, P3, 1.0, 120.0, "relocation"), 1.0)
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.5)  # its station, then: no new step
    fabric.frame(P3, 2.0)
    fabric.request(P3, tlv(AS, vid=100, status=STATUS_M), 3.0)
    record = fabric.only()
    assert record.order == "prepared, activated, confirmed, source_released"
    assert steps(record)[0] == ("prepared", 1.0)
    assert (record.order_name, record.result) == ("relocation", Result.COMPLETED)


def test_an_activation_reported_after_the_associate_joins_its_record():
    """The activation's event waits for the switches; the Associate may be decided first."""
    log = MigrationLog()
    log.observe("vsi.preassociated", {"vsi": VSI, "at": P3, "standby_for": P1}, 1.0)
    log.observe("vsi.associated", {"vsi": VSI, "at": P3, "moved_from": P1, "activated": 1}, 3.0)
    log.observe("vsi.deassociated", {"vsi": VSI, "at": P1, "reason": "moved"}, 3.0)
    fields = {"vsi": VSI, "at": P3, "mac": MAC_A, "moved_from": P1, "first_frame_at": 2.0}
    log.observe("vsi.activated", {**fields, "took_ms": 1500.0}, 3.5)
    [record] = log.records()
    assert record.order == "prepared, activated, confirmed, source_released"
    assert record.result is Result.COMPLETED and record.activation_ms == 1500.0


# how a migration fails ----------------------------------------------------------------------
def test_a_destination_that_de_associates_cancels_and_the_vm_stays(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.0)
    fabric.request(P3, tlv(DA, vid=100), 2.0)
    fabric.request(P1, tlv(DA, vid=100), 9.0)  # the VM's later shutdown is no migration step
    record = fabric.only()
    assert (record.result, record.ended, record.order) == (Result.CANCELLED, 2.0, "prepared")
    assert record.reason == "De-Associate from the station"


def test_a_vm_that_goes_back_to_its_source_cancels(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.0)
    fabric.frame(P3, 2.0)
    fabric.request(P1, tlv(AS, vid=101), 3.0)
    record = fabric.only()
    assert (record.result, record.order) == (Result.CANCELLED, "prepared, activated")


def test_a_standby_that_times_out_expires(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 5.0)
    fabric.request(P1, tlv(AS), 17.0)  # the source's keep-alive
    fabric.feed(fabric.bridge.expire(30.0), 30.0)
    record = fabric.only()
    assert (record.result, record.ended) == (Result.EXPIRED, 30.0)


def test_a_refused_destination_ends_the_migration_refused():
    log = MigrationLog()
    log.observe("vsi.preassociated", {"vsi": VSI, "at": P3, "standby_for": P1}, 1.0)
    log.observe("vsi.refused", {"vsi": VSI, "at": P1, "keep": True}, 1.5)  # KEEP: no step
    log.observe("vsi.refused", {"vsi": VSI, "at": P3, "released": "pre-associated"}, 2.0)
    [record] = log.records()
    assert (record.result, record.order) == (Result.REFUSED, "prepared")


def test_the_record_follows_the_vm_to_one_of_its_standbys():
    log = MigrationLog()
    log.observe("vsi.preassociated", {"vsi": VSI, "at": P2, "standby_for": P1}, 1.0)
    log.observe("vsi.prepared", {"vsi": VSI, "at": P3, "standby_for": P1}, 2.0)
    log.observe("vsi.activated", {"vsi": VSI, "at": P3, "first_frame_at": 3.0}, 3.0)
    log.observe("vsi.deassociated", {"vsi": VSI, "at": P2}, 4.0)  # the other standby: no end
    [record] = log.records()
    assert (record.destination, record.result) == (P3, Result.IN_PROGRESS)
    assert steps(record) == [("prepared", 2.0), ("activated", 3.0)]
    assert record.order_name == "relocation"


def test_a_standby_given_up_hands_the_record_to_the_next():
    log = MigrationLog()
    log.observe("vsi.preassociated", {"vsi": VSI, "at": P2, "standby_for": P1}, 1.0)
    log.observe("vsi.preassociated", {"vsi": VSI, "at": P3, "standby_for": P1}, 2.0)
    log.observe("vsi.expired", {"vsi": VSI, "at": P2}, 5.0)
    [record] = log.records()
    assert (record.destination, record.result, steps(record)) == (
        P3,
        Result.IN_PROGRESS,
        [("prepared", 2.0)],
    )


@pytest.mark.parametrize(
    "kind, fields",
    [
        ("vsi.preassociated", {"vsi": VSI, "at": P3}),  # no standby_for: a start elsewhere
        ("vsi.associated", {"vsi": VSI, "at": P3}),  # no moved_from
        ("vsi.activated", {"vsi": VSI, "at": P3, "first_frame_at": 1.0}),  # no moved_from
        ("vsi.deassociated", {"vsi": VSI, "at": P1}),
        ("vsi.updated", {"vsi": VSI, "at": P1, "moved_from": P2}),  # not a decision it reads
        ("vsi.associated", {"vsi": VSI, "at": "edge1/s1", "moved_from": P2}),  # no PortRef
    ],
)
def test_what_is_no_migration(kind, fields):
    log = MigrationLog()
    log.observe(kind, fields, 1.0)
    assert log.records() == []


# bounds and the view ------------------------------------------------------------------------
def migrate(log: MigrationLog, vsi: str, now: float, finish: bool = True) -> None:
    log.observe("vsi.preassociated", {"vsi": vsi, "at": P3, "standby_for": P1}, now)
    if finish:
        log.observe("vsi.deassociated", {"vsi": vsi, "at": P3}, now)


def test_the_oldest_finished_records_are_dropped_first():
    log = MigrationLog(limit=3)
    migrate(log, "v1", 1.0, finish=False)
    migrate(log, "v2", 2.0)
    migrate(log, "v3", 3.0)
    migrate(log, "v4", 4.0)
    assert [r.vsi for r in log.records()] == ["v4", "v3", "v1"]
    migrate(log, "v5", 5.0, finish=False)
    migrate(log, "v6", 6.0, finish=False)
    assert [r.vsi for r in log.records()] == ["v6", "v5", "v1"]
    migrate(log, "v7", 7.0, finish=False)  # all open: the one open longest goes
    assert [r.vsi for r in log.records()] == ["v7", "v6", "v5"]
    log.observe("vsi.deassociated", {"vsi": "v1", "at": P3}, 8.0)  # its record is gone
    assert len(log) == 3 and all(r.result is Result.IN_PROGRESS for r in log.records())


def test_records_filtered_newest_first():
    log = MigrationLog()
    for n, vsi in enumerate(["v1", "v2", "v1", "v1"]):
        migrate(log, vsi, float(n))
    assert [r.id for r in log.records(vsi="v1")] == [4, 3, 1]
    assert [r.id for r in log.records(vsi="v1", limit=2)] == [4, 3]
    assert log.records(tenant="red") == []


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError):
        MigrationLog(limit=0)


def test_the_document_names_ports_and_times_steps(fabric):
    fabric.request(P3, tlv(PA, vid=100, status=STATUS_M), 1.0)
    fabric.frame(P3, 1.25)
    fabric.request(P1, tlv(DA, vid=100, status=STATUS_S), 1.5)
    fabric.request(P3, tlv(AS, vid=100, status=STATUS_M), 2.0)
    names = {P1: ("edge1", "edge1-s1"), P3: ("edge2", "edge2-s1")}
    doc = document(fabric.only(), names.__getitem__, wall_offset=1_800_000_000.0)
    assert doc["source"] == {"switch": "edge1", "port": "edge1-s1"}
    assert doc["destination"] == {"switch": "edge2", "port": "edge2-s1"}
    assert (doc["outcome"], doc["order_name"], doc["ms"]) == ("completed", "libvirt", 1000.0)
    assert doc["started"] == "2027-01-15T08:00:01.000Z"
    assert [(s["step"], s["at"][-7:], s["ms"]) for s in doc["steps"]] == [
        ("prepared", "01.000Z", None),
        ("activated", "01.250Z", 250.0),
        ("source_released", "01.500Z", 250.0),
        ("confirmed", "02.000Z", 500.0),
    ]
    assert doc["activation"] == {
        "mac": MAC_A,
        "first_frame": "2027-01-15T08:00:01.250Z",
        "took_ms": TOOK_MS,
        "failed": None,
    }


# invariants ---------------------------------------------------------------------------------
KINDS = [
    "vsi.preassociated",
    "vsi.prepared",
    "vsi.activated",
    "vsi.activation_failed",
    "vsi.associated",
    "vsi.deassociated",
    "vsi.suspended",
    "vsi.expired",
    "vsi.refused",
]
PORTS = [P1, P2, P3, PortRef(2, 2)]
EVENTS = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(["v1", "v2", "v3"]),
    st.sampled_from(PORTS),
    st.sampled_from([None, *PORTS]),  # standby_for / moved_from
    st.booleans(),  # released
    st.floats(0, 5),  # the time since the event before
)


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENTS, max_size=60), st.integers(1, 6))
def test_invariants_over_arbitrary_events(events, limit):
    log = MigrationLog(limit=limit)
    now = 0.0
    for kind, vsi, at, other, released, delay in events:
        now += delay
        fields = {"vsi": vsi, "at": at, "first_frame_at": now - delay / 2}
        if other is not None:
            fields["standby_for" if kind.endswith("prepared") else "moved_from"] = other
        if released:
            fields["released"] = "pre-associated"
        log.observe(kind, fields, now)
        records = log.records()
        assert len(records) == len(log) <= limit and len(log._suspended) <= limit
        assert [r.id for r in records] == sorted((r.id for r in records), reverse=True)
        open_vsis = [r.vsi for r in records if r.result is Result.IN_PROGRESS]
        assert len(open_vsis) == len(set(open_vsis))
        for record in records:
            times = [t for t, _ in record.steps]
            assert times == sorted(times) and len({s for _, s in record.steps}) == len(times)
            assert (record.ended is None) == (record.result is Result.IN_PROGRESS)
            assert record.source != record.destination
            if record.result is Result.COMPLETED:
                assert record.step(Step.CONFIRMED) is not None
                assert record.step(Step.SOURCE_RELEASED) is not None
