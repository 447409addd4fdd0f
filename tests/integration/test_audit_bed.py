"""The intent audit on real Open vSwitch: a VM's flow deleted by hand (`ovs-ofctl del-flows`
with its cookie, which the canary does not see) is put back within the audit's period, and
the event audit.repaired says what was missing."""

import re
import subprocess
import time

import pytest

from tests.integration.bed import MARKS, wait_until
from topologies.migration import start_vm

pytestmark = MARKS
RATE = 20  # requests a second: a pass over the bed's 3 switches (meters + 5 tables) in 0.9 s
PASS_S = 3 * 6 / RATE


@pytest.fixture(scope="module")
def controller_args():
    return ("--audit-rate", str(RATE))


def ofctl(*args) -> str:
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True, check=True
    ).stdout


def flows_of(switch: str, cookie: int) -> list[str]:
    """The switch's flows with that cookie, without their counters."""
    lines = ofctl("dump-flows", switch, f"cookie={cookie:#x}/-1").splitlines()[1:]
    return sorted(
        re.sub(r"duration=[^,]*, |n_packets=\d+, |n_bytes=\d+, ", "", row) for row in lines
    )


def test_a_deleted_vm_flow_is_repaired_by_the_audit_within_its_period(bed, stations, controller):
    vm = start_vm(
        bed,
        stations,
        "au",
        "srv11",
        "52:54:00:00:0a:01",
        "10.0.10.1/24",
        "a1b2c3d4-0000-0000-0000-000000000a01",
    )
    line = next(r for r in ofctl("dump-flows", "edge1").splitlines() if vm.vm.mac in r)
    cookie = int(re.search(r"cookie=(0x[0-9a-f]+)", line).group(1), 16)
    before = flows_of("edge1", cookie)
    assert len(before) >= 5, before  # admission, ACLs, unicast entry
    seen = {e["id"] for e in controller.rest("/v1/events?kind=audit.")}
    deleted_at = time.monotonic()
    ofctl("del-flows", "edge1", f"cookie={cookie:#x}/-1")
    assert flows_of("edge1", cookie) == []
    wait_until(
        lambda: flows_of("edge1", cookie) == before,
        timeout=10 * PASS_S + 5,
        message="the VM's flows did not come back",
    )
    took = time.monotonic() - deleted_at
    events = [e for e in controller.rest("/v1/events?kind=audit.") if e["id"] not in seen]
    assert events and all(e["kind"] == "audit.repaired" for e in events), events
    assert {e["switch"] for e in events} == {"edge1"}
    missing = sum(e["detail"].get("flows_missing", 0) for e in events)
    assert missing == len(before), events
    assert any(f"cookie={cookie:#x}" in x for e in events for x in e["detail"]["examples"])
    print(f"repaired {took:.2f} s after the deletion (a pass: {PASS_S:.2f} s)")
    assert "switch.flows_lost" not in controller.log_text()
