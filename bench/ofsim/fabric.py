"""The simulated data center: switches, the cables between them, a station on every server port,
the VMs, and one event loop driving them all.

Topology: `aggs` aggregation switches aggN (dpid base+N, port aggN-dnE towards edge E) and
`edges` edge switches eE (dpid base+0x10000+E) with server ports eE-s1..eE-sP (1..P) and one
uplink per aggregation switch, eE-up (or eE-up1, eE-up2, ... with several), numbered P+1...
Port names match the controller's default trunk patterns (*-up*, *-dn*).

Timers (ECP retransmission, response timeouts, keep-alives, the rate limiter's refill) live in
one heap served by one periodic tick, not one asyncio handle each.
"""

import asyncio
import heapq
import itertools
import random
import statistics
import sys
import time
import traceback
from array import array
from collections import deque

from bench.ofsim import ofwire as w
from bench.ofsim.station import ENDED, EXPIRED, FAILED, HELD, NEW, PENDING, REFUSED, Station, Vm
from bench.ofsim.switch import SERVER, TRUNK, SimSwitch, SwitchConnection

TICK = 0.005
DPID_BASE = 0x0005CA1E << 32
LLDP_INTERVAL = 30.0  # lldpad's msgTxInterval
SAMPLE_LIMIT = 200_000  # per reservoir of timings that can grow with the hold time
# OXM headers of eth_dst and eth_src (exact): the end-of-run check reads the MACs flows match.
OXM_ETH_DST = bytes.fromhex("80000606")
OXM_ETH_SRC = bytes.fromhex("80000806")


class Samples:
    """Timings: all of them up to SAMPLE_LIMIT, then a uniform reservoir (bounded memory)."""

    __slots__ = ("values", "count", "_rng")

    def __init__(self) -> None:
        self.values = array("d")
        self.count = 0
        self._rng = random.Random(1)

    def append(self, value: float) -> None:
        self.count += 1
        if len(self.values) < SAMPLE_LIMIT:
            self.values.append(value)
        else:
            slot = self._rng.randrange(self.count)
            if slot < SAMPLE_LIMIT:
                self.values[slot] = value


class Stats:
    COUNTERS = (
        "requested",
        "granted",
        "refused",
        "failed",
        "expired",
        "late_responses",
        "vdp_unknown",
        "vdp_unexpected",
        "frames_ignored",
        "ecp_retransmits",
        "ecp_gave_up",
        "ecp_acks_unexpected",
        "ecp_duplicates_rx",
        "ka_sent",
        "ka_answered",
        "ka_refused",
        "ka_unanswered",
    )

    def __init__(self) -> None:
        for name in self.COUNTERS:
            setattr(self, name, 0)
        self.refusals: dict[int, int] = {}
        self.t_last_answer = 0.0
        self.latency = array("d")  # per answered Associate, seconds
        self.held_at = array("l")  # VMs held when it was answered
        self.ecp_ack_times = Samples()
        self.ka_times = Samples()

    def counters(self) -> dict:
        return {name: getattr(self, name) for name in self.COUNTERS}


