"""The stations behind the server ports, as lldpad speaks: LLDP with the EVB TLV, VDP requests
(each port's ECP sequence counting up), ACKs of the bridge's ECP requests. With ``svid`` a
station speaks in that S-channel of the port (its frames S-tagged); with ``cdcp`` the port's
LLDPDU carries the station's CDCP TLV."""

from app.codec.builders import build_ecp_ack, build_vdp_request
from app.codec.cdcp_tlv import CdcpTlv
from app.codec.ethernet import NEAREST_BRIDGE, TPID_STAG, VlanTag
from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat
from app.codec.frame import LldpFrame, VdpFrame, decode_evb_frame, encode_evb_frame
from app.codec.lldp import ChassisId, LldpPdu, PortId
from app.codec.vdp import FilterEntry, FilterFormat, ManagerIdTlv, Vdpdu, VsiId, VsiTlv

MGR = ManagerIdTlv.from_name("mgr1")
STATION_TLV = EvbTlv(
    mode=EvbMode.STATION, rrreq=True, rrstat=RrStat.UNKNOWN, r=3, rte=14, rwd=20, rka=20
)


def station_mac(dpid: int, port_no: int) -> str:
    return f"02:00:00:aa:{dpid:02x}:{port_no:02x}"


class Stations:
    def __init__(self) -> None:
        self._sequences: dict[tuple[int, int, int], int] = {}

    @staticmethod
    def hello(dpid: int, port_no: int, svid: int = 0, cdcp: CdcpTlv | None = None) -> bytes:
        """The station's LLDP: it offers EVB (and asks for S-channels with ``cdcp``)."""
        tlvs = (STATION_TLV,) if cdcp is None else (STATION_TLV, cdcp)
        return encode_evb_frame(
            LldpFrame(
                station_mac(dpid, port_no),
                LldpPdu(ChassisId(4, bytes(6)), PortId(3, bytes(6)), 120, tlvs),
                dst=NEAREST_BRIDGE,
                vlan=s_tag(svid),
            )
        )

    def vdp(
        self,
        dpid: int,
        port_no: int,
        mode,
        uuid: str,
        mac: str,
        vid: int = 0,
        type_id: int = 5,
        version: int = 4,
        svid: int = 0,
    ) -> bytes:
        """The station's next VDP request on that port (S-channel)."""
        key = (dpid, port_no, svid)
        self._sequences[key] = self._sequences.get(key, 0) + 1
        vsi = VsiTlv(
            mode,
            0,
            type_id,
            version,
            VsiId.from_uuid(uuid),
            FilterFormat.MAC_VID,
            (FilterEntry(vid, mac=mac),),
        )
        return build_vdp_request(
            station_mac(dpid, port_no), self._sequences[key], Vdpdu((MGR, vsi)), vlan=s_tag(svid)
        )

    @staticmethod
    def ack(dpid: int, port_no: int, data: bytes) -> bytes | None:
        """The ACK of a frame the bridge sent the station, if it is an ECP request."""
        frame = decode_evb_frame(data)
        if not isinstance(frame, VdpFrame):
            return None
        return build_ecp_ack(station_mac(dpid, port_no), frame.sequence, vlan=frame.vlan)


def s_tag(svid: int) -> VlanTag | None:
    return VlanTag(svid, tpid=TPID_STAG) if svid else None


def vdp_responses(sent) -> list[VsiTlv]:
    """The VSI TLVs of the VDP frames among (dpid, port_no, frame)s sent to stations."""
    frames = [decode_evb_frame(f) for _, _, f in sent]
    return [
        tlv for f in frames if isinstance(f, VdpFrame) for _, tlv in f.vdpdu.vsis_with_manager()
    ]
