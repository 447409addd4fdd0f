"""The EVB TLV: IEEE 802.1Qbg-2012 Annex D.2.12, an IEEE 802.1 organizationally
specific LLDP TLV (OUI 00-80-C2, subtype 0x0D) with five octets of information:

====== =====================================================================
octet  bits (7 = most significant)
====== =====================================================================
EVB 1  bridge status: 2 BGID, 1 RRCAP, 0 RRCTR
EVB 2  station status: 3 SGID, 2 RRREQ, 1-0 RRSTAT
EVB 3  7-5 R (ECP maximum retries), 4-0 RTE (ECP retransmission exponent)
EVB 4  7-6 EVB mode, 5 ROL (RWD is the remote value), 4-0 RWD
EVB 5  5 ROL (RKA is the remote value), 4-0 RKA
====== =====================================================================

Reserved bits are sent as zero and ignored by receivers; decoding keeps them
in ``reserved`` (in place, within the 40-bit big-endian information) so that
re-encoding is byte-exact.
"""

from dataclasses import dataclass
from enum import IntEnum

from app.codec.errors import CodecError
from app.codec.tlv import decode_ieee8021_info, encode_ieee8021_tlv
from app.codec.wire import check_flag, check_uint

EVB_SUBTYPE = 0x0D
RESERVED_MASK = 0xF8_F0_00_00_C0  # the bits of the five octets that are reserved


class EvbMode(IntEnum):
    BRIDGE = 1
    STATION = 2


class RrStat(IntEnum):
    """Station reflective relay status (RRSTAT)."""

    NOT_ENABLED = 0
    ENABLED = 1
    UNKNOWN = 3


@dataclass(frozen=True)
class EvbTlv:
    mode: int
    bgid: bool = False
    rrcap: bool = False
    rrctr: bool = False
    sgid: bool = False
    rrreq: bool = False
    rrstat: int = RrStat.NOT_ENABLED
    r: int = 0
    rte: int = 0
    rol_rwd: bool = False
    rwd: int = 0
    rol_rka: bool = False
    rka: int = 0
    reserved: int = 0

    def __post_init__(self) -> None:
        for name in ("bgid", "rrcap", "rrctr", "sgid", "rrreq", "rol_rwd", "rol_rka"):
            check_flag(getattr(self, name), f"evb.{name}")
        check_uint(self.mode, 2, "evb.mode")
        check_uint(self.rrstat, 2, "evb.rrstat")
        check_uint(self.r, 3, "evb.r")
        check_uint(self.rte, 5, "evb.rte")
        check_uint(self.rwd, 5, "evb.rwd")
        check_uint(self.rka, 5, "evb.rka")
        if check_uint(self.reserved, 40, "evb.reserved") & ~RESERVED_MASK:
            raise CodecError("evb.reserved", f"must only have bits of {RESERVED_MASK:#012x} set")


def decode_evb_tlv(data: bytes) -> EvbTlv:
    """Decode a complete EVB TLV (header included)."""
    reader = decode_ieee8021_info(data, EVB_SUBTYPE, "evb")
    if reader.remaining != 5:
        raise CodecError(
            "evb.length", f"information after the subtype must be 5 octets, got {reader.remaining}"
        )
    info = reader.uint(5, "evb.info")
    bridge, station, r_rte, mode_rwd, rka = info.to_bytes(5, "big")
    return EvbTlv(
        mode=mode_rwd >> 6,
        bgid=bool(bridge & 0x04),
        rrcap=bool(bridge & 0x02),
        rrctr=bool(bridge & 0x01),
        sgid=bool(station & 0x08),
        rrreq=bool(station & 0x04),
        rrstat=station & 0x03,
        r=r_rte >> 5,
        rte=r_rte & 0x1F,
        rol_rwd=bool(mode_rwd & 0x20),
        rwd=mode_rwd & 0x1F,
        rol_rka=bool(rka & 0x20),
        rka=rka & 0x1F,
        reserved=info & RESERVED_MASK,
    )


def encode_evb_tlv(tlv: EvbTlv) -> bytes:
    octets = bytes(
        [
            tlv.bgid << 2 | tlv.rrcap << 1 | tlv.rrctr,
            tlv.sgid << 3 | tlv.rrreq << 2 | tlv.rrstat,
            tlv.r << 5 | tlv.rte,
            tlv.mode << 6 | tlv.rol_rwd << 5 | tlv.rwd,
            tlv.rol_rka << 5 | tlv.rka,
        ]
    )
    info = int.from_bytes(octets, "big") | tlv.reserved
    return encode_ieee8021_tlv(EVB_SUBTYPE, info.to_bytes(5, "big"), "evb")
