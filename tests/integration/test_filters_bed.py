"""Group IDs and VID-only filters on the real bed: lldpad stations with group IDs on
(evbgpid = true) and a controller that advertises them (--evb-bgid); real traffic shows the
VLANs the answers named. The types are pushed over REST: "segments" (tenant blue, VLANs 300
and 301, group 7 = VLAN 301, whole VLANs allowed, PCP 3 assigned)."""

import pytest

from tests.integration.bed import MARKS

pytestmark = MARKS

SEGMENTS = {
    "name": "segments",
    "tenant": "blue",
    "vlans": [300, 301],
    "manager_ids": ["mgr1"],
    "groups": [{"id": 7, "vlan": 301}],
    "whole_vlan": True,
    "qos": {"pcp": 3},
}
TYPE = dict(typeid=40, typeidver=1)


@pytest.fixture(scope="module")
def controller_args():
    return ("--evb-bgid",)


@pytest.fixture
def stations(bed, controller):
    """lldpad with group IDs on every server, VDP usable; the segments type in place."""
    controller.call("PUT", "/v1/profiles/40/1", SEGMENTS)
    started = {srv.name: bed.add_station(srv.name, evbgpid=True) for srv in bed.spec.servers}
    for station in started.values():
        assert station.wait_vdp_ready(10), station.log()[-2000:]
    return started


def uuid(n):
    return f"a1b2c3d4-0000-0000-0040-{n:012x}"


def associate(stations, server, n, vdp_filter):
    return stations[server].vdp(
        "assoc", "mgr1", TYPE["typeid"], TYPE["typeidver"], uuid(n), filters=[vdp_filter]
    )


def entries(controller, n):
    (attachment,) = controller.rest(f"/v1/associations/{uuid(n)}")["attachments"]
    return attachment["filter_format"], attachment["entries"]


def test_a_group_id_with_vid_0_gets_the_groups_vlan_and_traffic_flows_in_it(
    bed, stations, controller
):
    a = bed.add_vm("g1", "srv11", "52:54:00:40:00:01", "10.40.0.1/24")
    b = bed.add_vm("g2", "srv21", "52:54:00:40:00:02", "10.40.0.2/24")
    grouped = associate(stations, "srv11", 1, f"0-{a.mac}-7")
    assert grouped.ok, grouped.raw
    # vdptool prints the adopted 16-bit field: PS bit, PCP 3 and VID 301 (0xb12d).
    adopted = int(grouped.fields["filter"].split("-")[0])
    assert (adopted & 0xFFF, adopted >> 12 & 7, adopted >> 15) == (301, 3, 1), grouped.raw
    assert entries(controller, 1) == (
        "group-mac-vid",
        [{"mac": a.mac, "vid": 301, "group_id": 7, "pcp": 3}],
    )
    plain = associate(stations, "srv21", 2, f"301-{b.mac}")
    assert plain.ok, plain.raw
    assert a.wait_reachable(b.address, timeout=10)
    # A group the type does not map is refused with status 5 (invalid VID, group ID or MAC).
    c = bed.add_vm("g3", "srv12", "52:54:00:40:00:03", "10.40.0.3/24")
    unknown = associate(stations, "srv12", 3, f"0-{c.mac}-9")
    assert not unknown.ok and unknown.status is not None and unknown.status & 0x0F == 5


def test_a_vid_only_filter_owns_the_vlan_at_its_port(bed, stations, controller):
    owner = bed.add_vm("o1", "srv11", "52:54:00:40:00:11", "192.0.2.1/32")
    owned = associate(stations, "srv11", 11, "300")
    assert owned.ok, owned.raw
    assert entries(controller, 11) == (
        "vid",
        [{"mac": None, "vid": 300, "group_id": None, "pcp": 3}],
    )
    # A second VSI cannot own the same VLAN anywhere in the fabric (status 5).
    other = associate(stations, "srv12", 13, "300")
    assert not other.ok and other.status is not None and other.status & 0x0F == 5
    peer = bed.add_vm("o2", "srv21", "52:54:00:40:00:12", "10.41.0.2/24")
    assert associate(stations, "srv21", 12, f"300-{peer.mac}").ok
    # The owner's traffic is tagged: a VLAN interface, where the kernel has them.
    made = owner.run(
        "ip", "link", "add", "link", "eth0", "name", "eth0.300", "type", "vlan", "id", "300"
    )
    if made.returncode != 0:
        pytest.skip(f"no VLAN devices in this kernel (8021q): {made.stderr.strip()}")
    owner.run("ip", "addr", "add", "10.41.0.1/24", "dev", "eth0.300", check=True)
    owner.run("ip", "link", "set", "eth0.300", "up", check=True)
    # ARP floods to the owner tagged; the peer's unicast to the owner's MAC, which no VDP
    # entry names, reaches it through the root; the owner's tagged answers are admitted.
    assert peer.wait_reachable("10.41.0.1", timeout=10)
