"""Failover benchmark (issue 13): the leader of three evb-nms instances on a 3-member etcd
cluster is killed (kill -9) while the fabric holds its VMs; how soon every switch is under
the new leader, and what the data plane and the stations saw meanwhile.

What runs (all on this machine):

* etcd: 3 members by scripts/etcd-cluster.sh on free loopback ports, in a temporary directory;
* 3 controllers `python -m app.cli.evb_nms --store etcd ...` (bench/ha_cluster.py), with the
  benchmarks' VSI type (bench/policies/: type 900, every VM of the run is one);
* simulated switches and stations (bench/ofsim: every switch connects to every controller with
  Open vSwitch's role rules, packet-ins go to the MASTER), --vms VMs associated and keeping
  alive; the switches reconnect every 0.1 s to a controller that went away;
* unless --no-bed, the real part (bench/failover_bed.py; root, Mininet, under the machine's
  Mininet lock): Open vSwitch bridges agg1 and edge1 on the userspace datapath connected to
  all three controllers, lldpad on srv11 and srv12, a VM on each associated through it, and a
  probe between the two at --probe-rate echo requests per second.

Then --kills times: the leader is killed with SIGKILL; at once one more simulated VM sends its
Associate, and on the bed one more VM sends its Associate through lldpad; then

* switches_under_new_leader_s: from the kill to the moment the last switch took a MASTER
  request of the new generation: for simulated switches the time the request arrived (their
  own clock, the bench's), for Open vSwitch the moment ovs-vswitchd's database showed the new
  leader's connection as master on both bridges (bench/ovs_roles.py: `ovsdb-client monitor`,
  which adds the database's delay); the larger of the two;
* reconciled_s: until every simulated switch answered the barrier after the new leader read
  its flows and meters;
* associations_lost: VSIs associated before the kill (GET /v1/associations on the old leader)
  not associated on the new one once every simulated VM's next keep-alive was answered by
  the new leader (that wait is at most a keep-alive period plus a response wait), plus
  simulated VMs held before and not held then;
* keepalive_expiries: the larger of the stations' unsolicited De-Associates and the new
  leader's `vsi.expired` events since the kill;
* probe_lost, probe_max_gap_ms: echo requests without a reply from 0.5 s before the kill to
  the end of that wait;
* associate_during_failover: whether each Associate sent at the kill was answered, and its
  flows work (simulated: the edge admits and forwards to its MAC and the aggregation switch
  forwards to it; bed: the new VM pings the first one).

The killed controller is then started again (it comes back as a follower) and every switch
reconnects to it before the next kill. Prints one JSON object: machine, parameters, setup,
per kill and the summary against the targets (median takeover <= 2 s; 0 associations,
probe packets and keep-alives lost; every Associate sent during the failover answered and
working). Progress on stderr.

    flock /tmp/evb-mininet.lock .venv/bin/python -m bench.failover [--vms 1000] [--kills 10]
    .venv/bin/python -m bench.failover --no-bed ...        # simulated switches only
"""

import argparse
import asyncio
import json
import secrets
import shlex
import shutil
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

from bench import interruptible
from bench.failover_report import next_page, summarize, takeover
from bench.ha_cluster import HaCluster
from bench.ofsim import roles
from bench.ofsim.fabric import Fabric
from bench.ofsim.station import HELD, PENDING
from bench.scale import BENCH_POLICIES, code_version, log_problems, machine
from topologies.etcd_cluster import EtcdCluster

