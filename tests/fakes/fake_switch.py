"""An OpenFlow 1.3 switch in memory: applies the messages our logic returns and walks packets
through its tables, so unit tests can check behaviour rather than message lists. FakeFabric
joins several of them with trunk links and follows a frame from switch to switch.

A packet is a dict of OXM fields (in_port, eth_src, eth_dst, eth_type, vlan_vid, ip_proto, ...);
an untagged frame has vlan_vid OFPVID_NONE, a tagged one OFPVID_PRESENT | VID. As in Open vSwitch
no match sees a tag's TPID; a push records it as `vlan_tpid` (0x8100 or 0x88a8, for the tests
to read) and a pop forgets it.

Bundles (ONF extension 230) as Open vSwitch keeps them: the flow-mods added to a bundle are
applied at its commit, all of them or, when one is refused, none. What the switch says back
about bundles (replies and errors) waits in `answers` for the driver (tests/fakes/wire.py).
"""

import ipaddress
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser


@dataclass
class FakeFlow:
    table_id: int
    priority: int
    cookie: int
    match: parser.OFPMatch
    instructions: list
    n_packets: int = 0

    # As a flow stats entry reports them (app/flows/vm_stats.py reads these names).
    @property
    def packet_count(self) -> int:
        return self.n_packets

    @property
    def byte_count(self) -> int:
        return self.n_packets * 100


@dataclass
class FakePort:
    port_no: int
    name: bytes
    hw_addr: str = "00:00:00:00:00:00"
    config: int = 0
    state: int = 0


@dataclass
class FakeMeterConfig:
    meter_id: int
    bands: list
    flags: int = 0


@dataclass(frozen=True)
class Answer:
    """A bundle control reply (`code` None) or an error, for the message `xid`."""

    xid: int
    kind: int  # the reply's type, or the error's
    code: int | None = None


@dataclass
class Verdict:
    outputs: list = field(default_factory=list)  # port numbers, incl. OFPP_CONTROLLER
    frames: list = field(default_factory=list)  # (port number, the packet as it left)
    meters: list = field(default_factory=list)
    tables: list = field(default_factory=list)  # tables walked
    flows: list = field(default_factory=list)  # flows hit

    @property
    def dropped(self) -> bool:
        return not self.outputs


def _match_items(match) -> dict:
    return dict(match.items())


def _as_int(value):
    """MAC and IP addresses as numbers, so masks apply and text forms compare equal."""
    if not isinstance(value, str):
        return value
    if value.count(":") == 5 and all(len(part) == 2 for part in value.split(":")):
        return int(value.replace(":", ""), 16)
    return int(ipaddress.ip_address(value))


def _field_matches(pkt_value, want) -> bool:
    if pkt_value is None:
        return False
    if isinstance(want, tuple):
        value, mask = (_as_int(x) for x in want)
        return _as_int(pkt_value) & mask == value & mask
    return _as_int(pkt_value) == _as_int(want)


_IP = {0x0800, 0x86DD}
# field -> (the field it needs, the values that field must have): OpenFlow 1.3 table 12.
_PREREQUISITES = {
    "ip_dscp": ("eth_type", _IP),
    "ip_ecn": ("eth_type", _IP),
    "ip_proto": ("eth_type", _IP),
    "ipv4_src": ("eth_type", {0x0800}),
    "ipv4_dst": ("eth_type", {0x0800}),
    "ipv6_src": ("eth_type", {0x86DD}),
    "ipv6_dst": ("eth_type", {0x86DD}),
    "arp_op": ("eth_type", {0x0806}),
    "arp_spa": ("eth_type", {0x0806}),
    "arp_tpa": ("eth_type", {0x0806}),
    "tcp_src": ("ip_proto", {6}),
    "tcp_dst": ("ip_proto", {6}),
    "udp_src": ("ip_proto", {17}),
    "udp_dst": ("ip_proto", {17}),
    "icmpv4_type": ("ip_proto", {1}),
    "icmpv4_code": ("ip_proto", {1}),
}


