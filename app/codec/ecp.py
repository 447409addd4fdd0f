"""ECPDUs: the Edge Control Protocol, IEEE 802.1Qbg-2012 clause 43, EtherType
0x8940.  A 4-octet header, ``version(4) op(2) subtype(10) | sequence(16)``,
then the upper layer PDU (for subtype 1, a VDPDU).

An ACK carries no upper layer PDU: any octets after its header are frame
padding and must be zero (lldpad sends 18-octet ACKs; padded ones occur too).
``payload`` keeps those octets so that re-encoding is byte-exact.
"""

from dataclasses import dataclass
from enum import IntEnum
from typing import cast

from app.codec.errors import CodecError
from app.codec.wire import Reader, check_bytes, check_uint

ETHERTYPE_ECP = 0x8940
ECP_VERSION = 1
SUBTYPE_VDP = 1


class EcpOp(IntEnum):
    REQUEST = 0
    ACK = 1


@dataclass(frozen=True)
class EcpPdu:
    op: EcpOp
    sequence: int
    payload: bytes = b""
    subtype: int = SUBTYPE_VDP
    version: int = ECP_VERSION

    def __post_init__(self) -> None:
        if self.version != ECP_VERSION:
            raise CodecError(
                "ecp.version", f"only version {ECP_VERSION} is defined, got {self.version!r}"
            )
        if self.op not in tuple(EcpOp):
            raise CodecError("ecp.op", f"must be 0 (request) or 1 (ack), got {self.op!r}")
        object.__setattr__(self, "op", EcpOp(self.op))
        check_uint(self.subtype, 10, "ecp.subtype")
        check_uint(self.sequence, 16, "ecp.sequence")
        object.__setattr__(self, "payload", check_bytes(self.payload, "ecp.payload"))
        if self.op == EcpOp.ACK and any(self.payload):
            raise CodecError(
                "ecp.padding", "trailing garbage: an ACK carries no data, only zero padding"
            )


def decode_ecpdu(data: bytes) -> EcpPdu:
    reader = Reader(data)
    header = reader.uint(2, "ecp.header")
    sequence = reader.uint(2, "ecp.sequence")
    # An int: __post_init__ checks it (a CodecError for 2 and 3) and makes it an EcpOp.
    return EcpPdu(
        op=cast(EcpOp, header >> 10 & 0x3),
        sequence=sequence,
        payload=reader.rest(),
        subtype=header & 0x3FF,
        version=header >> 12,
    )


def encode_ecpdu(pdu: EcpPdu) -> bytes:
    header = pdu.version << 12 | pdu.op << 10 | pdu.subtype
    return header.to_bytes(2, "big") + pdu.sequence.to_bytes(2, "big") + pdu.payload
