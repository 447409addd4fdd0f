"""EVB frames as the controller sees them: decode by EtherType into a typed
frame, encode back byte-exact.

* 0x88CC -> LldpFrame (an LLDPDU, normally with an EVB TLV);
* 0x8940 -> an ECP frame with subtype VDP: VdpFrame for a request (it
  carries a VDPDU) or EcpAckFrame for an acknowledgement.

Anything else (other EtherTypes, other ECP subtypes) raises CodecError.  To
acknowledge an ECP request whose VDPDU is malformed, decode the lower layers
with ``decode_ethernet`` and ``decode_ecpdu``.
"""

from dataclasses import dataclass, field

from app.codec.ecp import ETHERTYPE_ECP, SUBTYPE_VDP, EcpOp, EcpPdu, decode_ecpdu, encode_ecpdu
from app.codec.errors import CodecError
from app.codec.ethernet import (
    NEAREST_CUSTOMER_BRIDGE,
    TPID_STAG,
    EthernetFrame,
    VlanTag,
    decode_ethernet,
    encode_ethernet,
)
from app.codec.lldp import ETHERTYPE_LLDP, LldpPdu, decode_lldpdu, encode_lldpdu
from app.codec.vdp import Vdpdu, decode_vdpdu, encode_vdpdu
from app.codec.wire import check_uint, normalize_mac


@dataclass(frozen=True)
class _EvbFrame:
    src: str
    dst: str = field(default=NEAREST_CUSTOMER_BRIDGE, kw_only=True)
    vlan: VlanTag | None = field(default=None, kw_only=True)

    def __post_init__(self) -> None:
        object.__setattr__(self, "src", normalize_mac(self.src, "ethernet.src"))
        object.__setattr__(self, "dst", normalize_mac(self.dst, "ethernet.dst"))
        if self.vlan is not None and not isinstance(self.vlan, VlanTag):
            raise CodecError("ethernet.vlan", "must be a VlanTag or None")


@dataclass(frozen=True)
class LldpFrame(_EvbFrame):
    lldpdu: LldpPdu

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.lldpdu, LldpPdu):
            raise CodecError("lldp", "must be an LldpPdu")


@dataclass(frozen=True)
class VdpFrame(_EvbFrame):
    """An ECP request carrying a VDPDU."""

    sequence: int
    vdpdu: Vdpdu

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.sequence, 16, "ecp.sequence")
        if not isinstance(self.vdpdu, Vdpdu):
            raise CodecError("vdp", "must be a Vdpdu")


@dataclass(frozen=True)
class EcpAckFrame(_EvbFrame):
    """An ECP acknowledgement for a VDP request; ``padding`` zero octets follow the header."""

    sequence: int
    padding: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_uint(self.sequence, 16, "ecp.sequence")
        check_uint(self.padding, 16, "ecp.padding")


EvbFrame = LldpFrame | VdpFrame | EcpAckFrame


def decode_evb_frame(data: bytes) -> EvbFrame:
    eth = decode_ethernet(data)
    if eth.ethertype == ETHERTYPE_LLDP:
        return LldpFrame(eth.src, decode_lldpdu(eth.payload), dst=eth.dst, vlan=eth.vlan)
    if eth.ethertype != ETHERTYPE_ECP:
        raise CodecError("ethernet.ethertype", f"{eth.ethertype:#06x} is neither LLDP nor ECP")
    ecpdu = decode_ecpdu(eth.payload)
    if ecpdu.subtype != SUBTYPE_VDP:
        raise CodecError(
            "ecp.subtype", f"only subtype {SUBTYPE_VDP} (VDP) is supported, got {ecpdu.subtype}"
        )
    if ecpdu.op == EcpOp.ACK:
        return EcpAckFrame(eth.src, ecpdu.sequence, len(ecpdu.payload), dst=eth.dst, vlan=eth.vlan)
    return VdpFrame(
        eth.src, ecpdu.sequence, decode_vdpdu(ecpdu.payload), dst=eth.dst, vlan=eth.vlan
    )


_ECP_UNTAGGED = ETHERTYPE_ECP.to_bytes(2, "big")


def is_ecp_ack(data: bytes) -> bool:
    """Whether ``data`` looks like an untagged ECP ACK, from its header alone (no decoding):
    for putting a station's ACKs ahead of its requests. The frame is decoded in full later."""
    return len(data) >= 16 and data[12:14] == _ECP_UNTAGGED and (data[14] >> 2) & 3 == EcpOp.ACK


def ecp_request_sequence(data: bytes) -> int | None:
    """The sequence number of an untagged ECP request of subtype VDP, from the Ethernet and ECP
    headers alone; None for anything else. ECP acknowledges every request, duplicates and
    requests with a malformed VDPDU included, so the ACK depends on nothing more: the shim sends
    it before the frame waits for the worker (app/controller/evb_app.py)."""
    if len(data) < 18 or data[12:14] != _ECP_UNTAGGED:
        return None
    try:
        pdu = decode_ecpdu(decode_ethernet(data).payload)
    except CodecError:
        return None
    return pdu.sequence if pdu.op == EcpOp.REQUEST and pdu.subtype == SUBTYPE_VDP else None


def vm_frame_source(data: bytes) -> str | None:
    """The source MAC of a punted frame that is not EVB control traffic (LLDP, ECP), None for
    control traffic, a group source address or a frame too short to have one. Only a standby
    admission flow punts such frames: a VM's first frames at its migration's destination."""
    try:
        eth = decode_ethernet(data)
    except CodecError:
        return None
    if eth.ethertype in (ETHERTYPE_LLDP, ETHERTYPE_ECP) or int(eth.src[:2], 16) & 1:
        return None
    return eth.src


def channel_svid(vlan: VlanTag | None) -> int:
    """The S-channel a frame with this outer tag travels in: the S-VID of an S-tag, 0 for an
    untagged frame (the default S-channel) or a C-tagged one (none)."""
    return vlan.vid if vlan is not None and vlan.tpid == TPID_STAG else 0


_STAG = TPID_STAG.to_bytes(2, "big")


def frame_svid(data: bytes) -> int:
    """channel_svid of a raw frame, from its first tag alone."""
    if len(data) < 16 or data[12:14] != _STAG:
        return 0
    return int.from_bytes(data[14:16], "big") & 0xFFF


def encode_evb_frame(frame: EvbFrame) -> bytes:
    if isinstance(frame, LldpFrame):
        ethertype, payload = ETHERTYPE_LLDP, encode_lldpdu(frame.lldpdu)
    elif isinstance(frame, VdpFrame):
        ethertype = ETHERTYPE_ECP
        payload = encode_ecpdu(EcpPdu(EcpOp.REQUEST, frame.sequence, encode_vdpdu(frame.vdpdu)))
    elif isinstance(frame, EcpAckFrame):
        ethertype = ETHERTYPE_ECP
        payload = encode_ecpdu(EcpPdu(EcpOp.ACK, frame.sequence, bytes(frame.padding)))
    else:
        raise CodecError("frame", f"cannot encode {type(frame).__name__}")
    return encode_ethernet(EthernetFrame(frame.dst, frame.src, ethertype, payload, frame.vlan))
