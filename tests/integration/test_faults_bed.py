"""Faults and maintenance on the real bed: a server's link fails under a VM and the subscriber
hears of it (and of the repair) naming the VM; a server in maintenance refuses new VMs, keeps
its own forwarding, and is reported drained once the VM manager has moved them away."""

import subprocess

import pytest

from tests.integration.bed import MARKS, wait_until
from topologies.migration import migrate, start_vm
from topologies.webhook import WebhookSink

pytestmark = MARKS


@pytest.fixture(scope="module")
def controller_args():
    """The subscriber (topologies/webhook.py) listens on 127.0.0.1: loopback is refused to
    webhooks unless allowed (docs/faults.md, Where webhooks may go)."""
    return ("--webhook-allow", "127.0.0.0/8")


def test_a_server_link_failure_and_its_repair_reach_the_subscriber(bed, stations, controller):
    vm = start_vm(
        bed,
        stations,
        "fa",
        "srv11",
        "52:54:00:00:04:01",
        "10.0.4.1/24",
        "a1b2c3d4-0000-0000-0000-000000000401",
    )
    server, uplink = bed.server("srv11"), bed.spec.server("srv11").uplink
    with WebhookSink() as sink:
        subscription = controller.call("POST", "/v1/subscriptions", {"url": sink.url})
        try:
            server.cmd("ip link set", uplink, "down")
            _, raised = sink.wait_for(lambda b: b["current"] == "alarm", timeout=5)
            server.cmd("ip link set", uplink, "up")
            _, cleared = sink.wait_for(lambda b: b["current"] == "ok", timeout=5)
        finally:
            server.cmd("ip link set", uplink, "up")
            controller.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert raised["alarm_id"] == "port.down:edge1/edge1-s1", raised
    assert [v["vsi_id"] for v in raised["reason_data"]["affected_vms"]] == [vm.uuid]
    assert cleared["alarm_id"] == raised["alarm_id"] and cleared["seq"] == raised["seq"] + 1
    assert not [a for a in controller.rest("/v1/alarms") if a["id"] == raised["alarm_id"]]


def test_a_switch_that_loses_its_controller_connection_is_a_fault(bed, controller):
    """os-ken notices a closed connection only at its next send: the controller wakes it."""
    target = subprocess.run(
        ["ovs-vsctl", "get-controller", "edge2"], capture_output=True, text=True, check=True
    ).stdout.split()
    with WebhookSink() as sink:
        subscription = controller.call(
            "POST", "/v1/subscriptions", {"url": sink.url, "kinds": ["switch.down"]}
        )
        try:
            subprocess.run(["ovs-vsctl", "del-controller", "edge2"], check=True)
            _, raised = sink.wait_for(lambda b: b["current"] == "alarm", timeout=5)
        finally:
            subprocess.run(["ovs-vsctl", "set-controller", "edge2", *target], check=True)
        _, cleared = sink.wait_for(lambda b: b["current"] == "ok", timeout=30)
        controller.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert raised["alarm_id"] == cleared["alarm_id"] == "switch.down:edge2"
    assert raised["severity"] == "critical"


def test_maintenance_refuses_new_vms_keeps_its_own_and_reports_the_drained_server(
    bed, stations, controller
):
    peer = start_vm(
        bed,
        stations,
        "fp",
        "srv21",
        "52:54:00:00:04:11",
        "10.0.4.11/24",
        "a1b2c3d4-0000-0000-0000-000000000411",
    )
    resident = start_vm(
        bed,
        stations,
        "fr",
        "srv12",
        "52:54:00:00:04:12",
        "10.0.4.12/24",
        "a1b2c3d4-0000-0000-0000-000000000412",
    )
    path = "/v1/servers/edge1/edge1-s2/maintenance"
    started = controller.call("PUT", path, {"reason": "BIOS upgrade"})
    try:
        assert started["vms"] == [resident.uuid] and not started["drained"]
        newcomer = bed.add_vm("fn", "srv12", "52:54:00:00:04:13", "10.0.4.13/24")
        refused = stations["srv12"].vdp(
            "assoc",
            "mgr1",
            5,
            4,
            "a1b2c3d4-0000-0000-0000-000000000413",
            filters=[f"0-{newcomer.mac}"],
        )
        # Insufficient resources, not HARD: the server will take VMs again after the work.
        assert not refused.ok and refused.status == 0x02, refused
        assert newcomer.ping(peer.vm.address, count=2, wait=0.5) == (2, 0)
        # The resident keeps forwarding and refreshing.
        assert resident.vm.ping(peer.vm.address, count=3, wait=1) == (3, 3)
        assert resident.request(stations["srv12"], "assoc").ok
        # The VM manager moves it away (VDP migration to another edge): drained.
        migrate(bed, stations, resident, "srv22", order="vdp")
        wait_until(
            lambda: _server(controller, "edge1-s2")["maintenance"]["drained"],
            timeout=5,
            message="edge1-s2 not reported drained",
        )
        kinds = [e["kind"] for e in controller.rest("/v1/events?kind=server.&latest=1&limit=2")]
        assert kinds == ["server.maintenance", "server.drained"]
        assert resident.vm.ping(peer.vm.address, count=3, wait=1) == (3, 3)
    finally:
        controller.call("DELETE", path)
    admitted = stations["srv12"].vdp(
        "assoc", "mgr1", 5, 4, "a1b2c3d4-0000-0000-0000-000000000414", filters=[f"0-{newcomer.mac}"]
    )
    assert admitted.ok, admitted


def _server(controller, port):
    return next(s for s in controller.rest("/v1/servers") if s["port"] == port)
