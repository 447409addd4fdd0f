"""VM statistics on the real bed: the controller polls every switch each second (one flow stats
and one meter stats request per switch), and a VM's counters follow its traffic: a ping raises
its packets in and out, a telnet its "web" profile denies raises its ACL drops. The reference VM
manager (evb-vcenter) gets the VM reports."""

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.bed import MARKS, wait_until
from tests.integration.test_vdp_bed import Vms, _tcp_connects
from topologies.controller_process import free_port, wait_for_listen

pytestmark = MARKS
INTERVAL = 1.0


@pytest.fixture(scope="module")
def manager_port():
    """The reference VM manager, for the whole module (no credentials: a lab)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.vcenter.reference", "--listen", f"127.0.0.1:{port}"],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_listen("127.0.0.1", port, 10, proc)
    yield port
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


@pytest.fixture(scope="module")
def controller_args(manager_port):
    return (
        "--stats-interval",
        str(INTERVAL),
        "--vcenter-url",
        f"http://127.0.0.1:{manager_port}",
    )


@pytest.fixture
def vms(bed, stations):
    return Vms(bed, stations)


def _stats(controller, vm) -> dict:
    (attachment,) = controller.rest(f"/v1/vms/{vm.uuid}/stats")["attachments"]
    return attachment


def _after_next_poll(controller, vm, since: float) -> dict:
    """The VM's counters from a poll later than `since` (the Unix time of an earlier one)."""
    return wait_until(
        lambda: (s := _stats(controller, vm))["polled_at"] and s["polled_at"] > since and s,
        timeout=5 * INTERVAL,
        message="no newer poll",
    )


def _polled_until(controller, vm, done) -> dict:
    """The VM's counters once a poll satisfies `done` (a poll on its way while the traffic
    ended may have read the switch before the last packets)."""
    return wait_until(
        lambda: done(s := _stats(controller, vm)) and s,
        timeout=5 * INTERVAL,
        message="the counters did not follow the traffic",
    )


def test_a_ping_raises_packets_and_a_denied_telnet_the_acl_drops(controller, vms):
    client, server = vms.add("srv11"), vms.add("srv21")
    assert client.result.ok and server.result.ok
    first = _after_next_poll(controller, client, 0)
    assert (first["switch"], first["port"]) == ("edge1", "edge1-s1")
    assert client.ping(server.address, count=5, wait=1) == (5, 5)
    # In: the five echo requests of 98 bytes (and ARP); out: the replies delivered.
    pinged = _polled_until(
        controller,
        client,
        lambda s: (
            s["bytes_in"] - first["bytes_in"] >= 5 * 98
            and s["packets_out"] - first["packets_out"] >= 5
        ),
    )
    assert pinged["packets_in"] - first["packets_in"] >= 5
    assert pinged["acl_drops"] == first["acl_drops"]
    assert not _tcp_connects(client, server, 23)  # "web" denies telnet at the sender's ACL
    denied = _polled_until(controller, client, lambda s: s["acl_drops"] > pinged["acl_drops"])
    assert denied["meter_drops"] == 0  # a few packets, far below its 10 Mbit/s
    # The association view carries the same counters, the port's metrics their sums.
    association = controller.rest(f"/v1/associations/{client.uuid}")
    assert association["stats"][0]["acl_drops"] >= denied["acl_drops"]
    drops = {
        (s.labels["switch"], s.labels["port"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(controller.text("/metrics"))
        for s in family.samples
        if s.name == "evb_nms_port_vm_drops"
    }
    assert drops[("edge1", "edge1-s1", "acl")] >= denied["acl_drops"]


def test_the_vm_manager_gets_reports_with_each_vms_counters(controller, vms, manager_port):
    vm = vms.add("srv12")
    assert vm.result.ok
    _after_next_poll(controller, vm, 0)

    def reported():
        url = f"http://127.0.0.1:{manager_port}/v1/notifications?kind=vm.report"
        with urllib.request.urlopen(url, timeout=5) as answer:
            body = json.loads(answer.read())
        items = body["notifications"] if isinstance(body, dict) else body
        return [
            (report, row)
            for report in items
            for row in report["detail"]["vms"]
            # The last test's first VM had the same VSI ID, at edge1-s1.
            if (row["vsi_id"], row["port"]) == (vm.uuid, "edge1-s2")
            and row["polled_at"] is not None
        ]

    report, row = wait_until(reported, timeout=5 * INTERVAL, message="no VM report")[-1]
    assert (row["switch"], row["state"]) == ("edge1", "associated")
    assert row["packets_in"] is not None and row["acl_drops"] is not None
    server = next(s for s in report["detail"]["servers"] if s["port"] == "edge1-s2")
    assert server["vms"] == 1 and report["seq"] >= 1
