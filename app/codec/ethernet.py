"""Ethernet II frames with an optional 802.1Q C-tag or 802.1ad S-tag.

The frame is carried byte-exact: ``payload`` is everything after the
EtherType, including any padding (the frames have no FCS).  The 2-octet
type field is kept as ``ethertype`` even when it is an 802.3 length (< 0x0600).
"""

from dataclasses import dataclass

from app.codec.errors import CodecError
from app.codec.wire import Reader, check_bytes, check_flag, check_uint, mac_to_bytes, normalize_mac

MIN_FRAME_LENGTH = 60  # without FCS
TPID_CTAG = 0x8100
TPID_STAG = 0x88A8  # S-channels (802.1Qbg clause 40) are S-tagged
NEAREST_CUSTOMER_BRIDGE = "01:80:c2:00:00:00"  # EVB LLDP and ECP destination
NEAREST_BRIDGE = "01:80:c2:00:00:0e"


@dataclass(frozen=True)
class VlanTag:
    vid: int
    pcp: int = 0
    dei: bool = False
    tpid: int = TPID_CTAG

    def __post_init__(self) -> None:
        check_uint(self.vid, 12, "ethernet.vlan.vid")
        check_uint(self.pcp, 3, "ethernet.vlan.pcp")
        check_flag(self.dei, "ethernet.vlan.dei")
        if self.tpid not in (TPID_CTAG, TPID_STAG):
            raise CodecError(
                "ethernet.vlan.tpid",
                f"must be {TPID_CTAG:#06x} or {TPID_STAG:#06x}, got {self.tpid!r}",
            )


@dataclass(frozen=True)
class EthernetFrame:
    dst: str
    src: str
    ethertype: int
    payload: bytes = b""
    vlan: VlanTag | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "dst", normalize_mac(self.dst, "ethernet.dst"))
        object.__setattr__(self, "src", normalize_mac(self.src, "ethernet.src"))
        check_uint(self.ethertype, 16, "ethernet.ethertype")
        if self.ethertype in (TPID_CTAG, TPID_STAG) and self.vlan is None:
            # Would decode as a tag; a tag is expressed with ``vlan``.
            raise CodecError(
                "ethernet.ethertype", f"{self.ethertype:#06x} is a tag protocol id: use vlan"
            )
        object.__setattr__(self, "payload", check_bytes(self.payload, "ethernet.payload"))


def decode_ethernet(data: bytes) -> EthernetFrame:
    reader = Reader(data)
    dst = reader.mac("ethernet.dst")
    src = reader.mac("ethernet.src")
    ethertype = reader.uint(2, "ethernet.ethertype")
    vlan = None
    if ethertype in (TPID_CTAG, TPID_STAG):
        tci = reader.uint(2, "ethernet.vlan")
        vlan = VlanTag(vid=tci & 0xFFF, pcp=tci >> 13, dei=bool(tci & 0x1000), tpid=ethertype)
        ethertype = reader.uint(2, "ethernet.ethertype")
    return EthernetFrame(dst, src, ethertype, reader.rest(), vlan)


def encode_ethernet(frame: EthernetFrame) -> bytes:
    tag = b""
    if frame.vlan is not None:
        tci = frame.vlan.pcp << 13 | frame.vlan.dei << 12 | frame.vlan.vid
        tag = frame.vlan.tpid.to_bytes(2, "big") + tci.to_bytes(2, "big")
    return (
        mac_to_bytes(frame.dst, "ethernet.dst")
        + mac_to_bytes(frame.src, "ethernet.src")
        + tag
        + frame.ethertype.to_bytes(2, "big")
        + frame.payload
    )