BEFORE_KILL = 0.5  # s of probe traffic before the kill


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench.failover", description=__doc__.splitlines()[0])
    p.add_argument("--vms", type=int, default=1000, help="simulated VMs held (default 1000)")
    p.add_argument("--kills", type=int, default=10, help="leaders killed (default 10)")
    p.add_argument("--edges", type=int, default=8, help="simulated edge switches (default 8)")
    p.add_argument("--ports", type=int, default=16, help="server ports per edge (default 16)")
    p.add_argument("--rate", type=float, default=200.0, help="Associates per second at setup")
    p.add_argument("--rka", type=int, default=20, help="the simulated stations' RKA exponent")
    p.add_argument(
        "--bridge-rka",
        type=int,
        default=20,
        help="the controllers' --evb-rka (default 20: a keep-alive every 10.5 s, so that 8 times "
        "more of them cross each failover than with the product's 23, and the wait for every "
        "VM's next one takes 10 s, not 84)",
    )
    p.add_argument("--lease-ttl", type=int, default=2, help="--leader-lease-ttl (s)")
    p.add_argument("--no-bed", action="store_true", help="no Open vSwitch / Mininet part")
    p.add_argument("--probe-rate", type=float, default=1000.0, help="echo requests per second")
    p.add_argument("--timeout", type=float, default=30.0, help="per step of a kill (s)")
    p.add_argument("--setup-timeout", type=float, default=180.0)
    p.add_argument("--controller-args", default="", help="more evb-nms arguments (one string)")
    p.add_argument("--keep-workdir", action="store_true", help="keep logs and etcd's data")
    args = p.parse_args(argv)
    if not (1 <= args.kills <= 100 and args.vms >= 1 and args.edges >= 1 and args.ports >= 1):
        p.error("--kills 1..100; --vms, --edges and --ports at least 1")
    return args


