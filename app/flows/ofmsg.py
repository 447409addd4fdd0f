"""Builders of OpenFlow 1.3 messages, created without a datapath.

The logic that decides what a switch should hold returns these messages; the os-ken shim binds
them to a datapath and sends them (app/controller/sender.py). Nothing here does I/O.
"""

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from os_ken.lib.pack_utils import msg_pack_into
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.flows.tables import COOKIE_MASK_OWNER

ETH_TYPE_8021Q = 0x8100
ETH_TYPE_8021AD = 0x88A8  # an S-tag: S-channels (802.1Qbg clause 40)
METADATA_MASK = 0xFFFFFFFFFFFFFFFF


@dataclass(frozen=True)
class FlowEntry:
    """One flow as the controller wants it (or as a switch reported it).

    `match` is a sorted tuple of OXM (field, value) pairs; `instructions` holds os-ken instruction
    objects. Two entries with the same `key` are the same OpenFlow flow; `body` says whether they
    also do the same thing.
    """

    table_id: int
    priority: int
    cookie: int
    match: tuple[tuple[str, Any], ...]
    instructions: tuple = ()

    @property
    def key(self) -> tuple:
        return (self.table_id, self.priority, self.match)

    @cached_property
    def body(self) -> bytes:
        """Computed once per entry, and only where two entries with one key are compared."""
        return canonical_instructions(self.instructions)

    def ofp_match(self) -> "WireMatch":
        return WireMatch(self.match)


class WireMatch(parser.OFPMatch):
    """The OFPMatch of the messages we send, straight from a FlowEntry's match: os-ken's
    OFPMatch normalizes every field on construction (about 75 us a match, most of a flow-mod's
    cost); our values are in that normal form already (a switch's flow stats read back equal,
    which reconciliation relies on), so this one only serializes, as OFPMatch does, in OXM
    field order. A subclass because OFPFlowMod accepts nothing else."""

    def __init__(self, fields: tuple[tuple[str, Any], ...]) -> None:  # not super(): see above
        self._fields = fields

    def items(self) -> list[tuple[str, Any]]:
        return list(self._fields)

    def get(self, name: str, default: Any = None) -> Any:
        return dict(self._fields).get(name, default)

    def __getitem__(self, name: str) -> Any:
        return dict(self._fields)[name]

    def __contains__(self, name: str) -> bool:
        return any(key == name for key, _ in self._fields)

    def __repr__(self) -> str:
        return f"WireMatch({dict(self._fields)})"

    def serialize(self, buf: bytearray, offset: int) -> int:
        fields = sorted(ofp.oxm_from_user(name, value) for name, value in self._fields)
        end = offset + 4
        for number, value, mask in fields:
            end += ofp.oxm_serialize(number, value, mask, buf, end)
        msg_pack_into("!HH", buf, offset, ofp.OFPMT_OXM, end - offset)
        padding = -(end - offset) % 8
        msg_pack_into(f"{padding}x", buf, end)
        return end - offset + padding


def flow(table_id: int, priority: int, cookie: int, instructions=(), **match) -> FlowEntry:
    return FlowEntry(table_id, priority, cookie, tuple(sorted(match.items())), tuple(instructions))


def canonical_instructions(instructions) -> bytes:
    """The instructions as the octets of a FlowMod carries them: equal for the same behaviour,
    whether built here or parsed from a switch's flow stats (serialization fills in the
    lengths), and 40 times cheaper than comparing os-ken's JSON forms."""
    buf = bytearray()
    for instruction in instructions:
        instruction.serialize(buf, len(buf))
    return bytes(buf)


def flow_from_stats(stats) -> FlowEntry:
    """A FlowEntry from a switch's flow stats: a WireFlowStats (app/flows/flow_stats_wire.py,
    how the controller reads them) has it; an OFPFlowStats (or anything with the same
    attributes: the test fakes) is converted."""
    entry = getattr(stats, "entry", None)
    if entry is not None:
        return entry
    return FlowEntry(
        stats.table_id,
        stats.priority,
        stats.cookie,
        tuple(sorted(stats.match.items())),
        tuple(stats.instructions),
    )


def add_flow(entry: FlowEntry) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(
        None,
        cookie=entry.cookie,
        table_id=entry.table_id,
        command=ofp.OFPFC_ADD,
        priority=entry.priority,
        match=entry.ofp_match(),
        instructions=list(entry.instructions),
    )


