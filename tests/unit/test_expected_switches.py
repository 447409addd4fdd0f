"""Expected switches (app/fabric/expected.py): those the store remembers, reported once when
they have not connected in time after the controller took the fabric."""

from app.fabric.expected import MAX_EXPECTED, ExpectedSwitches
from tests.unit.test_fabric_control import EDGE2, Bed


def test_a_remembered_switch_not_back_in_time_is_reported_once():
    expected = ExpectedSwitches(30)
    expected.expect([(1, "edge1", 5.0), (2, "edge2", 6.0), (3, "edge3", 7.0)], {3}, 100)
    expected.arrived(1)
    assert expected.due(129.9) == []
    assert expected.due(130) == [(2, "edge2")]
    assert expected.due(200) == []


def test_the_clock_starts_again_when_the_fabric_is_taken_again():
    expected = ExpectedSwitches(30)
    expected.expect([(1, "edge1", 5.0)], set(), 0)
    expected.expect([(1, "edge1", 5.0)], set(), 50)  # elected again later
    assert expected.due(40) == [] and expected.due(80) == [(1, "edge1")]


def test_timeout_zero_reports_nothing():
    expected = ExpectedSwitches(0)
    expected.expect([(1, "edge1", 5.0)], set(), 0)
    assert expected.due(1e9) == []


def test_at_most_so_many_are_expected_the_most_recently_seen():
    expected = ExpectedSwitches(1)
    expected.expect([(i, f"s{i}", float(i)) for i in range(MAX_EXPECTED + 10)], set(), 0)
    missing = expected.due(1)
    assert len(missing) == MAX_EXPECTED and (9, "s9") not in missing
    assert (MAX_EXPECTED + 9, f"s{MAX_EXPECTED + 9}") in missing


def test_the_fabric_reports_an_absent_switch_and_finds_the_vms_restored_on_it():
    bed = Bed(expected_timeout=5)
    bed.associate(EDGE2, 1, 2)
    core = bed.core
    core.switch_disconnected(EDGE2, 2.0)  # as if it had not come back after a restart
    remembered = [{"dpid": f"{EDGE2:016x}", "name": "edge2", "first_seen": 1, "last_seen": 2}]
    core.expect_switches(remembered, 2.0)
    core.tick(6.9)
    assert not bed.log.recent("switch.absent")
    core.tick(7.0)
    core.tick(8.0)
    [absent] = bed.log.recent("switch.absent")
    assert absent.switch == "edge2" and absent.detail["timeout"] == 5
    [vm] = core.control.vm_places({("edge2", None)})
    assert vm.switch == "edge2" and vm.port == "1"  # its port's name is unknown while away
