"""LLDPDUs (IEEE 802.1AB clause 8): Chassis ID, Port ID and TTL TLVs first,
then optional TLVs in wire order.  EVB and CDCP TLVs are decoded into their
typed objects; other organizationally specific TLVs and all other TLV types
are carried through unchanged.  The tail (End TLV, zero padding) follows the
rule documented in ``app.codec.tlv``.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, Self

from app.codec.cdcp_tlv import CDCP_SUBTYPE, CdcpTlv, decode_cdcp_tlv, encode_cdcp_tlv
from app.codec.errors import CodecError
from app.codec.evb_tlv import EVB_SUBTYPE, EvbTlv, decode_evb_tlv, encode_evb_tlv
from app.codec.tlv import (
    END_TLV_TYPE,
    IEEE_8021_OUI,
    MAX_TLV_LENGTH,
    ORG_TLV_TYPE,
    RawTlv,
    check_tail,
    encode_tail,
    encode_tlv,
    scan_tlvs,
)
from app.codec.wire import Reader, check_bytes, check_uint, mac_from_bytes, mac_to_bytes

ETHERTYPE_LLDP = 0x88CC
# IEEE 802.1 organizationally specific TLVs decoded into their own classes.
_IEEE_8021_CODECS: dict[int, Callable[[bytes], EvbTlv | CdcpTlv]] = {
    EVB_SUBTYPE: decode_evb_tlv,
    CDCP_SUBTYPE: decode_cdcp_tlv,
}


class LldpTlvType(IntEnum):
    END = 0
    CHASSIS_ID = 1
    PORT_ID = 2
    TTL = 3
    PORT_DESCRIPTION = 4
    SYSTEM_NAME = 5
    SYSTEM_DESCRIPTION = 6
    SYSTEM_CAPABILITIES = 7
    MANAGEMENT_ADDRESS = 8
    ORG_SPECIFIC = 127


@dataclass(frozen=True)
class _SubtypedId:
    """Chassis ID or Port ID: a subtype octet and 1..255 octets of ID."""

    subtype: int
    id: bytes
    MAC_SUBTYPE: ClassVar[int]
    FIELD: ClassVar[str]

    def __post_init__(self) -> None:
        check_uint(self.subtype, 8, f"{self.FIELD}.subtype")
        object.__setattr__(self, "id", check_bytes(self.id, f"{self.FIELD}.id", max_size=255))
        if not self.id:
            raise CodecError(f"{self.FIELD}.id", "must not be empty")

    @classmethod
    def from_mac(cls, mac: str) -> Self:
        return cls(cls.MAC_SUBTYPE, mac_to_bytes(mac, f"{cls.FIELD}.id"))

    @property
    def mac(self) -> str:
        if self.subtype != self.MAC_SUBTYPE or len(self.id) != 6:
            raise CodecError(
                f"{self.FIELD}.id",
                f"subtype {self.subtype}, {len(self.id)} octets: not a MAC address",
            )
        return mac_from_bytes(self.id)


@dataclass(frozen=True)
class ChassisId(_SubtypedId):
    MAC_SUBTYPE: ClassVar[int] = 4
    FIELD: ClassVar[str] = "lldp.chassis_id"


@dataclass(frozen=True)
class PortId(_SubtypedId):
    MAC_SUBTYPE: ClassVar[int] = 3
    INTERFACE_NAME_SUBTYPE: ClassVar[int] = 5
    FIELD: ClassVar[str] = "lldp.port_id"

    @classmethod
    def from_name(cls, name: str) -> Self:
        return cls(cls.INTERFACE_NAME_SUBTYPE, name.encode())


@dataclass(frozen=True)
class LldpTlv:
    """Any TLV without a dedicated class (types 4..126), carried through."""

    type: int
    value: bytes = b""

    def __post_init__(self) -> None:
        check_uint(self.type, 7, "lldp.tlv.type")
        if self.type in (
            END_TLV_TYPE,
            LldpTlvType.CHASSIS_ID,
            LldpTlvType.PORT_ID,
            LldpTlvType.TTL,
            ORG_TLV_TYPE,
        ):
            raise CodecError("lldp.tlv.type", f"type {self.type} has its own representation")
        object.__setattr__(
            self, "value", check_bytes(self.value, "lldp.tlv.value", max_size=MAX_TLV_LENGTH)
        )


@dataclass(frozen=True)
class OrgTlv:
    """An organizationally specific TLV (802.1AB clause 8.6) other than EVB and CDCP."""

    oui: int
    subtype: int
    info: bytes = b""

    def __post_init__(self) -> None:
        check_uint(self.oui, 24, "lldp.org.oui")
        check_uint(self.subtype, 8, "lldp.org.subtype")
        if self.oui == IEEE_8021_OUI and self.subtype in _IEEE_8021_CODECS:
            raise CodecError(
                "lldp.org.subtype", f"IEEE 802.1 subtype {self.subtype:#04x} has its own TLV class"
            )
        object.__setattr__(
            self, "info", check_bytes(self.info, "lldp.org.info", max_size=MAX_TLV_LENGTH - 4)
        )


OptionalTlv = LldpTlv | OrgTlv | EvbTlv | CdcpTlv


@dataclass(frozen=True)
class LldpPdu:
    chassis_id: ChassisId
    port_id: PortId
    ttl: int
    tlvs: tuple[OptionalTlv, ...] = ()
    end_tlv: bool = True
    padding: int = 0  # zero octets after the End TLV (see app.codec.tlv)

    def __post_init__(self) -> None:
        if not isinstance(self.chassis_id, ChassisId):
            raise CodecError("lldp.chassis_id", "must be a ChassisId")
        if not isinstance(self.port_id, PortId):
            raise CodecError("lldp.port_id", "must be a PortId")
        check_uint(self.ttl, 16, "lldp.ttl")
        object.__setattr__(self, "tlvs", tuple(self.tlvs))
        if not all(isinstance(t, (LldpTlv, OrgTlv, EvbTlv, CdcpTlv)) for t in self.tlvs):
            raise CodecError("lldp.tlv", "must be LldpTlv, OrgTlv, EvbTlv or CdcpTlv objects")
        check_tail(self.end_tlv, self.padding, "lldp")

    @property
    def evb(self) -> EvbTlv | None:
        return next((t for t in self.tlvs if isinstance(t, EvbTlv)), None)

    @property
    def cdcp(self) -> CdcpTlv | None:
        return next((t for t in self.tlvs if isinstance(t, CdcpTlv)), None)


def _mandatory(tlvs: list[RawTlv], index: int, tlv_type: LldpTlvType, field: str) -> bytes:
    if len(tlvs) <= index or tlvs[index].type != tlv_type:
        got = f"type {tlvs[index].type}" if len(tlvs) > index else "no TLV"
        raise CodecError(
            field, f"TLV {index + 1} must be {tlv_type.name} (type {tlv_type.value}), got {got}"
        )
    return tlvs[index].value


def _decode_id(cls, value: bytes):
    reader = Reader(value)
    return cls(reader.uint(1, f"{cls.FIELD}.subtype"), reader.rest())


def _decode_optional(tlv: RawTlv) -> OptionalTlv:
    if tlv.type in (LldpTlvType.CHASSIS_ID, LldpTlvType.PORT_ID, LldpTlvType.TTL):
        raise CodecError("lldp.tlv.type", f"duplicate {LldpTlvType(tlv.type).name} TLV")
    if tlv.type != ORG_TLV_TYPE:
        return LldpTlv(tlv.type, tlv.value)
    reader = Reader(tlv.value)
    oui = reader.uint(3, "lldp.org.oui")
    subtype = reader.uint(1, "lldp.org.subtype")
    if oui == IEEE_8021_OUI and subtype in _IEEE_8021_CODECS:
        return _IEEE_8021_CODECS[subtype](tlv.raw)
    return OrgTlv(oui, subtype, reader.rest())


def decode_lldpdu(data: bytes) -> LldpPdu:
    scan = scan_tlvs(data, "lldp")
    chassis_id = _decode_id(
        ChassisId, _mandatory(scan.tlvs, 0, LldpTlvType.CHASSIS_ID, "lldp.chassis_id")
    )
    port_id = _decode_id(PortId, _mandatory(scan.tlvs, 1, LldpTlvType.PORT_ID, "lldp.port_id"))
    ttl = _mandatory(scan.tlvs, 2, LldpTlvType.TTL, "lldp.ttl")
    if len(ttl) != 2:
        raise CodecError("lldp.ttl", f"TTL TLV length must be 2, got {len(ttl)}")
    return LldpPdu(
        chassis_id,
        port_id,
        int.from_bytes(ttl, "big"),
        tuple(_decode_optional(t) for t in scan.tlvs[3:]),
        scan.end_tlv,
        scan.padding,
    )


def _encode_optional(tlv: OptionalTlv) -> bytes:
    if isinstance(tlv, EvbTlv):
        return encode_evb_tlv(tlv)
    if isinstance(tlv, CdcpTlv):
        return encode_cdcp_tlv(tlv)
    if isinstance(tlv, OrgTlv):
        info = tlv.oui.to_bytes(3, "big") + bytes([tlv.subtype]) + tlv.info
        return encode_tlv(ORG_TLV_TYPE, info, "lldp.org")
    return encode_tlv(tlv.type, tlv.value, "lldp.tlv")


def encode_lldpdu(pdu: LldpPdu) -> bytes:
    return b"".join(
        [
            encode_tlv(
                LldpTlvType.CHASSIS_ID,
                bytes([pdu.chassis_id.subtype]) + pdu.chassis_id.id,
                "lldp.chassis_id",
            ),
            encode_tlv(
                LldpTlvType.PORT_ID, bytes([pdu.port_id.subtype]) + pdu.port_id.id, "lldp.port_id"
            ),
            encode_tlv(LldpTlvType.TTL, pdu.ttl.to_bytes(2, "big"), "lldp.ttl"),
            *(_encode_optional(t) for t in pdu.tlvs),
            encode_tail(pdu.end_tlv, pdu.padding),
        ]
    )
