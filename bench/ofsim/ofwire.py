"""OpenFlow 1.3 on the wire, by hand with struct: only what a switch needs to answer evb-nms.

os-ken's parser builds an object tree per message, which costs far more than the simulated
switch's whole work; here a message is a type, an xid and a byte range, and only the fields
the switch acts on are unpacked.
"""

import struct

OFP_VERSION = 4

HELLO = 0
ERROR = 1
ECHO_REQUEST = 2
ECHO_REPLY = 3
EXPERIMENTER = 4
FEATURES_REQUEST = 5
FEATURES_REPLY = 6
GET_CONFIG_REQUEST = 7
GET_CONFIG_REPLY = 8
SET_CONFIG = 9
PACKET_IN = 10
PORT_STATUS = 12
PACKET_OUT = 13
FLOW_MOD = 14
GROUP_MOD = 15
PORT_MOD = 16
TABLE_MOD = 17
MULTIPART_REQUEST = 18
MULTIPART_REPLY = 19
BARRIER_REQUEST = 20
BARRIER_REPLY = 21
ROLE_REQUEST = 24
ROLE_REPLY = 25
GET_ASYNC_REQUEST = 26
GET_ASYNC_REPLY = 27
SET_ASYNC = 28
METER_MOD = 29

# flow-mod commands
FC_ADD, FC_MODIFY, FC_MODIFY_STRICT, FC_DELETE, FC_DELETE_STRICT = range(5)
# meter-mod commands
MC_ADD, MC_MODIFY, MC_DELETE = range(3)
# multipart types
MP_DESC = 0
MP_FLOW = 1
MP_AGGREGATE = 2
MP_METER_CONFIG = 10
MP_PORT_DESC = 13
MPF_REPLY_MORE = 1

OFPP_MAX = 0xFFFFFF00
OFPP_IN_PORT = 0xFFFFFFF8
OFPP_CONTROLLER = 0xFFFFFFFD
OFPP_LOCAL = 0xFFFFFFFE
OFPP_ANY = 0xFFFFFFFF
OFPG_ANY = 0xFFFFFFFF
OFPTT_ALL = 0xFF
OFPM_ALL = 0xFFFFFFFF
OFPR_ACTION = 1

OFPET_BAD_REQUEST = 1
OFPBRC_BAD_LEN = 6
OFPET_EXPERIMENTER = 0xFFFF

# bundles: the ONF extension 230 for OpenFlow 1.3 (Open vSwitch's)
ONF_EXPERIMENTER_ID = 0x4F4E4600
ONF_ET_BUNDLE_CONTROL = 2300
ONF_ET_BUNDLE_ADD_MESSAGE = 2301
BCT_OPEN, BCT_OPEN_REPLY, BCT_CLOSE, BCT_CLOSE_REPLY = range(4)
BCT_COMMIT, BCT_COMMIT_REPLY, BCT_DISCARD, BCT_DISCARD_REPLY = range(4, 8)
ONFERR_ET_BAD_ID = 2302
ONFERR_ET_FAILED = 2313

# instruction / action types
IT_WRITE_ACTIONS = 3
IT_APPLY_ACTIONS = 4
IT_METER = 6
AT_OUTPUT = 0

HEADER = struct.Struct("!BBHI")
FLOW_MOD_BODY = struct.Struct("!QQBBHHHIIIH2x")  # after the header, up to the match
FLOW_STATS_REQUEST = struct.Struct("!B3xII4xQQ")  # after the multipart header
FLOW_STATS_ENTRY = struct.Struct("!HBxIIHHHH4x")  # up to the cookie
METER_MOD_BODY = struct.Struct("!HHI")
EXPERIMENTER_HEADER = struct.Struct("!II")  # after the header: experimenter, exp_type
BUNDLE_CONTROL = struct.Struct("!IHH")  # after the experimenter header: id, type, flags
BUNDLE_ADD = struct.Struct("!I2xH")  # after the experimenter header: id, flags; the message
PACKET_OUT_BODY = struct.Struct("!IIH6x")
MULTIPART = struct.Struct("!HH4x")
ROLE_BODY = struct.Struct("!I4xQ")  # role request / reply: role, generation id
U16 = struct.Struct("!H")
U32 = struct.Struct("!I")
MAX_MESSAGE = 0xFFFF
_PADDING = bytes(8)


def message(msg_type: int, xid: int, body: bytes = b"") -> bytes:
    return HEADER.pack(OFP_VERSION, msg_type, 8 + len(body), xid) + body


def hello() -> bytes:
    # One version-bitmap element: OpenFlow 1.3 only.
    return message(HELLO, 0, struct.pack("!HHI", 1, 8, 1 << OFP_VERSION))


def error(xid: int, err_type: int, code: int, offending: bytes) -> bytes:
    return message(ERROR, xid, struct.pack("!HH", err_type, code) + bytes(offending[:64]))