def _tagged(fields: dict) -> bool:
    """The match guarantees a VLAN tag (exactly, or vlan_vid=OFPVID_PRESENT/OFPVID_PRESENT)."""
    vid = fields.get("vlan_vid")
    vid = vid[0] & vid[1] if isinstance(vid, tuple) else vid
    return vid is not None and bool(vid & ofp.OFPVID_PRESENT)


def _prerequisite_problem(name: str, fields: dict) -> str | None:
    """Why a switch would refuse to match on or set `name` given `fields`, or None."""
    if name in ("vlan_pcp", "set vlan_vid"):
        return None if _tagged(fields) else f"{name} needs a VLAN tag in the match"
    if name not in _PREREQUISITES:
        return None
    needed, values = _PREREQUISITES[name]
    if fields.get(needed) not in values:
        return f"{name} needs {needed} in {sorted(values)}, flow has {fields.get(needed)}"
    return None


def _flow_problems(msg) -> list[str]:
    """What Open vSwitch would refuse in an OpenFlow 1.3 flow: match fields without their
    prerequisites, and actions inconsistent with the match (setting a field the packet may not
    have; popping or setting a VLAN tag the match does not guarantee)."""
    match = _match_items(msg.match)
    problems = [_prerequisite_problem(name, match) for name in match]
    for ins in msg.instructions:
        if isinstance(ins, parser.OFPInstructionActions):
            fields = dict(match)
            for action in ins.actions:
                if isinstance(action, parser.OFPActionPushVlan):
                    fields["vlan_vid"] = ofp.OFPVID_PRESENT
                elif isinstance(action, parser.OFPActionPopVlan):
                    if not _tagged(fields):
                        problems.append("pop_vlan needs a VLAN tag in the match")
                    fields["vlan_vid"] = ofp.OFPVID_NONE
                elif isinstance(action, parser.OFPActionSetField):
                    key = "set vlan_vid" if action.key == "vlan_vid" else action.key
                    problems.append(_prerequisite_problem(key, fields))
                    fields[action.key] = action.value
    return [problem for problem in problems if problem]


