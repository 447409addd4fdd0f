"""VMs of the bed: a named netns holding a VEPA macvlan of its server's uplink.

VEPA mode sends every frame of the VM, including frames to another VM of the same server, up the
uplink to the edge switch; only the edge (hairpin) can bring them back down.
"""

import os
import re
import signal
import time
from dataclasses import dataclass
from typing import ClassVar

from topologies.netns_io import call_in_netns, write_sysctls
from topologies.shell import CommandError, in_host, in_netns, run

_PING_SUMMARY = re.compile(r"(\d+) packets transmitted, (\d+) received")
# A paused VM's netns: no ARP reply (8: never), no echo reply.
_PAUSED = {"net.ipv4.conf.all.arp_ignore": "8", "net.ipv4.icmp_echo_ignore_all": "1"}


@dataclass(frozen=True)
class Vm:
    name: str
    server: object  # the Mininet host the VM runs on
    mac: str
    ip: str  # with prefix length, e.g. "10.0.0.1/24"
    netns: str

    @property
    def address(self):
        """The IPv4 address without prefix length."""
        return self.ip.split("/")[0]

    @classmethod
    def create(cls, name, server, mac, ip, netns, paused=False):
        """Start a VM on server; on any failure nothing of it is left behind. A paused VM (a
        migrating VM's copy before it resumes) has its interface down: it sends nothing, and
        answers nothing it is sent."""
        vm = cls(name, server, mac, ip, netns)
        try:
            vm._plug(paused)
        except Exception:
            vm.destroy()
            raise
        return vm

    def _plug(self, paused):
        run(["ip", "netns", "add", self.netns])
        # Quiet wire: no IPv6 DAD/MLD/RS frames, so a VM only sends what a test makes it send.
        run(
            in_netns(self.netns)
            + [
                "sysctl",
                "-qw",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ]
        )
        self._add_link()
        run(in_host(self.server) + ["ip", "link", "set", self._staging_name, "netns", self.netns])
        for cmd in (
            ["link", "set", self._staging_name, "name", "eth0"],
            ["addr", "add", self.ip, "dev", "eth0"],
            *([["link", "set", "eth0", "mtu", str(self.mtu)]] if self.mtu else []),
            ["link", "set", "lo", "up"],
            *([] if paused else [["link", "set", "eth0", "up"]]),
        ):
            run(["ip", "-n", self.netns] + cmd)

    mtu: ClassVar[int | None] = None  # eth0's, when not its link's default

    def _add_link(self):
        """The VM's interface, named _staging_name, in the server's netns: a VEPA macvlan of
        its uplink."""
        uplink = self.server.defaultIntf().name
        run(
            in_host(self.server)
            + [
                "ip",
                "link",
                "add",
                "link",
                uplink,
                "name",
                self._staging_name,
                "address",
                self.mac,
                "type",
                "macvlan",
                "mode",
                "vepa",
            ]
        )

    @property
    def _staging_name(self):
        """Unique name of the VM's interface while it is still in the server's netns (<= 15
        chars)."""
        return "mv" + self.mac.replace(":", "")

    def take_neighbours(self, source):
        """The IPv4 neighbours (ARP cache) of `source`, as stale entries: a migrated VM keeps
        its memory, and its ARP cache with it, so its first reply needs no ARP request."""
        shown = run(["ip", "-n", source.netns, "-4", "neigh", "show", "dev", "eth0"]).stdout
        for fields in (line.split() for line in shown.splitlines()):
            if "lladdr" in fields:
                mac = fields[fields.index("lladdr") + 1]
                run(
                    ["ip", "-n", self.netns, "neigh", "replace", fields[0], "lladdr", mac]
                    + ["dev", "eth0", "nud", "stale"]
                )

    def pause(self):
        """Stop the VM as live migration's stop-and-copy does: at once, so that it answers
        nothing from here on (destroy() removes it). Its netns stops answering ARP and echo
        requests, two sysctl writes: taking eth0 down would stop it at once too, but return
        only 8-16 ms later, and the resume at the destination must follow the stop at once.
        The bed's VMs send nothing of their own (no IPv6, no processes)."""
        call_in_netns(self.netns, lambda: write_sysctls(_PAUSED))

    def destroy(self):
        """Remove the VM; safe to call twice and after a half-done create."""
        destroy_netns(self.netns)
        run(in_host(self.server) + ["ip", "link", "del", self._staging_name], check=False)

    def move_to(self, server):
        """Migrate the VM (same name, MAC, IP, netns name) to another server; return the new VM."""
        self.destroy()
        return Vm.create(self.name, server, self.mac, self.ip, self.netns)

    def run(self, *argv, timeout=10, check=False):
        """Run a command inside the VM; return the CompletedProcess."""
        return run(in_netns(self.netns) + list(argv), timeout=timeout, check=check)

    def wait_reachable(self, address, timeout):
        """Ping address once at a time until one answer comes; False after timeout seconds."""
        deadline = time.monotonic() + timeout
        while self.ping(address, count=1, wait=0.2)[1] == 0:
            if time.monotonic() >= deadline:
                return False
        return True

    def ping(self, address, count=3, wait=1.0):
        """Ping address from the VM; return (sent, received)."""
        proc = self.run(
            "ping",
            "-q",
            "-n",
            "-c",
            str(count),
            "-i",
            "0.2",
            "-W",
            str(wait),
            address,
            timeout=count * (0.2 + wait) + 5,
        )
        summary = _PING_SUMMARY.search(proc.stdout)
        if not summary:
            raise CommandError(f"ping from {self.name} to {address}: {proc.stdout}{proc.stderr}")
        return int(summary.group(1)), int(summary.group(2))


class ChannelVm(Vm):
    """A VM behind a station's S-component (topologies/cdcp_station.py): a veth pair whose
    server end (`server_end`) the S-component relays into the VM's S-channel. The kernel here
    has no 802.1ad VLAN device, so a macvlan of the uplink cannot carry an S-tag. Its MTU leaves
    room for the S-tag on the server's uplink."""

    mtu = 1496

    @property
    def server_end(self):
        return "vc" + self.mac.replace(":", "")[-10:]

    def _add_link(self):
        server_end = ["ip", "link", "set", self.server_end]
        for argv in (
            ["ip", "link", "add", self.server_end, "type", "veth", "peer", "name"]
            + [self._staging_name, "address", self.mac],
            ["sysctl", "-qw", f"net.ipv6.conf.{self.server_end}.disable_ipv6=1"],
            server_end + ["mtu", str(self.mtu)],
            server_end + ["up"],
        ):
            run(in_host(self.server) + argv)

    def destroy(self):
        super().destroy()
        run(in_host(self.server) + ["ip", "link", "del", self.server_end], check=False)


def destroy_netns(netns):
    """Power a VM off: kill its processes, delete its macvlan, then its netns.

    Processes would outlive the netns name. The kernel frees a deleted netns (and the devices in
    it) later, in a work queue: until then the old macvlan keeps its MAC on the uplink, and a VM
    re-created with that MAC on the same server fails with "Address already in use".
    """
    for pid in run(["ip", "netns", "pids", netns], check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    run(["ip", "-n", netns, "link", "del", "eth0"], check=False)
    run(["ip", "netns", "del", netns], check=False)
