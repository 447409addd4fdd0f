"""Scale benchmark: simulated OpenFlow switches and VDP stations against a real evb-nms.

What it simulates (bench/ofsim/, one asyncio event loop, messages parsed by hand with struct):

* N edge switches e1..eN (--switches) and --aggs aggregation switches agg1.. as OpenFlow 1.3
  clients over TCP: hello, features (distinct dpids), port-desc (P server ports eE-sP, one uplink
  eE-up per aggregation switch; aggA-dnE on the aggregation side), flow-stats / aggregate /
  meter-config multipart replies from what the switch holds, barrier and echo replies. Flow-mods
  (add, modify, delete, strict or not, cookie masks) and meter-mods (a deleted meter takes its
  flows along) are applied to per-switch tables keyed by (table, priority, match bytes).
  OFPT_ERROR only for a malformed message.
* The cables: a packet-out on a trunk port is a packet-in (OFPR_ACTION, in_port) at the peer, so
  the controller's LLDP probes find the edge-aggregation links.
* A station on every server port, like lldpad: LLDP with a station-mode EVB TLV, VDP once the
  bridge's EVB TLV came back (its R, RTE, RWD, RKA are the negotiated values); one VSI per ECP
  PDU, one PDU outstanding per port, retransmitted after 10us*2^RTE, given up after R retries;
  every bridge PDU ACKed. The next PDU goes on the ACK (--ecp-pacing ack, the default) or, as
  lldpad does, only when the ACK timer fires (--ecp-pacing timer: one PDU per 10us*2^RTE per
  port). Each VM (unique MAC and UUID, Manager ID mgr1, the bench VSI type, VID 0 or --vlans VIDs
  from --vid-base) sends one Associate; once granted, keep-alives (the same request with the
  VID granted) every 10us*2^max(--rka, bridge RKA). A request unanswered after the response
  wait (1.5 * ((1 + 2R) * 10us*2^RTE + 10us*2^RWD): 17.5 s for 3, 14, 20) fails, without retry.
  An unsolicited De-Associate of a held VM counts as expired.

Usage:

    .venv/bin/python -m bench.scale --switches 16 --ports 8 --vms 2000 [--aggs 1] [--rate R]
        [--hold SECONDS] [--rka E] [--vlans K] [--placement even|weighted] [--restart]
        [--timeout SECONDS] [--controller-args "--log-level WARNING"] [--py-spy FILE]
        [--ecp-pacing ack|timer] [--workdir-parent /dev/shm]
    .venv/bin/python -m bench.scale --connect HOST:PORT [--rest HOST:PORT] ...

Without --connect it starts evb-nms itself (free ports, a temporary working directory, the VSI
types of bench/policies/: type 900 version 1, no per-port/switch limits, VLANs 2-4094, default
100). With --connect, the controller must know the VSI type given (--type-id/--type-version).

It prints one JSON object:

* machine, code (commit, app/ modified), parameters, negotiated (EVB values the stations
  took from the bridge), setup (seconds to connect, reconcile, find links, negotiate EVB),
  duration_s;
* associations: requested, granted, refused (by VDP error code), failed (no response in time),
  expired (unsolicited De-Associate while held), late responses, VM states at the end;
* association_phase_s (first request to last answer) and throughput_per_s (granted / phase);
* latency_ms: from the first transmission of the Associate's ECP PDU to the VDP response for that
  VSI (p50/p99/max), overall and by_vms_held: the Associates answered while the VMs held were in
  each range up to 1 %, 10 %, 50 %, 100 % of --vms;
* ecp: ACK time (first transmission to ACK), retransmissions, give-ups, unexpected ACKs;
* keepalives: sent, answered, refused, unanswered, response time;
* flows: per switch at the end of the hold, once no flow-mod came for 1 s: per-edge
  min/median/max and the list, aggregation switches; checks independent of the pipeline's
  layout: each edge admits (eth_src) exactly its own held VMs' MACs and has an eth_dst entry for
  each; how many aggregation switches have one for every held VM (with several, only those on
  the controller's forwarding tree need to); stale_macs counts eth_dst entries for unicast MACs
  no station holds (e.g. answered after the station gave up);
* switch_messages: what the switches received, errors sent, frames dropped while disconnected;
* generator: its own CPU seconds (total, association phase, % of one core, per OpenFlow
  message handled or sent), RSS;
* controller (if started here): pid, RSS and peak RSS (VmRSS/VmHWM), CPU, errors in its log;
* controller_response_ms: the same Associates as the controller timed them (punted request to
  response sent, its `evb_nms_vdp_response_seconds` histogram, read after the association
  phase): p50/p99 interpolated within the buckets and the share above each bound from 100 ms.
  The difference from latency_ms is the generator's and the wire's part;
* hold (--hold): its length, the controller's CPU during it (seconds, % of one core) and the
  intent audit's work in it (`--controller-args "--audit-rate R"`, docs/faults.md): requests
  and requests/s, its last pass over every switch (s), the differences it repaired so far;
* restart (--restart): the controller is stopped (SIGTERM) and started again on the same
  database; the switches reconnect at once (every 0.1 s, no back-off) keeping their tables.
  reconciled_s: from spawning the new process until the last switch answered the barrier that
  follows the controller's reading of its flows and meters (its connect-time reconciliation);
  per switch the same from its TCP connect; the flow/meter mods received from connect to that
  barrier (the reconciliation's, and any change the controller made meanwhile, e.g. for VSIs
  that expired) and how many tables (flows and meters) came out identical to before the stop;
  associations_lost: VMs held before the restart that were not refreshed by a keep-alive
  answered by the new controller within one keep-alive period plus the response wait;
  controller_after: the new process's RSS and CPU (the figures under "controller" are the
  first process's, taken before the restart).
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import interruptible
from bench.ofsim.fabric import Fabric, summary_ms
from bench.ofsim.station import HELD

REPO = Path(__file__).resolve().parent.parent
BENCH_POLICIES = REPO / "bench" / "policies"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="bench.scale", description=__doc__.splitlines()[0])
    p.add_argument("--switches", type=int, default=4, help="edge switches (default 4)")
    p.add_argument("--ports", type=int, default=4, help="server ports per edge (default 4)")
    p.add_argument("--vms", type=int, default=100, help="VMs in all (default 100)")
    p.add_argument("--aggs", type=int, default=1, help="aggregation switches (default 1)")
    p.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="Associates per second in all (default: as fast as ECP allows)",
    )
    p.add_argument(
        "--hold",
        type=float,
        default=0.0,
        help="seconds to hold the VMs (keep-alives running) after the association "
        "phase (default 0)",
    )
    p.add_argument(
        "--rka",
        type=int,
        default=20,
        help="the stations' RKA exponent; negotiated: max(station, bridge)",
    )
    p.add_argument(
        "--vlans",
        type=int,
        default=0,
        help="0: every VM asks VID 0 (the bridge chooses); K: VIDs vid-base.. +K-1",
    )
    p.add_argument("--vid-base", type=int, default=100)
    p.add_argument(
        "--placement",
        choices=("even", "weighted"),
        default="even",
        help="even: round robin over edges; weighted: edge e gets a share ~ e",
    )
    p.add_argument("--type-id", type=int, default=900)
    p.add_argument("--type-version", type=int, default=1)
    p.add_argument("--manager", default="mgr1")
    p.add_argument(
        "--restart",
        action="store_true",
        help="then restart the controller and measure reconciliation",
    )
    p.add_argument("--connect", metavar="HOST:PORT", help="use a running controller")
    p.add_argument("--rest", metavar="HOST:PORT", help="its REST API (with --connect)")
    p.add_argument(
        "--controller-args",
        default="",
        help="extra arguments for the evb-nms started here (one string)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=0.0,
        help="give up the association phase after this many seconds (0: never)",
    )
    p.add_argument("--setup-timeout", type=float, default=120.0)
    p.add_argument(
        "--resp-wait",
        type=float,
        default=None,
        help="seconds a station waits for a VDP response (default: from the "
        "negotiated R, RTE, RWD: 17.5 s for 3, 14, 20)",
    )
    p.add_argument(
        "--ecp-pacing",
        choices=("ack", "timer"),
        default="ack",
        help="ack: a port's next PDU goes on the ACK (default); timer: on the ACK "
        "timer after the ACK, as lldpad (one PDU per 10us*2^RTE per port)",
    )
    p.add_argument(
        "--run-tag",
        type=int,
        default=None,
        help="0-255, part of every VM MAC/UUID (default 0; random with --connect)",
    )
    p.add_argument(
        "--no-check",
        action="store_true",
        help="skip the end-of-run MAC check of every flow (large runs)",
    )
    p.add_argument(
        "--py-spy",
        metavar="FILE",
        help="record the controller with py-spy during the association phase (and, with "
        "--restart, its successor's reconciliation in FILE-restart) "
        "(.svg flame graph, .txt collapsed stacks, .json speedscope)",
    )
    p.add_argument(
        "--py-spy-idle",
        action="store_true",
        help="with --py-spy: sample every thread, waiting ones too (wall time), "
        "not only the one holding the GIL (CPU time)",
    )
    p.add_argument("--keep-workdir", action="store_true")
    p.add_argument(
        "--workdir-parent",
        metavar="DIR",
        help="where the controller's working directory (its SQLite database) is "
        "made (default: the system's temporary directory; /dev/shm takes the "
        "disk's fsync out of the measurement)",
    )
    p.add_argument(
        "--progress",
        type=float,
        default=10.0,
        help="seconds between progress lines on stderr (0: none)",
    )
    args = p.parse_args(argv)
    if args.connect and (args.restart or args.py_spy):
        p.error("--restart and --py-spy need the controller started here")
    if not (1 <= args.switches and 1 <= args.ports and 1 <= args.aggs and args.vms >= 0):
        p.error("--switches, --ports and --aggs must be at least 1")
    return args


# process measurements ------------------------------------------------------------------------
def proc_status(pid: int) -> dict:
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = round(int(rest.split()[0]) / 1024, 1)
    except OSError:
        pass
    return values


def proc_cpu(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def own_rss_mb() -> float:
    return proc_status(os.getpid()).get("VmRSS", 0.0)


def code_version() -> dict:
    """The commit, and whether app/ differs from it: results belong to the code measured."""

    def git(*cmd):
        return subprocess.run(
            ["git", *cmd], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()

    try:
        return {
            "commit": git("rev-parse", "--short", "HEAD"),
            "app_modified": bool(git("status", "--porcelain", "--", "app")),
        }
    except (OSError, subprocess.SubprocessError):
        return {}


def machine() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def log_problems(path: Path) -> dict:
    counts = {"error_lines": 0, "warning_lines": 0, "tracebacks": 0}
    try:
        with open(path, "rb") as log:
            for line in log:
                if b" ERROR " in line:
                    counts["error_lines"] += 1
                elif b" WARNING " in line:
                    counts["warning_lines"] += 1
                if line.startswith(b"Traceback"):
                    counts["tracebacks"] += 1
    except OSError:
        pass
    return counts


class PySpy:
    def __init__(self, pid: int, output: str, idle: bool = False) -> None:
        exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        fmt = {".svg": "flamegraph", ".txt": "raw", ".json": "speedscope"}.get(
            Path(output).suffix, "raw"
        )
        # --gil: only the thread holding the GIL, i.e. where the controller's CPU goes (with
        # idle, every thread, waiting ones too: where its wall time goes);
        # --nonblocking: never pause the controller to sample it.
        which = ["--idle"] if idle else ["--gil"]
        self.proc = subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(pid),
                "--output",
                output,
                "--format",
                fmt,
                "--rate",
                "100",
                "--threads",
                "--nonblocking",
                *which,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# the run ------------------------------------------------------------------------------------
def _progress(fabric: Fabric, phase: str, t0: float) -> None:
    s = fabric.stats
    print(
        f"[{time.perf_counter() - t0:7.1f}s] {phase}: requested {s.requested} granted "
        f"{s.granted} refused {s.refused} failed {s.failed} expired {s.expired} held "
        f"{fabric.held} ka {s.ka_sent}/{s.ka_answered} retx {s.ecp_retransmits} "
        f"gave_up {s.ecp_gave_up}",
        file=sys.stderr,
        flush=True,
    )


async def _phase(
    fabric: Fabric, condition, timeout: float, name: str, every: float, t0: float
) -> bool:
    """Waits for `condition` (timeout 0: forever) with a progress line every `every` s."""
    deadline = time.perf_counter() + timeout if timeout else float("inf")
    while True:
        step = min(every or 3600.0, deadline - time.perf_counter())
        if await fabric.wait_for(condition, max(0.0, step), interval=0.05):
            return True
        if time.perf_counter() >= deadline:
            return False
        if every:
            _progress(fabric, name, t0)


async def run(args) -> dict:
    t_start = time.perf_counter()
    cpu_start = own_cpu()
    controller, workdir, extra = None, None, shlex.split(args.controller_args)
    loop = asyncio.get_running_loop()
    run_tag = (
        args.run_tag
        if args.run_tag is not None
        else (int.from_bytes(os.urandom(1), "big") if args.connect else 0)
    )
    fabric = Fabric(
        edges=args.switches,
        ports=args.ports,
        vms=args.vms,
        aggs=args.aggs,
        rate=args.rate,
        station_rka=args.rka,
        type_id=args.type_id,
        type_version=args.type_version,
        manager=args.manager,
        vlans=args.vlans,
        vid_base=args.vid_base,
        placement_mode=args.placement,
        run_tag=run_tag,
        resp_wait=args.resp_wait,
        pacing=args.ecp_pacing,
    )
    result = {
        "benchmark": "evb_scale",
        "machine": machine(),
        "code": code_version(),
        "parameters": {
            **fabric.params,
            "rate": args.rate or None,
            "hold_s": args.hold,
            "station_rka": args.rka,
            "vlans": args.vlans,
            "placement": args.placement,
            "type": [args.type_id, args.type_version],
            "manager": args.manager,
            "ecp_pacing": args.ecp_pacing,
            "controller": "connected" if args.connect else "started",
            "controller_args": extra,
            "restart": args.restart,
            "workdir_parent": args.workdir_parent or tempfile.gettempdir(),
        },
    }
    spy = None
    try:
        if args.connect:
            host, _, port = args.connect.rpartition(":")
            host, port, rest = host or "127.0.0.1", int(port), args.rest
        else:
            from topologies.controller_process import ControllerProcess, free_port

            workdir = Path(tempfile.mkdtemp(prefix="evb-scale-", dir=args.workdir_parent))
            controller = ControllerProcess(
                workdir,
                of_port=free_port(),
                rest_port=free_port(),
                extra_args=["--policies-dir", str(BENCH_POLICIES), *extra],
            )
            await loop.run_in_executor(None, controller.start, args.setup_timeout)
            host, port = "127.0.0.1", controller.of_port
            rest = f"127.0.0.1:{controller.rest_port}"
        setup = {}
        t = time.perf_counter()
        await fabric.start([(host, port)])
        setup["connected_s"] = round(time.perf_counter() - t, 3)
        if not await fabric.wait_for(fabric.all_ready, args.setup_timeout):
            raise RuntimeError(
                f"only {sum(s.ready for s in fabric.switches)} of "
                f"{len(fabric.switches)} switches reconciled"
            )
        setup["switches_ready_s"] = round(time.perf_counter() - t, 3)
        if not await fabric.wait_for(fabric.links_seen, args.setup_timeout):
            raise RuntimeError("the controller did not probe every trunk")
        if rest:  # the links known to the controller, not only probed
            want = args.switches * args.aggs
            await fabric.wait_for(lambda: _link_count(rest) >= want, args.setup_timeout, 0.2)
        setup["links_s"] = round(time.perf_counter() - t, 3)
        fabric.start_stations()
        if not await fabric.wait_for(
            lambda: fabric.evb_ready == len(fabric.stations), args.setup_timeout
        ):
            print(
                f"warning: {fabric.evb_ready} of {len(fabric.stations)} stations saw the "
                f"bridge's EVB TLV",
                file=sys.stderr,
            )
        setup["evb_negotiated_s"] = round(time.perf_counter() - t, 3)
        result["setup"] = setup
        result["negotiated"] = fabric.negotiated()

        # association phase
        if args.py_spy and controller:
            spy = PySpy(controller.proc.pid, args.py_spy, args.py_spy_idle)
        cpu0, ctl_cpu0 = own_cpu(), controller and proc_cpu(controller.proc.pid)
        msgs0 = fabric.message_count()
        t0 = fabric.start_associations()
        expected = fabric.expected()
        completed = await _phase(
            fabric,
            lambda: fabric.resolved() >= expected,
            args.timeout,
            "associate",
            args.progress,
            t0,
        )
        t1 = time.perf_counter()
        cpu1, ctl_cpu1 = own_cpu(), controller and proc_cpu(controller.proc.pid)
        msgs = fabric.message_count() - msgs0
        if spy:
            spy.stop()
            spy = None
        s = fabric.stats
        phase = (s.t_last_answer or t1) - t0
        result["associations"] = {
            "requested": s.requested,
            "granted": s.granted,
            "refused": s.refused,
            "refused_by_error": {str(k): v for k, v in sorted(s.refusals.items())},
            "failed": s.failed,
            "expired": s.expired,
            "late_responses": s.late_responses,
            "completed": completed,
        }
        result["association_phase_s"] = round(phase, 3)
        result["throughput_per_s"] = round(s.granted / phase, 1) if phase > 0 else None
        result["latency_ms"] = fabric.latency_report()
        phase_wall = t1 - t0
        result["generator"] = {
            "cpu_s_association": round(cpu1 - cpu0, 2),
            "cpu_percent_association": round(100 * (cpu1 - cpu0) / phase_wall, 1)
            if phase_wall > 0
            else None,
            "openflow_messages_association": msgs,
            "cpu_us_per_message": round(1e6 * (cpu1 - cpu0) / msgs, 1) if msgs else None,
        }
        if controller:
            result["controller"] = {
                "pid": controller.proc.pid,
                "cpu_s_association": round(ctl_cpu1 - ctl_cpu0, 2),
                "cpu_percent_association": round(100 * (ctl_cpu1 - ctl_cpu0) / phase_wall, 1)
                if phase_wall > 0
                else None,
            }

        if rest:  # the controller's own view of the same Associates (no generator in it)
            result["controller_response_ms"] = await loop.run_in_executor(
                None, _controller_response_ms, rest
            )

        # hold
        if args.hold:
            audit0 = await loop.run_in_executor(None, _audit_counters, rest) if rest else None
            hold_cpu0, hold_t0 = controller and proc_cpu(controller.proc.pid), time.perf_counter()
            await _phase(fabric, lambda: False, args.hold, "hold", args.progress, t0)
            held_s = time.perf_counter() - hold_t0
            result["hold"] = {"s": round(held_s, 1)}
            if controller:
                cpu = proc_cpu(controller.proc.pid) - hold_cpu0
                result["hold"]["controller_cpu_s"] = round(cpu, 2)
                result["hold"]["controller_cpu_percent"] = round(100 * cpu / held_s, 1)
            if audit0 is not None:
                audit1 = await loop.run_in_executor(None, _audit_counters, rest)
                requests = audit1["requests"] - audit0["requests"]
                result["hold"]["audit"] = {
                    **audit1,
                    "requests": requests,
                    "requests_per_s": round(requests / held_s, 2),
                }
        await fabric.settle()
        result["flows"] = fabric.flows_report(check=not args.no_check)
        if controller:
            result["controller"].update(_controller_now(controller))

        if args.restart:

            def adopt(new):  # the new process is ours to stop from the moment it exists
                nonlocal controller
                controller = new

            result["restart"] = await _restart(fabric, controller, extra, args, rest, adopt)
            await fabric.settle()
            result["flows_after_restart"] = fabric.flows_report(check=not args.no_check)

        # drain: no new keep-alives; the ones in flight get their answer or time out
        fabric.keepalives = False
        await fabric.wait_for(
            lambda: fabric.keepalives_in_flight() == 0, fabric.max_resp_wait(), 0.2
        )
        s = fabric.stats
        result["associations"].update(
            expired=s.expired, late_responses=s.late_responses, states_at_end=fabric.states()
        )
        result["ecp"] = {
            "ack_ms": summary_ms(s.ecp_ack_times.values),
            "retransmits": s.ecp_retransmits,
            "gave_up": s.ecp_gave_up,
            "acks_unexpected": s.ecp_acks_unexpected,
            "bridge_duplicates_received": s.ecp_duplicates_rx,
        }
        result["keepalives"] = {
            "sent": s.ka_sent,
            "answered": s.ka_answered,
            "refused": s.ka_refused,
            "unanswered": s.ka_unanswered,
            "response_ms": summary_ms(s.ka_times.values),
        }
        result["vdp_other"] = {
            "unknown_vsi": s.vdp_unknown,
            "unexpected": s.vdp_unexpected,
            "frames_ignored": s.frames_ignored,
        }
        result["switch_messages"] = fabric.switch_counters()
        if controller and args.restart:
            result["restart"]["controller_after"] = _controller_now(controller)
        elif controller:
            result["controller"].update(_controller_now(controller))
    finally:
        if spy:
            spy.stop()
        fabric.close()
        await asyncio.sleep(0.05)
        if controller is not None:
            await loop.run_in_executor(None, controller.stop)
            result.setdefault("controller", {})["log"] = log_problems(controller.log_path)
            if args.keep_workdir:
                result["controller"]["workdir"] = str(workdir)
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    cpu_total = own_cpu() - cpu_start
    duration = time.perf_counter() - t_start
    result.setdefault("generator", {}).update(
        cpu_s_total=round(cpu_total, 2),
        cpu_percent_total=round(100 * cpu_total / duration, 1),
        rss_mb=own_rss_mb(),
    )
    result["duration_s"] = round(duration, 2)
    return result


def _controller_now(controller) -> dict:
    pid = controller.proc.pid
    status = proc_status(pid)
    return {
        "pid": pid,
        "rss_mb": status.get("VmRSS"),
        "rss_peak_mb": status.get("VmHWM"),
        "cpu_s_total": proc_cpu(pid),
    }


def _controller_response_ms(rest: str) -> dict | None:
    """From the controller's evb_nms_vdp_response_seconds{mode="associate"} histogram (request
    punted -> response sent, app/metrics.py): the count, p50 and p99 interpolated within the
    buckets as Prometheus's histogram_quantile does, and the share above each bucket bound from
    0.1 s. None when the controller has no metrics."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    try:
        with urllib.request.urlopen(f"http://{rest}/metrics", timeout=30) as response:
            text = response.read().decode()
    except OSError:
        return None
    buckets = sorted(
        (float(sample.labels["le"]), sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "evb_nms_vdp_response_seconds"
        for sample in family.samples
        if sample.name.endswith("_bucket") and sample.labels.get("mode") == "associate"
    )
    if not buckets or not buckets[-1][1]:
        return None
    total = buckets[-1][1]

    def quantile(q: float) -> float:
        rank, lower, below = q * total, 0.0, 0.0
        for bound, count in buckets:
            if count >= rank:
                if bound == float("inf"):
                    return lower * 1000
                return 1000 * (lower + (bound - lower) * (rank - below) / max(count - below, 1))
            lower, below = bound, count
        return lower * 1000

    return {
        "n": int(total),
        "p50_est": round(quantile(0.5), 1),
        "p99_est": round(quantile(0.99), 1),
        "share_above_ms": {
            str(int(bound * 1000)): round(1 - count / total, 4)
            for bound, count in buckets
            if 0.1 <= bound < float("inf")
        },
    }


def _audit_counters(rest: str) -> dict:
    """The intent audit's requests so far, its last pass (s) and the differences it repaired,
    from the controller's metrics (app/metrics.py)."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{rest}/metrics", timeout=30) as response:
        text = response.read().decode()
    found: dict = {"requests": 0.0, "pass_s": None, "differences": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "evb_nms_audit_requests_total":
                found["requests"] = sample.value
            elif sample.name == "evb_nms_audit_pass_seconds":
                found["pass_s"] = round(sample.value, 2) or None
            elif sample.name == "evb_nms_audit_differences_total":
                found["differences"] += sample.value
    return found


def _rest_get(rest: str, path: str, timeout: float = 60.0):
    import urllib.request

    with urllib.request.urlopen(f"http://{rest}{path}", timeout=timeout) as response:
        return json.loads(response.read())


def _link_count(rest: str) -> int:
    try:
        return len(_rest_get(rest, "/v1/links", timeout=5))
    except OSError:
        return 0


async def _associations_held(rest: str) -> int | None:
    loop = asyncio.get_running_loop()
    try:
        vsis = await loop.run_in_executor(None, _rest_get, rest, "/v1/associations")
    except (OSError, ValueError):
        return None
    return sum(1 for v in vsis if v.get("state") == "associated")


async def _restart(fabric: Fabric, controller, extra, args, rest, adopt) -> dict:
    """Stops the controller, starts it again on the same database and ports, and measures how
    long until every switch is reconciled and which associations survived."""
    from topologies.controller_process import ControllerProcess

    loop = asyncio.get_running_loop()
    report = {"controller_associations_before": await _associations_held(rest)}
    digests = {sw.name: sw.table.digest() for sw in fabric.switches}
    held_before = [vm for vm in fabric.vms if vm.state == HELD]
    fabric.reconnect = True
    t_stop = fabric.clock()
    await loop.run_in_executor(None, controller.stop)
    report["stop_s"] = round(fabric.clock() - t_stop, 3)
    new = ControllerProcess(
        controller.workdir,
        controller.of_port,
        controller.rest_port,
        extra_args=["--policies-dir", str(BENCH_POLICIES), *extra],
    )
    adopt(new)
    t_spawn = fabric.clock()
    await loop.run_in_executor(None, new.start, args.setup_timeout)
    t_listen = fabric.clock()
    report["listening_s"] = round(t_listen - t_spawn, 3)
    spy = None
    if args.py_spy:  # reconciliation: from listening to every switch ready
        path = Path(args.py_spy)
        spy = PySpy(new.proc.pid, str(path.with_stem(path.stem + "-restart")), args.py_spy_idle)
    ok = await fabric.wait_for(fabric.all_ready, args.setup_timeout)
    if spy:
        spy.stop()
    ready = [sw for sw in fabric.switches if sw.ready and sw.t_ready > t_spawn]
    report["switches_reconciled"] = len(ready)
    report["switches"] = len(fabric.switches)
    if ready:
        report["reconciled_s"] = round(max(sw.t_ready for sw in ready) - t_spawn, 3) if ok else None
        per_switch = sorted(sw.t_ready - sw.t_connected for sw in ready)
        report["per_switch_from_connect_ms"] = summary_ms(per_switch)
        report["flow_and_meter_mods_sent_by_reconciliation"] = sum(sw.mods_to_ready for sw in ready)
        report["tables_unchanged"] = sum(sw.table.digest() == digests[sw.name] for sw in ready)
    # Every VM held before must be refreshed by the new controller: its next keep-alive
    # answered after the restart (at most one keep-alive period plus the response wait away).
    interval = max((st.ka_interval for st in fabric.stations), default=10.0)
    await fabric.wait_for(
        lambda: all(vm.state != HELD or vm.t_ok > t_listen for vm in held_before),
        interval + fabric.max_resp_wait() + 5,
        0.2,
    )
    report["vms_held_before"] = len(held_before)
    report["associations_lost"] = sum(
        1 for vm in held_before if vm.state != HELD or vm.t_ok <= t_listen
    )
    report["controller_associations_after"] = await _associations_held(rest)
    return report


def main(argv=None) -> int:
    result = interruptible.run(run, parse_args(argv), "bench.scale")
    if result is None:
        return 130
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
