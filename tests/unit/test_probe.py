"""The traffic probe the loss measurements rely on: a reply that is still on its way when the
probe is told to stop is received, not counted as lost."""

import os
import subprocess
import sys
import time

import pytest

from topologies.probe import REPO, stop_probe

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="a raw ICMP socket needs root")


def test_every_request_answered_on_loopback_counts_as_received():
    proc = subprocess.Popen(
        [sys.executable, "-m", "topologies.probe", "127.0.0.1", "--rate", "2000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stderr.readline()
    time.sleep(0.3)
    result = stop_probe(proc)
    assert result["sent"] > 100
    assert result["lost"] == 0, result
    assert result["max_gap_ms"] < 200