class FakeSwitch:
    def __init__(self, ports=()):
        self.flows: list[FakeFlow] = []
        self.meters: dict[int, FakeMeterConfig] = {}
        self.ports = {p.port_no: p for p in ports}
        self.errors: list[str] = []
        self.received: list = []  # every message applied, in order
        self.refuse_bundles = False  # as a switch without the extension: errors for them all
        self.fail_commits = False  # every commit is refused (as if a flow-mod in it were)
        self.bundles: dict[int, list] = {}  # open bundle id -> its flow-mods
        self.committed: list[list] = []  # the flow-mods of each committed bundle
        self.answers: list[Answer] = []
        self.meter_drops: dict[int, int] = {}  # meter id -> packets its band dropped

    # applying messages ----------------------------------------------------------------------
    def apply(self, msgs) -> None:
        for msg in msgs:
            self.received.append(msg)
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPMeterMod):
                self._meter_mod(msg)
            elif self.refuse_bundles and isinstance(msg, parser.OFPExperimenter):
                self.answers.append(Answer(msg.xid, ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_EXP_TYPE))
            elif isinstance(msg, parser.ONFBundleAddMsg):
                self.bundles[msg.bundle_id].append(msg.message)
            elif isinstance(msg, parser.ONFBundleCtrlMsg):
                self._bundle_control(msg)

    def _bundle_control(self, msg) -> None:
        if msg.type == ofp.ONF_BCT_OPEN_REQUEST:
            self.bundles[msg.bundle_id] = []
        elif msg.type == ofp.ONF_BCT_DISCARD_REQUEST:
            del self.bundles[msg.bundle_id]
        elif msg.type == ofp.ONF_BCT_COMMIT_REQUEST and not self._commit(
            self.bundles.pop(msg.bundle_id)
        ):
            self.answers.append(Answer(msg.xid, ofp.OFPET_EXPERIMENTER, ofp.ONFERR_ET_FAILED))
            return
        self.answers.append(Answer(msg.xid, msg.type + 1))  # each request's reply type

    def _commit(self, flow_mods: list) -> bool:
        """Applies `flow_mods` all at once, or (one refused) none of them."""
        flows, errors = list(self.flows), len(self.errors)
        for msg in flow_mods:
            self._flow_mod(msg)
        if self.fail_commits or len(self.errors) > errors:
            self.flows = flows
            return False
        self.committed.append(flow_mods)
        return True

    def _flow_mod(self, msg) -> None:
        if msg.command == ofp.OFPFC_ADD:
            for ins in msg.instructions:
                if isinstance(ins, parser.OFPInstructionMeter) and ins.meter_id not in self.meters:
                    self.errors.append(f"flow names missing meter {ins.meter_id}")
                    return
            problems = _flow_problems(msg)
            if problems:
                self.errors += problems
                return
            self.flows = [f for f in self.flows if not self._same(f, msg)]
            self.flows.append(
                FakeFlow(msg.table_id, msg.priority, msg.cookie, msg.match, list(msg.instructions))
            )
        elif msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            strict = msg.command == ofp.OFPFC_DELETE_STRICT
            self.flows = [f for f in self.flows if not self._deletes(msg, f, strict)]
        else:
            raise NotImplementedError(f"flow mod command {msg.command}")

    @staticmethod
    def _same(flow, msg) -> bool:
        return (
            flow.table_id == msg.table_id
            and flow.priority == msg.priority
            and _match_items(flow.match) == _match_items(msg.match)
        )

    @staticmethod
    def _deletes(msg, flow, strict) -> bool:
        if msg.table_id != ofp.OFPTT_ALL and msg.table_id != flow.table_id:
            return False
        if (flow.cookie & msg.cookie_mask) != (msg.cookie & msg.cookie_mask):
            return False
        if strict:
            return flow.priority == msg.priority and _match_items(flow.match) == _match_items(
                msg.match
            )
        want = _match_items(msg.match)
        have = _match_items(flow.match)
        return all(have.get(k) == v for k, v in want.items())

    def _meter_mod(self, msg) -> None:
        if msg.command == ofp.OFPMC_ADD and msg.meter_id in self.meters:
            self.errors.append(f"meter {msg.meter_id} exists")
        elif msg.command == ofp.OFPMC_MODIFY and msg.meter_id not in self.meters:
            self.errors.append(f"meter {msg.meter_id} unknown")
        elif msg.command == ofp.OFPMC_DELETE:
            self.meters.pop(msg.meter_id, None)
            self.flows = [
                f
                for f in self.flows
                if not any(
                    isinstance(ins, parser.OFPInstructionMeter) and ins.meter_id == msg.meter_id
                    for ins in f.instructions
                )
            ]
        else:
            self.meters[msg.meter_id] = FakeMeterConfig(msg.meter_id, list(msg.bands), msg.flags)

    # answering requests ---------------------------------------------------------------------
    def flow_stats(self, request) -> list[FakeFlow]:
        mask, table = request.cookie_mask, request.table_id
        return [
            f
            for f in self.flows
            if (f.cookie & mask) == (request.cookie & mask) and table in (ofp.OFPTT_ALL, f.table_id)
        ]

    def meter_configs(self) -> list[FakeMeterConfig]:
        return list(self.meters.values())

    def meter_stats(self) -> list:
        return [
            parser.OFPMeterStats(
                meter_id=meter_id,
                band_stats=[parser.OFPMeterBandStats(self.meter_drops.get(meter_id, 0), 0)],
            )
            for meter_id in self.meters
        ]

    def port_list(self) -> list[FakePort]:
        return list(self.ports.values())

    # walking packets ------------------------------------------------------------------------
    def process(self, **pkt) -> Verdict:
        """Walks a packet (OXM field names: in_port, eth_src, eth_dst, eth_type, vlan_vid ...)
        through the tables from table 0 and returns where it goes. Like a real switch, it never
        outputs a packet to its in_port unless told so with OFPP_IN_PORT."""
        pkt.setdefault("vlan_vid", ofp.OFPVID_NONE)
        pkt.setdefault("metadata", 0)
        verdict = Verdict()
        table = 0
        while table is not None:
            verdict.tables.append(table)
            candidates = [
                f
                for f in self.flows
                if f.table_id == table
                and all(_field_matches(pkt.get(k), v) for k, v in _match_items(f.match).items())
            ]
            if not candidates:
                return verdict
            hit = max(candidates, key=lambda f: f.priority)
            hit.n_packets += 1
            verdict.flows.append(hit)
            table = None
            for ins in hit.instructions:
                if isinstance(ins, parser.OFPInstructionMeter):
                    verdict.meters.append(ins.meter_id)
                elif isinstance(ins, parser.OFPInstructionActions):
                    for action in ins.actions:
                        self._act(action, pkt, verdict)
                elif isinstance(ins, parser.OFPInstructionWriteMetadata):
                    mask = ins.metadata_mask
                    pkt["metadata"] = (pkt["metadata"] & ~mask) | (ins.metadata & mask)
                elif isinstance(ins, parser.OFPInstructionGotoTable):
                    table = ins.table_id
        return verdict

    @staticmethod
    def _act(action, pkt: dict, verdict: Verdict) -> None:
        if isinstance(action, parser.OFPActionOutput):
            port = action.port
            if port == ofp.OFPP_IN_PORT:
                port = pkt.get("in_port")
            elif port == pkt.get("in_port"):
                return
            verdict.outputs.append(port)
            verdict.frames.append((port, dict(pkt)))
        elif isinstance(action, parser.OFPActionSetField):
            pkt[action.key] = action.value
        elif isinstance(action, parser.OFPActionPushVlan):
            # A new outer tag copies the VID and PCP of the tag it covers, else 0 (OF 1.3 A.2.5).
            pkt["vlan_vid"] |= ofp.OFPVID_PRESENT
            pkt.setdefault("vlan_pcp", 0)
            pkt["vlan_tpid"] = action.ethertype
        elif isinstance(action, parser.OFPActionPopVlan):
            pkt["vlan_vid"] = ofp.OFPVID_NONE
            pkt.pop("vlan_pcp", None)
            pkt.pop("vlan_tpid", None)
        else:
            raise NotImplementedError(f"action {type(action).__name__}")