def delete_flow_strict(entry: FlowEntry) -> parser.OFPFlowMod:
    return parser.OFPFlowMod(
        None,
        cookie=entry.cookie,
        cookie_mask=COOKIE_MASK_OWNER,
        table_id=entry.table_id,
        command=ofp.OFPFC_DELETE_STRICT,
        priority=entry.priority,
        match=entry.ofp_match(),
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
    )


def delete_by_cookie(cookie: int, cookie_mask: int = COOKIE_MASK_OWNER) -> parser.OFPFlowMod:
    """Deletes every flow, in every table, whose cookie matches under the mask."""
    return parser.OFPFlowMod(
        None,
        cookie=cookie,
        cookie_mask=cookie_mask,
        table_id=ofp.OFPTT_ALL,
        command=ofp.OFPFC_DELETE,
        match=parser.OFPMatch(),
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
    )


def flow_stats_request(
    cookie: int, cookie_mask: int, table_id: int = ofp.OFPTT_ALL
) -> parser.OFPFlowStatsRequest:
    return parser.OFPFlowStatsRequest(
        None,
        table_id=table_id,
        out_port=ofp.OFPP_ANY,
        out_group=ofp.OFPG_ANY,
        cookie=cookie,
        cookie_mask=cookie_mask,
        match=parser.OFPMatch(),
    )


@dataclass(frozen=True)
class MeterSpec:
    """One meter with a single drop band, as the controller wants it (or a switch reported it).
    `flags` say the unit (OFPMF_PKTPS: packets/s and packets; OFPMF_KBPS: kbit/s and kbit)."""

    flags: int
    rate: int
    burst: int

    @classmethod
    def pktps(cls, rate: int, burst: int) -> "MeterSpec":
        return cls(ofp.OFPMF_PKTPS | ofp.OFPMF_BURST, rate, burst)

    @classmethod
    def kbps(cls, rate: int, burst: int) -> "MeterSpec":
        return cls(ofp.OFPMF_KBPS | ofp.OFPMF_BURST, rate, burst)


def meter_from_config(config) -> MeterSpec:
    """A MeterSpec from an OFPMeterConfigStats; the first band is the one we program."""
    if not config.bands:
        return MeterSpec(config.flags, 0, 0)
    return MeterSpec(config.flags, config.bands[0].rate, config.bands[0].burst_size)


def meter_mod(command: int, meter_id: int, spec: MeterSpec) -> parser.OFPMeterMod:
    band = parser.OFPMeterBandDrop(rate=spec.rate, burst_size=spec.burst)
    return parser.OFPMeterMod(
        None, command=command, flags=spec.flags, meter_id=meter_id, bands=[band]
    )


def meter_delete(meter_id: int) -> parser.OFPMeterMod:
    """Deleting a meter also deletes every flow that uses it (OpenFlow 1.3, 5.7)."""
    return parser.OFPMeterMod(None, command=ofp.OFPMC_DELETE, flags=0, meter_id=meter_id)


def packet_out(port: int, data: bytes) -> parser.OFPPacketOut:
    return parser.OFPPacketOut(
        None,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=ofp.OFPP_CONTROLLER,
        actions=[parser.OFPActionOutput(port, 0)],
        data=data,
    )


def packet_resubmit(in_port: int, data: bytes) -> parser.OFPPacketOut:
    """``data`` through the switch's tables from table 0, as if it had come in on ``in_port``."""
    return parser.OFPPacketOut(
        None,
        buffer_id=ofp.OFP_NO_BUFFER,
        in_port=in_port,
        actions=[parser.OFPActionOutput(ofp.OFPP_TABLE, 0)],
        data=data,
    )


def goto(table_id: int):
    return parser.OFPInstructionGotoTable(table_id)


def write_metadata(value: int):
    return parser.OFPInstructionWriteMetadata(value, METADATA_MASK)


def apply_actions(*actions):
    return parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, list(actions))


def meter(meter_id: int):
    return parser.OFPInstructionMeter(meter_id)


def output(port: int, max_len: int = 0):
    return parser.OFPActionOutput(port, max_len)


def to_controller():
    return output(ofp.OFPP_CONTROLLER, ofp.OFPCML_NO_BUFFER)


def push_vlan(ethertype: int = ETH_TYPE_8021Q):
    return parser.OFPActionPushVlan(ethertype)


def pop_vlan():
    return parser.OFPActionPopVlan()


def set_field(**field):
    return parser.OFPActionSetField(**field)
