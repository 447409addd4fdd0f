"""Liveness on the real bed: a switch whose OpenFlow connection stays open but says nothing (a
frozen TCP proxy between edge2 and the controller) is found hung, alarmed naming the VMs behind
it, and its connection reset, so it comes back once it answers again; a switch the store
remembers that is not back after a controller restart is alarmed naming the VMs restored on it.
How soon is bench.faults' to measure (switch_hung), not these tests'."""

import subprocess
import time

import pytest

from app.config import Settings
from tests.integration.bed import MARKS
from topologies.freezable_proxy import FreezableProxy
from topologies.migration import start_vm
from topologies.webhook import WebhookSink

pytestmark = MARKS
# Above Open vSwitch's reconnect back-off (8 s at most), so edge1 and agg1 are back in time.
EXPECTED_TIMEOUT = 10


@pytest.fixture(scope="module")
def controller_args():
    """The subscriber listens on 127.0.0.1 (docs/faults.md, Where webhooks may go)."""
    return ("--webhook-allow", "127.0.0.0/8", "--expected-switch-timeout", str(EXPECTED_TIMEOUT))


def ovs(*args):
    return subprocess.run(
        ["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True, check=True
    ).stdout.split()


def edge2_down(current):
    return lambda b: (b["alarm_id"], b["current"]) == ("switch.down:edge2", current)


def test_a_frozen_switch_connection_is_hung_alarmed_with_its_vms_and_reset(
    bed, stations, controller
):
    vm = start_vm(
        bed,
        stations,
        "lh",
        "srv21",
        "52:54:00:00:0f:01",
        "10.0.15.1/24",
        "a1b2c3d4-0000-0000-0000-000000000f01",
    )
    target = ovs("get-controller", "edge2")
    with FreezableProxy(controller.of_port) as proxy, WebhookSink() as sink:
        subscription = controller.call(
            "POST", "/v1/subscriptions", {"url": sink.url, "kinds": ["switch.down"]}
        )
        try:
            moved = time.monotonic()
            ovs("set-controller", "edge2", f"tcp:127.0.0.1:{proxy.port}")
            sink.wait_for(edge2_down("ok"), timeout=30, after=moved)  # through the proxy now
            frozen = time.monotonic()
            proxy.freeze()
            _, raised = sink.wait_for(edge2_down("alarm"), timeout=15, after=frozen)
            thawed = time.monotonic()
            proxy.thaw()
            _, cleared = sink.wait_for(edge2_down("ok"), timeout=30, after=thawed)
        finally:
            proxy.thaw()
            ovs("set-controller", "edge2", *target)
            controller.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert raised["reason_data"]["detail"] == {"cause": "hung"}, raised
    assert "stopped answering" in raised["reason"]
    assert [v["vsi_id"] for v in raised["reason_data"]["affected_vms"]] == [vm.uuid]
    assert cleared["seq"] > raised["seq"]
    [hung] = controller.rest("/v1/events?kind=switch.hung&latest=1&limit=1")
    assert hung["switch"] == "edge2"
    assert hung["detail"]["timeout"] == Settings.of_echo_timeout
    assert proxy.connections >= 2  # it reconnected once the proxy let it


def test_a_switch_not_back_after_a_restart_is_alarmed_with_the_vms_restored_on_it(
    bed, stations, controller
):
    vm = start_vm(
        bed,
        stations,
        "la",
        "srv21",
        "52:54:00:00:0f:02",
        "10.0.15.2/24",
        "a1b2c3d4-0000-0000-0000-000000000f02",
    )
    target = ovs("get-controller", "edge2")
    with WebhookSink() as sink:
        # Subscriptions are kept across the restart.
        subscription = controller.call(
            "POST", "/v1/subscriptions", {"url": sink.url, "kinds": ["switch.down"]}
        )
        try:
            controller.stop()
            ovs("del-controller", "edge2")
            restarted = time.monotonic()
            controller.start()
            _, raised = sink.wait_for(edge2_down("alarm"), timeout=30, after=restarted)
            back = time.monotonic()
            ovs("set-controller", "edge2", *target)
            target = []
            _, cleared = sink.wait_for(edge2_down("ok"), timeout=30, after=back)
        finally:
            if target:
                ovs("set-controller", "edge2", *target)
            controller.call("DELETE", f"/v1/subscriptions/{subscription['id']}")
    assert raised["reason_data"]["detail"] == {"cause": "absent"}, raised
    assert f"within {EXPECTED_TIMEOUT}" in raised["reason"]
    assert [v["vsi_id"] for v in raised["reason_data"]["affected_vms"]] == [vm.uuid]
    assert cleared["alarm_id"] == raised["alarm_id"]
    [absent] = controller.rest("/v1/events?kind=switch.absent&latest=1&limit=1")
    assert absent["switch"] == "edge2"
    # edge1 and agg1 came back in time: no alarm for them.
    assert not [b for _, b in sink.received if b["alarm_id"] != "switch.down:edge2"]
