"""`evb-datacenter`: the product on one machine. Starts evb-nms, waits for its OpenFlow socket,
brings up the default data center with VMs and an lldpad station on every server, and shows the
controller's events until Ctrl-C; then stops everything it started (by PID) and removes the net.
With --store etcd: a 3-member etcd cluster and --controllers N controllers on it, every switch
connected to each, the one leading shown as it changes (docs/ha.md).
"""

import argparse
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from topologies.controller_process import ControllerProcess
from topologies.ha_cluster import ha_cluster, running

DEFAULT_WORKDIR = Path("var")
MAX_CONTROLLERS = 9


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="evb-datacenter",
        description="Run the evb-nms controller with the default Mininet data center (agg1, "
        "edge switches, servers with VMs and lldpad VDP stations) until Ctrl-C.",
    )
    parser.add_argument("--edges", type=int, default=2, help="edge switches (default 2)")
    parser.add_argument(
        "--servers-per-edge", type=int, default=2, help="servers on each edge (default 2)"
    )
    parser.add_argument(
        "--vms-per-server", type=int, default=2, help="VMs created on each server (default 2)"
    )
    parser.add_argument(
        "--no-stations",
        action="store_true",
        help="do not start lldpad on the servers (and associate no VM)",
    )
    parser.add_argument(
        "--no-associate",
        action="store_true",
        help="start the stations but let no VM ask for an association",
    )
    parser.add_argument(
        "--of-port",
        type=int,
        default=6653,
        help="controller OpenFlow port (default 6653; controller i of several: PORT + i - 1)",
    )
    parser.add_argument(
        "--rest-port",
        type=int,
        default=8080,
        help="controller REST port on 127.0.0.1 (default 8080; controller i: PORT + i - 1)",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "etcd"),
        default="sqlite",
        help="sqlite (default): one controller, its database in the workdir; etcd: a 3-member "
        "etcd cluster in WORKDIR/etcd (scripts/etcd-cluster.sh, free loopback ports) and "
        "the controllers on it, one of them leading",
    )
    parser.add_argument(
        "--controllers",
        type=int,
        default=1,
        help="with --store etcd: how many controllers (default 1); each in WORKDIR/c<i>",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR,
        help="where the controller's database and log go (default var/)",
    )
    parser.add_argument(
        "--all-events", action="store_true", help="show every controller log line, not only events"
    )
    parser.add_argument(
        "controller_args",
        nargs="*",
        metavar="-- EVB-NMS-ARG",
        help="further arguments for evb-nms after --, e.g. -- --policies-dir DIR",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.controllers <= MAX_CONTROLLERS:
        parser.error(f"--controllers: 1 to {MAX_CONTROLLERS}, got {args.controllers}")
    if args.controllers > 1 and args.store != "etcd":
        parser.error("several controllers share their state in etcd: add --store etcd")
    return args


def vm_plan(spec, vms_per_server):
    """(name, server, mac, ip) of every VM: vm<edge><server><i>, all in 10.0.0.0/16."""
    plan = []
    for edge_no, edge in enumerate(spec.edges, start=1):
        for srv_no, srv in enumerate(edge.servers, start=1):
            for i in range(1, vms_per_server + 1):
                plan.append(
                    (
                        f"vm{edge_no}{srv_no}{i}",
                        srv.name,
                        f"52:54:00:{edge_no:02x}:{srv_no:02x}:{i:02x}",
                        f"10.0.{edge_no}.{srv_no * 16 + i}/16",
                    )
                )
    return plan


# The demo's VMs ask for VSI type 5 v4 ("web" in policies/default.yaml); one rogue VM asks for a
# type nobody defined, to show a refusal.
DEMO_TYPE = (5, 4)
ROGUE = ("vmrogue", "52:54:00:ff:ff:01", "10.0.255.1/16", (99, 1))


def associate_demo(dc, stations, vms_per_server):
    """Every VM of the plan asks its server's station for an association, plus the rogue VM."""
    for station in stations.values():
        if not station.wait_vdp_ready(10):
            print(f"station on {station.server.name}: VDP not enabled (no bridge EVB TLV seen)")
    requests = [
        (name, server, mac, DEMO_TYPE) for name, server, mac, _ in vm_plan(dc.spec, vms_per_server)
    ]
    rogue_server = dc.spec.servers[-1].name
    dc.add_vm(ROGUE[0], rogue_server, ROGUE[1], ROGUE[2])
    requests.append((ROGUE[0], rogue_server, ROGUE[1], ROGUE[3]))
    for n, (name, server, mac, (type_id, version)) in enumerate(requests, start=1):
        result = stations[server].vdp(
            "assoc",
            "mgr1",
            type_id,
            version,
            f"a1b2c3d4-0000-0000-0000-{n:012x}",
            filters=[f"0-{mac}"],
        )
        verdict = (
            f"admitted, VLAN {result.fields.get('filter', '?').split('-')[0]}"
            if result.ok
            else f"refused ({result.error})"
        )
        print(f"vm {name} type {type_id} v{version}: {verdict}", flush=True)


def _follow(path: Path, start: int, show_all: bool, stop: threading.Event, tag: str) -> None:
    """Print the controller's log as it grows from offset start (its events, unless show_all),
    each line after tag (which controller)."""
    while not path.exists() and not stop.is_set():
        time.sleep(0.1)
    with open(path, errors="replace") as log:
        log.seek(start)
        while not stop.is_set():
            line = log.readline()
            if not line:
                time.sleep(0.1)
                continue
            if show_all or "event=" in line:
                shown = line if show_all else line[line.find("event=") :]
                print(tag + shown, end="", flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _show_leader(controllers, stop: threading.Event) -> None:
    """Print the leader each time it changes (as the controllers answer GET /v1/ha)."""
    shown = ""
    while not stop.wait(0.5):
        leader = controllers.leader()
        line = (
            f"leader: {leader} (REST http://127.0.0.1:{controllers.members[leader].rest_port}/v1/)"
            if leader
            else "leader: none yet (election under way)"
        )
        if line != shown:
            print(line, flush=True)
            shown = line


def _controllers(args):
    """(etcd, controllers, members): with --store etcd the etcd cluster and the controllers c<i>
    (etcd and controllers None otherwise); members, the ControllerProcess of each by name."""
    workdir = args.workdir.resolve()
    if args.store != "etcd":
        single = ControllerProcess(
            workdir,
            of_port=args.of_port,
            rest_port=args.rest_port,
            extra_args=list(args.controller_args),
        )
        return None, None, {"evb-nms": single}
    etcd, controllers = ha_cluster(
        workdir,
        [args.of_port + i for i in range(args.controllers)],
        [args.rest_port + i for i in range(args.controllers)],
        extra_args=list(args.controller_args),
    )
    return etcd, controllers, controllers.members


def _log_followers(members, show_all: bool, stop: threading.Event, tagged: bool):
    """A thread per controller showing its log (not started); the logs are kept across runs:
    only what this run writes is shown, tagged with the controller's name if asked."""
    return [
        threading.Thread(
            target=_follow,
            daemon=True,
            args=(
                member.log_path,
                member.log_path.stat().st_size if member.log_path.exists() else 0,
                show_all,
                stop,
                f"[{name}] " if tagged else "",
            ),
        )
        for name, member in members.items()
    ]


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    # Import late: --help must work before Mininet is installed.
    from topologies.datacenter import datacenter

    signal.signal(signal.SIGTERM, _interrupt)  # a TERM cleans up like Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with INT ignored
    etcd, controllers, members = _controllers(args)
    stop = threading.Event()
    followers = _log_followers(members, args.all_events, stop, tagged=controllers is not None)
    try:
        with ExitStack() as started:
            for name, member in members.items():
                print(
                    f"starting {name} (OpenFlow 127.0.0.1:{member.of_port}, REST "
                    f"http://127.0.0.1:{member.rest_port}/v1/, log {member.log_path}) ...",
                    flush=True,
                )
            if controllers is None:
                started.callback(members["evb-nms"].stop)
                members["evb-nms"].start()
            else:
                print(f"starting etcd ({etcd.members} members, {etcd.directory}) ...", flush=True)
                started.enter_context(running(etcd, controllers))
                threading.Thread(target=_show_leader, daemon=True, args=(controllers, stop)).start()
            started.callback(stop.set)  # the logs and the leader no longer shown as they stop
            for name, member in members.items():
                print(f"{name} runs, PID {member.proc.pid}", flush=True)
            for follower in followers:
                follower.start()
            dc = started.enter_context(
                datacenter(
                    controller_port=[member.of_port for member in members.values()],
                    edges=args.edges,
                    servers_per_edge=args.servers_per_edge,
                )
            )
            for name, server, mac, ip in vm_plan(dc.spec, args.vms_per_server):
                dc.add_vm(name, server, mac, ip)
                print(f"vm {name} on {server}: {mac} {ip}", flush=True)
            if not args.no_stations:
                stations = {srv.name: dc.add_station(srv.name) for srv in dc.spec.servers}
                print(f"lldpad stations started on {len(stations)} servers", flush=True)
                if not args.no_associate:
                    associate_demo(dc, stations, args.vms_per_server)
            print(
                f"running; REST API on http://127.0.0.1:{args.rest_port}/v1/"
                + (" (every controller answers it)" if len(members) > 1 else "")
                + " ; Ctrl-C stops everything",
                flush=True,
            )
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print("\nstopping ...", flush=True)  # before the stops below, which take a while
    except KeyboardInterrupt:
        print("\nstopped while starting", flush=True)
    except (RuntimeError, TimeoutError) as err:
        tails = "".join(member.log_text()[-2000:] for member in members.values())
        print(f"evb-datacenter: {err}\n{tails}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
