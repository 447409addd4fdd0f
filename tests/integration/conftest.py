"""Fixtures of the real bed: our controller in a child process, then the data center on it.

The controller is started first and the network only once its OpenFlow socket listens; both are
stopped even when a test fails (the context managers' finally blocks).
"""

import os
import signal
import subprocess
import time

import pytest

from tests.integration.bed import BED_REQUIRED, wait_until, why_no_bed


@pytest.fixture(scope="session", autouse=True)
def _bed_present():
    missing = why_no_bed()
    if missing and BED_REQUIRED:
        pytest.fail(f"the test bed is required (EVB_REQUIRE_BED=1) but {missing}")


@pytest.fixture(scope="module")
def controller_args():
    """Extra `evb-nms` flags for the module's controller: a module overrides this fixture."""
    return ()


@pytest.fixture(scope="module")
def controller(tmp_path_factory, controller_args):
    from topologies.controller_process import ControllerProcess, free_port

    proc = ControllerProcess(
        tmp_path_factory.mktemp("controller"),
        of_port=free_port(),
        rest_port=free_port(),
        extra_args=controller_args,
        log_level="DEBUG",
    )
    with proc:
        yield proc
    print(proc.log_text()[-3000:])  # shown by pytest when a test of the module failed


def wait_fabric_ready(controller, dc, timeout=30):
    """Every switch connected, reconciled and linked (after a start, or a controller restart,
    whose reconnect OVS may delay by its back-off)."""
    names = {dc.spec.agg, *(edge.name for edge in dc.spec.edges)}

    def all_ready():
        ready = {s["name"] for s in controller.rest("/v1/switches") if s["state"] == "ready"}
        return names <= ready and len(controller.rest("/v1/links")) == len(dc.spec.edges)

    try:
        wait_until(all_ready, timeout=timeout, message="switches not all ready and linked")
    except AssertionError:
        states = {s["name"]: s["state"] for s in controller.rest("/v1/switches")}
        os.kill(controller.proc.pid, signal.SIGUSR1)  # thread stacks into its log
        time.sleep(0.5)
        show = subprocess.run(["ovs-vsctl", "show"], capture_output=True, text=True).stdout
        raise AssertionError(
            f"switches not all ready and linked after {timeout} s: {states}\n"
            f"{show}\n{controller.log_text()[-3000:]}"
        ) from None


@pytest.fixture(scope="module")
def fabric(controller):
    """The default data center attached to the controller, every switch reconciled."""
    from topologies.datacenter import datacenter

    with datacenter(controller_port=controller.of_port) as dc:
        wait_fabric_ready(controller, dc)
        yield dc


@pytest.fixture
def station(bed):
    """lldpad on srv11 alone, VDP usable."""
    station = bed.add_station("srv11")
    assert station.wait_vdp_ready(10), station.log()[-2000:]
    return station


@pytest.fixture
def stations(bed):
    """lldpad on every server, VDP usable (it has seen our EVB TLV)."""
    started = {srv.name: bed.add_station(srv.name) for srv in bed.spec.servers}
    for station in started.values():
        assert station.wait_vdp_ready(10), station.log()[-2000:]
    return started


@pytest.fixture
def bed(fabric, controller):
    """The running fabric, ready, with no VM or station left over from the previous test."""
    wait_fabric_ready(controller, fabric)
    yield fabric
    # As libvirt has lldpad do when VMs stop: the next test may start the same VSI IDs on other
    # servers, which the bridge refuses while another station holds them (docs/security.md).
    fabric.release_vsis()
    fabric.stop_stations()
    fabric.destroy_vms()
