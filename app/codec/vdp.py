"""VDPDUs: the VSI Discovery and Configuration Protocol, IEEE 802.1Qbg-2012
clause 41.2, carried in ECPDUs of subtype 1.  A VDPDU is a sequence of TLVs
(7-bit type, 9-bit length):

* 5 VSI Manager ID: 16 octets;
* 1 Pre-Associate, 2 Pre-Associate with resource reservation, 3 Associate,
  4 De-Associate (VSI TLVs): status(1) VSI type ID(3) VSI type version(1)
  VSIID format(1) VSIID(16) filter info format(1) number of entries(2)
  entries; the TLV length is exactly 25 + entries * entry size;
* 127 organizationally specific: OUI(3) then data, carried through;
* 0 End.

Every VSI TLV must follow a Manager ID TLV (the manager it belongs to).
The tail (End TLV, zero padding) follows the rule in ``app.codec.tlv``;
lldpad sends no End TLV.

Decoding checks structure only: VSIID contents (e.g. whether an IPv4 VSIID
really holds an IPv4 address) and VID ranges are left to the caller, which
answers such requests with a VDP error status.  The typed VSIID accessors
raise CodecError when the octets do not match the format.
"""

import ipaddress
from dataclasses import dataclass, replace
from enum import IntEnum
from typing import TypeVar
from uuid import UUID

from app.codec.errors import CodecError
from app.codec.tlv import (
    END_TLV_TYPE,
    MAX_TLV_LENGTH,
    ORG_TLV_TYPE,
    check_tail,
    encode_tail,
    encode_tlv,
    scan_tlvs,
)
from app.codec.wire import (
    Reader,
    check_bytes,
    check_flag,
    check_uint,
    mac_from_bytes,
    mac_to_bytes,
    normalize_mac,
)

MANAGER_ID_LENGTH = 16
VSI_ID_LENGTH = 16
VSI_FIXED_LENGTH = 25  # status .. number of entries

# Status octet of a VSI TLV, kept as the raw octet (bit 7 is reserved).
# Requests (station): M and S bits.
STATUS_M = 0x10  # migrate-to hint
STATUS_S = 0x20  # suspend / migrate-from hint
# Responses (bridge): response bit, KEEP, HARD and a 4-bit error code.
STATUS_RESPONSE = 0x40
STATUS_KEEP = 0x20
STATUS_HARD = 0x10
STATUS_ERROR_MASK = 0x0F


class VdpTlvType(IntEnum):
    END = END_TLV_TYPE
    PRE_ASSOCIATE = 1
    PRE_ASSOCIATE_RR = 2
    ASSOCIATE = 3
    DE_ASSOCIATE = 4
    MANAGER_ID = 5
    ORG_SPECIFIC = ORG_TLV_TYPE


VSI_TLV_TYPES = (
    VdpTlvType.PRE_ASSOCIATE,
    VdpTlvType.PRE_ASSOCIATE_RR,
    VdpTlvType.ASSOCIATE,
    VdpTlvType.DE_ASSOCIATE,
)


class VdpError(IntEnum):
    """Error code in the low nibble of a response status."""

    SUCCESS = 0
    INVALID_FORMAT = 1
    INSUFFICIENT_RESOURCES = 2
    UNABLE_TO_CONTACT_VSI_MANAGER = 3
    OTHER_FAILURE = 4
    INVALID_VID_GROUP_MAC = 5


class VsiIdFormat(IntEnum):
    IPV4 = 1
    IPV6 = 2
    MAC = 3
    LOCAL = 4
    UUID = 5


class FilterFormat(IntEnum):
    VID = 1
    MAC_VID = 2
    GROUP_VID = 3
    GROUP_MAC_VID = 4


