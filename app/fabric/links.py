"""Inter-switch links: the probe frames that discover them, and the graph they form.

Pure. The controller sends `probe_frames` out of every trunk port; a probe that comes back as a
packet-in (the base pipeline punts LLDP to 01:80:c2:00:00:0e on every port) names the port it was
sent from (`parse_probe`), and the port it arrived on completes a link (`Topology.add_link`).

The probe is an ordinary LLDPDU to the nearest-bridge address, so any LLDP agent that sees it by
mistake (lldpad on a server) just records one more neighbour: Chassis ID "locally assigned" with
the text ``evb-nms:<dpid as 16 hex digits>``, Port ID "locally assigned" with the port number in
decimal, TTL = LINK_TIMEOUT. Only frames of exactly that shape are taken as ours.

The graph gives shortest paths (`next_hop`: each hop strictly closer to the destination, so
paths never loop even where several shortest paths exist) and one spanning tree (`tree_ports`,
`ports_toward`, `routes`): breadth first from the root of each connected part, the switch with
the most links (the aggregation layer; the lowest dpid among equals), neighbours taken in (dpid,
port) order, so every controller run builds the same tree. Flooding and unicast follow the
tree (app/flows/vm_flows.py): a switch forwards down toward the VMs of its subtree and sends
everything else up toward the root, so an edge switch holds entries for its own VMs only.
"""

import functools
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from app.codec.errors import CodecError
from app.codec.ethernet import MIN_FRAME_LENGTH, NEAREST_BRIDGE
from app.codec.frame import EvbFrame, LldpFrame, decode_evb_frame, encode_evb_frame
from app.codec.lldp import ChassisId, LldpPdu, PortId
from app.codec.tlv import extend_tail
from app.fabric.ports import Port, PortRef, PortRole

PROBE_INTERVAL = 5.0  # seconds between two probes out of one trunk port
LINK_TIMEOUT = 3 * PROBE_INTERVAL  # a link not seen for this long is gone
LOCALLY_ASSIGNED = 7  # Chassis ID and Port ID subtype (IEEE 802.1AB 8.5.2, 8.5.3)
_CHASSIS_PREFIX = b"evb-nms:"
_CHASSIS = re.compile(rb"evb-nms:([0-9a-f]{16})")
_PORT = re.compile(rb"[1-9][0-9]{0,9}")


@functools.lru_cache(maxsize=8192)
def build_probe(port: PortRef, src_mac: str) -> bytes:
    """The probe sent out of `port`, from `src_mac` (the port's own MAC), padded to 60 octets.
    Cached: every trunk sends the same probe every PROBE_INTERVAL."""
    pdu = LldpPdu(
        ChassisId(LOCALLY_ASSIGNED, _CHASSIS_PREFIX + f"{port.dpid:016x}".encode()),
        PortId(LOCALLY_ASSIGNED, str(port.port_no).encode()),
        round(LINK_TIMEOUT),
    )
    frame = LldpFrame(src_mac, pdu, dst=NEAREST_BRIDGE)
    shortfall = max(0, MIN_FRAME_LENGTH - len(encode_evb_frame(frame)))
    end_tlv, padding = extend_tail(pdu.end_tlv, pdu.padding, shortfall)
    return encode_evb_frame(replace(frame, lldpdu=replace(pdu, end_tlv=end_tlv, padding=padding)))


def probe_frames(dpid: int, ports: Iterable[Port]) -> list[tuple[int, bytes]]:
    """(port number, frame) for every trunk port of switch `dpid` that is up."""
    return [
        (p.number, build_probe(PortRef(dpid, p.number), p.hw_addr))
        for p in sorted(ports, key=lambda p: p.number)
        if p.role is PortRole.TRUNK and p.up
    ]


def parse_probe(data: bytes) -> PortRef | None:
    """The port a probe of ours was sent from; None for any other frame."""
    try:
        frame = decode_evb_frame(data)
    except CodecError:
        return None
    return probe_origin(frame)


def probe_origin(frame: EvbFrame) -> PortRef | None:
    """parse_probe for a frame already decoded (the packet-in path decodes once)."""
    if not isinstance(frame, LldpFrame) or frame.dst != NEAREST_BRIDGE or frame.vlan is not None:
        return None
    chassis, port = frame.lldpdu.chassis_id, frame.lldpdu.port_id
    if chassis.subtype != LOCALLY_ASSIGNED or port.subtype != LOCALLY_ASSIGNED:
        return None
    dpid, port_no = _CHASSIS.fullmatch(chassis.id), _PORT.fullmatch(port.id)
    if dpid is None or port_no is None:
        return None
    return PortRef(int(dpid.group(1), 16), int(port_no.group()))


