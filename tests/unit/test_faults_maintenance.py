"""Maintenance mode bookkeeping: a server is reported drained once its last VM has gone."""

from app.faults.alarms import VmPlace
from app.faults.maintenance import Maintenance

A = VmPlace("vsi-a", "blue", "edge1", "edge1-s1")
B = VmPlace("vsi-b", "red", "edge1", "edge1-s2")


def test_maintenance_reports_a_drained_server_once_and_rearms():
    maintenance = Maintenance()
    maintenance.enter(("edge1", "edge1-s1"), "BIOS upgrade", 10.0)
    assert maintenance.poll([A]) == []
    [drained] = maintenance.poll([])
    assert drained.key == ("edge1", "edge1-s1") and drained.reason == "BIOS upgrade"
    assert maintenance.poll([]) == []
    assert maintenance.poll([A]) == []  # a VM came back: drained again later
    assert [r.key for r in maintenance.poll([B])] == [("edge1", "edge1-s1")]


def test_maintenance_records_round_trip_and_update_the_reason():
    maintenance = Maintenance()
    first = maintenance.enter(("edge1", "edge1-s1"), "disk", 1.0)
    again = maintenance.enter(("edge1", "edge1-s1"), "disk and fan", 5.0)
    assert again.since == first.since and again.reason == "disk and fan"
    restored = Maintenance([type(again).from_dict(again.as_dict())])
    assert restored.records() == [again] and restored.keys() == {("edge1", "edge1-s1")}
    assert restored.leave(("edge1", "edge1-s1")) == again and restored.leave(again.key) is None
