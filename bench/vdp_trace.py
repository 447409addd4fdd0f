"""Where the time of one vdptool request goes, from captures on the server ports.

For a request made at a known time (wall clock): how long until it left the station, how long the
bridge took to answer it, how long vdptool took to return after the answer, and how long before
it the station had sent its previous PDU. lldpad's ECP transmitter sends its next PDU only when
the previous one's ACK timer expires (10 us x 2^RTE: 163.84 ms at RTE 14), ACK or not: a request
made sooner than that after the station's previous PDU waits for the rest of the period.
"""

from dataclasses import dataclass

from app.codec.errors import CodecError
from app.codec.frame import VdpFrame, decode_evb_frame
from app.codec.vdp import VdpTlvType
from app.vdp.describe import vsi_id_text
from topologies.announce import ETH_P_RARP

MODES = {
    "preassoc": VdpTlvType.PRE_ASSOCIATE,
    "assoc": VdpTlvType.ASSOCIATE,
    "deassoc": VdpTlvType.DE_ASSOCIATE,
}
CAPTURE_FILTER = f"ether proto 0x8940 or ether proto {ETH_P_RARP:#06x}"


@dataclass(frozen=True)
class VdpOnWire:
    ts: float
    from_station: bool
    mode: VdpTlvType
    vsi: str
    response: bool


def vdp_on_wire(timed_frames, station_mac):
    """Every VSI TLV of the ECP requests (not the ACKs) on one server port, in time order."""
    seen = []
    for ts, data in timed_frames:
        try:
            frame = decode_evb_frame(data)
        except CodecError:
            continue
        if isinstance(frame, VdpFrame):
            for _, tlv in frame.vdpdu.vsis_with_manager():
                seen.append(
                    VdpOnWire(
                        ts,
                        frame.src == station_mac,
                        tlv.mode,
                        vsi_id_text(tlv.vsi_id),
                        tlv.is_response,
                    )
                )
    return seen


def rarp_times(timed_frames, mac):
    """Capture times of the RARP frames sent by mac."""
    source = bytes.fromhex(mac.replace(":", ""))
    return [
        ts
        for ts, data in timed_frames
        if data[6:12] == source and int.from_bytes(data[12:14], "big") == ETH_P_RARP
    ]


def request_timing(wire, vsi, step, called_at, returned_at):
    """ms from the call to the request on the wire (to_wire), from there to the bridge's response
    (bridge), from the response to vdptool's return (back), and from the station's previous PDU
    to this request (after_previous_pdu); how many times the station sent it before the response
    (sent: more than 1 when lldpad retransmitted it, 164 ms apart). None if the request is not in
    the capture."""
    mode = MODES[step]
    request = next(
        (
            e
            for e in wire
            if e.from_station
            and not e.response
            and e.vsi == vsi
            and e.mode == mode
            and e.ts >= called_at
        ),
        None,
    )
    if request is None:
        return None
    response = next(
        (
            e
            for e in wire
            if not e.from_station and e.response and e.vsi == vsi and e.ts >= request.ts
        ),
        None,
    )
    previous = [e.ts for e in wire if e.from_station and e.ts < request.ts]
    until = response.ts if response else returned_at
    sent = [e for e in wire if e.from_station and e.vsi == vsi and e.mode == mode]
    return {
        "to_wire": _ms(request.ts - called_at),
        "bridge": _ms(response.ts - request.ts) if response else None,
        "back": _ms(returned_at - response.ts) if response else None,
        "after_previous_pdu": _ms(request.ts - previous[-1]) if previous else None,
        "sent": sum(request.ts <= e.ts <= until for e in sent),
    }


def _ms(seconds):
    return round(1000 * seconds, 1)
