"""The controller and the reference VM manager (evb-vcenter) with lldpad stations: a VSI type
only the manager knows is looked up and granted; the manager hears of it; with the manager gone
the station gets "unable to contact VSI manager"; a slow manager never stalls the answer. Both
ways carry credentials: the manager answers only lookups with the controller's bearer token and
stores only notifications signed with the shared secret (docs/vcenter.md)."""

import pytest

from tests.integration.bed import MARKS, wait_until
from tests.integration.managers import start_manager, stop_manager, text_file, told
from topologies.controller_process import free_port

pytestmark = MARKS
TOKEN, SECRET = "bed-lookup-token-0001", "bed-notification-secret-0001"
MANAGER_PROFILES = """\
vsi_types:
  - {type_id: 42, version: 1, name: green-web, tenant: green, vlans: [300], manager_ids: [mgr1]}
  - {type_id: 43, version: 1, name: green-db, tenant: green, vlans: [301], manager_ids: [mgr1]}
"""


def _manager(workdir, port, delay=0.0):
    return start_manager(workdir, port, MANAGER_PROFILES, delay=delay, token=TOKEN, secret=SECRET)


@pytest.fixture(scope="module")
def manager_port():
    return free_port()


@pytest.fixture(scope="module")
def controller_args(tmp_path_factory, manager_port):
    """The VM manager, and credentials for it."""
    secrets = tmp_path_factory.mktemp("vcenter-credentials")
    return (
        "--vcenter-url",
        f"http://127.0.0.1:{manager_port}",
        "--vcenter-timeout",
        "1",
        "--vcenter-token-file",
        text_file(secrets, "vcenter-token", TOKEN),
        "--vcenter-secret-file",
        text_file(secrets, "vcenter-secret", SECRET),
    )


def test_a_type_only_the_manager_knows_is_granted_and_the_manager_is_told(
    bed, station, controller, manager_port, tmp_path
):
    manager = _manager(tmp_path, manager_port)
    try:
        bed.add_vm("vm1", "srv11", "52:54:00:00:04:01", "10.0.4.1/24")
        uuid = "a1b2c3d4-0000-0000-0000-000000000401"
        result = station.vdp("assoc", "mgr1", 42, 1, uuid, filters=["0-52:54:00:00:04:01"])
        assert result.ok, result.raw
        assert result.fields["filter"].startswith("300-")

        wait_until(
            lambda: told(manager_port, uuid, TOKEN),
            timeout=5,
            message="the manager was not notified",
        )
    finally:
        stop_manager(manager)


def test_without_the_manager_the_station_hears_unable_to_contact(bed, station, tmp_path):
    bed.add_vm("vm2", "srv11", "52:54:00:00:04:02", "10.0.4.2/24")
    result = station.vdp(
        "assoc",
        "mgr1",
        43,
        1,
        "a1b2c3d4-0000-0000-0000-000000000402",
        filters=["0-52:54:00:00:04:02"],
    )
    assert not result.ok
    assert result.status == 0x03, result  # unable to contact the VSI manager, not HARD


def test_a_slow_manager_is_cut_off_and_the_station_still_gets_its_answer(
    bed, station, manager_port, tmp_path
):
    manager = _manager(tmp_path, manager_port, delay=3.0)
    try:
        bed.add_vm("vm3", "srv11", "52:54:00:00:04:03", "10.0.4.3/24")
        result = station.vdp(
            "assoc",
            "mgr1",
            44,
            1,
            "a1b2c3d4-0000-0000-0000-000000000403",
            filters=["0-52:54:00:00:04:03"],
        )
        assert not result.ok and result.status == 0x03, result
    finally:
        stop_manager(manager)