_FILTER_ENTRY_SIZE = {
    FilterFormat.VID: 2,
    FilterFormat.MAC_VID: 8,
    FilterFormat.GROUP_VID: 6,
    FilterFormat.GROUP_MAC_VID: 12,
}
_FORMATS_WITH_MAC = (FilterFormat.MAC_VID, FilterFormat.GROUP_MAC_VID)
_FORMATS_WITH_GROUP = (FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID)
_IPV4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"  # ::ffff:a.b.c.d, as lldpad checks it
_MAC_PREFIX = bytes(10)  # MAC right-aligned with leading zeros, as lldpad checks it


_E = TypeVar("_E", bound=IntEnum)


def _enum(enum: type[_E], value: int, field: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        known = ", ".join(f"{m.value} {m.name}" for m in enum)
        raise CodecError(field, f"unknown value {value!r}; known: {known}") from None


@dataclass(frozen=True)
class ManagerIdTlv:
    """VSI Manager ID: 16 octets (lldpad's vdptool: a NUL-padded name, or an address)."""

    mgrid: bytes

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "mgrid", check_bytes(self.mgrid, "vdp.mgrid", size=MANAGER_ID_LENGTH)
        )

    @classmethod
    def from_name(cls, name: str) -> "ManagerIdTlv":
        raw = check_bytes(name.encode(), "vdp.mgrid", max_size=MANAGER_ID_LENGTH)
        return cls(raw.ljust(MANAGER_ID_LENGTH, b"\x00"))

    @property
    def name(self) -> str:
        return self.mgrid.rstrip(b"\x00").decode(errors="replace")


@dataclass(frozen=True)
class VsiId:
    """VSIID: a format and 16 octets, with typed constructors and accessors."""

    format: VsiIdFormat
    value: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "format", _enum(VsiIdFormat, self.format, "vdp.vsiid.format"))
        object.__setattr__(
            self, "value", check_bytes(self.value, "vdp.vsiid.value", size=VSI_ID_LENGTH)
        )

    @classmethod
    def from_ipv4(cls, address: str | ipaddress.IPv4Address) -> "VsiId":
        return cls(VsiIdFormat.IPV4, _IPV4_MAPPED_PREFIX + ipaddress.IPv4Address(address).packed)

    @classmethod
    def from_ipv6(cls, address: str | ipaddress.IPv6Address) -> "VsiId":
        return cls(VsiIdFormat.IPV6, ipaddress.IPv6Address(address).packed)

    @classmethod
    def from_mac(cls, mac: str) -> "VsiId":
        return cls(VsiIdFormat.MAC, _MAC_PREFIX + mac_to_bytes(mac, "vdp.vsiid.value"))

    @classmethod
    def from_uuid(cls, value: str | UUID) -> "VsiId":
        return cls(VsiIdFormat.UUID, UUID(str(value)).bytes)

    @classmethod
    def from_local(cls, value: bytes) -> "VsiId":
        return cls(VsiIdFormat.LOCAL, value)

    def _octets(self, expected: VsiIdFormat, prefix: bytes = b"") -> bytes:
        if self.format != expected:
            raise CodecError(
                "vdp.vsiid.format", f"VSIID format is {self.format.name}, not {expected.name}"
            )
        if not self.value.startswith(prefix):
            raise CodecError(
                "vdp.vsiid.value", f"{expected.name} VSIID must start with {prefix.hex()}"
            )
        return self.value[len(prefix) :]

    @property
    def ipv4(self) -> ipaddress.IPv4Address:
        """IPv4 VSIID: an IPv4-mapped IPv6 address (::ffff:a.b.c.d)."""
        return ipaddress.IPv4Address(self._octets(VsiIdFormat.IPV4, _IPV4_MAPPED_PREFIX))

    @property
    def ipv6(self) -> ipaddress.IPv6Address:
        return ipaddress.IPv6Address(self._octets(VsiIdFormat.IPV6))

    @property
    def mac(self) -> str:
        """MAC VSIID: the MAC address in the last 6 octets, after 10 zero octets."""
        return mac_from_bytes(self._octets(VsiIdFormat.MAC, _MAC_PREFIX))

    @property
    def uuid(self) -> UUID:
        return UUID(bytes=self._octets(VsiIdFormat.UUID))


