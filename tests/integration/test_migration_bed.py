"""VM migration with lldpad on both servers, in every order real life produces; after each one
the switches hold the VM's flows only where the VM is."""

import subprocess

import pytest

from tests.integration.bed import MARKS, dump_flows, wait_until
from topologies.announce import ANNOUNCE_ROUNDS, rarp_frame
from topologies.capture import Capture
from topologies.migration import BATCH, flows_follow, migrate, move_vm, start_vm

pytestmark = MARKS


@pytest.fixture(scope="module")
def controller_args():
    # A Pre-Associate never confirmed must expire within the test: at lldpad's own RKA 20 it comes
    # after 17.45 s; at the controller's default (23: keep-alives every 84 s) only after 127.5 s.
    return ("--evb-rka", "20")


@pytest.fixture
def pair(bed, stations):
    """A peer VM on srv21 and the VM that will move, on srv11."""
    peer = start_vm(
        bed,
        stations,
        "peer",
        "srv21",
        "52:54:00:00:01:01",
        "10.0.0.101/24",
        "a1b2c3d4-0000-0000-0000-000000000101",
    )
    mover = start_vm(
        bed,
        stations,
        "mover",
        "srv11",
        "52:54:00:00:01:02",
        "10.0.0.102/24",
        "a1b2c3d4-0000-0000-0000-000000000102",
    )
    assert peer.vm.ping(mover.vm.address, count=2, wait=1) == (2, 2)
    return peer, mover


@pytest.mark.parametrize("dst", ["srv22", "srv12"])  # to the other edge; within one edge
def test_libvirt_order_moves_the_flows(bed, stations, pair, dst):
    peer, mover = pair
    results = migrate(bed, stations, mover, dst, order="vdp")
    assert all(r.ok for r in results.values()), {k: r.raw for k, r in results.items()}
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None, flows_follow(bed, mover)


def test_the_copy_is_silent_until_it_resumes_then_announces_itself_as_qemu_does(
    bed, stations, pair, tmp_path
):
    peer, mover = pair
    port = bed.spec.server("srv22").edge_port
    marks = {}
    with Capture(port, f"ether src {mover.vm.mac}", tmp_path / "dst.pcap") as capture:
        results = migrate(bed, stations, mover, "srv22", marks=marks, precopy=0.5)
        assert all(r.ok for r in results.values()), {k: r.raw for k, r in results.items()}
        # migrate() returns once the announcer sent its last round
        wait_until(
            lambda: capture.frames().count(rarp_frame(mover.vm.mac)) == ANNOUNCE_ROUNDS,
            timeout=3,
            message="not every announcement round on the destination's port",
        )
        assert capture.frames()[0] == rarp_frame(mover.vm.mac)  # nothing while it was paused
    assert marks["copy_started"] < marks["source_stopped"] < marks["resumed"]
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)


def test_the_copys_first_rarp_moves_the_network_before_any_associate(
    bed, stations, pair, controller
):
    peer, mover = pair
    assert mover.request(stations["srv22"], "preassoc", hints="to").ok
    move_vm(bed, mover, "srv22")  # the copy resumes and announces itself; no VDP yet
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    activated = _activations(controller, mover)[-1]  # earlier tests moved this VSI too
    assert (activated["switch"], activated["port"]) == ("edge2", "edge2-s2")
    assert activated["detail"]["moved_from"] == "edge1/edge1-s1"
    assert activated["detail"]["took_ms"] < 1000
    assert flows_follow(bed, mover) is None, flows_follow(bed, mover)
    # The stations catch up: nothing changes on the wire, the record completes.
    assert mover.request(stations["srv11"], "deassoc", hints="from").ok
    assert mover.request(stations["srv22"], "assoc", hints="to").ok
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    (record,) = controller.rest(f"/v1/migrations?vsi={mover.uuid}&limit=1")
    assert (record["outcome"], record["order_name"]) == ("completed", "libvirt")
    assert [step["step"] for step in record["steps"]] == [
        "prepared",
        "activated",
        "source_released",
        "confirmed",
    ]


def test_the_vms_mac_from_a_port_where_it_is_not_prepared_moves_nothing(
    bed, stations, pair, controller
):
    peer, mover = pair
    assert mover.request(stations["srv22"], "preassoc", hints="to").ok
    activations = len(_activations(controller, mover))
    spoofer = bed.add_vm("spoofer", "srv12", "52:54:00:00:01:66", "10.0.0.166/24")
    sent = spoofer.run(
        "python3",
        "-c",
        "import socket,sys; s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW);"
        " s.bind(('eth0', 0)); [s.send(bytes.fromhex(sys.argv[1])) for _ in range(5)]",
        rarp_frame(mover.vm.mac).hex(),
    )
    assert sent.returncode == 0, sent.stderr
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)  # still at the source
    assert len(_activations(controller, mover)) == activations
    assert mover.request(stations["srv22"], "deassoc", hints="to").ok  # migration abandoned
    assert flows_follow(bed, mover) is None, flows_follow(bed, mover)


def _activations(controller, mvm):
    events = controller.rest("/v1/events?kind=vsi.activated&limit=1000")
    return [e for e in events if e["detail"]["vsi"] == mvm.uuid]


def test_a_cancelled_migration_leaves_the_vm_where_it_was(bed, stations, pair):
    peer, mover = pair
    results = migrate(bed, stations, mover, "srv22", order="cancelled")
    assert all(r.ok for r in results.values()), {k: r.raw for k, r in results.items()}
    assert mover.server == "srv11"
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None, flows_follow(bed, mover)