@dataclass(frozen=True, order=True)
class Link:
    """Both ends of one cable between two switches; `a` < `b`."""

    a: PortRef
    b: PortRef

    @classmethod
    def between(cls, one: PortRef, other: PortRef) -> "Link":
        return cls(*sorted((one, other)))


class Topology:
    """The links seen by probes. A port has at most one peer: a probe showing a port with a new
    peer (recabling) replaces the old link. Links between two ports of one switch are ignored."""

    def __init__(self, timeout: float = LINK_TIMEOUT) -> None:
        self.timeout = timeout
        self._seen: dict[Link, float] = {}
        self._peer: dict[PortRef, PortRef] = {}
        self._forget_paths()

    def _forget_paths(self) -> None:
        """Drops what was computed from the graph (it changed)."""
        self._neighbour_lists: dict[int, list[tuple[int, int, int]]] | None = None
        self._tree_ports: dict[int, dict[int, int]] | None = None
        self._up: dict[int, tuple[int, int, int]] = {}  # see Routes.up
        self._distances_to: dict[int, dict[int, int]] = {}

    # changes: each returns whether the link graph changed -------------------------------------
    def add_link(self, sent_from: PortRef, arrived_at: PortRef, now: float) -> bool:
        """A probe sent from `sent_from` arrived at `arrived_at`."""
        if sent_from.dpid == arrived_at.dpid:
            return False
        link = Link.between(sent_from, arrived_at)
        changed = link not in self._seen
        if changed:
            for end in (sent_from, arrived_at):
                if end in self._peer:
                    self._drop(Link.between(end, self._peer[end]))
            self._peer[sent_from], self._peer[arrived_at] = arrived_at, sent_from
            self._forget_paths()
        self._seen[link] = now
        return changed

    def remove_port(self, port: PortRef) -> Link | None:
        """The port went down or away: the link it ended, if any, is gone."""
        if port not in self._peer:
            return None
        link = Link.between(port, self._peer[port])
        self._drop(link)
        return link

    def remove_switch(self, dpid: int) -> bool:
        gone = [link for link in self._seen if dpid in (link.a.dpid, link.b.dpid)]
        for link in gone:
            self._drop(link)
        return bool(gone)

    def expire(self, now: float) -> list[Link]:
        """Removes and returns the links not seen for `timeout` seconds."""
        gone = sorted(link for link, seen in self._seen.items() if now - seen >= self.timeout)
        for link in gone:
            self._drop(link)
        return gone

    def _drop(self, link: Link) -> None:
        del self._seen[link]
        del self._peer[link.a], self._peer[link.b]
        self._forget_paths()

    # views --------------------------------------------------------------------------------
    @property
    def links(self) -> list[Link]:
        return sorted(self._seen)

    def switches(self) -> set[int]:
        return {end.dpid for end in self._peer}

    def peer(self, port: PortRef) -> PortRef | None:
        return self._peer.get(port)

    def link_ports(self, dpid: int) -> set[int]:
        return {end.port_no for end in self._peer if end.dpid == dpid}

    def _neighbours(self) -> dict[int, list[tuple[int, int, int]]]:
        """dpid -> [(neighbour dpid, local port, neighbour port)], sorted."""
        if self._neighbour_lists is None:
            self._neighbour_lists = {}
            for near, far in self._peer.items():
                self._neighbour_lists.setdefault(near.dpid, []).append(
                    (far.dpid, near.port_no, far.port_no)
                )
            for hops in self._neighbour_lists.values():
                hops.sort()
        return self._neighbour_lists

    def _distances(self, dst: int) -> dict[int, int]:
        if dst not in self._distances_to:
            distances = {dst: 0}
            queue = deque([dst])
            while queue:
                node = queue.popleft()
                for neighbour, _, _ in self._neighbours().get(node, ()):
                    if neighbour not in distances:
                        distances[neighbour] = distances[node] + 1
                        queue.append(neighbour)
            self._distances_to[dst] = distances
        return self._distances_to[dst]

    def next_hop(self, src_dpid: int, dst_dpid: int) -> int | None:
        """The port of `src_dpid` on a shortest path to `dst_dpid` (the lowest such port); None
        if they are the same switch or not connected."""
        distances = self._distances(dst_dpid)
        if src_dpid == dst_dpid or src_dpid not in distances:
            return None
        return min(
            port
            for neighbour, port, _ in self._neighbours()[src_dpid]
            if distances.get(neighbour) == distances[src_dpid] - 1
        )

    def _tree(self) -> dict[int, dict[int, int]]:
        """dpid -> {tree port: neighbour dpid}."""
        if self._tree_ports is None:
            neighbours = self._neighbours()
            tree: dict[int, dict[int, int]] = {}
            self._up = {}
            for start in sorted(neighbours):
                if start in tree:
                    continue
                root = min(self._part(start), key=lambda d: (-len(neighbours[d]), d))
                tree[root] = {}
                queue = deque([root])
                while queue:
                    node = queue.popleft()
                    for neighbour, port, far_port in neighbours[node]:
                        if neighbour not in tree:
                            tree[neighbour] = {far_port: node}
                            tree[node][port] = neighbour
                            self._up[neighbour] = (far_port, node, port)
                            queue.append(neighbour)
            self._tree_ports = tree
        return self._tree_ports

    def _part(self, start: int) -> set[int]:
        """The switches connected to `start`."""
        neighbours = self._neighbours()
        part, queue = {start}, deque([start])
        while queue:
            for neighbour, _, _ in neighbours[queue.popleft()]:
                if neighbour not in part:
                    part.add(neighbour)
                    queue.append(neighbour)
        return part

    def routes(self) -> "Routes":
        """The tree as the flow plan uses it (a snapshot: later link changes do not alter it)."""
        tree = self._tree()
        guards = {
            dpid: tuple(sorted(self.link_ports(dpid) - set(ports))) for dpid, ports in tree.items()
        }
        return Routes(dict(self._up), {d: g for d, g in guards.items() if g})

    def tree_ports(self, dpid: int) -> set[int]:
        """The ports of `dpid` on the flood tree."""
        return set(self._tree().get(dpid, {}))

    def ports_toward(self, dpid: int, dst_dpids: Iterable[int]) -> set[int]:
        """The tree ports of `dpid` behind which (on the tree) lies any of `dst_dpids`."""
        tree = self._tree()
        wanted = set(dst_dpids) - {dpid}
        ports = set()
        for port, neighbour in tree.get(dpid, {}).items():
            seen, stack = {dpid, neighbour}, [neighbour]
            while stack:
                node = stack.pop()
                if node in wanted:
                    ports.add(port)
                    break
                for far in tree[node].values():
                    if far not in seen:
                        seen.add(far)
                        stack.append(far)
        return ports


