"""VM migration on the bed, driven the way libvirt drives lldpad: VDP requests from the stations
of the source and destination servers around the move of the VM itself.

The VM "moves" as QEMU's live migration does: its copy waits paused on the destination (same MAC
and IP, its own netns, interface down: a paused QEMU sends nothing), the source copy stops, then
the copy resumes and at once announces the VM's MAC with QEMU's RARP frames
(topologies/announce.py). `where_flows_point` tells where every switch sends the VM's traffic, to
check that nothing stale is left behind.
"""

import re
import subprocess
import time
from dataclasses import dataclass

from topologies.announce import Announcer
from topologies.vm import Vm

MANAGER = "mgr1"
ORDERS = ("vdp", "associate-first", "cancelled")  # of migrate()
WEB = (5, 4)  # policies/default.yaml "web": VLANs 100/101, default 100
BATCH = (7, 1)  # "batch": VLAN 102, at most 2 per port


@dataclass
class MigratingVm:
    """A VM with its VSI: the VM (as it runs now), its server's name, its VSI UUID and VID."""

    vm: Vm
    server: str
    uuid: str
    vid: int
    vsi_type: tuple = WEB
    announcer: Announcer | None = None  # the last move's, until its last round is sent

    def request(self, station, mode, hints="none", vid=None):
        return station.vdp(
            mode,
            MANAGER,
            self.vsi_type[0],
            self.vsi_type[1],
            self.uuid,
            hints=hints,
            filters=[f"{self.vid if vid is None else vid}-{self.vm.mac}"],
        )


def start_vm(dc, stations, name, server, mac, ip, uuid, vsi_type=WEB, hints="none"):
    """A VM on server, associated through its station (VID chosen by the bridge). lldpad keeps
    the hints a VSI was created with for all its later requests (S-bit for "from")."""
    vm = dc.add_vm(name, server, mac, ip)
    result = stations[server].vdp(
        "assoc", MANAGER, vsi_type[0], vsi_type[1], uuid, hints=hints, filters=[f"0-{mac}"]
    )
    if not result.ok:
        raise RuntimeError(f"{name} not associated: {result.error}")
    vid = int(result.fields["filter"].split("-")[0])
    return MigratingVm(vm, server, uuid, vid, vsi_type)


def move_vm(dc, mvm, dst_server, marks=None, precopy=0.0, at_resume=None):
    """The VM itself moves: a paused copy waits on dst_server (for precopy seconds more: the
    memory copy, its ARP cache included), the source copy stops, the copy resumes and
    announces itself (marks["resumed"]: its first RARP), at_resume() runs (what the
    destination's hypervisor does as the VM starts), then the source copy is removed. Returns
    without waiting for the later RARP rounds (finish_announce)."""
    finish_announce(mvm)
    copy = Vm.create(
        mvm.vm.name,
        dc.server(dst_server),
        mvm.vm.mac,
        mvm.vm.ip,
        _next_netns(mvm.vm.netns),
        paused=True,
    )
    try:
        copy.take_neighbours(mvm.vm)
        announcer = Announcer(copy.netns, copy.mac)
    except Exception:
        copy.destroy()
        raise
    _mark(marks, "copy_started")
    time.sleep(precopy)
    mvm.vm.pause()
    _mark(marks, "source_stopped")
    resumed = announcer.resume()
    if marks is not None:
        marks["resumed"] = resumed
    if at_resume is not None:
        at_resume()
    mvm.vm.destroy()
    _mark(marks, "source_removed")
    mvm.vm, mvm.server, mvm.announcer = copy, dst_server, announcer


def finish_announce(mvm):
    """Wait until the last move's announcement rounds are all sent."""
    if mvm.announcer is not None:
        mvm.announcer.finish()
        mvm.announcer = None


def _mark(marks, step):
    if marks is not None:
        marks[step] = time.monotonic()