def percentile(ordered, fraction: float) -> float:
    return ordered[max(0, min(len(ordered) - 1, int(-(-fraction * len(ordered) // 1)) - 1))]


def summary_ms(values) -> dict | None:
    if not len(values):
        return None
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50": round(1000 * percentile(ordered, 0.5), 2),
        "p99": round(1000 * percentile(ordered, 0.99), 2),
        "max": round(1000 * ordered[-1], 2),
    }


def placement(edges: int, ports: int, vms: int, mode: str):
    """(edge index, port number) of every VM. even: round robin over the edges, then their
    ports; weighted: edge e (0-based) gets a share proportional to e + 1."""
    if mode == "even":
        for i in range(vms):
            yield i % edges, (i // edges) % ports + 1
        return
    weights = list(range(1, edges + 1))
    cycle = [e for e, weight in enumerate(weights) for _ in range(weight)]
    counters = [0] * edges
    for i in range(vms):
        e = cycle[i % len(cycle)]
        yield e, counters[e] % ports + 1
        counters[e] += 1


class Fabric:
    def __init__(
        self,
        *,
        edges: int,
        ports: int,
        vms: int,
        aggs: int = 1,
        rate: float = 0.0,
        station_rka: int = 20,
        type_id: int = 900,
        type_version: int = 1,
        manager: str = "mgr1",
        vlans: int = 0,
        vid_base: int = 100,
        placement_mode: str = "even",
        run_tag: int = 0,
        resp_wait: float | None = None,
        pacing: str = "ack",
        dpid_base: int = DPID_BASE,
        name_prefix: str = "",
    ) -> None:
        from app.codec.builders import build_bridge_lldp_frame  # building only, never parsing
        from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat
        from app.codec.lldp import PortId

        self.clock = time.perf_counter
        self.loop: asyncio.AbstractEventLoop | None = None
        self.addresses: list[tuple[str, int]] = []  # the controllers, each switch connects to all
        self.stats = Stats()
        self.dirty: list[SwitchConnection] = []  # connections with output to flush
        self._timers: list = []
        self._seq = itertools.count()
        # --rate is how fast VMs start (the VM manager's pace): a started VM's Associate joins
        # its station's ECP queue, where keep-alives of the VMs already held take their turn.
        self.rate = float(rate)
        self.tokens = 0.0
        self._burst = max(1.0, self.rate * 0.1)
        self._last_refill = 0.0
        self.to_start: deque = deque()
        self.keepalives = True
        self.reconnect = False
        self.closed = False
        self.errors = 0
        self.held = 0
        self.evb_ready = 0
        self.trunk_seen: set = set()
        self.type_id3 = type_id.to_bytes(3, "big")
        self.type_version = type_version
        self.manager_id = manager.encode().ljust(16, b"\0")[:16]
        self.params = {"edges": edges, "ports": ports, "vms": vms, "aggs": aggs}
        self.station_rka = station_rka
        # None: each station waits what its negotiated EVB values give (station.response_wait)
        self.resp_wait = resp_wait
        self.pace_by_timer = pacing == "timer"

        # name_prefix: beside another fabric on the same controller (a Mininet bed's agg1)
        self.aggs = [
            SimSwitch(self, f"{name_prefix}agg{a}", dpid_base + a, a) for a in range(1, aggs + 1)
        ]
        self.edges = [
            SimSwitch(self, f"{name_prefix}e{e}", dpid_base + 0x10000 + e, 0x1000 + e)
            for e in range(1, edges + 1)
        ]
        self.switches = self.aggs + self.edges
        self.trunks = []  # (switch, port) of every trunk end
        for e, edge in enumerate(self.edges, 1):
            for p in range(1, ports + 1):
                edge.add_port(p, f"{edge.name}-s{p}", SERVER)
            for a, agg in enumerate(self.aggs, 1):
                up = ports + a
                edge.add_port(up, f"{edge.name}-up" + (str(a) if aggs > 1 else ""), TRUNK)
                agg.add_port(e, f"{agg.name}-dn{e}", TRUNK)
                edge.peers[up] = (agg, e)
                agg.peers[e] = (edge, up)
                self.trunks += [(edge, up), (agg, e)]
        self.stations: list[Station] = []
        for edge in self.edges:
            for p in range(1, ports + 1):
                mac = bytes([0x02, 0x5E, edge.index >> 8, edge.index & 0xFF, p >> 8, p & 0xFF])
                text = ":".join(f"{b:02x}" for b in mac)
                tlv = EvbTlv(
                    mode=EvbMode.STATION,
                    rrreq=True,
                    rrstat=RrStat.UNKNOWN,
                    r=3,
                    rte=14,
                    rwd=20,
                    rka=station_rka,
                )
                frame = build_bridge_lldp_frame(text, PortId.from_mac(text), 120, tlv)
                station = Station(self, edge, p, mac, frame)
                edge.stations[p] = station
                self.stations.append(station)
        self.vms: list[Vm] = []
        self.vms_by_id: dict[bytes, Vm] = {}
        tag = run_tag & 0xFF
        for i, (e, p) in enumerate(placement(edges, ports, vms, placement_mode)):
            station = self.edges[e].stations[p]
            uuid = b"\x5c\xa1\xab\x1e" + tag.to_bytes(4, "big") + i.to_bytes(8, "big")
            mac = bytes([0x52, 0x54, tag]) + i.to_bytes(3, "big")
            vid = vid_base + i % vlans if vlans else 0
            vm = Vm(i, uuid, mac, vid, station)
            station.vms.append(vm)
            self.vms.append(vm)
            self.vms_by_id[uuid] = vm

    # the loop --------------------------------------------------------------------------------
    def after(self, when: float, fn, *args) -> None:
        heapq.heappush(self._timers, (when, next(self._seq), fn, args))

    def flush(self) -> None:
        for conn in self.dirty:
            conn.flush()
        self.dirty.clear()

    def _tick(self) -> None:
        now = self.clock()
        timers = self._timers
        try:
            while timers and timers[0][0] <= now:
                _, _, fn, args = heapq.heappop(timers)
                try:
                    fn(now, *args)
                except Exception:  # one bad timer must not stop the others
                    self.internal_error()
            if self.to_start:
                self.tokens = min(self._burst, self.tokens + self.rate * (now - self._last_refill))
                self._last_refill = now
                to_start = self.to_start
                while self.tokens >= 1 and to_start:
                    self.tokens -= 1
                    vm = to_start.popleft()
                    vm.station.enqueue(vm, now)
        finally:
            self.flush()
            if not self.closed:
                self.loop.call_later(TICK, self._tick)

    def internal_error(self) -> None:
        """A bug in the generator: counted (the JSON reports it), the first few printed."""
        self.errors += 1
        if self.errors <= 5:
            traceback.print_exc(file=sys.stderr)

    def schedule_keepalive(self, vm: Vm, now: float) -> None:
        if self.keepalives:
            self.after(now + vm.station.ka_interval, self._keepalive_due, vm)

    def _keepalive_due(self, now: float, vm: Vm) -> None:
        if vm.state == HELD and self.keepalives and not vm.t_ka:
            vm.station.enqueue(vm, now)

    def _lldp_round(self, now: float) -> None:
        for station in self.stations:
            station.send_lldp()
        self.after(now + LLDP_INTERVAL, self._lldp_round)

    # events from switches and stations ----------------------------------------------------
    def on_disconnect(self, sw: SimSwitch, controller: int) -> None:
        if self.reconnect and self.loop is not None:
            self.loop.create_task(self._connect_retrying(sw, controller))

    def on_trunk_frame(self, sw: SimSwitch, port_no: int) -> None:
        self.trunk_seen.add((sw.dpid, port_no))

    def on_evb(self, station: Station, now: float) -> None:
        self.evb_ready += 1

    # phases ------------------------------------------------------------------------------
    async def _connect(self, sw: SimSwitch, controller: int) -> None:
        host, port = self.addresses[controller]
        await self.loop.create_connection(lambda: SwitchConnection(sw, controller), host, port)

    async def _connect_retrying(self, sw: SimSwitch, controller: int, interval=0.1) -> None:
        """Reconnects like a switch whose controller went away, but without Open vSwitch's
        1..8 s back-off, so the time measured is the controller's, not the back-off's."""
        while self.reconnect and controller not in sw.conns:
            try:
                await self._connect(sw, controller)
                return
            except OSError:
                await asyncio.sleep(interval)

    async def wait_for(self, condition, timeout: float, interval: float = 0.02) -> bool:
        deadline = self.clock() + timeout
        while not condition():
            if self.clock() >= deadline:
                return False
            await asyncio.sleep(interval)
        return True

    async def start(self, addresses: list[tuple[str, int]]) -> None:
        """Every switch connects to every controller."""
        self.loop = asyncio.get_running_loop()
        self.addresses = list(addresses)
        self.loop.call_later(TICK, self._tick)
        await asyncio.gather(
            *(self._connect(sw, c) for sw in self.switches for c in range(len(self.addresses)))
        )

    def all_ready(self) -> bool:
        return all(sw.ready for sw in self.switches)

    def links_seen(self) -> bool:
        return len(self.trunk_seen) == len(self.trunks)

    def start_stations(self) -> None:
        """Every station sends its LLDPDU (then every 30 s, as lldpad)."""
        self._lldp_round(self.clock())
        self.flush()

    def start_associations(self, vms=None) -> float:
        """Starts the VMs (`vms`, default all) whose station can: all at once, or --rate per
        second in index order (which alternates edges and ports)."""
        now = self.clock()
        ready = [vm for vm in (self.vms if vms is None else vms) if vm.station.evb_seen]
        if self.rate:
            self.to_start.extend(ready)
            self.tokens, self._last_refill = 1.0, now
            return now
        for vm in ready:
            vm.station.enqueue(vm, now)
        self.flush()
        return now

    def resolved(self) -> int:
        s = self.stats
        return s.granted + s.refused + s.failed

    def expected(self) -> int:
        """VMs whose station could start VDP (it has seen the bridge's EVB TLV)."""
        return sum(len(st.vms) for st in self.stations if st.evb_seen)

    def pending(self) -> int:
        return sum(vm.state == PENDING for vm in self.vms)

    def keepalives_in_flight(self) -> int:
        return sum(1 for vm in self.vms if vm.state == HELD and vm.t_ka)

    def message_count(self) -> int:
        """OpenFlow messages received and sent by all switches so far."""
        return sum(sum(sw.msgs_in) + sw.msgs_out for sw in self.switches)

    def mods_received(self) -> int:
        return sum(sw.table.flow_mods + sw.table.meter_mods for sw in self.switches)

    async def settle(self, quiet: float = 1.0, timeout: float = 15.0) -> bool:
        """Waits until no flow-mod or meter-mod arrived for `quiet` seconds: changes the
        controller made after the last response (another switch, a refusal taken back) are in."""
        deadline = self.clock() + timeout
        last, since = self.mods_received(), self.clock()
        while self.clock() < deadline:
            await asyncio.sleep(0.1)
            now, mods = self.clock(), self.mods_received()
            if mods != last:
                last, since = mods, now
            elif now - since >= quiet:
                return True
        return False

    def negotiated(self) -> dict:
        """The EVB values the stations took from the bridge's TLV (min..max over stations)."""
        seen = [st for st in self.stations if st.evb_seen]
        if not seen:
            return {}
        out = {}
        for name, get in (
            ("r", lambda st: st.r),
            ("rte", lambda st: st.rte),
            ("rka", lambda st: st.rka),
            ("keepalive_interval_s", lambda st: round(st.ka_interval, 3)),
            ("ecp_retransmit_s", lambda st: round(st.retransmit, 4)),
            ("response_wait_s", lambda st: round(self.resp_wait or st.resp_wait, 2)),
        ):
            values = {get(st) for st in seen}
            out[name] = values.pop() if len(values) == 1 else [min(values), max(values)]
        return out

    def max_resp_wait(self) -> float:
        return self.resp_wait or max((st.resp_wait for st in self.stations), default=17.5)

    def close(self) -> None:
        self.closed = True  # no more timers: nothing is sent after this
        self.reconnect = False
        for sw in self.switches:
            for conn in list(sw.conns.values()):
                conn.transport.close()

    # results -----------------------------------------------------------------------------
    def states(self) -> dict:
        names = {
            NEW: "never_sent",
            PENDING: "pending",
            HELD: "held",
            REFUSED: "refused",
            FAILED: "failed",
            EXPIRED: "expired",
            ENDED: "ended_by_refused_keepalive",
        }
        counts = dict.fromkeys(names.values(), 0)
        for vm in self.vms:
            counts[names[vm.state]] += 1
        return counts

    def latency_report(self) -> dict:
        s = self.stats
        total = self.params["vms"]
        report = {"overall": summary_ms(s.latency), "by_vms_held": []}
        low = -1
        for fraction in (0.01, 0.1, 0.5, 1.0):
            high = max(0, round(total * fraction) - 1)  # held before the answer: 0 .. vms-1
            if high <= low:
                continue
            window = [t for t, h in zip(s.latency, s.held_at, strict=True) if low < h <= high]
            report["by_vms_held"].append(
                {
                    "checkpoint": f"{fraction:.0%}",
                    "held_when_answered": [low + 1, high],
                    **(summary_ms(window) or {"n": 0}),
                }
            )
            low = high
        return report

    def flows_report(self, check: bool = True) -> dict:
        """Flows and meters each switch holds now. With `check`, what the flows say about the
        held VMs, independent of how the controller lays out its pipeline: an edge admits
        (eth_src) exactly the MACs of its own held VMs and has an eth_dst entry for each of
        them; an aggregation switch has an eth_dst entry for every held VM; no switch has an
        eth_dst entry for a unicast MAC that is not held (stale)."""
        held = {vm.mac for vm in self.vms if vm.state == HELD}
        own = {sw.dpid: set() for sw in self.edges}
        for vm in self.vms:
            if vm.state == HELD:
                own[vm.station.switch.dpid].add(vm.mac)
        per_edge = []
        for sw in self.edges:
            entry = {
                "name": sw.name,
                "vms_held": len(own[sw.dpid]),
                "flows": len(sw.table.flows),
                "meters": len(sw.table.meters),
            }
            if check:
                src, dst = _macs(sw)
                entry["admits_exactly_own_vms"] = src == own[sw.dpid]
                entry["forwards_to_own_vms"] = own[sw.dpid] <= dst
                entry["stale_macs"] = len(dst - held)
            per_edge.append(entry)
        counts = [e["flows"] for e in per_edge]
        report = {
            "per_edge": {
                "min": min(counts),
                "median": statistics.median(counts),
                "max": max(counts),
            }
            if counts
            else None,
            "aggregation": [],
            "edges": per_edge,
        }
        for sw in self.aggs:
            entry = {"name": sw.name, "flows": len(sw.table.flows), "meters": len(sw.table.meters)}
            if check:
                dst = _macs(sw)[1]
                entry["forwards_to_all_held_vms"] = held <= dst
                entry["stale_macs"] = len(dst - held)
            report["aggregation"].append(entry)
        if check:
            report["checks"] = {
                "edges_admitting_exactly_own_vms": sum(
                    e["admits_exactly_own_vms"] for e in per_edge
                ),
                "edges_forwarding_to_own_vms": sum(e["forwards_to_own_vms"] for e in per_edge),
                "aggs_forwarding_to_all_held_vms": sum(
                    a["forwards_to_all_held_vms"] for a in report["aggregation"]
                ),
                "stale_macs": sum(e["stale_macs"] for e in per_edge + report["aggregation"]),
            }
        return report

    def vm_forwarded(self, vm: Vm) -> bool:
        """The flows of `vm` are in place: its edge admits its MAC (eth_src) and forwards to it
        (eth_dst), an aggregation switch (the forwarding tree's) forwards to it."""
        mac = vm.mac
        src, dst = _macs(vm.station.switch)
        return mac in src and mac in dst and any(mac in _macs(agg)[1] for agg in self.aggs)

    def switch_counters(self) -> dict:
        names = {
            w.FLOW_MOD: "flow_mod",
            w.PACKET_OUT: "packet_out",
            w.METER_MOD: "meter_mod",
            w.BARRIER_REQUEST: "barrier",
            w.MULTIPART_REQUEST: "multipart",
            w.ECHO_REQUEST: "echo",
            w.EXPERIMENTER: "bundle",
        }
        totals = {name: sum(sw.msgs_in[t] for sw in self.switches) for t, name in names.items()}
        totals["other"] = sum(sum(sw.msgs_in) for sw in self.switches) - sum(totals.values())
        return {
            "received": totals,
            "sent": sum(sw.msgs_out for sw in self.switches),
            "generator_errors": self.errors,
            "errors_sent": sum(sw.errors_sent for sw in self.switches),
            "bundles_committed": sum(sw.bundles_committed for sw in self.switches),
            "bundled_flow_mods": sum(sw.bundled_flow_mods for sw in self.switches),
            "packet_ins_without_controller": sum(sw.dropped_offline for sw in self.switches),
            "refused_as_slave": sum(sw.slave_refusals for sw in self.switches),
            "role_requests_refused": sum(sw.role_errors for sw in self.switches),
        }


def _macs(sw: SimSwitch) -> tuple[set, set]:
    """Unicast MACs matched exactly as eth_src, and as eth_dst, by the switch's flows (group
    addresses such as the canary's source are not a VM's)."""
    src, dst = set(), set()
    for key in sw.table.flows:
        for field in w.oxm_fields(key[3:]):
            head = field[:4]
            if head == OXM_ETH_SRC and not field[4] & 1:
                src.add(field[4:])
            elif head == OXM_ETH_DST and not field[4] & 1:
                dst.add(field[4:])
    return src, dst