@dataclass(frozen=True)
class FilterEntry:
    """One filter info entry.  ``mac`` is set exactly for the MAC formats and
    ``group_id`` exactly for the group formats; PS/PCP/VID are one 16-bit field."""

    vid: int
    pcp: int = 0
    ps: bool = False
    mac: str | None = None
    group_id: int | None = None

    def __post_init__(self) -> None:
        check_uint(self.vid, 12, "vdp.filter.vid")
        check_uint(self.pcp, 3, "vdp.filter.pcp")
        check_flag(self.ps, "vdp.filter.ps")
        if self.mac is not None:
            object.__setattr__(self, "mac", normalize_mac(self.mac, "vdp.filter.mac"))
        if self.group_id is not None:
            check_uint(self.group_id, 32, "vdp.filter.group_id")


def _check_entry(entry: object, filter_format: FilterFormat) -> None:
    """``entry`` must have exactly the parts ``filter_format`` carries."""
    if not isinstance(entry, FilterEntry):
        raise CodecError("vdp.filter", "must be FilterEntry objects")
    for part, present, wanted in (
        ("mac", entry.mac is not None, filter_format in _FORMATS_WITH_MAC),
        ("group_id", entry.group_id is not None, filter_format in _FORMATS_WITH_GROUP),
    ):
        if present != wanted:
            need = "need" if wanted else "must not have"
            raise CodecError(f"vdp.filter.{part}", f"{filter_format.name} entries {need} a {part}")


def _max_filter_entries(filter_format: FilterFormat) -> int:
    return (MAX_TLV_LENGTH - VSI_FIXED_LENGTH) // _FILTER_ENTRY_SIZE[filter_format]


@dataclass(frozen=True)
class VsiTlv:
    """Pre-Associate, Pre-Associate with RR, Associate or De-Associate TLV."""

    mode: VdpTlvType
    status: int
    type_id: int
    type_version: int
    vsi_id: VsiId
    filter_format: FilterFormat
    filters: tuple[FilterEntry, ...]

    def __post_init__(self) -> None:
        mode = _enum(VdpTlvType, self.mode, "vdp.vsi.mode")
        if mode not in VSI_TLV_TYPES:
            raise CodecError("vdp.vsi.mode", f"{mode.name} is not a VSI TLV type")
        object.__setattr__(self, "mode", mode)
        check_uint(self.status, 8, "vdp.vsi.status")
        check_uint(self.type_id, 24, "vdp.vsi.type_id")
        check_uint(self.type_version, 8, "vdp.vsi.type_version")
        if not isinstance(self.vsi_id, VsiId):
            raise CodecError("vdp.vsiid", "must be a VsiId")
        filter_format = _enum(FilterFormat, self.filter_format, "vdp.filter.format")
        object.__setattr__(self, "filter_format", filter_format)
        object.__setattr__(self, "filters", tuple(self.filters))
        if not self.filters:
            raise CodecError("vdp.filter.count", "a VSI TLV needs at least one filter entry")
        if len(self.filters) > _max_filter_entries(filter_format):
            raise CodecError(
                "vdp.filter.count",
                f"at most {_max_filter_entries(filter_format)} "
                f"{filter_format.name} entries fit in a TLV, "
                f"got {len(self.filters)}",
            )
        for entry in self.filters:
            _check_entry(entry, filter_format)

    @property
    def is_response(self) -> bool:
        return bool(self.status & STATUS_RESPONSE)

    @property
    def error(self) -> int:
        """Response error code (compare with VdpError)."""
        return self.status & STATUS_ERROR_MASK

    @property
    def keep(self) -> bool:
        return self.is_response and bool(self.status & STATUS_KEEP)

    @property
    def hard(self) -> bool:
        return self.is_response and bool(self.status & STATUS_HARD)

    @property
    def m_bit(self) -> bool:
        """Request hint: the VSI is migrating to this station."""
        return not self.is_response and bool(self.status & STATUS_M)

    @property
    def s_bit(self) -> bool:
        """Request hint: the VSI is suspended / migrating from this station."""
        return not self.is_response and bool(self.status & STATUS_S)


