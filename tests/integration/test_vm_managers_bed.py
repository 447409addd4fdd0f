"""Two VM managers by Manager ID on the real bed (vm_managers, docs/vcenter.md): "east" answers
for the name mgrA, "west" for the IPv4 address 192.0.2.5 as VDP carries it (IPv4-mapped IPv6,
sent by lldpad as the hex octets of mgrid2). Each is a reference manager (evb-vcenter) with its
own types, its own lookup token and notification secret. A station's request goes to the manager
its Manager ID names, and only that manager hears of the VSI; a Manager ID no entry names gets
"unable to contact the VSI manager", hard (there is no default manager)."""

import pytest

from tests.integration.bed import MARKS, wait_until
from tests.integration.managers import start_manager, stop_manager, text_file, told
from topologies.controller_process import free_port

pytestmark = MARKS
WEST_ID = "00000000-0000-0000-0000-ffffc0000205"  # ::ffff:192.0.2.5 as the 16 octets
MANAGERS = {
    "east": (
        "bed-east-token-0001",
        "bed-east-secret-0001",
        "vsi_types:\n  - {type_id: 42, version: 1, name: east-web, tenant: green, "
        "vlans: [300], manager_ids: [mgrA]}\n",
    ),
    "west": (
        "bed-west-token-0001",
        "bed-west-secret-0001",
        "vsi_types:\n  - {type_id: 43, version: 1, name: west-web, tenant: yellow, "
        f"vlans: [301], manager_ids: ['{WEST_ID}']}}\n",
    ),
}


@pytest.fixture(scope="module")
def ports():
    return {name: free_port() for name in MANAGERS}


@pytest.fixture(scope="module")
def managers(tmp_path_factory, ports):
    workdir = tmp_path_factory.mktemp("managers")
    procs = []
    try:
        for name, (token, secret, profiles) in MANAGERS.items():
            procs.append(start_manager(workdir, ports[name], profiles, token=token, secret=secret))
        yield
    finally:
        for proc in procs:
            stop_manager(proc)


@pytest.fixture(scope="module")
def controller_args(tmp_path_factory, ports, managers):
    """The managers' table, each with its own credentials."""
    workdir = tmp_path_factory.mktemp("vm-managers")
    lines = ["vm_managers:"]
    for name, ids in (("east", "[mgrA]"), ("west", "[{ipv4: 192.0.2.5}]")):
        token, secret, _ = MANAGERS[name]
        lines.append(
            f"  - {{name: {name}, manager_ids: {ids}, url: 'http://127.0.0.1:{ports[name]}', "
            f"timeout: 2, token_file: {text_file(workdir, name + '.token', token)}, "
            f"secret_file: {text_file(workdir, name + '.secret', secret)}}}"
        )
    return ("--config", text_file(workdir, "evb-nms.yaml", "\n".join(lines)))


def _told(ports, name, uuid):
    return told(ports[name], uuid, MANAGERS[name][0])


def test_each_manager_id_reaches_its_own_manager_and_only_it_hears_of_the_vsi(bed, station, ports):
    bed.add_vm("vm1", "srv11", "52:54:00:00:0f:01", "10.0.15.1/24")
    bed.add_vm("vm2", "srv11", "52:54:00:00:0f:02", "10.0.15.2/24")
    east_vm, west_vm = (f"a1b2c3d4-0000-0000-0000-000000000f0{n}" for n in (1, 2))
    east = station.vdp("assoc", "mgrA", 42, 1, east_vm, filters=["0-52:54:00:00:0f:01"])
    assert east.ok and east.fields["filter"].startswith("300-"), east.raw
    west = station.vdp("assoc", WEST_ID, 43, 1, west_vm, filters=["0-52:54:00:00:0f:02"])
    assert west.ok and west.fields["filter"].startswith("301-"), west.raw
    wait_until(lambda: _told(ports, "east", east_vm), timeout=10, message="east not told")
    wait_until(lambda: _told(ports, "west", west_vm), timeout=10, message="west not told")
    assert not _told(ports, "east", west_vm) and not _told(ports, "west", east_vm)


def test_a_type_asked_under_the_other_managers_id_goes_to_that_manager(bed, station):
    """Type 42 is east's: asked with west's Manager ID, west is asked, does not know it (404),
    and the station is refused as for any unknown type (other failure, hard)."""
    bed.add_vm("vm3", "srv11", "52:54:00:00:0f:03", "10.0.15.3/24")
    uuid = "a1b2c3d4-0000-0000-0000-000000000f03"
    result = station.vdp("assoc", WEST_ID, 42, 1, uuid, filters=["0-52:54:00:00:0f:03"])
    assert not result.ok and result.status is not None, result
    assert (result.status & 0x0F, bool(result.status & 0x10)) == (4, True), result


def test_a_manager_id_no_entry_names_gets_unable_to_contact_hard(bed, station, controller):
    bed.add_vm("vm4", "srv11", "52:54:00:00:0f:04", "10.0.15.4/24")
    uuid = "a1b2c3d4-0000-0000-0000-000000000f04"
    result = station.vdp("assoc", "mgrZ", 42, 1, uuid, filters=["0-52:54:00:00:0f:04"])
    assert not result.ok and result.status is not None, result
    assert (result.status & 0x0F, bool(result.status & 0x10)) == (3, True), result
    (refused,) = controller.rest(f"/v1/events?kind=vsi.refused&vsi={uuid}")
    assert "no VM manager is configured for Manager ID 'mgrZ'" in refused["detail"]["reason"]
