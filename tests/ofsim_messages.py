"""The simulated switch's side of a test (bench/ofsim): os-ken's messages as the controller
sends them, the switch's answers parsed back by os-ken, and a connection without a socket."""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from bench.ofsim import ofwire
from bench.ofsim.switch import SwitchConnection


class Datapath:
    ofproto = ofp
    ofproto_parser = parser

    def set_xid(self, msg):
        msg.xid = 7


class _NoSocket:
    def write(self, data: bytes) -> None:
        pass


def wire(msg) -> bytes:
    msg.datapath = Datapath()
    msg.serialize()
    return bytes(msg.buf)


def parse(data: bytes):
    version, msg_type, length, xid = ofwire.HEADER.unpack_from(data)
    return parser.msg_parser(Datapath(), version, msg_type, length, xid, data[:length])


def connected(sw, controller: int = 0) -> SwitchConnection:
    """A connection of `sw` to `controller` whose output stays in its `out` (nothing flushes it
    outside a message's handling)."""
    conn = SwitchConnection(sw, controller)
    conn.connection_made(_NoSocket())  # its HELLO is flushed to nowhere
    return conn
