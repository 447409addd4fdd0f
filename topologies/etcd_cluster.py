"""An etcd cluster on loopback for tests and benchmarks: started by the project's
scripts/etcd-cluster.sh on free ports, in a directory of the caller's, and stopped (or one member
killed) by the PIDs the script recorded."""

import os
import signal
import socket
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "etcd-cluster.sh"


def _free_base(count: int) -> int:
    """A port from which `count` consecutive loopback ports are free (now)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        if base + count > 65535:
            continue
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free loopback ports for etcd")


class EtcdCluster:
    def __init__(self, directory: Path, members: int):
        self.directory, self.members = directory, members
        self.port = _free_base(2 * members)
        self.endpoints = [f"http://127.0.0.1:{self.port + 2 * i}" for i in range(members)]

    def _script(self, action: str) -> None:
        subprocess.run(
            ["bash", str(SCRIPT), "--dir", str(self.directory), "--port", str(self.port)]
            + [action, str(self.members)],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        self._script("start")

    def stop(self) -> None:
        self._script("stop")

    def kill(self, member: int) -> None:
        """kill -9 of one member, by the PID the script recorded for it."""
        pid_file = self.directory / f"m{member}.pid"
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()
