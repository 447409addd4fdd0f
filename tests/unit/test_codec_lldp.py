import pytest
from hypothesis import given, settings

from app.codec.evb_tlv import EvbMode, EvbTlv
from app.codec.lldp import ChassisId, LldpPdu, LldpTlv, OrgTlv, PortId, decode_lldpdu, encode_lldpdu
from tests.unit.conftest import capture, codec_error, lldpdus

# The lldpad bridge's LLDPDU, vdp22.pcap #4, without its Ethernet header.
BRIDGE_LLDPDU = bytes.fromhex(
    "02070402000000b00104070302000000b00106020078fe090080c20d03076e74340000"
) + bytes(11)
HEAD = bytes.fromhex("02070402000000b00104070302000000b00106020078")


def test_decode_lldpad_bridge_lldpdu():
    assert capture("vdp22.pcap")[3][14:] == BRIDGE_LLDPDU
    pdu = decode_lldpdu(BRIDGE_LLDPDU)
    assert pdu.chassis_id == ChassisId.from_mac("02:00:00:00:b0:01")
    assert pdu.port_id.mac == "02:00:00:00:b0:01"
    assert pdu.ttl == 120
    assert pdu.evb.mode == EvbMode.BRIDGE and pdu.evb.rka == 20
    assert pdu.cdcp is None
    assert (pdu.end_tlv, pdu.padding) == (True, 11)
    assert encode_lldpdu(pdu) == BRIDGE_LLDPDU


def test_unknown_and_org_tlvs_are_carried_through():
    frame = capture("ovs_responder.pcap")[56]  # OVS's own LLDPDU, with an auto-attach TLV
    pdu = decode_lldpdu(frame[14:])
    assert pdu.port_id == PortId.from_name("ovs-o1")
    assert pdu.tlvs[0] == LldpTlv(6, b"openvswitch 3.1.0")
    assert pdu.tlvs[1] == LldpTlv(7, bytes.fromhex("00040004"))
    assert isinstance(pdu.tlvs[2], OrgTlv)
    assert (pdu.tlvs[2].oui, pdu.tlvs[2].subtype) == (0x00040D, 0x0B)
    assert (pdu.end_tlv, pdu.padding) == (True, 0)
    assert encode_lldpdu(pdu) == frame[14:]


@pytest.mark.parametrize(
    "tail, end_tlv, padding",
    [
        (b"", False, 0),
        (b"\x00", False, 1),
        (b"\x00\x00", True, 0),
        (bytes(5), True, 3),
    ],
)
def test_end_tlv_and_padding_rule(tail, end_tlv, padding):
    pdu = decode_lldpdu(HEAD + tail)
    assert (pdu.end_tlv, pdu.padding) == (end_tlv, padding)
    assert encode_lldpdu(pdu) == HEAD + tail


@settings(max_examples=300)
@given(lldpdus)
def test_round_trip(pdu):
    assert decode_lldpdu(encode_lldpdu(pdu)) == pdu


@pytest.mark.parametrize(
    "raw, field",
    [
        ("", "lldp.chassis_id"),
        ("0000", "lldp.chassis_id"),
        ("04070302000000b001", "lldp.chassis_id"),
        ("0200", "lldp.chassis_id.subtype"),
        ("020104", "lldp.chassis_id.id"),
        ("02070402000000b00106020078", "lldp.port_id"),
        ("02070402000000b00104070302000000b001", "lldp.ttl"),
        ("02070402000000b00104070302000000b0010603000078", "lldp.ttl"),
        ("02070402000000b00104070302000000b0010602007802070402000000b001", "lldp.tlv.type"),
        ("02070402000000b00104070302000000b001060200780a05414243", "lldp.tlv.length"),
        ("02070402000000b00104070302000000b001060200780a", "lldp.tlv.header"),
        ("02070402000000b00104070302000000b001060200780000000100", "lldp.padding"),
        ("02070402000000b00104070302000000b001060200780002abcd", "lldp.padding"),
        ("02070402000000b00104070302000000b00106020078fe020080", "lldp.org.oui"),
        ("02070402000000b00104070302000000b00106020078fe030080c2", "lldp.org.subtype"),
        ("02070402000000b00104070302000000b00106020078fe080080c20d03076e74", "evb.length"),
        ("02070402000000b00104070302000000b00106020078fe050080c20e88", "cdcp.role"),
    ],
)
def test_malformed(raw, field):
    with codec_error(field):
        decode_lldpdu(bytes.fromhex(raw))


def test_captured_malformed_lldpdu_is_rejected():
    # ovs_responder.pcap #48: the Chassis ID TLV is one octet longer than its
    # length says, so the next octets read as an End TLV with length 2.
    with codec_error("lldp.padding"):
        decode_lldpdu(capture("ovs_responder.pcap")[47][14:])


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: LldpTlv(1, b"x"), "lldp.tlv.type"),
        (lambda: LldpTlv(127, b"x"), "lldp.tlv.type"),
        (lambda: LldpTlv(8, bytes(512)), "lldp.tlv.value"),
        (lambda: OrgTlv(0x0080C2, 0x0D, bytes(5)), "lldp.org.subtype"),
        (lambda: OrgTlv(1 << 24, 0), "lldp.org.oui"),
        (lambda: ChassisId(4, b""), "lldp.chassis_id.id"),
        (lambda: ChassisId(4, bytes(256)), "lldp.chassis_id.id"),
        (lambda: PortId.from_mac("02:00:00:00:b0"), "lldp.port_id.id"),
        (lambda: PortId.from_name("eth0").mac, "lldp.port_id.id"),
        (lambda: LldpPdu(ChassisId(4, b"x"), PortId(3, b"y"), 1 << 16), "lldp.ttl"),
        (
            lambda: LldpPdu(ChassisId(4, b"x"), PortId(3, b"y"), 1, end_tlv=False, padding=2),
            "lldp.padding",
        ),
        (lambda: LldpPdu(ChassisId(4, b"x"), PortId(3, b"y"), 1, (b"raw",)), "lldp.tlv"),
        (lambda: LldpPdu(PortId(3, b"y"), PortId(3, b"y"), 1), "lldp.chassis_id"),
    ],
)
def test_invalid_objects_are_rejected(make, field):
    with codec_error(field):
        make()


def test_evb_tlv_inside_lldpdu_round_trips():
    pdu = LldpPdu(
        ChassisId.from_mac("02:00:00:00:b0:01"),
        PortId.from_name("p1"),
        120,
        (EvbTlv(mode=EvbMode.BRIDGE, rrcap=True, r=3, rte=14, rwd=20, rka=20),),
    )
    assert decode_lldpdu(encode_lldpdu(pdu)) == pdu
