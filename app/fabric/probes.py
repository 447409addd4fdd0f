"""Data-plane probes, opt-in per VLAN: proof that the flows of a VLAN carry frames between its
edges, not only that they are on the switches.

Every `interval` seconds, each edge with forwarding VMs of a probed VLAN sends one probe
(app/codec/probe.py) to another such edge: a frame tagged with the VLAN and addressed to one of
that edge's VMs, put into the sending edge's tables by a packet-out (PROBE_INJECT: straight to
FORWARD). It goes the way the VM's frames from that edge go, up the tree and down to the VM's
edge, whose EGRESS_ACL punts it (PROBE_PUNT) instead of delivering it. The pairs turn from round
to round (edge i sends to edge i + 1 + round mod (E - 1)), so E edges cover their E (E - 1)
paths in E - 1 rounds with E probes each. A probe not back within `timeout` is lost; LOSSES in
a row on one pair raise probe.lost (alarm path.down, naming the path), the next probe back
raises probe.restored. Loss and latency (packet-out to packet-in, both the controller's clock)
are kept per pair.

Trust: a probe counts only if its tag verifies under the controller's key, its sequence number
is in flight, it arrived at the edge it was sent to and came in on a trunk. VMs cannot send the
probe EtherType at all (PROBE_GUARD on every server port), so they cannot fill the probes'
meter either. Bounded: at most MAX_IN_FLIGHT probes in flight, MAX_PER_ROUND sent per round
(the VLANs take turns being first), pairs kept only while both edges are members. Pure.
"""

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Set
from dataclasses import dataclass

from app.codec.errors import CodecError
from app.codec.probe import Probe, decode_probe, encode_probe
from app.observer import Observer

INTERVAL = 2.0
TIMEOUT = 1.0  # a probe crosses the fabric in milliseconds; this long means it is gone
LOSSES = 3  # lost in a row on one pair: probe.lost
MAX_IN_FLIGHT = 1024
MAX_PER_ROUND = 512
# Switch -> (port, S-VID) -> MAC -> forwarding entries, of one VLAN (FlowProgrammer.vlan_members)
Members = Mapping[int, Mapping[tuple[int, int], Mapping[str | None, int]]]
Pair = tuple[int, int, int]  # (VID, from edge, to edge)


@dataclass
class PairStats:
    sent: int = 0
    received: int = 0
    lost: int = 0
    in_a_row: int = 0  # losses since the last probe back
    down: bool = False  # probe.lost raised and not restored
    latency_last: float | None = None
    latency_min: float | None = None
    latency_max: float | None = None
    latency_sum: float = 0.0
    target: str = ""  # the MAC of the last probe

    def as_dict(self) -> dict:
        ms = [
            None if v is None else round(1000 * v, 3)
            for v in (self.latency_last, self.latency_min, self.latency_max)
        ]
        mean = self.latency_sum / self.received if self.received else None
        return {
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost,
            "loss": round(self.lost / (self.received + self.lost), 4)
            if self.received + self.lost
            else None,
            "state": "down" if self.down else "up",
            "latency_ms": {
                "last": ms[0],
                "min": ms[1],
                "mean": None if mean is None else round(1000 * mean, 3),
                "max": ms[2],
            },
        }


@dataclass(frozen=True)
class ProbeEvent:
    kind: str  # probe.lost, probe.restored
    pair: Pair
    detail: dict


@dataclass(frozen=True)
class _InFlight:
    probe: Probe
    mac: str
    sent: float


