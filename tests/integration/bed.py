"""What every test on the real bed shares: the skip reason, the marks, polling."""

import importlib.util
import os
import shutil
import subprocess
import time

import pytest


def why_no_bed():
    if os.geteuid() != 0:
        return "needs root (Mininet, network namespaces, lldpad)"
    if importlib.util.find_spec("mininet") is None:
        return "Mininet's Python package is not importable (scripts/bootstrap.sh installs it)"
    for tool in ("ovs-vsctl", "ovs-ofctl", "lldpad", "vdptool", "tcpdump", "iperf3", "nsenter"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/bootstrap.sh installs it)"
    if subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True).returncode:
        return "Open vSwitch is not running (scripts/ovs-start.sh starts it)"
    return None


_NO_BED = why_no_bed()
# scripts/test.sh installs and starts the whole bed first: there a missing piece is a failure,
# not a skip, so CI cannot pass by skipping the tests that matter most.
BED_REQUIRED = os.environ.get("EVB_REQUIRE_BED") == "1"
MARKS = [
    pytest.mark.mininet,
    pytest.mark.skipif(_NO_BED is not None and not BED_REQUIRED, reason=str(_NO_BED)),
    # Debian's Mininet 2.3 compares OVS versions with distutils.
    pytest.mark.filterwarnings("ignore:distutils Version classes are deprecated"),
]


def wait_until(condition, timeout, interval=0.05, message="timed out"):
    """The first truthy value of condition(), polling until timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} after {timeout} s")
        time.sleep(interval)


def dump_flows(bridge):
    """`ovs-ofctl -O OpenFlow13 dump-flows` of a bridge, one dict per flow."""
    out = subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", bridge],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    flows = []
    for line in out.splitlines():
        line = line.strip()
        if not line.startswith("cookie="):
            continue
        fields, _, actions = line.partition(" actions=")
        entry = {"actions": actions, "text": line}
        for part in fields.replace(", ", ",").split(","):
            part = part.strip()
            if "=" in part:
                key, value = part.split("=", 1)
                entry.setdefault(key, value)
            elif part:
                entry.setdefault("match_flags", []).append(part)
        for key in ("n_packets", "n_bytes", "table", "priority"):
            if key in entry:
                entry[key] = int(entry[key])
        entry.setdefault("table", 0)
        entry["cookie"] = int(entry["cookie"], 16)
        flows.append(entry)
    return flows


def our_flows(bridge):
    """Our flows as (cookie, table, priority, match and actions), without the counters."""
    return sorted(
        (f["cookie"], f["table"], f["priority"], f["text"].split(" actions=")[1])
        for f in dump_flows(bridge)
        if f["cookie"] >> 56 == 0xEB
    )
