"""Associations on the real bed: lldpad stations ask with vdptool, the controller answers, and
real traffic shows what the network forwards. Profiles: policies/default.yaml (type 5 v4 "web":
VLANs 100/101, telnet denied, 10 Mbit/s; type 6 v1 "db": tenant red, VLAN 200)."""

import json
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.bed import MARKS, dump_flows, wait_until

pytestmark = MARKS


@pytest.fixture(scope="module")
def controller_args():
    # The keep-alive timeout test waits for an expiry: at lldpad's own RKA 20 it comes
    # after 17.45 s; at the controller's default (23: keep-alives every 84 s) only after 127.5 s.
    return ("--evb-rka", "20")


WEB = dict(typeid=5, typeidver=4)
DB = dict(typeid=6, typeidver=1)
WEB_RATE_KBPS = 10000


class TestVm:
    """A VM of the bed with its VSI UUID and the station's last vdptool result."""

    __test__ = False

    def __init__(self, vm, uuid):
        self.vm, self.uuid, self.result = vm, uuid, None

    def __getattr__(self, name):
        return getattr(self.vm, name)


class Vms:
    """VMs created on the bed and associated through their server's station."""

    def __init__(self, bed, stations):
        self.bed, self.stations, self.count = bed, stations, 0

    def add(self, server, profile=WEB, vid=0, mac=None, ip=None, associate=True):
        self.count += 1
        n = self.count
        mac = mac or f"52:54:00:00:{n // 256:02x}:{n % 256:02x}"
        vm = TestVm(
            self.bed.add_vm(f"vm{n}", server, mac, ip or f"10.0.0.{n}/24"),
            f"a1b2c3d4-0000-0000-0000-{n:012x}",
        )
        vm.result = self.vdp(vm, "assoc", profile, vid) if associate else None
        return vm

    def vdp(self, vm, mode, profile=WEB, vid=0, mac=None):
        return self.stations[vm.server.name].vdp(
            mode,
            "mgr1",
            profile["typeid"],
            profile["typeidver"],
            vm.uuid,
            filters=[f"{vid}-{mac or vm.mac}"],
        )


@pytest.fixture
def vms(bed, stations):
    return Vms(bed, stations)


def test_vms_of_one_vlan_reach_each_other_across_edges_and_on_one_server(vms):
    a = vms.add("srv11")
    b = vms.add("srv21")
    c = vms.add("srv11")  # same server as a: only the reflective-relay hairpin joins them
    for vm in (a, b, c):
        assert vm.result.ok, vm.result.raw
        assert vm.result.fields.get("mode") == "assoc"
    assert a.ping(b.address, count=3, wait=1) == (3, 3)
    assert b.ping(a.address, count=3, wait=1) == (3, 3)
    assert a.ping(c.address, count=3, wait=1) == (3, 3)


def test_a_change_in_place_reaches_ovs_as_one_committed_bundle(controller, vms):
    """Every switch took the bundle probe. A VM joining its VLAN at a second port of edge1
    replaces the VLAN's flood flow there: that batch went as one bundle that Open vSwitch
    committed (its commit reply counted before the barrier's, so before the VDP response), and
    the switch holds the VM's flows. (A batch of new flows only goes as ordered messages.)"""

    def bundles(name):
        return next(s for s in controller.rest("/v1/switches") if s["name"] == name)["bundles"]

    assert all(s["bundles"]["used"] for s in controller.rest("/v1/switches"))
    assert controller.rest("/v1/events?kind=switch.bundles_unsupported") == []
    assert vms.add("srv11").result.ok
    before = bundles("edge1")["committed"]
    vm = vms.add("srv12")
    assert vm.result.ok, vm.result.raw
    assert bundles("edge1")["committed"] > before
    (handle,) = {f["cookie"] for f in dump_flows("edge1") if vm.mac in f["text"]}
    assert len([f for f in dump_flows("edge1") if f["cookie"] == handle]) >= 5
    assert controller.rest("/v1/events?kind=switch.error") == []


def test_vms_of_other_vlans_and_tenants_do_not_reach_each_other(vms):
    web100 = vms.add("srv11")
    web101 = vms.add("srv21", vid=101)
    db200 = vms.add("srv22", profile=DB)
    for vm in (web100, web101, db200):
        assert vm.result.ok, vm.result.raw
    assert web100.ping(web101.address, count=2, wait=0.5) == (2, 0)
    assert web100.ping(db200.address, count=2, wait=0.5) == (2, 0)


def test_refused_vms_get_the_error_status_and_not_one_packet_through(bed, vms, controller):
    refusals_before = _refusals(controller)
    victim = vms.add("srv21")
    assert victim.result.ok
    unknown_type = vms.add("srv11", profile=dict(typeid=99, typeidver=1))
    wrong_vlan = vms.add("srv12", vid=300)
    spoof = vms.add("srv22", associate=False)
    spoof.result = vms.vdp(spoof, "assoc", mac=victim.mac)  # another VSI's MAC
    # lldpad logs the status without the response bit: HARD (0x10) | the VDP error code.
    assert unknown_type.result.status == 0x10 | 4, unknown_type.result  # other failure
    assert wrong_vlan.result.status == 0x10 | 5, wrong_vlan.result  # invalid VID
    assert spoof.result.status == 0x10 | 5, spoof.result  # invalid MAC
    for vm in (unknown_type, wrong_vlan, spoof):
        assert not vm.result.ok and vm.result.error.startswith("refused"), vm.result.raw
    before = _delivered_to(bed, victim)
    for vm in (unknown_type, wrong_vlan):
        assert vm.ping(victim.address, count=3, wait=0.5) == (3, 0)
    assert _delivered_to(bed, victim) == before
    # The operator's Prometheus sees them, by VDP error.
    refusals = _refusals(controller)
    for error, more in (("other_failure", 1), ("invalid_vid_group_mac", 2)):
        assert refusals.get(error, 0) - refusals_before.get(error, 0) == more, refusals


