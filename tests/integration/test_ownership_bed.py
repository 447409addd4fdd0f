"""Ownership on the real bed (issue 10): an lldpad station cannot take a running VM's identity,
a port's tenant allow-list keeps other tenants' types off it, and registered-only admission
admits a tenant's VMs only as the VM manager registered them. Profiles: policies/default.yaml
(type 5 v4 "web" of blue, VLAN 100 by default; type 6 v1 "db" of red, VLAN 200)."""

import pytest
import yaml

from tests.integration.bed import MARKS, dump_flows

pytestmark = MARKS

WEB, DB = (5, 4), (6, 1)
# lldpad logs the bridge's status without the response bit.
OTHER_FAILURE, HARD = 4, 0x10


@pytest.fixture(scope="module")
def controller_args(tmp_path_factory):
    config = tmp_path_factory.mktemp("ownership") / "evb-nms.yaml"
    settings = {
        "port_tenants": [{"switch": "edge2", "port": "edge2-s2", "tenants": ["red"]}],
        "vdp_admission_by_tenant": {"red": "registered-only"},
    }
    config.write_text(yaml.safe_dump(settings))
    return ("--config", str(config))


def vm(bed, name, server, n):
    return bed.add_vm(name, server, f"52:54:00:00:0a:{n:02x}", f"10.0.0.{n}/24")


def uuid(n):
    return f"a1b2c3d4-0000-0000-0000-0000000a00{n:02x}"


def associate(station, vsi_type, vsi_id, mac, vid=0):
    return station.vdp("assoc", "mgr1", *vsi_type, vsi_id, filters=[f"{vid}-{mac}"])


def test_a_station_cannot_take_a_running_vms_identity(bed, stations, controller):
    """Issue 10: a station on another port Associated with a victim's VSI ID and MAC and was
    granted; the victim's traffic then left at the attacker's port."""
    victim, peer = vm(bed, "victim", "srv11", 1), vm(bed, "peer", "srv12", 2)
    assert associate(stations["srv11"], WEB, uuid(1), victim.mac).ok
    assert associate(stations["srv12"], WEB, uuid(2), peer.mac).ok
    stolen = associate(stations["srv21"], WEB, uuid(1), victim.mac)
    assert not stolen.ok and stolen.status == OTHER_FAILURE, stolen.raw  # not hard: may retry
    assert peer.ping(victim.address, count=3, wait=1) == (3, 3)
    assert not [f for f in dump_flows("edge2") if f.get("dl_src") == victim.mac]
    (held,) = [v for v in controller.rest("/v1/associations") if v["vsi_id"] == uuid(1)]
    assert [(a["switch"], a["state"]) for a in held["attachments"]] == [("edge1", "associated")]
    refused = controller.rest("/v1/events?kind=vsi.refused")
    assert any(e["detail"].get("held_at") for e in refused), refused


def test_a_port_takes_only_the_tenants_it_allows(bed, stations):
    """Issue 10: blue's server port associated red's type and joined red's VLAN. Here edge2-s2
    (srv22) is red's only: blue's type is refused there, and red's elsewhere is not."""
    blue = vm(bed, "blue", "srv22", 3)
    refused = associate(stations["srv22"], WEB, uuid(3), blue.mac)
    assert not refused.ok and refused.status == HARD | OTHER_FAILURE, refused.raw
    assert associate(stations["srv21"], WEB, uuid(3), blue.mac).ok


def test_registered_only_admits_a_tenants_vm_as_registered(bed, stations, controller):
    red = vm(bed, "red", "srv22", 4)
    refused = associate(stations["srv22"], DB, uuid(4), red.mac)
    assert not refused.ok and refused.status == OTHER_FAILURE, refused.raw
    registration = {"type_id": DB[0], "type_version": DB[1], "macs": [red.mac]}
    controller.call("PUT", f"/v1/vms/{uuid(4)}", registration)
    other_mac = associate(stations["srv22"], DB, uuid(4), "52:54:00:00:0a:99")
    assert not other_mac.ok and other_mac.status == HARD | 5, other_mac.raw  # invalid MAC
    assert associate(stations["srv22"], DB, uuid(4), red.mac).ok
    controller.call("DELETE", f"/v1/vms/{uuid(4)}")
