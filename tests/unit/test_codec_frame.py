from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.builders import build_bridge_lldp_frame, build_ecp_ack, build_vdp_request
from app.codec.cdcp_tlv import CdcpRole, CdcpTlv, SChannel
from app.codec.ecp import EcpOp, EcpPdu, encode_ecpdu
from app.codec.ethernet import (
    NEAREST_BRIDGE,
    TPID_CTAG,
    TPID_STAG,
    EthernetFrame,
    VlanTag,
    encode_ethernet,
)
from app.codec.evb_tlv import EvbMode, EvbTlv
from app.codec.frame import (
    EcpAckFrame,
    LldpFrame,
    VdpFrame,
    channel_svid,
    decode_evb_frame,
    encode_evb_frame,
    frame_svid,
)
from app.codec.lldp import PortId
from app.codec.vdp import ManagerIdTlv, Vdpdu, make_response
from tests.unit.conftest import capture, codec_error, evb_frames

VDP22 = capture("vdp22.pcap")
OVS = capture("ovs_responder.pcap")
BRIDGE = "02:00:00:00:b0:01"
STATION = "02:00:00:00:51:01"


def test_lldp_frame():
    frame = decode_evb_frame(VDP22[3])
    assert isinstance(frame, LldpFrame)
    assert (frame.src, frame.dst, frame.vlan) == (BRIDGE, "01:80:c2:00:00:00", None)
    assert frame.lldpdu.evb.mode == EvbMode.BRIDGE


def test_vdp_request_frame():
    frame = decode_evb_frame(VDP22[24])
    assert isinstance(frame, VdpFrame)
    assert (frame.src, frame.sequence) == (STATION, 3)
    assert frame.vdpdu.tlvs[0] == ManagerIdTlv.from_name("blabla")


@pytest.mark.parametrize("raw, padding", [(VDP22[25], 0), (OVS[5], 42)])
def test_ack_frames(raw, padding):
    frame = decode_evb_frame(raw)
    assert isinstance(frame, EcpAckFrame)
    assert (frame.sequence, frame.padding) == ((3, 0) if padding == 0 else (1, 42))
    assert encode_evb_frame(frame) == raw


def test_vlan_tagged_frame_round_trips():
    frame = replace(decode_evb_frame(VDP22[24]), vlan=VlanTag(vid=10, pcp=2))
    assert decode_evb_frame(encode_evb_frame(frame)) == frame


@pytest.mark.parametrize(
    "raw, field",
    [
        pytest.param(OVS[60], "ethernet.ethertype", id="stp-bpdu"),  # 802.3 length 0x0026
        pytest.param(
            encode_ethernet(EthernetFrame(NEAREST_BRIDGE, BRIDGE, 0x0800, bytes(46))),
            "ethernet.ethertype",
            id="ipv4",
        ),
        pytest.param(
            encode_ethernet(
                EthernetFrame(
                    NEAREST_BRIDGE,
                    BRIDGE,
                    0x8940,
                    encode_ecpdu(EcpPdu(EcpOp.REQUEST, 1, subtype=2)),
                )
            ),
            "ecp.subtype",
            id="ecp-subtype-2",
        ),
        pytest.param(VDP22[24][:-1], "vdp.tlv.length", id="truncated-vdp"),
    ],
)
def test_rejected_frames(raw, field):
    with codec_error(field):
        decode_evb_frame(raw)


def test_encode_rejects_other_objects():
    with codec_error("frame"):
        encode_evb_frame(EthernetFrame(NEAREST_BRIDGE, BRIDGE, 0x88CC))


@settings(max_examples=300)
@given(evb_frames)
def test_round_trip(frame):
    assert decode_evb_frame(encode_evb_frame(frame)) == frame


def test_build_bridge_lldp_frame_matches_lldpad():
    evb = EvbTlv(
        mode=EvbMode.BRIDGE,
        rrcap=True,
        rrctr=True,
        rrreq=True,
        rrstat=3,
        r=3,
        rte=14,
        rol_rwd=True,
        rwd=20,
        rol_rka=True,
        rka=20,
    )
    assert build_bridge_lldp_frame(BRIDGE, PortId.from_mac(BRIDGE), 120, evb) == VDP22[3]


def test_build_bridge_lldp_frame_with_long_port_id_is_not_padded():
    raw = build_bridge_lldp_frame(
        BRIDGE,
        PortId.from_name("x" * 40),
        120,
        EvbTlv(mode=EvbMode.BRIDGE),
        src="02:00:00:00:00:01",
    )
    frame = decode_evb_frame(raw)
    assert len(raw) > 60 and (frame.lldpdu.end_tlv, frame.lldpdu.padding) == (True, 0)
    assert frame.src == "02:00:00:00:00:01" and frame.lldpdu.chassis_id.mac == BRIDGE