@dataclass(frozen=True)
class VdpOrgTlv:
    """Organizationally specific VDP TLV, carried through."""

    oui: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_uint(self.oui, 24, "vdp.org.oui")
        object.__setattr__(
            self, "data", check_bytes(self.data, "vdp.org.data", max_size=MAX_TLV_LENGTH - 3)
        )


VdpTlv = ManagerIdTlv | VsiTlv | VdpOrgTlv


@dataclass(frozen=True)
class Vdpdu:
    tlvs: tuple[VdpTlv, ...] = ()
    end_tlv: bool = False
    padding: int = 0  # zero octets after the End TLV (see app.codec.tlv)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tlvs", tuple(self.tlvs))
        manager_seen = False
        for tlv in self.tlvs:
            if not isinstance(tlv, (ManagerIdTlv, VsiTlv, VdpOrgTlv)):
                raise CodecError("vdp.tlv", "must be ManagerIdTlv, VsiTlv or VdpOrgTlv objects")
            manager_seen = manager_seen or isinstance(tlv, ManagerIdTlv)
            if isinstance(tlv, VsiTlv) and not manager_seen:
                raise CodecError("vdp.mgrid", "a VSI TLV must follow a Manager ID TLV")
        check_tail(self.end_tlv, self.padding, "vdp")

    def vsis_with_manager(self) -> tuple[tuple[ManagerIdTlv, VsiTlv], ...]:
        """Each VSI TLV with the Manager ID TLV that precedes it."""
        pairs: list[tuple[ManagerIdTlv, VsiTlv]] = []
        manager: ManagerIdTlv | None = None
        for tlv in self.tlvs:
            if isinstance(tlv, ManagerIdTlv):
                manager = tlv
            elif isinstance(tlv, VsiTlv):
                assert manager is not None  # __post_init__: a VSI TLV follows a Manager ID TLV
                pairs.append((manager, tlv))
        return tuple(pairs)


def make_response(
    request: VsiTlv,
    error: int = VdpError.SUCCESS,
    *,
    keep: bool = False,
    hard: bool = False,
    filters: tuple[FilterEntry, ...] | None = None,
) -> VsiTlv:
    """The bridge's response to ``request``: same TLV type and body, status =
    response bit | KEEP | HARD | error.  ``filters`` replaces the entries, e.g.
    to hand out a VID when the station asked for VID 0."""
    check_uint(error, 4, "vdp.vsi.status.error")
    status = STATUS_RESPONSE | (STATUS_KEEP if keep else 0) | (STATUS_HARD if hard else 0) | error
    return replace(request, status=status, filters=request.filters if filters is None else filters)


def make_deassociate(vsi: VsiTlv) -> VsiTlv:
    """An unsolicited De-Associate for ``vsi`` from the bridge (status 0)."""
    return replace(vsi, mode=VdpTlvType.DE_ASSOCIATE, status=0)


def _decode_filter(reader: Reader, filter_format: FilterFormat) -> FilterEntry:
    group_id = (
        reader.uint(4, "vdp.filter.group_id") if filter_format in _FORMATS_WITH_GROUP else None
    )
    mac = reader.mac("vdp.filter.mac") if filter_format in _FORMATS_WITH_MAC else None
    pcp_vid = reader.uint(2, "vdp.filter.vid")
    return FilterEntry(
        vid=pcp_vid & 0xFFF,
        pcp=pcp_vid >> 12 & 0x7,
        ps=bool(pcp_vid & 0x8000),
        mac=mac,
        group_id=group_id,
    )


