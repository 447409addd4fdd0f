"""The controller and the reference VM manager (evb-vcenter) with lldpad stations: a VSI type
only the manager knows is looked up and granted; the manager hears of it; with the manager gone
the station gets "unable to contact VSI manager"; a slow manager never stalls the answer. Both
ways carry credentials: the manager answers only lookups with the controller's bearer token and
stores only notifications signed with the shared secret (docs/vcenter.md)."""

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.integration.bed import MARKS, wait_until
from topologies.controller_process import ControllerProcess, free_port, wait_for_listen

pytestmark = MARKS
REPO = Path(__file__).resolve().parents[2]
TOKEN, SECRET = "bed-lookup-token-0001", "bed-notification-secret-0001"
MANAGER_PROFILES = """\
vsi_types:
  - {type_id: 42, version: 1, name: green-web, tenant: green, vlans: [300], manager_ids: [mgr1]}
  - {type_id: 43, version: 1, name: green-db, tenant: green, vlans: [301], manager_ids: [mgr1]}
"""


def _secret_file(workdir: Path, name: str, value: str) -> str:
    path = workdir / name
    path.write_text(value + "\n")
    return str(path)


def _manager(workdir, port, delay=0.0):
    profiles = workdir / "manager-profiles.yaml"
    profiles.write_text(MANAGER_PROFILES)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.vcenter.reference",
            "--listen",
            f"127.0.0.1:{port}",
            "--profiles",
            str(profiles),
            "--delay",
            str(delay),
            "--token-file",
            _secret_file(workdir, "token", TOKEN),
            "--notification-secret-file",
            _secret_file(workdir, "secret", SECRET),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_listen("127.0.0.1", port, 10, proc)
    return proc


def _stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


@pytest.fixture(scope="module")
def manager_port():
    return free_port()


@pytest.fixture(scope="module")
def controller(tmp_path_factory, manager_port):
    """Overrides the conftest's: this controller has a VM manager, and credentials for it."""
    workdir = tmp_path_factory.mktemp("controller")
    proc = ControllerProcess(
        workdir,
        of_port=free_port(),
        rest_port=free_port(),
        log_level="DEBUG",
        extra_args=[
            "--vcenter-url",
            f"http://127.0.0.1:{manager_port}",
            "--vcenter-timeout",
            "1",
            "--vcenter-token-file",
            _secret_file(workdir, "vcenter-token", TOKEN),
            "--vcenter-secret-file",
            _secret_file(workdir, "vcenter-secret", SECRET),
        ],
    )
    with proc:
        yield proc


@pytest.fixture
def station(bed):
    station = bed.add_station("srv11")
    assert station.wait_vdp_ready(10)
    return station


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

        def told():
            url = f"http://127.0.0.1:{manager_port}/v1/notifications?kind=vsi.associated"
            request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(request, timeout=5) as answer:
                body = json.loads(answer.read())
            items = body["notifications"] if isinstance(body, dict) else body
            return any(uuid in json.dumps(n) for n in items)

        wait_until(told, timeout=5, message="the manager was not notified")
    finally:
        _stop(manager)


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
        _stop(manager)
