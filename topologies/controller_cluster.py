"""Several evb-nms on one etcd prefix (docs/ha.md): controller c<i> in workdir/c<i> on its own
OpenFlow and REST loopback ports, each told its name and REST URL for the leader election; who
leads, as the instances answer GET /v1/ha."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from topologies.controller_process import ControllerProcess

# GET /v1/ha is answered at once; a controller that does not (paused, starting) has no view.
VIEW_TIMEOUT = 0.5


class ControllerCluster:
    """Controllers c1..cN: `of_ports` and `rest_ports` give each its ports, in that order."""

    def __init__(
        self,
        workdir: Path,
        etcd_endpoints,
        prefix: str,
        of_ports,
        rest_ports,
        extra_args=(),
        log_level: str = "INFO",
    ):
        if len(of_ports) != len(rest_ports):
            raise ValueError("one OpenFlow and one REST port per controller")
        self.members: dict[str, ControllerProcess] = {}
        for n, (of_port, rest_port) in enumerate(zip(of_ports, rest_ports, strict=True), 1):
            name = f"c{n}"
            self.members[name] = ControllerProcess(
                Path(workdir) / name,
                of_port=of_port,
                rest_port=rest_port,
                extra_args=[
                    "--store",
                    "etcd",
                    "--etcd-endpoints",
                    ",".join(etcd_endpoints),
                    "--etcd-prefix",
                    prefix,
                    "--controller-id",
                    name,
                    "--advertise-url",
                    f"http://127.0.0.1:{rest_port}",
                    *extra_args,
                ],  # fmt: skip
                log_level=log_level,
            )

    @property
    def of_ports(self) -> list[int]:
        return [member.of_port for member in self.members.values()]

    def start(self, timeout: float = 30.0) -> "ControllerCluster":
        """Start every controller side by side; return once each listens on both ports."""
        for member in self.members.values():
            member.spawn()
        for member in self.members.values():
            member.wait_listening(timeout)
        return self

    def stop(self) -> None:
        """Stop every controller (SIGTERM, by PID) at once: none takes over from another."""
        with ThreadPoolExecutor(len(self.members)) as pool:
            list(pool.map(ControllerProcess.stop, self.members.values()))

    def running(self) -> dict[str, ControllerProcess]:
        return {
            name: member
            for name, member in self.members.items()
            if member.proc is not None and member.proc.poll() is None
        }

    def views(self) -> dict[str, dict]:
        """GET /v1/ha of every running controller that answers it, by name."""
        answers = {}
        for name, member in self.running().items():
            try:
                answers[name] = member.rest("/v1/ha", timeout=VIEW_TIMEOUT)
            except (OSError, ValueError):  # HTTP errors are OSErrors
                continue  # starting, stopping, or no HA: not a view to count
        return answers

    def leader(self) -> str | None:
        """The controller that every one answering names as leader, and that says it leads;
        None while they disagree or none leads."""
        views = self.views()
        named = {(view.get("leader") or {}).get("id") for view in views.values()}
        if len(named) != 1:
            return None
        (name,) = named
        return name if name in views and views[name].get("role") == "leader" else None

    def followers(self) -> list[str]:
        leader = self.leader()
        return [name for name in self.running() if name != leader]
