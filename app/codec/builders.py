"""Frames the bridge sends, padded to the 60-octet Ethernet minimum with zero
octets (for LLDP and VDP those form the End TLV and padding)."""

from dataclasses import replace

from app.codec.cdcp_tlv import CdcpTlv
from app.codec.ethernet import MIN_FRAME_LENGTH, NEAREST_CUSTOMER_BRIDGE, VlanTag
from app.codec.evb_tlv import EvbTlv
from app.codec.frame import EcpAckFrame, EvbFrame, LldpFrame, VdpFrame, encode_evb_frame
from app.codec.lldp import ChassisId, LldpPdu, PortId
from app.codec.tlv import extend_tail
from app.codec.vdp import Vdpdu


def _shortfall(frame: EvbFrame) -> int:
    return max(0, MIN_FRAME_LENGTH - len(encode_evb_frame(frame)))


def build_bridge_lldp_frame(
    chassis_mac: str,
    port_id: PortId,
    ttl: int,
    evb: EvbTlv,
    *,
    src: str | None = None,
    dst: str = NEAREST_CUSTOMER_BRIDGE,
    cdcp: CdcpTlv | None = None,
    vlan: VlanTag | None = None,
) -> bytes:
    """LLDPDU with Chassis ID (MAC), ``port_id``, TTL, the EVB TLV, the CDCP TLV if given, and
    End; sent from ``src`` (default: the chassis MAC), tagged with ``vlan`` if given."""
    tlvs = (evb,) if cdcp is None else (evb, cdcp)
    pdu = LldpPdu(ChassisId.from_mac(chassis_mac), port_id, ttl, tlvs)
    frame = LldpFrame(src or chassis_mac, pdu, dst=dst, vlan=vlan)
    end_tlv, padding = extend_tail(pdu.end_tlv, pdu.padding, _shortfall(frame))
    return encode_evb_frame(replace(frame, lldpdu=replace(pdu, end_tlv=end_tlv, padding=padding)))


def build_ecp_ack(
    src: str, sequence: int, *, dst: str = NEAREST_CUSTOMER_BRIDGE, vlan: VlanTag | None = None
) -> bytes:
    frame = EcpAckFrame(src, sequence, dst=dst, vlan=vlan)
    return encode_evb_frame(replace(frame, padding=_shortfall(frame)))


def build_vdp_request(
    src: str,
    sequence: int,
    vdpdu: Vdpdu,
    *,
    dst: str = NEAREST_CUSTOMER_BRIDGE,
    vlan: VlanTag | None = None,
) -> bytes:
    """ECP request carrying ``vdpdu``."""
    frame = VdpFrame(src, sequence, vdpdu, dst=dst, vlan=vlan)
    end_tlv, padding = extend_tail(vdpdu.end_tlv, vdpdu.padding, _shortfall(frame))
    return encode_evb_frame(replace(frame, vdpdu=replace(vdpdu, end_tlv=end_tlv, padding=padding)))