def test_build_ecp_ack_is_padded_to_60_octets():
    assert build_ecp_ack("02:00:00:00:0f:01", 1) == OVS[5]


def test_build_vdp_request_matches_lldpad_response():
    request = decode_evb_frame(VDP22[24])
    manager, vsi = request.vdpdu.vsis_with_manager()[0]
    assert build_vdp_request(BRIDGE, 3, Vdpdu((manager, make_response(vsi)))) == VDP22[26]


def test_build_vdp_request_pads_short_vdpdus_with_an_end_tlv():
    raw = build_vdp_request(BRIDGE, 9, Vdpdu((ManagerIdTlv.from_name("m"),)))
    assert len(raw) == 60
    assert decode_evb_frame(raw).vdpdu == Vdpdu(
        (ManagerIdTlv.from_name("m"),), end_tlv=True, padding=22
    )


def test_an_ecp_ack_is_told_from_its_header_alone():
    from app.codec.builders import build_ecp_ack, build_vdp_request
    from app.codec.frame import is_ecp_ack
    from app.codec.vdp import ManagerIdTlv, Vdpdu

    assert is_ecp_ack(build_ecp_ack("02:00:00:00:00:01", 7))
    assert not is_ecp_ack(
        build_vdp_request("02:00:00:00:00:01", 7, Vdpdu((ManagerIdTlv.from_name("m"),)))
    )
    assert not is_ecp_ack(b"") and not is_ecp_ack(bytes(15))


def test_an_ecp_requests_sequence_is_read_from_its_headers_alone():
    from app.codec.frame import ecp_request_sequence

    station = "02:00:00:00:00:01"
    request = build_vdp_request(station, 513, Vdpdu((ManagerIdTlv.from_name("m"),)))
    assert ecp_request_sequence(request) == 513
    # ECP acknowledges a request whatever its VDPDU holds: a malformed one too.
    junk = encode_ethernet(
        EthernetFrame(
            NEAREST_BRIDGE, station, 0x8940, encode_ecpdu(EcpPdu(EcpOp.REQUEST, 9, b"\xff"))
        )
    )
    assert ecp_request_sequence(junk) == 9
    assert ecp_request_sequence(build_ecp_ack(station, 7)) is None
    lldp = build_bridge_lldp_frame(station, PortId.from_name("p1"), 120, EvbTlv(EvbMode.STATION))
    assert ecp_request_sequence(lldp) is None
    tagged = encode_ethernet(
        EthernetFrame(
            NEAREST_BRIDGE, station, 0x8940, encode_ecpdu(EcpPdu(EcpOp.REQUEST, 9)), VlanTag(5)
        )
    )
    assert ecp_request_sequence(tagged) is None  # S-channels are not ours yet: no ACK
    other_subtype = encode_ethernet(
        EthernetFrame(
            NEAREST_BRIDGE, station, 0x8940, encode_ecpdu(EcpPdu(EcpOp.REQUEST, 9, subtype=2))
        )
    )
    assert ecp_request_sequence(other_subtype) is None
    assert ecp_request_sequence(request[:17]) is None


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_reading_a_request_sequence_never_raises(data):
    from app.codec.frame import ecp_request_sequence

    sequence = ecp_request_sequence(data)
    assert sequence is None or 0 <= sequence <= 0xFFFF


def test_an_s_channel_s_frames_carry_its_s_tag_and_name_their_channel():
    s_tag = VlanTag(4000, tpid=TPID_STAG)
    cdcp = CdcpTlv(role=CdcpRole.BRIDGE, scomp=True, chncap=8, channels=(SChannel(1, 1),))
    evb = EvbTlv(mode=EvbMode.BRIDGE)
    lldp = build_bridge_lldp_frame("02:00:00:00:00:01", PortId.from_name("p"), 120, evb, cdcp=cdcp)
    assert decode_evb_frame(lldp).lldpdu.tlvs == (evb, cdcp)
    for frame in (
        build_bridge_lldp_frame("02:00:00:00:00:01", PortId.from_name("p"), 120, evb, vlan=s_tag),
        build_ecp_ack("02:00:00:00:00:01", 7, vlan=s_tag),
    ):
        assert frame[12:16] == bytes.fromhex("88a80fa0")
        assert decode_evb_frame(frame).vlan == s_tag
        assert frame_svid(frame) == channel_svid(s_tag) == 4000
    ack = build_ecp_ack("02:00:00:00:00:01", 7)
    c_tagged = ack[:12] + bytes.fromhex("81000fa0") + ack[12:]
    assert frame_svid(ack) == frame_svid(c_tagged) == 0
    assert channel_svid(None) == channel_svid(VlanTag(4000, tpid=TPID_CTAG)) == 0
    assert frame_svid(bytes.fromhex("0180c2000000020000000001") + b"\x88\xa8\x0f") == 0  # short
