"""A bare OpenFlow 1.3 controller connection, for tests that play a controller (a deposed
leader): it claims a role with a generation id, sends a flow-mod and reads what the switch
answers. It talks to a bridge's management socket, the one ovs-ofctl uses: Open vSwitch applies
roles and their generation ids there as on the controller connections it makes itself, and the
bridge's own controllers stay as they are. Messages are os-ken's."""

import socket
import struct

from os_ken.ofproto import ofproto_parser, ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

OVS_RUNDIR = "/var/run/openvswitch"
HEADER = struct.Struct("!BBHI")
MAX_MESSAGES = 1000  # read while waiting for one answer: an echo or two, never this many


class OpenFlowClient:
    """One connection to `bridge`, role EQUAL until role() changes it."""

    def __init__(self, bridge: str, timeout: float = 5.0):
        self.dp = ofproto_protocol.ProtocolDesc(ofp.OFP_VERSION)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(f"{OVS_RUNDIR}/{bridge}.mgmt")
        self._buf = b""
        self._xid = 0
        self._send(parser.OFPHello(self.dp))
        if not isinstance(self._read(), parser.OFPHello):
            raise ConnectionError(f"{bridge}: no OpenFlow hello")

    def role(self, role: int, generation: int):
        """OFPRoleReply, or the switch's OFPErrorMsg (OFPRRFC_STALE: an old generation)."""
        return self.ask(parser.OFPRoleRequest(self.dp, role, generation))

    def add_flow(self, table: int, priority: int, cookie: int):
        """A flow-mod adding a drop flow matching everything; the switch's OFPErrorMsg
        (OFPBRC_IS_SLAVE for a SLAVE), or None once a barrier shows it was taken."""
        return self.ask(
            parser.OFPFlowMod(
                self.dp, cookie=cookie, table_id=table, priority=priority, match=parser.OFPMatch()
            )
        )

    def ask(self, msg):
        """Send msg and a barrier: the answer to msg (a reply or an error), or None."""
        xid = self._send(msg)
        barrier = self._send(parser.OFPBarrierRequest(self.dp))
        answer = None
        for _ in range(MAX_MESSAGES):
            got = self._read()
            if got.xid == xid:
                answer = got
            elif got.xid == barrier and isinstance(got, parser.OFPBarrierReply):
                return answer
        raise ConnectionError(f"no barrier reply among {MAX_MESSAGES} messages")

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, msg) -> int:
        self._xid += 1
        msg.set_xid(self._xid)
        msg.serialize()
        self.sock.sendall(bytes(msg.buf))
        return self._xid

    def _read(self):
        """The next message, parsed; echo requests are answered on the way."""
        while True:
            while len(self._buf) < HEADER.size or len(self._buf) < self._length():
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise ConnectionError("the switch closed the connection")
                self._buf += chunk
            version, msg_type, length, xid = HEADER.unpack_from(self._buf)
            raw, self._buf = self._buf[:length], self._buf[length:]
            msg = ofproto_parser.msg(self.dp, version, msg_type, length, xid, raw)
            if isinstance(msg, parser.OFPEchoRequest):
                reply = parser.OFPEchoReply(self.dp, data=msg.data)
                reply.set_xid(xid)
                reply.serialize()
                self.sock.sendall(bytes(reply.buf))
                continue
            return msg

    def _length(self) -> int:
        return HEADER.unpack_from(self._buf)[2]
