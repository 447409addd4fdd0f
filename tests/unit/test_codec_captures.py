"""Every captured frame decodes and re-encodes byte-exact, or is one of the
known malformed frames and raises CodecError; spot checks against the
decoded dumps in /work/shared/interop."""

import uuid

import pytest

from app.codec.ethernet import decode_ethernet, encode_ethernet
from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat
from app.codec.frame import LldpFrame, VdpFrame, decode_evb_frame, encode_evb_frame
from app.codec.vdp import FilterEntry, FilterFormat, VdpTlvType, Vdpdu, VsiIdFormat, make_response
from tests.unit.conftest import capture, captured_frames, codec_error

# ovs_responder.pcap contains robustness probes and the OVS bridge's STP BPDUs.
REJECTED = {
    ("ovs_responder.pcap", number): field
    for numbers, field in [
        # An ECP header (10 01 ff ff) sent with the LLDP EtherType.
        ((24, 25, 26, 30, 31, 32, 36, 37, 38, 42, 43, 44), "lldp.tlv.length"),
        # LLDPDUs whose Chassis ID TLV is one octet longer than its length says.
        ((48, 50, 53, 55, 64, 66, 89, 91), "lldp.padding"),
        # The same LLDPDUs sent with the ECP EtherType: ECP version 0.
        ((49, 51, 54, 56, 65, 67, 90, 92), "ecp.version"),
        (
            (61, 63, 68, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 87, 88, 93),
            "ethernet.ethertype",
        ),
    ]
    for number in numbers
}

FRAMES = captured_frames()


@pytest.mark.parametrize("name, number, raw", FRAMES, ids=[f"{n}#{i}" for n, i, _ in FRAMES])
def test_every_captured_frame(name, number, raw):
    assert encode_ethernet(decode_ethernet(raw)) == raw
    if (name, number) in REJECTED:
        with codec_error(REJECTED[name, number]):
            decode_evb_frame(raw)
        return
    frame = decode_evb_frame(raw)
    assert encode_evb_frame(frame) == raw
    assert decode_evb_frame(encode_evb_frame(frame)) == frame


def test_bridge_evb_tlv():
    frame = decode_evb_frame(capture("vdp22.pcap")[3])  # raw 0080c20d03076e7434
    assert frame.lldpdu.evb == EvbTlv(
        mode=EvbMode.BRIDGE,
        rrcap=True,
        rrctr=True,
        rrreq=True,
        rrstat=RrStat.UNKNOWN,
        r=3,
        rte=14,
        rol_rwd=True,
        rwd=20,
        rol_rka=True,
        rka=20,
    )


def test_shutdown_lldpdu():
    pdu = decode_evb_frame(capture("vdp22.pcap")[88]).lldpdu
    assert (pdu.ttl, pdu.evb, pdu.tlvs) == (0, None, ())


def test_associate_request_and_response():
    frames = capture("vdp22.pcap")
    request, response = decode_evb_frame(frames[24]), decode_evb_frame(frames[26])
    assert (request.src, request.sequence, response.src, response.sequence) == (
        "02:00:00:00:51:01",
        3,
        "02:00:00:00:b0:01",
        3,
    )
    ((manager, vsi),) = request.vdpdu.vsis_with_manager()
    assert manager.name == "blabla"
    assert (vsi.mode, vsi.status, vsi.type_id, vsi.type_version) == (
        VdpTlvType.ASSOCIATE,
        0x00,
        5,
        4,
    )
    assert vsi.vsi_id.format == VsiIdFormat.UUID
    assert vsi.vsi_id.uuid == uuid.UUID("a1b2c3d4-0000-0000-0000-000000001122")
    assert (vsi.filter_format, vsi.filters) == (
        FilterFormat.MAC_VID,
        (FilterEntry(vid=100, mac="52:00:00:11:22:33"),),
    )
    assert response.vdpdu == Vdpdu((manager, make_response(vsi)))
    assert response.vdpdu.tlvs[1].status == 0x40


def test_group_id_filter():
    frames = capture("vdp22_gpid.pcap")
    request, response = decode_evb_frame(frames[78]), decode_evb_frame(frames[80])
    vsi = request.vdpdu.tlvs[1]
    assert vsi.filter_format == FilterFormat.GROUP_MAC_VID
    assert vsi.filters == (FilterEntry(vid=300, group_id=1234, mac="52:00:00:aa:bb:cc"),)
    assert frames[78][14 + 4 + 18 : 14 + 4 + 20] == bytes.fromhex("0625")  # Associate, length 37
    assert response.vdpdu.tlvs[1] == make_response(vsi)


def test_migrate_to_hint():
    vsi = decode_evb_frame(capture("vdp22.pcap")[56]).vdpdu.tlvs[1]
    assert (vsi.mode, vsi.status, vsi.m_bit, vsi.s_bit) == (
        VdpTlvType.PRE_ASSOCIATE,
        0x10,
        True,
        False,
    )


def test_unsolicited_bridge_deassociate():
    frame = decode_evb_frame(capture("vdp22.pcap")[89])
    vsi = frame.vdpdu.tlvs[1]
    assert frame.src == "02:00:00:00:b0:01"
    assert (vsi.mode, vsi.status, vsi.is_response) == (VdpTlvType.DE_ASSOCIATE, 0x00, False)


def test_empty_vdpdu_probe():
    frame = decode_evb_frame(capture("ovs_responder.pcap")[26])
    assert isinstance(frame, VdpFrame)
    assert (frame.sequence, frame.vdpdu) == (0xFFFF, Vdpdu(end_tlv=True, padding=40))


def test_ovs_lldpdu_to_the_nearest_bridge():
    frame = decode_evb_frame(capture("ovs_responder.pcap")[56])
    assert isinstance(frame, LldpFrame) and frame.dst == "01:80:c2:00:00:0e"
    assert frame.lldpdu.port_id.id == b"ovs-o1"