def _decode_vsi(mode: VdpTlvType, value: bytes) -> VsiTlv:
    reader = Reader(value)
    status = reader.uint(1, "vdp.vsi.status")
    type_id = reader.uint(3, "vdp.vsi.type_id")
    type_version = reader.uint(1, "vdp.vsi.type_version")
    vsi_format = _enum(VsiIdFormat, reader.uint(1, "vdp.vsiid.format"), "vdp.vsiid.format")
    vsi_id = VsiId(vsi_format, reader.take(VSI_ID_LENGTH, "vdp.vsiid.value"))
    filter_format = _enum(FilterFormat, reader.uint(1, "vdp.filter.format"), "vdp.filter.format")
    count = reader.uint(2, "vdp.filter.count")
    if count == 0:
        raise CodecError("vdp.filter.count", "a VSI TLV needs at least one filter entry")
    needed = count * _FILTER_ENTRY_SIZE[filter_format]
    if needed > reader.remaining:
        raise CodecError(
            "vdp.filter.count",
            f"{count} {filter_format.name} entries need {needed} octets, "
            f"the TLV has {reader.remaining} left",
        )
    if needed < reader.remaining:
        raise CodecError(
            "vdp.vsi.length",
            f"TLV length {len(value)} exceeds the {VSI_FIXED_LENGTH + needed} "
            f"octets of {count} {filter_format.name} entries",
        )
    filters = tuple(_decode_filter(reader, filter_format) for _ in range(count))
    return VsiTlv(mode, status, type_id, type_version, vsi_id, filter_format, filters)


def _decode_tlv(tlv_type: int, value: bytes) -> VdpTlv:
    if tlv_type == VdpTlvType.MANAGER_ID:
        if len(value) != MANAGER_ID_LENGTH:
            raise CodecError(
                "vdp.mgrid.length", f"Manager ID TLV length must be 16, got {len(value)}"
            )
        return ManagerIdTlv(value)
    if tlv_type in VSI_TLV_TYPES:
        return _decode_vsi(VdpTlvType(tlv_type), value)
    if tlv_type == VdpTlvType.ORG_SPECIFIC:
        reader = Reader(value)
        return VdpOrgTlv(reader.uint(3, "vdp.org.oui"), reader.rest())
    raise CodecError("vdp.tlv.type", f"reserved VDP TLV type {tlv_type}")


def decode_vdpdu(data: bytes) -> Vdpdu:
    scan = scan_tlvs(data, "vdp")
    return Vdpdu(tuple(_decode_tlv(t.type, t.value) for t in scan.tlvs), scan.end_tlv, scan.padding)


def _encode_filter(entry: FilterEntry) -> bytes:
    group = entry.group_id.to_bytes(4, "big") if entry.group_id is not None else b""
    mac = mac_to_bytes(entry.mac, "vdp.filter.mac") if entry.mac is not None else b""
    return group + mac + (entry.ps << 15 | entry.pcp << 12 | entry.vid).to_bytes(2, "big")


def _encode_tlv(tlv: VdpTlv) -> bytes:
    if isinstance(tlv, ManagerIdTlv):
        return encode_tlv(VdpTlvType.MANAGER_ID, tlv.mgrid, "vdp.mgrid")
    if isinstance(tlv, VdpOrgTlv):
        return encode_tlv(VdpTlvType.ORG_SPECIFIC, tlv.oui.to_bytes(3, "big") + tlv.data, "vdp.org")
    value = b"".join(
        [
            bytes([tlv.status]),
            tlv.type_id.to_bytes(3, "big"),
            bytes([tlv.type_version, tlv.vsi_id.format]),
            tlv.vsi_id.value,
            bytes([tlv.filter_format]),
            len(tlv.filters).to_bytes(2, "big"),
            *(_encode_filter(e) for e in tlv.filters),
        ]
    )
    return encode_tlv(tlv.mode, value, "vdp.vsi")


def encode_vdpdu(pdu: Vdpdu) -> bytes:
    return b"".join(_encode_tlv(t) for t in pdu.tlvs) + encode_tail(pdu.end_tlv, pdu.padding)