def _log(text: str) -> None:
    print(f"[failover {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def _get(rest: str, path: str, timeout: float = 30.0):
    """A REST GET: (JSON body, Link header)."""
    with urllib.request.urlopen(f"http://{rest}{path}", timeout=timeout) as response:
        return json.loads(response.read()), response.headers.get("Link")


def associated_vsis(rest: str) -> set[str]:
    """The VSI IDs a controller holds associated, page by page."""
    vsis, path = set(), "/v1/associations?state=associated&limit=1000"
    while path:
        page, link = _get(rest, path)
        vsis.update(v["vsi_id"] for v in page)
        path = next_page(link)
    return vsis


def last_event(rest: str, kind: str = "") -> dict | None:
    latest, _ = _get(rest, "/v1/events?latest=1&limit=1" + (f"&kind={kind}" if kind else ""))
    return latest[-1] if latest else None


def last_event_id(rest: str) -> int:
    event = last_event(rest)
    return event["id"] if event else 0


def expired_since(rest: str, after: int) -> int:
    events, _ = _get(rest, f"/v1/events?kind=vsi.expired&after={after}&limit=1000")
    return len(events)


def bed_switches_ready(rest: str) -> bool:
    try:
        switches, _ = _get(rest, "/v1/switches", timeout=5)
    except OSError:
        return False
    return {"agg1", "edge1"} <= {s["name"] for s in switches if s["state"] == "ready"}


def _port_name(vm) -> str:
    return vm.station.switch.ports[vm.station.port_no][0]


class Run:
    """One run's parts, and one kill after another."""

    def __init__(self, args, cluster: HaCluster, fabric: Fabric) -> None:
        self.args = args
        self.cluster = cluster
        self.fabric = fabric
        self.bed = None
        self.ovs = None
        self.leader = (0, 0)  # (index, generation)
        self.late = iter(fabric.vms[args.vms :])  # one simulated VM per kill

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    async def wait(self, condition, what: str, timeout: float | None = None) -> None:
        if not await self.fabric.wait_for(condition, timeout or self.args.timeout, 0.005):
            raise TimeoutError(what)

    def followers_slave(self) -> bool:
        """Every switch has each controller's connection, the followers' as SLAVE."""
        leader = self.leader[0]
        others = [i for i in range(len(self.cluster.members)) if i != leader]
        sim = all(
            sw.roles.role(i) == roles.SLAVE for sw in self.fabric.switches for i in others
        ) and all(sw.roles.role(leader) == roles.MASTER for sw in self.fabric.switches)
        if self.ovs is None:
            return sim
        targets, bridges = self.bed.targets, self.bed.bridges
        return (
            sim
            and all(self.ovs.all_in_role(targets[i], "slave", bridges) for i in others)
            and self.ovs.all_in_role(targets[leader], "master", bridges)
        )

    def counters(self) -> dict:
        """What the stations and switches counted so far that a failover may raise."""
        s = self.fabric.stats
        return {
            "expired": s.expired,
            "keepalives_unanswered": s.ka_unanswered,
            "ecp_retransmits": s.ecp_retransmits,
            "ecp_gave_up": s.ecp_gave_up,
            "packet_ins_without_controller": sum(sw.dropped_offline for sw in self.fabric.switches),
        }

    def roles_now(self) -> dict:
        """What the switches make of each controller now (for an error message)."""
        sim: dict = {}
        for sw in self.fabric.switches:
            for i in range(len(self.cluster.members)):
                role = roles.NAMES.get(sw.roles.role(i), "none")
                sim[f"c{i}:{role}"] = sim.get(f"c{i}:{role}", 0) + 1
        ovs = self.ovs and [
            (r.get("target"), r["role"], r.get("is_connected")) for r in self.ovs.rows.values()
        ]
        return {"leader": self.leader, "sim": sim, "ovs": ovs}

    async def kill(self, n: int) -> dict:
        fabric, cluster, bed = self.fabric, self.cluster, self.bed
        old, old_generation = self.leader
        old_rest = cluster.rest(old)
        try:
            await self.wait(self.followers_slave, "")
        except TimeoutError:
            raise TimeoutError(
                f"switches not all back with every controller: {self.roles_now()}"
            ) from None
        before = await self.call(associated_vsis, old_rest)
        first_event = await self.call(last_event_id, old_rest)
        held_before = [vm for vm in fabric.vms if vm.state == HELD]
        counters0 = self.counters()
        late_vm = next(self.late)
        bed_vm = await self.call(bed.late_vm, n) if bed else None
        if bed:
            await self.call(bed.start_probe)
            await asyncio.sleep(BEFORE_KILL)

        t_kill, t_kill_wall = fabric.clock(), time.time()
        cluster.kill(old)
        fabric.start_associations([late_vm])
        bed_late = (  # a future: the Associate leaves now, not when it is awaited
            asyncio.get_running_loop().run_in_executor(None, bed.associate_late, bed_vm, n)
            if bed
            else None
        )
        record: dict = {"n": n, "killed": cluster.controller_id(old)}

        def taken():
            return takeover((sw.masters for sw in fabric.switches), old_generation, old)

        await self.wait(lambda: taken() is not None, "simulated switches without a new MASTER")
        generation, times = taken()
        record["sim_s"] = round(max(times) - t_kill, 3)
        new, rest_generation = await self.call(cluster.leader, self.args.timeout, old_generation)
        record["leader_known_s"] = round(fabric.clock() - t_kill, 3)
        record.update(leader=cluster.controller_id(new), generation=generation)
        if rest_generation != generation:
            record["generation_on_rest"] = rest_generation
        under = record["sim_s"]
        elected = await self.call(last_event, cluster.rest(new), "ha.elected")
        record["elected_s"] = round(elected["ts"] - t_kill_wall, 3)
        record["elected_switches"] = elected["detail"].get("switches")
        if bed:
            # Open vSwitch: the leader sent MASTER to every switch it holds before ha.elected
            target = bed.targets[new]
            record["ovs_s"] = record["elected_s"]
            await self.wait(
                lambda: (self.ovs.master_since(target, bed.bridges) or 0) > t_kill,
                "Open vSwitch's database does not show the new MASTER",
            )
            record["ovs_db_s"] = round(self.ovs.master_since(target, bed.bridges) - t_kill, 3)
            under = max(under, record["ovs_s"])
        record["switches_under_new_leader_s"] = under

        def reconciled():
            return all(
                new in sw.conns and sw.conns[new].ready and sw.conns[new].t_ready > t_kill
                for sw in fabric.switches
            )

        await self.wait(reconciled, "simulated switches not reconciled by the new leader")
        record["reconciled_s"] = round(
            max(sw.conns[new].t_ready for sw in fabric.switches) - t_kill, 3
        )
        t_takeover = max(times)
        # Every VM held before: its next keep-alive answered by the new leader.
        await fabric.wait_for(
            lambda: all(vm.state != HELD or vm.t_ok > t_takeover for vm in held_before),
            max(st.ka_interval for st in fabric.stations) + fabric.max_resp_wait() + 5,
            0.2,
        )
        await fabric.wait_for(lambda: late_vm.state != PENDING, fabric.max_resp_wait(), 0.05)
        late_answer = late_vm.t_ok - t_kill if late_vm.state == HELD else None  # before a KA
        if bed:
            late_bed = await bed_late
            probe = await self.call(bed.stop_probe)
            record.update(probe_lost=probe["lost"], probe_max_gap_ms=probe["max_gap_ms"])
        await fabric.settle(quiet=0.5, timeout=10)
        new_rest = cluster.rest(new)
        after = await self.call(associated_vsis, new_rest)
        sim_lost = {
            str(uuid.UUID(bytes=vm.uuid))
            for vm in held_before
            if vm.state != HELD or vm.t_ok <= t_takeover
        }
        record["associations_lost"] = len((before - after) | sim_lost)
        record["lost_sim_vms"] = [  # where to look in the controllers' logs (a few)
            {"vsi": str(uuid.UUID(bytes=vm.uuid)), "port": _port_name(vm)}
            for vm in held_before
            if vm.state != HELD or vm.t_ok <= t_takeover
        ][:5]
        counters = {k: v - counters0[k] for k, v in self.counters().items()}
        record["keepalive_expiries"] = max(
            counters["expired"], await self.call(expired_since, new_rest, first_event)
        )
        record["stations"] = counters
        record["associate_during_failover"] = [
            {
                "where": "sim",
                "vsi": str(uuid.UUID(bytes=late_vm.uuid)),
                "port": _port_name(late_vm),
                "answered": late_vm.state == HELD,
                "answer_s": None if late_answer is None else round(late_answer, 3),
                "flows_work": late_vm.state == HELD and fabric.vm_forwarded(late_vm),
            }
        ]
        if bed:
            record["associate_during_failover"].append(
                {
                    "where": "bed",
                    "answered": late_bed["answered"],
                    "answer_s": late_bed["answer_s"],
                    "flows_work": late_bed["reaches_peer"],
                    **({"error": late_bed["error"]} if late_bed["error"] else {}),
                }
            )
        self.leader = (new, generation)
        await self.call(cluster.restart, old, self.args.setup_timeout)
        return record

    async def recover(self) -> None:
        """After a kill that did not complete: every member running again, whoever leads."""
        if self.bed is not None:
            await self.call(self.bed.stop_probe)
        for i in range(len(self.cluster.members)):
            if not self.cluster.alive(i):
                await self.call(self.cluster.restart, i, self.args.setup_timeout)
        self.leader = await self.call(self.cluster.leader, self.args.setup_timeout)


async def setup(run: Run) -> dict:
    """The controllers, the simulated fabric with its VMs associated, then the bed."""
    args, cluster, fabric = run.args, run.cluster, run.fabric
    out = {}
    t = time.perf_counter()
    await run.call(cluster.start, args.setup_timeout)
    run.leader = await run.call(cluster.leader, args.setup_timeout)
    out["controllers_s"] = round(time.perf_counter() - t, 3)
    fabric.reconnect = True
    await fabric.start(cluster.of_addresses())
    await run.wait(fabric.all_ready, "simulated switches not reconciled", args.setup_timeout)
    await run.wait(fabric.links_seen, "trunks not probed", args.setup_timeout)
    fabric.start_stations()
    await run.wait(
        lambda: fabric.evb_ready == len(fabric.stations), "EVB not negotiated", args.setup_timeout
    )
    t0 = fabric.start_associations(fabric.vms[: args.vms])
    await run.wait(lambda: fabric.resolved() >= args.vms, "VMs not associated", args.setup_timeout)
    s = fabric.stats
    out.update(
        associated_s=round(fabric.clock() - t0, 3),
        granted=s.granted,
        refused=s.refused,
        failed=s.failed,
    )
    if not args.no_bed:
        from bench.failover_bed import FailoverBed
        from bench.ovs_roles import OvsRoles

        run.ovs = OvsRoles()
        run.bed = FailoverBed([m.of_port for m in cluster.members], args.probe_rate)
        leader_rest = cluster.rest(run.leader[0])
        await run.call(run.bed.start, lambda: bed_switches_ready(leader_rest))
    out["total_s"] = round(time.perf_counter() - t, 3)
    return out


async def main_async(args) -> dict:
    work = Path(tempfile.mkdtemp(prefix="evb-failover-"))
    etcd = EtcdCluster(work / "etcd", 3)
    cluster = HaCluster(
        work,
        etcd.endpoints,
        f"/evb-failover/{secrets.token_hex(4)}",
        extra_args=[
            "--policies-dir",
            str(BENCH_POLICIES),
            "--evb-rka",
            str(args.bridge_rka),
            *shlex.split(args.controller_args),
        ],
        lease_ttl=args.lease_ttl,
    )
    fabric = Fabric(
        edges=args.edges,
        ports=args.ports,
        vms=args.vms + args.kills,
        rate=args.rate,
        station_rka=args.rka,
        name_prefix="s",  # beside the bed's agg1 and edge1
    )
    run = Run(args, cluster, fabric)
    result: dict = {
        "benchmark": "evb_failover",
        "machine": machine(),
        "code": code_version(),
        "parameters": {
            "vms": args.vms,
            "kills": args.kills,
            "edges": args.edges,
            "ports": args.ports,
            "aggs": 1,
            "controllers": 3,
            "etcd_members": 3,
            "lease_ttl_s": args.lease_ttl,
            "bridge_rka": args.bridge_rka,
            "bed": not args.no_bed,
            "probe_rate_pps": None if args.no_bed else args.probe_rate,
        },
    }
    kills: list[dict] = []
    try:
        await run.call(etcd.start)
        result["setup"] = await setup(run)
        result["negotiated"] = fabric.negotiated()
        _log(f"setup {result['setup']}")
        for n in range(1, args.kills + 1):
            try:
                record = await run.kill(n)
            except TimeoutError as error:
                record = {"n": n, "error": str(error)}
                await run.recover()
            kills.append(record)
            _log(json.dumps(record))
    finally:
        fabric.close()
        await asyncio.sleep(0.05)
        for part in (run.bed, run.ovs):
            if part is not None:
                await run.call(part.close)
        await run.call(cluster.stop)
        await run.call(etcd.stop)
        result["controller_logs"] = {
            cluster.controller_id(i): log_problems(m.log_path)
            for i, m in enumerate(cluster.members)
        }
        if args.keep_workdir:
            result["workdir"] = str(work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["kills"] = kills
    result["summary"] = summarize(kills)
    s = fabric.stats
    result["stations"] = {
        "ecp_retransmits": s.ecp_retransmits,
        "ecp_gave_up": s.ecp_gave_up,
        "keepalives_sent": s.ka_sent,
        "keepalives_unanswered": s.ka_unanswered,
        "expired": s.expired,
    }
    result["switch_messages"] = fabric.switch_counters()
    return result


def main(argv=None) -> int:
    result = interruptible.run(main_async, parse_args(argv), "bench.failover")
    if result is None:
        return 130
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