def _refusals(controller) -> dict[str, float]:
    """GET /metrics, parsed by Prometheus's own parser: refusals by VDP error."""
    return {
        sample.labels["error"]: sample.value
        for family in text_string_to_metric_families(controller.text("/metrics"))
        for sample in family.samples
        if sample.name == "evb_nms_vsi_refusals_total"
    }


def _delivered_to(bed, vm):
    """Packets the edge delivered to vm's MAC (its unicast egress flows)."""
    return sum(
        f["n_packets"]
        for edge in bed.spec.edges
        for f in dump_flows(edge.name)
        if f.get("dl_dst") == vm.mac
    )


def test_acl_blocks_telnet_and_passes_other_tcp(vms):
    client = vms.add("srv11")
    server = vms.add("srv21")
    assert client.result.ok and server.result.ok
    assert _tcp_connects(client, server, 5201)
    assert not _tcp_connects(client, server, 23)


def _tcp_connects(client, server, port):
    listener = subprocess.Popen(
        ["ip", "netns", "exec", server.netns, "iperf3", "-s", "-1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: server.run("ss", "-Hltn", f"sport = :{port}").stdout.strip(), 3)
        result = client.run(
            "iperf3",
            "-c",
            server.address,
            "-p",
            str(port),
            "-t",
            "1",
            "--connect-timeout",
            "2000",
            timeout=15,
        )
        return result.returncode == 0
    finally:
        listener.kill()
        listener.wait()


def test_qos_limits_the_vm_to_its_profile_rate(vms):
    sender = vms.add("srv11")
    receiver = vms.add("srv21")
    listener = subprocess.Popen(
        ["ip", "netns", "exec", receiver.netns, "iperf3", "-s", "-1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: receiver.run("ss", "-Hltn", "sport = :5201").stdout.strip(), 3)
        # UDP offered at twice the rate: what arrives is what the meter lets through (TCP would
        # measure its own back-off against a policer rather than the limit).
        run = sender.run(
            "iperf3",
            "-c",
            receiver.address,
            "-u",
            "-b",
            f"{2 * WEB_RATE_KBPS}K",
            "-t",
            "5",
            "--json",
            timeout=30,
        )
    finally:
        listener.kill()
        listener.wait()
    received = json.loads(run.stdout)["end"]["sum_received"]
    kbps = received["bits_per_second"] / 1000
    assert abs(kbps - WEB_RATE_KBPS) <= 0.15 * WEB_RATE_KBPS, kbps


def test_keepalive_timeout_removes_the_flows_and_the_station_hears_the_deassociate(bed, vms):
    vm = vms.add("srv12")
    assert vm.result.ok
    # Keep the station's keep-alives from reaching us: a foreign flow (not our cookie, so our
    # reconciliation leaves it alone) drops ECP from edge1-s2 ahead of our punt flow.
    subprocess.run(
        [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "add-flow",
            "edge1",
            "cookie=0x1,priority=65000,in_port=2,dl_type=0x8940,actions=drop",
        ],
        check=True,
    )
    try:
        wait_until(
            lambda: not any(f.get("dl_src") == vm.mac for f in dump_flows("edge1")),
            timeout=30,
            interval=0.5,
            message="VM flows still on edge1",
        )
        station = vms.stations["srv12"]
        wait_until(
            lambda: not any(v.get("uuid") == vm.uuid for v in station.query()),
            timeout=10,
            interval=0.5,
            message="lldpad still holds the VSI",
        )
    finally:
        subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "edge1", "cookie=0x1/-1"], check=True
        )


def test_malformed_ecp_frames_are_counted_and_dropped_while_the_port_keeps_working(
    bed, vms, controller
):
    server = bed.server("srv11")
    uplink = server.defaultIntf().name
    garbage = [
        bytes.fromhex("0180c200000002000000000189401001"),  # truncated ECP
        bytes.fromhex("0180c20000000200000000018940100100070510ff"),  # bad VDP TLV
        bytes.fromhex("0180c20000000200000000018940f3ff0001") + bytes(40),  # bad version
    ]
    before = _malformed(controller)
    script = (
        "import sys; from scapy.all import sendp, Raw; "
        f"[sendp(Raw(bytes.fromhex(h)), iface={uplink!r}, verbose=False) "
        f"for h in {[g.hex() for g in garbage]!r}]"
    )
    subprocess.run(
        ["nsenter", "-t", str(server.pid), "-n", sys.executable, "-c", script],
        check=True,
        timeout=30,
    )
    wait_until(
        lambda: _malformed(controller) >= before + len(garbage),
        timeout=5,
        message="malformed frames not counted",
    )
    vm = vms.add("srv11")
    assert vm.result.ok, vm.result.raw


def _malformed(controller):
    edge1 = next(s for s in controller.rest("/v1/switches") if s["name"] == "edge1")
    return edge1["punts"].get("edge1-s1", {}).get("malformed", 0)
