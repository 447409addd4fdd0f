"""TLVs with a 7-bit type and a 9-bit length, as used by LLDP (IEEE 802.1AB
clause 8.4) and VDP (IEEE 802.1Qbg-2012 clause 41.2).

End TLV and padding rule, shared by LLDPDUs and VDPDUs: TLVs are read until
an End TLV (type 0, length 0, i.e. the octets ``00 00``) or the end of the
data.  Everything after the End TLV must be zero: it is frame padding, kept
as a count so that re-encoding reproduces the frame.  Non-zero octets there
are trailing garbage.  A single zero octet after the last TLV (too short for
an End TLV) is padding too.  So a PDU's tail is described exactly by
``end_tlv`` (were the first two zero octets an End TLV) and ``padding`` (the
zero octets after that); two or more zero octets always read as an End TLV.
"""

from typing import NamedTuple

from app.codec.errors import CodecError
from app.codec.wire import Reader, check_uint

END_TLV_TYPE = 0
ORG_TLV_TYPE = 127
MAX_TLV_LENGTH = 0x1FF
IEEE_8021_OUI = 0x0080C2  # IEEE 802.1 organizationally unique identifier


class RawTlv(NamedTuple):
    type: int
    value: bytes
    raw: bytes  # header and value, as on the wire


class TlvScan(NamedTuple):
    tlvs: list[RawTlv]
    end_tlv: bool
    padding: int


def encode_tlv(tlv_type: int, value: bytes, field: str) -> bytes:
    check_uint(tlv_type, 7, f"{field}.type")
    check_uint(len(value), 9, f"{field}.length")
    return (tlv_type << 9 | len(value)).to_bytes(2, "big") + value


def scan_tlvs(data: bytes, protocol: str) -> TlvScan:
    """Split ``data`` into TLVs, applying the End TLV and padding rule above."""
    reader = Reader(data)
    tlvs: list[RawTlv] = []
    while reader.remaining:
        if reader.remaining == 1:
            if reader.take(1, f"{protocol}.tlv.header") != b"\x00":
                raise CodecError(
                    f"{protocol}.tlv.header", "truncated: 1 octet left, a TLV header needs 2"
                )
            return TlvScan(tlvs, end_tlv=False, padding=1)
        header = reader.uint(2, f"{protocol}.tlv.header")
        tlv_type, length = header >> 9, header & MAX_TLV_LENGTH
        if tlv_type == END_TLV_TYPE:
            tail = reader.rest()
            if header or any(tail):
                raise CodecError(
                    f"{protocol}.padding",
                    "trailing garbage: only zero octets may follow the End TLV",
                )
            return TlvScan(tlvs, end_tlv=True, padding=len(tail))
        if length > reader.remaining:
            raise CodecError(
                f"{protocol}.tlv.length",
                f"TLV type {tlv_type} length {length} exceeds the {reader.remaining} octets left",
            )
        value = reader.take(length, f"{protocol}.tlv.value")
        tlvs.append(RawTlv(tlv_type, value, header.to_bytes(2, "big") + value))
    return TlvScan(tlvs, end_tlv=False, padding=0)


def encode_tail(end_tlv: bool, padding: int) -> bytes:
    return (b"\x00\x00" if end_tlv else b"") + bytes(padding)


def check_tail(end_tlv: bool, padding: int, protocol: str) -> None:
    """Reject a tail that would not decode back to the same ``end_tlv``/``padding``."""
    check_uint(padding, 16, f"{protocol}.padding")
    if not end_tlv and padding > 1:
        raise CodecError(
            f"{protocol}.padding", "two or more zero octets read as an End TLV: set end_tlv"
        )


def extend_tail(end_tlv: bool, padding: int, extra: int) -> tuple[bool, int]:
    """The tail after appending ``extra`` zero octets (e.g. to reach the minimum frame size)."""
    zeros = (2 if end_tlv else 0) + padding + extra
    return (True, zeros - 2) if zeros >= 2 else (False, zeros)


def decode_single_tlv(data: bytes, tlv_type: int, field: str) -> bytes:
    """Value of the TLV that makes up all of ``data``; its type must be ``tlv_type``."""
    reader = Reader(data)
    header = reader.uint(2, f"{field}.header")
    if header >> 9 != tlv_type:
        raise CodecError(f"{field}.type", f"expected TLV type {tlv_type}, got {header >> 9}")
    length = header & MAX_TLV_LENGTH
    if length != reader.remaining:
        raise CodecError(
            f"{field}.length",
            f"TLV length {length} but {reader.remaining} octets follow the header",
        )
    return reader.rest()


def decode_ieee8021_info(data: bytes, subtype: int, field: str) -> Reader:
    """Reader over the information string of the IEEE 802.1 organizationally
    specific LLDP TLV (802.1AB clause 8.6) that makes up all of ``data``."""
    reader = Reader(decode_single_tlv(data, ORG_TLV_TYPE, field))
    oui = reader.uint(3, f"{field}.oui")
    if oui != IEEE_8021_OUI:
        raise CodecError(f"{field}.oui", f"expected OUI 00-80-c2, got {oui:06x}")
    got = reader.uint(1, f"{field}.subtype")
    if got != subtype:
        raise CodecError(f"{field}.subtype", f"expected subtype {subtype:#04x}, got {got:#04x}")
    return reader


def encode_ieee8021_tlv(subtype: int, info: bytes, field: str) -> bytes:
    return encode_tlv(
        ORG_TLV_TYPE, IEEE_8021_OUI.to_bytes(3, "big") + bytes([subtype]) + info, field
    )