def experimenter_error(xid: int, exp_type: int, offending: bytes) -> bytes:
    body = struct.pack("!HHI", OFPET_EXPERIMENTER, exp_type, ONF_EXPERIMENTER_ID)
    return message(ERROR, xid, body + bytes(offending[:64]))


def bundle_reply(xid: int, bundle_id: int, reply_type: int, flags: int) -> bytes:
    head = EXPERIMENTER_HEADER.pack(ONF_EXPERIMENTER_ID, ONF_ET_BUNDLE_CONTROL)
    return message(EXPERIMENTER, xid, head + BUNDLE_CONTROL.pack(bundle_id, reply_type, flags))


def features_reply(xid: int, dpid: int, n_tables: int = 254) -> bytes:
    # capabilities: flow, table, port stats (as OVS reports them).
    return message(FEATURES_REPLY, xid, struct.pack("!QIBB2xII", dpid, 0, n_tables, 0, 0x7, 0))


def port_entry(port_no: int, hw_addr: bytes, name: str) -> bytes:
    """An ofp_port, up, 10 Gbit/s."""
    return struct.pack(
        "!I4x6s2x16sIIIIIIII",
        port_no,
        hw_addr,
        name.encode()[:15],
        0,
        4,
        0x840,
        0,
        0,
        0,
        10_000_000,
        10_000_000,
    )  # state LIVE; 10GB_FD, copper


def desc_entry() -> bytes:
    return b"".join(
        text.encode().ljust(size, b"\0")
        for text, size in (
            ("evb-nms bench", 256),
            ("ofsim", 256),
            ("bench/ofsim", 256),
            ("0", 32),
            ("sim", 256),
        )
    )


def aggregate_entry(flow_count: int) -> bytes:
    return struct.pack("!QQI4x", 0, 0, flow_count)


def multipart_replies(xid: int, mp_type: int, entries) -> list[bytes]:
    """The reply as few messages as fit in 64 KiB each, all but the last flagged REPLY_MORE."""
    out, chunk, size = [], [], 16
    for entry in entries:
        if size + len(entry) > MAX_MESSAGE and chunk:
            body = b"".join(chunk)
            out.append(
                HEADER.pack(OFP_VERSION, MULTIPART_REPLY, size, xid)
                + MULTIPART.pack(mp_type, MPF_REPLY_MORE)
                + body
            )
            chunk, size = [], 16
        chunk.append(entry)
        size += len(entry)
    out.append(
        HEADER.pack(OFP_VERSION, MULTIPART_REPLY, size, xid)
        + MULTIPART.pack(mp_type, 0)
        + b"".join(chunk)
    )
    return out


def packet_in_prefix(port_no: int, cookie: int = 0) -> bytes:
    """What follows the header of a packet-in from `port_no` (reason ACTION, table 0), up to
    the frame: buffer_id, total_len (patched per frame), reason, table, cookie, match, pad."""
    match = struct.pack("!HHIIxxxx", 1, 12, 0x80000004, port_no)  # OXM in_port, padded to 16
    return struct.pack("!IHBBQ", 0xFFFFFFFF, 0, OFPR_ACTION, 0, cookie) + match + b"\0\0"


def packet_in(prefix: bytes, frame: bytes) -> bytes:
    n = len(frame)
    return (
        HEADER.pack(OFP_VERSION, PACKET_IN, 8 + len(prefix) + n, 0)
        + prefix[:4]
        + U16.pack(n)
        + prefix[6:]
        + frame
    )


def padded(length: int) -> int:
    return (length + 7) & ~7


def oxm_fields(oxm: bytes) -> frozenset:
    """The OXM TLVs of a match, each as its bytes (header included)."""
    fields, i, n = [], 0, len(oxm)
    while i + 4 <= n:
        end = i + 4 + oxm[i + 3]
        fields.append(oxm[i:end])
        i = end
    return frozenset(fields)


def instructions(data: bytes, start: int = 0):
    """(type, offset, length) of each instruction in data[start:]."""
    i, n = start, len(data)
    while i + 4 <= n:
        it_type, length = struct.unpack_from("!HH", data, i)
        if length < 4:
            return
        yield it_type, i, length
        i += length


def output_ports(data: bytes, start: int, end: int):
    """The ports of the output actions in the action list data[start:end]."""
    i = start
    while i + 8 <= end:
        a_type, length = struct.unpack_from("!HH", data, i)
        if length < 8:
            return
        if a_type == AT_OUTPUT:
            yield U32.unpack_from(data, i + 4)[0]
        i += length


def instruction_outputs(instr: bytes, start: int = 0) -> set:
    """Every port an instruction list outputs to (apply and write actions)."""
    ports = set()
    for it_type, offset, length in instructions(instr, start):
        if it_type in (IT_APPLY_ACTIONS, IT_WRITE_ACTIONS):
            ports.update(output_ports(instr, offset + 8, offset + length))
    return ports


def instruction_meter(instr: bytes, start: int = 0) -> int | None:
    for it_type, offset, _ in instructions(instr, start):
        if it_type == IT_METER:
            return U32.unpack_from(instr, offset + 4)[0]
    return None