def test_associate_at_the_destination_first_tells_the_source(bed, stations, pair):
    peer, mover = pair
    source = stations["srv11"]
    results = migrate(bed, stations, mover, "srv22", order="associate-first")
    assert results["assoc"].ok, results["assoc"].raw
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    wait_until(
        lambda: not any(v.get("uuid") == mover.uuid for v in source.query()),
        timeout=5,
        message="the source station still holds the VSI",
    )
    assert flows_follow(bed, mover) is None, flows_follow(bed, mover)


def test_suspend_keeps_the_profile_and_forwards_nothing(bed, stations, controller):
    peer = start_vm(
        bed,
        stations,
        "peer",
        "srv21",
        "52:54:00:00:01:01",
        "10.0.0.101/24",
        "a1b2c3d4-0000-0000-0000-000000000101",
    )
    # lldpad sends the S-bit only for a VSI created with hints "from".
    mover = start_vm(
        bed,
        stations,
        "mover",
        "srv11",
        "52:54:00:00:01:02",
        "10.0.0.102/24",
        "a1b2c3d4-0000-0000-0000-000000000102",
        hints="from",
    )
    assert peer.vm.ping(mover.vm.address, count=2, wait=1) == (2, 2)
    assert mover.request(stations["srv11"], "deassoc", hints="from").ok
    assert peer.vm.ping(mover.vm.address, count=2, wait=0.5) == (2, 0)
    (vsi,) = [v for v in controller.rest("/v1/associations") if v["vsi_id"] == mover.uuid]
    assert vsi["state"] == "suspended"
    assert not any(
        "dl_src=" + mover.vm.mac in line
        for lines in _flows_with(bed, mover.vm.mac).values()
        for line in lines
    )
    # Resumed on another server: forwarding again from there.
    move_vm(bed, mover, "srv22")
    assert mover.request(stations["srv22"], "assoc", hints="to").ok
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None


def test_a_preassociation_never_confirmed_expires_and_releases_its_reservation(bed, stations, pair):
    peer, mover = pair
    assert mover.request(stations["srv22"], "preassoc-rr", hints="to").ok
    meters_before = _vm_meters("edge2")
    # The destination's station goes quiet (its keep-alives dropped before our punt flow).
    subprocess.run(
        [
            "ovs-ofctl",
            "-O",
            "OpenFlow13",
            "add-flow",
            "edge2",
            "cookie=0x1,priority=65000,in_port=2,dl_type=0x8940,actions=drop",
        ],
        check=True,
    )
    try:
        wait_until(
            lambda: _vm_meters("edge2") < meters_before,
            timeout=30,
            interval=0.5,
            message="the reservation at the destination is still there",
        )
    finally:
        subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "edge2", "cookie=0x1/-1"], check=True
        )
    assert peer.vm.ping(mover.vm.address, count=2, wait=1) == (2, 2)  # the source never stopped
    assert flows_follow(bed, mover) is None


def test_a_destination_that_refuses_leaves_the_source_forwarding(bed, stations):
    # "batch" allows 2 VMs per port: srv22 is full, so a third cannot move there.
    for n in (1, 2):
        start_vm(
            bed,
            stations,
            f"full{n}",
            "srv22",
            f"52:54:00:00:02:0{n}",
            f"10.0.2.{n}/24",
            f"a1b2c3d4-0000-0000-0000-00000000020{n}",
            vsi_type=BATCH,
        )
    peer = start_vm(
        bed,
        stations,
        "peer",
        "srv21",
        "52:54:00:00:02:10",
        "10.0.2.10/24",
        "a1b2c3d4-0000-0000-0000-000000000210",
        vsi_type=BATCH,
    )
    mover = start_vm(
        bed,
        stations,
        "mover",
        "srv11",
        "52:54:00:00:02:11",
        "10.0.2.11/24",
        "a1b2c3d4-0000-0000-0000-000000000211",
        vsi_type=BATCH,
    )
    refused = mover.request(stations["srv22"], "preassoc", hints="to")
    assert not refused.ok and refused.status == 0x02, refused  # insufficient resources
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None


def _flows_with(bed, mac):
    return {
        name: [f["text"] for f in dump_flows(name) if mac in f["text"]]
        for name in [bed.spec.agg, *(e.name for e in bed.spec.edges)]
    }


def _vm_meters(bridge):
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", bridge],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(
        1
        for line in out.splitlines()
        if line.startswith("meter=") and not line.startswith("meter=1 ")
    )


def test_relocation_by_the_vm_manager_is_confirmed_by_the_station(bed, stations, pair, controller):
    peer, mover = pair
    controller.call(
        "POST", f"/v1/vms/{mover.uuid}/relocate", {"switch": "edge2", "port": "edge2-s2"}
    )
    (vsi,) = [v for v in controller.rest("/v1/associations") if v["vsi_id"] == mover.uuid]
    assert {(a["port"], a["state"]) for a in vsi["attachments"]} == {
        ("edge1-s1", "associated"),
        ("edge2-s2", "pre-associated-rr"),
    }
    assert peer.vm.ping(mover.vm.address, count=2, wait=1) == (2, 2)  # still at the source
    move_vm(bed, mover, "srv22")
    # Its first frame at the destination moved it there, before its station's Associate.
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None
    assert mover.request(stations["srv22"], "assoc", hints="to").ok
    assert peer.vm.ping(mover.vm.address, count=3, wait=1) == (3, 3)
    assert flows_follow(bed, mover) is None
    where = controller.rest(f"/v1/lookup?vsi_id={mover.uuid}")
    assert where["previous"][-1]["port"] == "edge1-s1"  # earlier tests moved this VSI too
