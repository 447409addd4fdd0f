"""Runs `evb-nms` as a child process: wait until it listens, stop it by PID."""

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FIRST_FIXED_PORT = 10000  # above the well-known services' ports


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def free_base(count: int) -> int:
    """A port from which `count` consecutive loopback ports are free now, below the kernel's
    ephemeral range: no outgoing connection takes one of them as its source port while their
    process is down, so a member or controller started again gets its ports back."""
    top = _ephemeral_low() - count
    for _ in range(100):
        base = random.randrange(FIRST_FIXED_PORT, top)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} free consecutive loopback ports")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def wait_for_listen(host: str, port: int, timeout: float, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"controller exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


class ControllerProcess:
    """evb-nms in a child process, logging to `log_path`."""

    def __init__(
        self,
        workdir: Path,
        of_port: int = 6653,
        rest_port: int = 8080,
        extra_args=(),
        log_level: str = "INFO",
        token: str | None = None,
    ):
        """``token``: sent as a bearer token with every request, for a controller given
        api_tokens (its API is open without them)."""
        self.token = token
        self.workdir = Path(workdir)
        self.of_port = of_port
        self.rest_port = rest_port
        self.log_path = self.workdir / "evb-nms.log"
        self.db_path = self.workdir / "evb-nms.db"
        self.args = [
            sys.executable,
            "-m",
            "app.cli.evb_nms",
            "--of-port",
            str(of_port),
            "--of-listen-host",
            "127.0.0.1",
            "--rest-listen",
            f"127.0.0.1:{rest_port}",
            "--db-path",
            str(self.db_path),
            "--log-level",
            log_level,
            *extra_args,
        ]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> "ControllerProcess":
        self.spawn()
        return self.wait_listening(timeout)

    def spawn(self) -> None:
        """Start the process without waiting: several controllers start side by side."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        repo = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            self.args,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=repo,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def wait_listening(self, timeout: float = 30.0) -> "ControllerProcess":
        """Once the spawned process listens on both its ports; RuntimeError if it exits."""
        wait_for_listen("127.0.0.1", self.of_port, timeout, self.proc)
        wait_for_listen("127.0.0.1", self.rest_port, timeout, self.proc)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def rest(self, path: str, timeout: float = 10.0):
        return self.call("GET", path, timeout=timeout)

    def text(self, path: str) -> str:
        """GET `path`: its body as text (GET /metrics)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rest_port}{path}", headers=self._auth()
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.read().decode()

    def call(self, method: str, path: str, body=None, timeout: float = 10.0):
        """One REST request with a JSON body; the JSON answer (None if it has none)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.rest_port}{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **self._auth()},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = response.read()
        return json.loads(answer) if answer else None

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
