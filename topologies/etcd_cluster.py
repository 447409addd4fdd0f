"""An etcd cluster on loopback, started and stopped by the project's scripts/etcd-cluster.sh in
a directory of its own (the bed's, a test's), on free ports."""

import os
import signal
import subprocess
from pathlib import Path

from topologies.controller_process import free_base

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "etcd-cluster.sh"


class EtcdCluster:
    """`members` etcd members with their data, logs and PIDs in `directory`.

    The base port is kept in DIR/port: a cluster started again from its data needs the ports it
    had (its members know each other by peer URL), so a directory keeps its ports across runs.
    """

    def __init__(self, directory: Path, members: int):
        self.directory, self.members = Path(directory), members
        port_file = self.directory / "port"
        if port_file.exists():
            self.port = int(port_file.read_text())
        else:
            self.port = free_base(2 * members)
            self.directory.mkdir(parents=True, exist_ok=True)
            port_file.write_text(f"{self.port}\n")
        self.endpoints = [f"http://127.0.0.1:{self.port + 2 * i}" for i in range(members)]

    def _script(self, action: str) -> None:
        done = subprocess.run(
            ["bash", str(SCRIPT), "--dir", str(self.directory), "--port", str(self.port)]
            + [action, str(self.members)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode:
            raise RuntimeError(f"etcd-cluster.sh {action}: {(done.stderr or done.stdout).strip()}")

    def start(self) -> None:
        """Start every member not running (a killed one again, from its data); wait for a
        quorum."""
        self._script("start")

    def stop(self) -> None:
        """Stop the members this directory's PID files name."""
        self._script("stop")

    def kill(self, member: int) -> None:
        """kill -9 of one member, by the PID the script recorded for it."""
        pid_file = self.directory / f"m{member}.pid"
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()