class DataPlaneProbes:
    def __init__(
        self,
        vlans: Iterable[int],
        key: bytes,
        interval: float = INTERVAL,
        timeout: float = TIMEOUT,
        observer: Observer | None = None,
    ) -> None:
        """`key`: signs the probes; drawn at random by the owner, never shown."""
        self.vlans = tuple(sorted(set(vlans)))
        self.interval = interval
        self.timeout = timeout
        self._key = key
        self._observer = observer if observer is not None else Observer()
        self._seq = itertools.count(1)
        self._in_flight: dict[int, _InFlight] = {}  # by sequence number, oldest first
        self.pairs: dict[Pair, PairStats] = {}
        self._round = 0
        self._next_round: float | None = None
        self.rejected: Counter[str] = Counter()  # by reason
        self.unsent = 0  # probes a round did not send (MAX_IN_FLIGHT, MAX_PER_ROUND)

    def due(
        self, now: float, members: Callable[[int], Members], ready: Set[int]
    ) -> tuple[list[tuple[int, bytes]], list[ProbeEvent]]:
        """The probes to send now, as (edge, frame), and what the losses found so far mean."""
        events = self._expire(now)
        if not self.vlans or (self._next_round is not None and now < self._next_round):
            return [], events
        self._next_round = now + self.interval
        start = self._round % len(self.vlans)
        frames: list[tuple[int, bytes]] = []
        probed: set[Pair] = set()
        for vid in self.vlans[start:] + self.vlans[:start]:
            vlan = members(vid)
            edges = sorted(d for d, ports in vlan.items() if d in ready and ports)
            if len(edges) < 2:
                continue
            probed.update((vid, src, dst) for src in edges for dst in edges if src != dst)
            offset = 1 + self._round % (len(edges) - 1)
            for i, src in enumerate(edges):
                dst = edges[(i + offset) % len(edges)]
                if len(self._in_flight) >= MAX_IN_FLIGHT or len(frames) >= MAX_PER_ROUND:
                    self.unsent += 1
                    continue
                # A probe is addressed to a VM: an entry without a MAC (a VLAN owned whole)
                # names none.
                macs = sorted(m for port in vlan[dst].values() for m in port if m is not None)
                if not macs:
                    continue
                mac = macs[self._round % len(macs)]
                probe = Probe(src, dst, vid, next(self._seq))
                self._in_flight[probe.seq] = _InFlight(probe, mac, now)
                stats = self.pairs.setdefault((vid, src, dst), PairStats())
                stats.sent += 1
                stats.target = mac
                self._observer.probe(vid, "sent")
                frames.append((src, encode_probe(probe, mac, self._key)))
        self._round += 1
        return frames, events + self._prune(probed)

    def arrived(self, dpid: int, from_trunk: bool, data: bytes, now: float) -> list[ProbeEvent]:
        """A frame of the probe EtherType punted by `dpid` (`from_trunk`: it came in on a
        trunk port), at `now`."""
        try:
            probe = decode_probe(data, self._key)
        except CodecError:
            return self._reject(None, "not signed by this controller")
        flight = self._in_flight.get(probe.seq)
        if flight is None or flight.probe != probe:
            return self._reject(probe.vid, "not in flight (late, or a copy)")
        if probe.dst != dpid or not from_trunk:
            return self._reject(probe.vid, "arrived elsewhere than sent to")
        del self._in_flight[probe.seq]
        latency = max(0.0, now - flight.sent)
        self._observer.probe(probe.vid, "received", latency)
        pair = (probe.vid, probe.src, probe.dst)
        stats = self.pairs.setdefault(pair, PairStats())
        stats.received += 1
        stats.latency_last = latency
        stats.latency_sum += latency
        if stats.latency_min is None or latency < stats.latency_min:
            stats.latency_min = latency
        if stats.latency_max is None or latency > stats.latency_max:
            stats.latency_max = latency
        lost, stats.in_a_row = stats.in_a_row, 0
        if not stats.down:
            return []
        stats.down = False
        return [ProbeEvent("probe.restored", pair, {"lost": lost, "mac": flight.mac})]

    def _reject(self, vid: int | None, reason: str) -> list[ProbeEvent]:
        self.rejected[reason] += 1
        if vid in self.vlans:  # a VID label only for the VLANs probed: bounded
            self._observer.probe(vid, "rejected")
        return []

    def _expire(self, now: float) -> list[ProbeEvent]:
        events = []
        while self._in_flight:
            seq, flight = next(iter(self._in_flight.items()))
            if now - flight.sent <= self.timeout:
                break  # in sending order: the rest are younger
            del self._in_flight[seq]
            probe = flight.probe
            self._observer.probe(probe.vid, "lost")
            pair = (probe.vid, probe.src, probe.dst)
            stats = self.pairs.get(pair)
            if stats is None:
                continue  # a pair no longer probed
            stats.lost += 1
            stats.in_a_row += 1
            if stats.in_a_row >= LOSSES and not stats.down:
                stats.down = True
                detail = {"losses": stats.in_a_row, "mac": flight.mac}
                events.append(ProbeEvent("probe.lost", pair, detail))
        return events

    def _prune(self, probed: set[Pair]) -> list[ProbeEvent]:
        """Pairs whose edges are no longer both members go; a path down that nobody uses any
        more is restored as such."""
        events = []
        for pair in [p for p in self.pairs if p not in probed]:
            if self.pairs.pop(pair).down:
                events.append(ProbeEvent("probe.restored", pair, {"reason": "no longer probed"}))
        return events

    def snapshot(self) -> list[tuple[Pair, dict]]:
        return [(pair, self.pairs[pair].as_dict()) for pair in sorted(self.pairs)]
