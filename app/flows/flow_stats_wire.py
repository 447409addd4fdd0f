"""A switch's flows as reconciliation reads them: straight from the octets of a flow stats reply.

os-ken parses each flow of a reply into an OFPFlowStats with an OFPMatch (plus the structures of
its old match API) and instruction and action objects: at reconnect, about half of the
controller's CPU (bench.scale --restart, py-spy). Reconciliation needs a flow's key (table,
priority, match fields) and its instructions as octets (FlowEntry.body, which compares the
instructions the way they are serialized), so this parser builds only a FlowEntry, and that
only when it is read: the VM statistics (app/flows/vm_stats.py) read the header (table,
priority, cookie, counts) and the instructions' length alone (`counts`). A message's flows are
read in one call (WireFlowStatsPart), which the os-ken shim makes the body parser of flow stats
replies (`install`). Pure: bytes in, entries out.
"""

import functools
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.flows.ofmsg import FlowEntry

_FLOW_STATS = struct.Struct(ofp.OFP_FLOW_STATS_0_PACK_STR)
_MATCH_HEADER = struct.Struct("!HH")


class WireFlowStats:
    """One flow of a flow stats reply: its header (table, priority, cookie, packet and byte
    counts) and, parsed at first use, the FlowEntry it describes (reconciliation's): the match
    fields are most of the parsing, and a statistics poll never needs them. Made by
    WireFlowStatsPart, which has checked its framing."""

    __slots__ = (
        "length",
        "table_id",
        "priority",
        "cookie",
        "packet_count",
        "byte_count",
        "instructions_length",
        "_buf",
        "_offset",
        "_entry",
    )
    length: int
    table_id: int
    priority: int
    cookie: int
    packet_count: int
    byte_count: int
    instructions_length: int
    _buf: Any  # the reply's octets until the entry is parsed
    _offset: int
    _entry: FlowEntry | None

    def __init__(self, buf, head: tuple) -> None:
        (
            self._offset,
            self.length,
            self.table_id,
            self.priority,
            self.cookie,
            self.packet_count,
            self.byte_count,
            self.instructions_length,
        ) = head
        self._buf, self._entry = buf, None

    def identity(self) -> bytes:
        """What the flow is, without what it counted: its table, priority, cookie, match and
        instructions as the switch sent them (read before `entry`, which drops the octets)."""
        buf, at = self._buf, self._offset
        return (
            buf[at + 2 : at + 3]
            + buf[at + 12 : at + 14]
            + buf[at + 24 : at + 32]
            + buf[at + _FLOW_STATS.size : at + self.length]
        )

    @property
    def entry(self) -> FlowEntry:
        if self._entry is None:
            self._entry = self._parse()
            self._buf = None  # the reply's octets are not kept beyond the parse
        return self._entry

    def _parse(self) -> FlowEntry:
        buf, offset = self._buf, self._offset
        match_at = offset + _FLOW_STATS.size
        _, match_length = _MATCH_HEADER.unpack_from(buf, match_at)
        fields = []
        at, end = match_at + _MATCH_HEADER.size, match_at + match_length
        while at < end:
            number, value, mask, field_length = ofp.oxm_parse(buf, at)
            fields.append(_to_user(number, value, mask))
            at += field_length
        entry = FlowEntry(self.table_id, self.priority, self.cookie, tuple(sorted(fields)))
        # The instructions exactly as the switch sent them: the octets FlowEntry.body compares
        # (its cached value, set as if computed).
        instructions_at = match_at + (match_length + 7) // 8 * 8
        entry.__dict__["body"] = bytes(buf[instructions_at : offset + self.length])
        return entry


# What the VM statistics read of one flow (app/flows/vm_stats.py): table, priority, cookie,
# packets, bytes, whether it has instructions (none: a deny); None for an entry not readable.
FlowCounts = tuple[int, int, int, int, int, bool]


class WireFlowStatsPart:
    """Every flow of one flow stats reply message. os-ken's multipart parser asks its body class
    for one entry at a time (an object and a call for each: on a VM statistics poll, more than
    the counting); this class takes the rest of the message as one "entry" whose length ends that
    loop, checks each flow's framing (struct.error on truncated octets, as os-ken's parsers: its
    receive loop logs and drops the message) and keeps each one's header as a tuple."""

    __slots__ = ("length", "_buf", "_heads")

    def __init__(self, length: int, buf, heads: list[tuple]) -> None:
        self.length, self._buf, self._heads = length, buf, heads

    @classmethod
    def parser(cls, buf, offset: int) -> "WireFlowStatsPart":
        start, end, heads = offset, len(buf), []
        unpack, unpack_match = _FLOW_STATS.unpack_from, _MATCH_HEADER.unpack_from
        size = _FLOW_STATS.size
        while offset < end:
            (length, table_id, _, _, priority, _, _, _, cookie, packets, octets) = unpack(
                buf, offset
            )
            match_type, match_length = unpack_match(buf, offset + size)
            if match_type != ofp.OFPMT_OXM or match_length < _MATCH_HEADER.size:
                raise struct.error(f"flow stats: match type {match_type}, length {match_length}")
            if offset + length > end:
                raise struct.error("flow stats: the flow overruns the reply")
            instructions_at = offset + size + (match_length + 7) // 8 * 8
            if instructions_at > offset + length:
                raise struct.error("flow stats: the match overruns the flow")
            heads.append(
                (
                    offset,
                    length,
                    table_id,
                    priority,
                    cookie,
                    packets,
                    octets,
                    offset + length - instructions_at,
                )
            )
            offset += length
        return cls(end - start, buf, heads)

    def flows(self) -> list[WireFlowStats]:
        return [WireFlowStats(self._buf, head) for head in self._heads]

    def counts(self) -> list[FlowCounts]:
        return [(t, p, c, n, b, i > 0) for _, _, t, p, c, n, b, i in self._heads]


def flows(body: Iterable) -> list:
    """The flows of a flow stats reply's body: WireFlowStats from the parts; any other entry
    (os-ken's OFPFlowStats, the tests' fakes) as it is."""
    out: list = []
    for item in body:
        if type(item) is WireFlowStatsPart:
            out += item.flows()
        else:
            out.append(item)
    return out


def counts(body: Iterable) -> Iterator[FlowCounts | None]:
    """What the VM statistics read of each flow of a reply's body: from the parts, their
    headers; from any other entry, its attributes (None when it lacks one)."""
    for item in body:
        if type(item) is WireFlowStatsPart:
            yield from item.counts()
            continue
        try:
            yield (
                item.table_id,
                item.priority,
                item.cookie,
                item.packet_count,
                item.byte_count,
                bool(item.instructions),
            )
        except AttributeError:
            yield None


# The same (field, value, mask) recurs in most flows (VLANs, EtherTypes, ports, metadata).
_to_user = functools.lru_cache(maxsize=65536)(ofp.oxm_to_user)


def install() -> None:
    """Makes os-ken parse the body of every flow stats reply with WireFlowStatsPart (the hook its
    own `_set_stats_type` sets; this process asks for flow stats only to reconcile and to count
    its VMs' traffic, which reads the counters and the FlowEntry only)."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = WireFlowStatsPart
