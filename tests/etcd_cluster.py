"""A real etcd cluster for the tests: started by the project's scripts/etcd-cluster.sh on free
loopback ports, in a directory of the test's, and stopped by the PIDs the script recorded."""

import os
import shutil
import signal
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "etcd-cluster.sh"
NO_ETCD = (
    None
    if shutil.which("etcd") and shutil.which("etcdctl")
    else "no etcd binary (Debian packages etcd-server and etcd-client; scripts/bootstrap.sh "
    "installs them)"
)
# scripts/test.sh (so CI) installs etcd first: there its absence fails the etcd tests.
REQUIRED = os.environ.get("EVB_REQUIRE_BED") == "1"


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


@contextmanager
def etcd_cluster(directory: Path, members: int):
    if NO_ETCD:
        if REQUIRED:
            pytest.fail(f"etcd is required (EVB_REQUIRE_BED=1) but there is {NO_ETCD}")
        pytest.skip(NO_ETCD)
    cluster = EtcdCluster(directory, members)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