@dataclass(frozen=True)
class Delivery:
    """A frame leaving the fabric: out of a port no link continues, or to the controller."""

    dpid: int
    port: int
    packet: dict
    in_port: int | None = field(default=None, compare=False)  # where it entered that switch


class FrameLoops(AssertionError):
    pass


class FakeFabric:
    """FakeSwitches joined by links ((dpid, port), (dpid, port))."""

    def __init__(
        self,
        switches: dict[int, FakeSwitch],
        links: Iterable[tuple[tuple[int, int], tuple[int, int]]],
    ):
        self.switches = switches
        self.peers: dict[tuple[int, int], tuple[int, int]] = {}
        for a, b in links:
            self.peers[a], self.peers[b] = b, a

    def send(self, dpid: int, in_port: int, budget: int = 200, **pkt) -> list[Delivery]:
        """Every place a frame entering switch `dpid` at `in_port` ends up, sorted. Raises
        FrameLoops when the frame (with its copies) crosses more than `budget` switches."""
        deliveries = []
        pending = deque([(dpid, in_port, pkt)])
        while pending:
            budget -= 1
            if budget < 0:
                raise FrameLoops(f"frame {pkt} still travelling")
            dpid, in_port, frame = pending.popleft()
            for port, out in self.switches[dpid].process(in_port=in_port, **frame).frames:
                wire = {k: v for k, v in out.items() if k not in ("in_port", "metadata")}
                peer = self.peers.get((dpid, port))
                if peer is None:
                    deliveries.append(Delivery(dpid, port, wire, in_port))
                else:
                    pending.append((*peer, wire))
        return sorted(deliveries, key=lambda d: (d.dpid, d.port))
