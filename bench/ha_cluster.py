"""Several evb-nms instances in HA mode on one etcd prefix (docs/ha.md), for a benchmark: started
one by one (the first leads), asked who leads, one killed with SIGKILL, started again (it
comes back as a follower)."""

import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path

from topologies.controller_process import ControllerProcess, free_port


class HaCluster:
    def __init__(
        self,
        workdir: Path,
        endpoints: list[str],
        prefix: str,
        members: int = 3,
        extra_args=(),
        lease_ttl: int = 2,
    ) -> None:
        self.args: list[list[str]] = []
        self.members: list[ControllerProcess] = []
        for i in range(members):
            rest_port = free_port()
            args = [
                "--store",
                "etcd",
                "--etcd-endpoints",
                ",".join(endpoints),
                "--etcd-prefix",
                prefix,
                "--controller-id",
                self.controller_id(i),
                "--advertise-url",
                f"http://127.0.0.1:{rest_port}",
                "--leader-lease-ttl",
                str(lease_ttl),
                *extra_args,
            ]
            self.args.append(args)
            self.members.append(ControllerProcess(workdir / f"c{i}", free_port(), rest_port, args))

    @staticmethod
    def controller_id(index: int) -> str:
        return f"c{index}"

    def index_of(self, controller_id: str) -> int:
        return int(controller_id.removeprefix("c"))

    def of_addresses(self) -> list[tuple[str, int]]:
        return [("127.0.0.1", m.of_port) for m in self.members]

    def rest(self, index: int) -> str:
        return f"127.0.0.1:{self.members[index].rest_port}"

    def start(self, timeout: float) -> None:
        for member in self.members:
            member.start(timeout)

    def ha(self, index: int, timeout: float = 2.0) -> dict | None:
        """GET /v1/ha of a member; None if it does not answer (dead, or not listening yet)."""
        try:
            url = f"http://{self.rest(index)}/v1/ha"
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return json.loads(response.read())
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def leader(self, timeout: float, newer_than: int = -1) -> tuple[int, int]:
        """(index, generation) of the leader that every live member names, once its generation
        is above `newer_than`; TimeoutError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            answers = [self.ha(i) for i, m in enumerate(self.members) if self.alive(i)]
            leaders = {
                (a["leader"]["id"], a["leader"]["generation"])
                for a in answers
                if a is not None and a.get("leader")
            }
            if len(leaders) == 1 and None not in answers:
                (controller_id, generation), *_ = leaders
                if generation > newer_than:
                    return self.index_of(controller_id), generation
            seen = answers
            time.sleep(0.1)
        raise TimeoutError(f"no leader newer than generation {newer_than}: {seen}")

    def alive(self, index: int) -> bool:
        proc = self.members[index].proc
        return proc is not None and proc.poll() is None

    def kill(self, index: int) -> None:
        """kill -9 of one member, by its PID."""
        proc = self.members[index].proc
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, index: int, timeout: float) -> None:
        old = self.members[index]
        self.members[index] = ControllerProcess(
            old.workdir, old.of_port, old.rest_port, self.args[index]
        ).start(timeout)

    def stop(self) -> None:
        for member in self.members:
            member.stop()
