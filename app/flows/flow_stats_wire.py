"""A switch's flows as reconciliation reads them: straight from the octets of a flow stats reply.

os-ken parses each flow of a reply into an OFPFlowStats with an OFPMatch (plus the structures of
its old match API) and instruction and action objects: at reconnect, about half of the
controller's CPU (bench.scale --restart, py-spy). Reconciliation needs a flow's key (table,
priority, match fields) and its instructions as octets (FlowEntry.body, which compares the
instructions the way they are serialized), so this parser builds only a FlowEntry, and keeps
the flow's packet and byte counts for the VM statistics (app/flows/vm_stats.py). The os-ken
shim makes it the body parser of flow stats replies (`install`). Pure: bytes in, entries out.
"""

import functools
import struct

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.flows.ofmsg import FlowEntry

_FLOW_STATS = struct.Struct(ofp.OFP_FLOW_STATS_0_PACK_STR)
_MATCH_HEADER = struct.Struct("!HH")


class WireFlowStats:
    """One flow of a flow stats reply: its length on the wire (os-ken's multipart parser steps
    by it), the FlowEntry it describes and its counters (the VM statistics read them,
    app/flows/vm_stats.py)."""

    __slots__ = ("length", "entry", "packet_count", "byte_count")

    def __init__(
        self, length: int, entry: FlowEntry, packet_count: int = 0, byte_count: int = 0
    ) -> None:
        self.length = length
        self.entry = entry
        self.packet_count = packet_count
        self.byte_count = byte_count

    @classmethod
    def parser(cls, buf, offset: int) -> "WireFlowStats":
        """struct.error on truncated octets, as os-ken's parsers (its receive loop logs it)."""
        (length, table_id, _, _, priority, _, _, _, cookie, packets, octets) = (
            _FLOW_STATS.unpack_from(buf, offset)
        )
        match_at = offset + _FLOW_STATS.size
        match_type, match_length = _MATCH_HEADER.unpack_from(buf, match_at)
        if match_type != ofp.OFPMT_OXM or match_length < _MATCH_HEADER.size:
            raise struct.error(f"flow stats: match type {match_type}, length {match_length}")
        fields = []
        at, end = match_at + _MATCH_HEADER.size, match_at + match_length
        while at < end:
            number, value, mask, field_length = ofp.oxm_parse(buf, at)
            fields.append(_to_user(number, value, mask))
            at += field_length
        instructions_at = match_at + (match_length + 7) // 8 * 8
        if instructions_at > offset + length:
            raise struct.error("flow stats: the match overruns the flow")
        entry = FlowEntry(table_id, priority, cookie, tuple(sorted(fields)))
        # The instructions exactly as the switch sent them: the octets FlowEntry.body compares
        # (its cached value, set as if computed).
        entry.__dict__["body"] = bytes(buf[instructions_at : offset + length])
        return cls(length, entry, packets, octets)


# The same (field, value, mask) recurs in most flows (VLANs, EtherTypes, ports, metadata).
_to_user = functools.lru_cache(maxsize=65536)(ofp.oxm_to_user)


def install() -> None:
    """Makes os-ken parse the body of every flow stats reply with WireFlowStats (the hook its
    own `_set_stats_type` sets; this process asks for flow stats only to reconcile and to count
    its VMs' traffic, which reads the counters and the FlowEntry only)."""
    parser.OFPFlowStatsReply.cls_stats_body_cls = WireFlowStats
