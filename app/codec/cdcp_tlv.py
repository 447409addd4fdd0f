"""The CDCP TLV (S-channel Discovery and Configuration Protocol): IEEE
802.1Qbg-2012 Annex D.2.13, an IEEE 802.1 organizationally specific LLDP TLV
(OUI 00-80-C2, subtype 0x0E).  Information after the subtype:

* 4 octets: Role (bit 31; 0 bridge, 1 station), reserved (30-28),
  SComp (27), reserved (26-12), ChnCap (11-0);
* then SCID/SVID pairs, 3 octets each: SCID (12 bits) followed by SVID
  (12 bits).  The 9-bit TLV length allows at most 167 pairs (8 + 3 * 167 = 509).

Reserved bits are kept in ``reserved`` (in place, within the 32-bit word) so
that re-encoding is byte-exact.
"""

from dataclasses import dataclass
from enum import IntEnum

from app.codec.errors import CodecError
from app.codec.tlv import decode_ieee8021_info, encode_ieee8021_tlv
from app.codec.wire import check_flag, check_uint

CDCP_SUBTYPE = 0x0E
MAX_CHANNELS = 167
RESERVED_MASK = 0x77_FF_F0_00


class CdcpRole(IntEnum):
    BRIDGE = 0
    STATION = 1


@dataclass(frozen=True)
class SChannel:
    scid: int
    svid: int

    def __post_init__(self) -> None:
        check_uint(self.scid, 12, "cdcp.channel.scid")
        check_uint(self.svid, 12, "cdcp.channel.svid")


@dataclass(frozen=True)
class CdcpTlv:
    role: int
    scomp: bool = False
    chncap: int = 0
    channels: tuple[SChannel, ...] = ()
    reserved: int = 0

    def __post_init__(self) -> None:
        check_uint(self.role, 1, "cdcp.role")
        check_flag(self.scomp, "cdcp.scomp")
        check_uint(self.chncap, 12, "cdcp.chncap")
        object.__setattr__(self, "channels", tuple(self.channels))
        if len(self.channels) > MAX_CHANNELS:
            raise CodecError(
                "cdcp.channels",
                f"at most {MAX_CHANNELS} SCID/SVID pairs fit, got {len(self.channels)}",
            )
        if not all(isinstance(c, SChannel) for c in self.channels):
            raise CodecError("cdcp.channels", "must be SChannel objects")
        if check_uint(self.reserved, 32, "cdcp.reserved") & ~RESERVED_MASK:
            raise CodecError("cdcp.reserved", f"must only have bits of {RESERVED_MASK:#010x} set")


def decode_cdcp_tlv(data: bytes) -> CdcpTlv:
    """Decode a complete CDCP TLV (header included)."""
    reader = decode_ieee8021_info(data, CDCP_SUBTYPE, "cdcp")
    word = reader.uint(4, "cdcp.role")
    if reader.remaining % 3:
        raise CodecError(
            "cdcp.length", f"SCID/SVID pairs are 3 octets each, {reader.remaining} octets left"
        )
    pairs = [reader.uint(3, "cdcp.channels") for _ in range(reader.remaining // 3)]
    return CdcpTlv(
        role=word >> 31,
        scomp=bool(word & 1 << 27),
        chncap=word & 0xFFF,
        channels=tuple(SChannel(scid=p >> 12, svid=p & 0xFFF) for p in pairs),
        reserved=word & RESERVED_MASK,
    )


def encode_cdcp_tlv(tlv: CdcpTlv) -> bytes:
    word = tlv.role << 31 | tlv.scomp << 27 | tlv.reserved | tlv.chncap
    pairs = b"".join((c.scid << 12 | c.svid).to_bytes(3, "big") for c in tlv.channels)
    return encode_ieee8021_tlv(CDCP_SUBTYPE, word.to_bytes(4, "big") + pairs, "cdcp")
