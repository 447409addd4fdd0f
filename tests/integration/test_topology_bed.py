"""The Mininet bed itself, without our controller: edges in standalone (normal switching) mode."""

import json
import subprocess

import pytest

from tests.integration.bed import MARKS, wait_until

LLDP_MULTICAST = bytes.fromhex("0180c2000000")
LLDP_ETHERTYPE = bytes.fromhex("88cc")
EVB_TLV_HEADER = bytes.fromhex("fe090080c20d")  # type 127, length 9, OUI 00-80-c2, subtype 0x0d
EVB_MODE_STATION = 2


pytestmark = MARKS


@pytest.fixture(scope="module")
def dc():
    from topologies.datacenter import datacenter

    with datacenter(controller_port=None, fail_mode="standalone") as running:
        yield running


@pytest.fixture
def bed(dc):
    """The running data center, with no VM or station left over from the previous test."""
    yield dc
    dc.stop_stations()
    dc.destroy_vms()


def _vm(bed, name, server, host_no):
    return bed.add_vm(name, server, f"02:00:00:00:00:{host_no:02x}", f"10.0.0.{host_no}/24")


def test_switches_match_the_layout(bed):
    def ovs(*args):
        return (
            subprocess.run(
                ["ovs-vsctl", "get"] + list(args), capture_output=True, text=True, check=True
            )
            .stdout.strip()
            .strip('"')
        )

    spec = bed.spec
    assert int(ovs("Bridge", spec.agg, "other_config:datapath-id"), 16) == spec.agg_dpid == 0x100
    for edge in spec.edges:
        assert int(ovs("Bridge", edge.name, "other_config:datapath-id"), 16) == edge.dpid
        assert int(ovs("Interface", edge.uplink, "ofport")) == edge.uplink_no
        assert int(ovs("Interface", edge.agg_port, "ofport")) == edge.agg_port_no
        for srv in edge.servers:
            assert int(ovs("Interface", srv.edge_port, "ofport")) == srv.edge_port_no
            assert bed.server(srv.name).defaultIntf().name == srv.uplink
    assert [srv.edge_port for srv in spec.edge("edge2").servers] == ["edge2-s1", "edge2-s2"]


def test_vms_on_different_edges_reach_each_other(bed):
    vm1 = _vm(bed, "vm1", "srv11", 1)
    vm2 = _vm(bed, "vm2", "srv21", 2)
    assert vm1.ping(vm2.address) == (3, 3)
    assert vm2.ping(vm1.address) == (3, 3)


def test_same_server_vms_meet_only_through_a_hairpin(bed):
    # VEPA sends vm1's frames up to edge1 even for vm3 on the same server; OVS's normal switching
    # never forwards a frame out of its ingress port, so without a hairpin flow nothing comes back.
    vm1 = _vm(bed, "vm1", "srv11", 1)
    vm2 = _vm(bed, "vm2", "srv21", 2)
    vm3 = _vm(bed, "vm3", "srv11", 3)
    assert vm1.ping(vm3.address, count=2) == (2, 0)
    assert vm3.ping(vm2.address) == (3, 3)


def test_moved_vm_is_reachable_on_its_new_server(bed):
    vm1 = _vm(bed, "vm1", "srv11", 1)
    vm3 = _vm(bed, "vm3", "srv11", 3)
    vm3 = vm3.move_to(bed.server("srv12"))
    assert vm3.ping(vm1.address) == (3, 3)
    # Once a MAC has been seen, a move leaves stale datapath flows toward its old port until
    # OVS revalidates them: 1-2 s in standalone mode (measured), hence the wait.
    vm3 = vm3.move_to(bed.server("srv22"))
    assert vm3.wait_reachable(vm1.address, timeout=5)
    assert vm3.ping(vm1.address) == (3, 3)
    assert vm1.ping(vm3.address) == (3, 3)


def test_tcp_between_vms_works_on_the_userspace_datapath(bed):
    # Fails (no byte arrives) if the servers' uplinks keep TX checksum offload on.
    vm1 = _vm(bed, "vm1", "srv11", 1)
    vm2 = _vm(bed, "vm2", "srv21", 2)
    server = subprocess.Popen(
        ["ip", "netns", "exec", vm2.netns, "iperf3", "-s", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: vm2.run("ss", "-Hltn", "sport = :5201").stdout.strip(), timeout=3)
        client = vm1.run("iperf3", "-c", vm2.address, "-t", "1", "--json", timeout=15)
    finally:
        server.kill()
        server.wait()
    assert client.returncode == 0, client.stdout[-500:]
    assert json.loads(client.stdout)["end"]["sum_received"]["bytes"] > 1_000_000


def test_stations_send_lldp_with_the_evb_tlv(bed):
    from topologies.capture import Capture

    def station_lldp(frame):
        return (
            frame[:6] == LLDP_MULTICAST
            and frame[12:14] == LLDP_ETHERTYPE
            and EVB_TLV_HEADER in frame
        )

    with (
        Capture("edge1-s1", "ether proto 0x88cc", bed.run_dir / "edge1-s1.pcap") as cap1,
        Capture("edge2-s1", "ether proto 0x88cc", bed.run_dir / "edge2-s1.pcap") as cap2,
    ):
        stations = [bed.add_station("srv11"), bed.add_station("srv21")]
        for cap in (cap1, cap2):
            frame = cap.wait_for(station_lldp, timeout=5)
            assert frame is not None, stations[0].log()[-2000:]
            evb = frame[frame.index(EVB_TLV_HEADER) + len(EVB_TLV_HEADER) :]
            assert evb[3] >> 6 == EVB_MODE_STATION
    # Without a bridge's EVB TLV (no controller here) lldpad never enables VDP.
    assert not stations[0].vdp_ready()
    refused = stations[0].vdp(
        "assoc",
        "mgr1",
        5,
        4,
        "a1b2c3d4-0000-0000-0000-000000001122",
        filters=["100-02:00:00:00:00:01"],
        wait=False,
    )
    assert (refused.ok, refused.error) == (False, "VDP protocol not supported on interface")
