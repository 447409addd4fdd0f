"""The real part of the failover benchmark (bench/failover.py): Open vSwitch bridges (Mininet,
userspace datapath: agg1 above edge1, servers srv11 and srv12) connected to every controller,
lldpad as the VDP station of each server, a VM on each associated through it, a probe between
them at a fixed rate, and per failover a VM whose Associate is sent while the leader is dead.
Root, Open vSwitch and Mininet needed; run it under the machine's Mininet lock."""

import time
from contextlib import ExitStack

from topologies.datacenter import datacenter
from topologies.migration import MANAGER, start_vm
from topologies.probe import start_probe, stop_probe
from topologies.shell import run

SERVERS = ("srv11", "srv12")
VSI_TYPE = (900, 1)  # bench/policies/scale.yaml, the simulated VMs' type too


class FailoverBed:
    def __init__(self, of_ports: list[int], probe_rate: float) -> None:
        self.of_ports = of_ports
        self.targets = [f"tcp:127.0.0.1:{port}" for port in of_ports]
        self.probe_rate = probe_rate
        self._stack = ExitStack()
        self.dc = None
        self.bridges = 0
        self.stations: dict = {}
        self.vms: list = []
        self._probe = None

    def start(self, ready, timeout: float = 60.0) -> None:
        """Starts the network; `ready()` tells when the controllers reconciled its switches;
        then the stations and the two VMs, associated and reaching each other."""
        self.dc = self._stack.enter_context(datacenter(self.of_ports, edges=1, servers_per_edge=2))
        self.bridges = len(self.dc.net.switches)
        for target in self.targets:  # a restarted controller is back within 1 s, not 8
            for uuid in run(
                [
                    "ovs-vsctl",
                    "--bare",
                    "--columns=_uuid",
                    "find",
                    "controller",
                    f'target="{target}"',
                ]
            ).stdout.split():
                run(["ovs-vsctl", "set", "controller", uuid, "max_backoff=1000"])
        _wait(ready, timeout, "the bed's switches were not reconciled")
        self.stations = {srv: self.dc.add_station(srv) for srv in SERVERS}
        if not all(s.wait_vdp_ready(timeout) for s in self.stations.values()):
            raise RuntimeError("a bed station never enabled VDP")
        for i, srv in enumerate(SERVERS, 1):
            self.vms.append(
                start_vm(
                    self.dc,
                    self.stations,
                    f"fo{i}",
                    srv,
                    f"52:54:00:00:fb:{i:02x}",
                    f"10.0.251.{i}/24",
                    f"f0f0f0f0-0000-0000-0000-0000000000{i:02x}",
                    VSI_TYPE,
                )
            )
        if not self.vms[0].vm.wait_reachable(self.vms[1].vm.address, timeout=10):
            raise RuntimeError("the bed's VMs do not reach each other")

    def vsi_ids(self) -> set[str]:
        return {mvm.uuid for mvm in self.vms}

    def start_probe(self) -> None:
        self._probe = start_probe(self.vms[0].vm.netns, self.vms[1].vm.address, self.probe_rate)

    def stop_probe(self) -> dict | None:
        """The running probe's result (None if none runs)."""
        probe, self._probe = self._probe, None
        return stop_probe(probe) if probe is not None else None

    def late_vm(self, n: int):
        """A VM on srv12, not associated yet (MAC and VSI ID of failover n)."""
        return self.dc.add_vm(
            f"late{n}", SERVERS[1], f"52:54:00:00:fc:{n:02x}", f"10.0.251.{100 + n}/24"
        )

    def associate_late(self, vm, n: int) -> dict:
        """Sends its Associate (lldpad, vdptool -W: it waits 5 s at most for the response), then
        checks that it reaches the first VM; removes it again."""
        uuid = f"f0f0f0f0-0000-0000-0000-0000000001{n:02x}"
        t0 = time.perf_counter()
        result = self.stations[SERVERS[1]].vdp(
            "assoc", MANAGER, VSI_TYPE[0], VSI_TYPE[1], uuid, filters=[f"0-{vm.mac}"]
        )
        outcome = {
            "answered": result.ok,
            "answer_s": round(time.perf_counter() - t0, 3),
            "error": result.error,
        }
        outcome["reaches_peer"] = bool(
            result.ok and vm.wait_reachable(self.vms[0].vm.address, timeout=5)
        )
        if result.ok:  # leave the bed as it was: the station drops the VSI, the bridge too
            vid = result.fields.get("filter", "0").split("-")[0]
            self.stations[SERVERS[1]].vdp(
                "deassoc",
                MANAGER,
                VSI_TYPE[0],
                VSI_TYPE[1],
                uuid,
                filters=[f"{vid}-{vm.mac}"],
                timeout=10,
            )
        vm.destroy()
        return outcome

    def close(self) -> None:
        if self._probe is not None:
            self._probe.kill()
            self._probe.wait()
        self._stack.close()


def _wait(condition, timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(message)
        time.sleep(0.2)
