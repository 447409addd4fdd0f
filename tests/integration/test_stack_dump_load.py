"""The SIGUSR1 stack dump under association load, against a real evb-nms: simulated switches
and stations (bench/scale.py, no Open vSwitch or root needed) associate VMs while the
controller is sent SIGUSR1 every 50 ms. It dumps its stacks, keeps running and grants every VM
(once, faulthandler's dump in the signal handler crashed it: issue 15)."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from topologies.controller_process import ControllerProcess, free_port

REPO = Path(__file__).resolve().parents[2]


def test_repeated_stack_dumps_during_associations_crash_nothing(tmp_path):
    controller = ControllerProcess(
        tmp_path,
        of_port=free_port(),
        rest_port=free_port(),
        extra_args=["--policies-dir", str(REPO / "bench/policies")],
    )
    with controller:
        load = subprocess.Popen(
            [
                sys.executable, "-m", "bench.scale",
                "--connect", f"127.0.0.1:{controller.of_port}",
                "--rest", f"127.0.0.1:{controller.rest_port}",
                "--switches", "4", "--ports", "4", "--vms", "400", "--rate", "200",
                "--hold", "2", "--progress", "0", "--timeout", "40",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        sent = 0
        while load.poll() is None and sent < 2000:
            controller.proc.send_signal(signal.SIGUSR1)
            sent += 1
            time.sleep(0.05)
        out, err = load.communicate(timeout=60)
        alive = controller.proc.poll() is None
        log = controller.log_text()
    assert alive, log[-3000:]
    assert load.returncode == 0, err[-3000:]
    associations = json.loads(out)["associations"]
    assert associations["granted"] == associations["requested"] == 400, associations
    assert sent >= 20 and 1 <= log.count("stack dump: ") <= sent
    assert "Thread 0x" in log and "_work_loop" in log
