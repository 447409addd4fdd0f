"""Changes under running traffic, measured by a 1,000 packets/s probe: a controller restart
(nothing it accepted is lost, each switch is reconciled to the stored intent without a flush)
and a profile pushed by the VM manager (applied to the associated VMs in place)."""

import subprocess

from tests.integration.bed import MARKS, our_flows, wait_until
from topologies.controller_process import ControllerProcess
from topologies.migration import start_vm
from topologies.probe import start_probe, stop_probe

pytestmark = MARKS


def test_restart_loses_no_packet_and_no_association(bed, stations, controller):
    a = start_vm(
        bed,
        stations,
        "a",
        "srv11",
        "52:54:00:00:03:01",
        "10.0.3.1/24",
        "a1b2c3d4-0000-0000-0000-000000000301",
    )
    b = start_vm(
        bed,
        stations,
        "b",
        "srv21",
        "52:54:00:00:03:02",
        "10.0.3.2/24",
        "a1b2c3d4-0000-0000-0000-000000000302",
    )
    assert a.vm.wait_reachable(b.vm.address, timeout=5)
    before = {name: our_flows(name) for name in ("edge1", "edge2", "agg1")}
    probe = start_probe(a.vm.netns, b.vm.address)
    try:
        controller.stop()
        restarted = ControllerProcess(
            controller.workdir, controller.of_port, controller.rest_port
        ).start()
        try:
            wait_until(
                lambda: (
                    len([s for s in restarted.rest("/v1/switches") if s["state"] == "ready"]) == 3
                ),
                timeout=30,
            )
            # Reconciled, not rewritten: the flows read back (as octets) equal the intent.
            synced = {s["name"]: s["last_sync"] for s in restarted.rest("/v1/switches")}
            assert all(
                s["flows_added_or_changed"] == s["flows_removed"] == s["meters_changed"] == 0
                for s in synced.values()
            ), synced
            associations = {v["vsi_id"]: v["state"] for v in restarted.rest("/v1/associations")}
            assert associations == {a.uuid: "associated", b.uuid: "associated"}
            # A keep-alive after the restart is answered as before, not refused.
            assert a.request(stations["srv11"], "assoc").ok
        finally:
            restarted.stop()
            controller.start()  # the module's fixture owns the controller
    finally:
        result = stop_probe(probe)
    assert result["lost"] == 0, result
    after = {name: our_flows(name) for name in ("edge1", "edge2", "agg1")}
    assert after == before


def test_a_pushed_profile_change_applies_to_associated_vms_without_a_gap(bed, stations, controller):
    a = start_vm(
        bed,
        stations,
        "c",
        "srv12",
        "52:54:00:00:03:11",
        "10.0.3.11/24",
        "a1b2c3d4-0000-0000-0000-000000000311",
    )
    b = start_vm(
        bed,
        stations,
        "d",
        "srv22",
        "52:54:00:00:03:12",
        "10.0.3.12/24",
        "a1b2c3d4-0000-0000-0000-000000000312",
    )
    assert a.vm.wait_reachable(b.vm.address, timeout=5)
    web = controller.rest("/v1/profiles/5/4")
    changed = {k: v for k, v in web.items() if k not in ("source", "origin", "replaces")}
    changed["qos"] = {**changed.get("qos", {}), "rate_kbps": 20000, "burst_kb": 2000}
    probe = start_probe(a.vm.netns, b.vm.address)
    try:
        answer = controller.call("PUT", "/v1/profiles/5/4", changed)
        wait_until(
            lambda: "rate=20000" in _meters("edge1"),
            timeout=5,
            message="the new rate is not on edge1",
        )
    finally:
        result = stop_probe(probe)
        controller.call("DELETE", "/v1/profiles/5/4")  # the file's profile again, for the others
    assert answer["applied"]["updated"] >= 2, answer
    assert result["lost"] == 0, result


def _meters(bridge):
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-meters", bridge],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
