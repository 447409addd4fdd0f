"""An OpenFlow 1.3 switch in memory: applies the messages our logic returns and walks packets
through its tables, so unit tests can check behaviour rather than message lists."""
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


@dataclass
class Verdict:
    outputs: list = field(default_factory=list)   # port numbers, incl. OFPP_CONTROLLER
    meters: list = field(default_factory=list)
    tables: list = field(default_factory=list)    # tables walked
    flows: list = field(default_factory=list)     # flows hit

    @property
    def dropped(self) -> bool:
        return not self.outputs


def _match_items(match) -> dict:
    return dict(match.items())


def _field_matches(pkt_value, want) -> bool:
    if isinstance(want, tuple):
        value, mask = want
        if isinstance(value, str):  # MAC with mask
            v, m, p = (int(x.replace(":", ""), 16) for x in (value, mask, pkt_value))
            return p & m == v & m
        return pkt_value is not None and pkt_value & mask == value & mask
    return pkt_value == want


class FakeSwitch:
    def __init__(self, ports=()):
        self.flows: list[FakeFlow] = []
        self.meters: dict[int, FakeMeterConfig] = {}
        self.ports = {p.port_no: p for p in ports}
        self.errors: list[str] = []

    # applying messages ----------------------------------------------------------------------
    def apply(self, msgs) -> None:
        for msg in msgs:
            if isinstance(msg, parser.OFPFlowMod):
                self._flow_mod(msg)
            elif isinstance(msg, parser.OFPMeterMod):
                self._meter_mod(msg)

    def _flow_mod(self, msg) -> None:
        if msg.command == ofp.OFPFC_ADD:
            for ins in msg.instructions:
                if isinstance(ins, parser.OFPInstructionMeter) and ins.meter_id not in self.meters:
                    self.errors.append(f"flow names missing meter {ins.meter_id}")
                    return
            self.flows = [f for f in self.flows if not self._same(f, msg)]
            self.flows.append(FakeFlow(msg.table_id, msg.priority, msg.cookie, msg.match,
                                       list(msg.instructions)))
        elif msg.command in (ofp.OFPFC_DELETE, ofp.OFPFC_DELETE_STRICT):
            strict = msg.command == ofp.OFPFC_DELETE_STRICT
            self.flows = [f for f in self.flows if not self._deletes(msg, f, strict)]
        else:
            raise NotImplementedError(f"flow mod command {msg.command}")

    @staticmethod
    def _same(flow, msg) -> bool:
        return (flow.table_id == msg.table_id and flow.priority == msg.priority
                and _match_items(flow.match) == _match_items(msg.match))

    @staticmethod
    def _deletes(msg, flow, strict) -> bool:
        if msg.table_id != ofp.OFPTT_ALL and msg.table_id != flow.table_id:
            return False
        if (flow.cookie & msg.cookie_mask) != (msg.cookie & msg.cookie_mask):
            return False
        if strict:
            return flow.priority == msg.priority and \
                _match_items(flow.match) == _match_items(msg.match)
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
        else:
            self.meters[msg.meter_id] = FakeMeterConfig(msg.meter_id, list(msg.bands), msg.flags)

    # answering requests ---------------------------------------------------------------------
    def flow_stats(self, request) -> list[FakeFlow]:
        mask = request.cookie_mask
        return [f for f in self.flows if (f.cookie & mask) == (request.cookie & mask)]

    def meter_configs(self) -> list[FakeMeterConfig]:
        return list(self.meters.values())

    def port_list(self) -> list[FakePort]:
        return list(self.ports.values())

    # walking packets ------------------------------------------------------------------------
    def process(self, **pkt) -> Verdict:
        """Walks a packet (OXM field names: in_port, eth_src, eth_dst, eth_type, vlan_vid ...)
        through the tables from table 0 and returns where it goes."""
        verdict = Verdict()
        table = 0
        while table is not None:
            verdict.tables.append(table)
            candidates = [f for f in self.flows if f.table_id == table and all(
                _field_matches(pkt.get(k), v) for k, v in _match_items(f.match).items())]
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
                        if isinstance(action, parser.OFPActionOutput):
                            verdict.outputs.append(action.port)
                        elif isinstance(action, parser.OFPActionSetField):
                            pkt[action.key] = action.value
                elif isinstance(ins, parser.OFPInstructionGotoTable):
                    table = ins.table_id
        return verdict