def _next_netns(netns):
    """vm1 -> vm1.m1 -> vm1.m2 ...: a migrated VM's copy lives in a netns of its own."""
    match = re.fullmatch(r"(.*)\.m(\d+)", netns)
    return f"{match.group(1)}.m{int(match.group(2)) + 1}" if match else f"{netns}.m1"


def migrate(dc, stations, mvm, dst_server, order="vdp", marks=None, precopy=0.0):
    """Moves mvm to dst_server; returns the VDP results by step name (and, into marks, the
    time.monotonic() at which each step ended). precopy: seconds the VM's paused copy waits
    before the source stops (live migration's memory copy, after the Pre-Associate).

    order "vdp": Pre-Associate (hints to) at the destination, the move, De-Associate (hints
    from) at the source, Associate at the destination - libvirt's sequence.
    order "associate-first": the move, the Associate at the destination as the VM resumes there
    (nothing prepared it), while the source is removed; no De-Associate from the source (the
    bridge has moved the VSI and told the source station).
    order "cancelled": Pre-Associate at the destination, then De-Associate there: the migration
    is abandoned before the move and the VM stays where it is.
    """
    src = stations[mvm.server]
    dst = stations[dst_server]
    results = {}
    _mark(marks, "start")
    if order == "vdp":
        results["preassoc"] = mvm.request(dst, "preassoc", hints="to")
        _mark(marks, "preassoc")
        move_vm(dc, mvm, dst_server, marks, precopy)
        results["deassoc"] = mvm.request(src, "deassoc", hints="from")
        _mark(marks, "deassoc")
        results["assoc"] = mvm.request(dst, "assoc", hints="to")
        _mark(marks, "assoc")
    elif order == "associate-first":

        def associate():
            results["assoc"] = mvm.request(dst, "assoc", hints="to")
            _mark(marks, "assoc")

        move_vm(dc, mvm, dst_server, marks, precopy, at_resume=associate)
    elif order == "cancelled":
        results["preassoc"] = mvm.request(dst, "preassoc", hints="to")
        _mark(marks, "preassoc")
        results["deassoc"] = mvm.request(dst, "deassoc", hints="to")
        _mark(marks, "deassoc")
    else:
        raise ValueError(f"unknown migration order {order!r}")
    finish_announce(mvm)
    return results


def where_flows_point(dc, mac):
    """{switch: [(table, match, actions)]} of every flow of ours that matches mac as source or
    destination: what each switch does with the VM's traffic."""
    flows = {}
    for name in [dc.spec.agg, *(edge.name for edge in dc.spec.edges)]:
        out = subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow13", "dump-flows", name, "--no-stats"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        flows[name] = [
            line.strip() for line in out.splitlines() if "cookie=0xeb" in line and mac in line
        ]
    return flows


def flows_follow(dc, mvm):
    """None if the switches hold the VM's flows only where it is (admission and delivery on its
    edge port, forwarding toward that edge elsewhere), else what is wrong."""
    srv = dc.spec.server(mvm.server)
    edge = dc.spec.edge(srv.edge)
    problems = []
    for switch, lines in where_flows_point(dc, mvm.vm.mac).items():
        for line in lines:
            admits = f"dl_src={mvm.vm.mac}" in line
            if switch == edge.name:
                if admits and f"in_port={srv.edge_port_no}," not in line:
                    problems.append(f"{switch}: admits from another port: {line}")
                if not admits and "output:" in line and f"output:{srv.edge_port_no}" not in line:
                    problems.append(f"{switch}: delivers elsewhere: {line}")
            elif admits:
                problems.append(f"{switch}: stale admission: {line}")
            elif switch == dc.spec.agg and f"output:{edge.agg_port_no}" not in line:
                problems.append(f"{switch}: points away from {edge.name}: {line}")
            elif (
                switch not in (dc.spec.agg, edge.name)
                and f"output:{dc.spec.edge(switch).uplink_no}" not in line
            ):
                problems.append(f"{switch}: points away from the uplink: {line}")
    return "; ".join(problems) or None