@dataclass(frozen=True)
class Routes:
    """The spanning tree, for the flow plan. `up`: per switch below a root, (its port toward
    its parent, the parent, the parent's port toward it). `guards`: per switch, its linked
    ports off the tree. A switch in neither is a root, or has no links."""

    up: Mapping[int, tuple[int, int, int]] = field(default_factory=dict)
    guards: Mapping[int, tuple[int, ...]] = field(default_factory=dict)

    def uplink(self, dpid: int) -> int | None:
        """The port toward the root; None at a root or a switch without links."""
        hop = self.up.get(dpid)
        return hop[0] if hop else None

    def ancestors(self, dpid: int) -> list[tuple[int, int]]:
        """(switch, its port toward `dpid`) of every switch above `dpid`, nearest first."""
        chain = []
        while dpid in self.up:
            _, parent, port = self.up[dpid]
            chain.append((parent, port))
            dpid = parent
        return chain

    def path(self, src: int, dst: int) -> list[PortRef] | None:
        """The ports a frame from `src` to `dst` leaves by on the tree, in order: up to the
        lowest switch above both, then down. None when the two are not on one tree."""
        ups = [src] + [switch for switch, _ in self.ancestors(src)]
        downs = self.ancestors(dst)  # (switch, its port toward dst), nearest first
        below = {dst: 0} | {switch: i + 1 for i, (switch, _) in enumerate(downs)}
        top = next((switch for switch in ups if switch in below), None)
        if top is None:
            return None
        hops = [PortRef(d, self.up[d][0]) for d in ups[: ups.index(top)]]
        return hops + [PortRef(switch, port) for switch, port in reversed(downs[: below[top]])]

    def switches(self) -> set[int]:
        return set(self.up) | {parent for _, parent, _ in self.up.values()} | set(self.guards)
