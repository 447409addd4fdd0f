"""A switch's flows as reconciliation reads them: straight from the octets of a flow stats reply.

os-ken parses each flow of a reply into an OFPFlowStats with an OFPMatch (plus the structures of
its old match API) and instruction and action objects: at reconnect, about half of the
controller's CPU (bench.scale --restart, py-spy). Reconciliation needs a flow's key (table,
priority, match fields) and its instructions as octets (FlowEntry.body, which compares the
instructions the way they are serialized), so this parser builds only a FlowEntry, and that
only when it is read: the VM statistics (app/flows/vm_stats.py) read the header (table,
priority, cookie, counts) and the instructions' length alone. The os-ken
shim makes it the body parser of flow stats replies (`install`). Pure: bytes in, entries out.
"""

import functools
import struct
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.flows.ofmsg import FlowEntry

_FLOW_STATS = struct.Struct(ofp.OFP_FLOW_STATS_0_PACK_STR)
_MATCH_HEADER = struct.Struct("!HH")


class WireFlowStats:
    """One flow of a flow stats reply: its length on the wire (os-ken's multipart parser steps
    by it), its header (table, priority, cookie, packet and byte counts: what the VM statistics
    read, app/flows/vm_stats.py) and, parsed at first use, the FlowEntry it describes
    (reconciliation's): the match fields are most of the parsing, and a statistics poll reads
    every VSI flow of the switch without needing them."""

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

    @classmethod
    def parser(cls, buf, offset: int) -> "WireFlowStats":
        """struct.error on truncated octets, as os-ken's parsers (its receive loop logs it); a
        match field that does not parse raises it when `entry` is read."""
        (length, table_id, _, _, priority, _, _, _, cookie, packets, octets) = (
            _FLOW_STATS.unpack_from(buf, offset)
        )
        match_type, match_length = _MATCH_HEADER.unpack_from(buf, offset + _FLOW_STATS.size)
        if match_type != ofp.OFPMT_OXM or match_length < _MATCH_HEADER.size:
            raise struct.error(f"flow stats: match type {match_type}, length {match_length}")
        if offset + length > len(buf):
            raise struct.error("flow stats: the flow overruns the reply")
        instructions_at = offset + _FLOW_STATS.size + (match_length + 7) // 8 * 8
        if instructions_at > offset + length:
            raise struct.error("flow stats: the match overruns the flow")
        stats = cls()
        stats.length, stats.table_id, stats.priority, stats.cookie = (
            length,
            table_id,
            priority,
            cookie,
        )
        stats.packet_count, stats.byte_count = packets, octets
        stats.instructions_length = offset + length - instructions_at
        stats._buf, stats._offset, stats._entry = buf, offset, None
        return stats

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


# The same (field, value, mask) recurs in most flows (VLANs, EtherTypes, ports, metadata).
_to_user = functools.lru_cache(maxsize=65536)(ofp.oxm_to_user)


def install() -> None:
    """Makes os-ken parse the body of every flow stats reply with WireFlowStats (the hook its
    own `_set_stats_type` sets; this process asks for flow stats only to reconcile and to count
    its VMs' traffic, which reads the counters and the FlowEntry only)."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = WireFlowStats
