"""Data-plane probes on real Open vSwitch: probes of VLAN 100 cross the bed between the edges
of its VMs; a trunk's flow removed by hand (`ovs-ofctl del-flows agg1 in_port=agg1-dn2`, which
neither the canary nor the links see: LLDP still gets through) raises the alarm path.down
naming the path, and the reconciled switch clears it. The audit is off here: it would put the
flow back first."""

import subprocess

import pytest

from tests.integration.bed import MARKS, wait_until
from topologies.migration import start_vm

pytestmark = MARKS
VID = 100  # the web type's default VLAN


@pytest.fixture(scope="module")
def controller_args():
    return ("--audit-rate", "0", "--probe-vlan", str(VID), "--probe-interval", "0.5")


def paths(controller) -> dict:
    return {(p["from"], p["to"]): p for p in controller.rest("/v1/probes") if p["vlan"] == VID}


def test_a_trunks_flows_removed_by_hand_make_the_probes_alarm_naming_the_path(
    bed, stations, controller
):
    for name, server, n in (("pa", "srv11", 1), ("pb", "srv21", 2)):
        vm = start_vm(
            bed,
            stations,
            name,
            server,
            f"52:54:00:00:0b:0{n}",
            f"10.0.11.{n}/24",
            f"a1b2c3d4-0000-0000-0000-000000000b0{n}",
        )
        assert vm.vid == VID
    wait_until(
        lambda: all(
            paths(controller).get(pair, {}).get("received", 0) >= 2
            for pair in (("edge1", "edge2"), ("edge2", "edge1"))
        ),
        timeout=15,
        message=f"probes did not cross the bed: {controller.rest('/v1/probes')}",
    )
    assert all(p["lost"] == 0 for p in paths(controller).values())
    target = subprocess.run(
        ["ovs-vsctl", "get-controller", "agg1"], capture_output=True, text=True, check=True
    ).stdout.split()
    subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "del-flows", "agg1", "in_port=agg1-dn2"], check=True
    )
    try:
        alarm = wait_until(
            lambda: next(
                (a for a in controller.rest("/v1/alarms") if a["kind"] == "path.down"), None
            ),
            timeout=15,
            message="no path.down alarm",
        )
        assert alarm["id"] == f"path.down:{VID}/edge2~edge1", alarm
        assert alarm["detail"]["path"] == ["edge2/edge2-up1", "agg1/agg1-dn1"], alarm
        assert "edge2/edge2-up1 > agg1/agg1-dn1 > edge1" in alarm["reason"]
        assert {vm["switch"] for vm in alarm["affected_vms"]} == {"edge1", "edge2"}
        assert paths(controller)[("edge1", "edge2")]["state"] == "up"  # the other way works
    finally:  # reconnected, agg1 is reconciled: its flow is back
        subprocess.run(["ovs-vsctl", "del-controller", "agg1"], check=True)
        subprocess.run(["ovs-vsctl", "set-controller", "agg1", *target], check=True)
    wait_until(
        lambda: not [a for a in controller.rest("/v1/alarms") if a["kind"] == "path.down"],
        timeout=30,
        message="the path.down alarm was not cleared",
    )
    assert paths(controller)[("edge2", "edge1")]["state"] == "up"
