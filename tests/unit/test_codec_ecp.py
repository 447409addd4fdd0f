import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.ecp import SUBTYPE_VDP, EcpOp, EcpPdu, decode_ecpdu, encode_ecpdu
from tests.unit.conftest import codec_error, uints


def test_decode_request_header():
    pdu = decode_ecpdu(bytes.fromhex("10010007") + b"vdpdu")
    assert pdu == EcpPdu(
        op=EcpOp.REQUEST, sequence=7, payload=b"vdpdu", subtype=SUBTYPE_VDP, version=1
    )


@pytest.mark.parametrize("padding", [0, 42])
def test_ack_keeps_its_padding(padding):
    raw = bytes.fromhex("1401ffff") + bytes(padding)
    pdu = decode_ecpdu(raw)
    assert (pdu.op, pdu.sequence, pdu.payload) == (EcpOp.ACK, 0xFFFF, bytes(padding))
    assert encode_ecpdu(pdu) == raw


@settings(max_examples=200)
@given(
    st.builds(
        EcpPdu,
        op=st.just(EcpOp.REQUEST),
        sequence=uints(16),
        payload=st.binary(max_size=64),
        subtype=uints(10),
    )
    | st.builds(
        EcpPdu,
        op=st.just(EcpOp.ACK),
        sequence=uints(16),
        payload=st.integers(0, 46).map(bytes),
        subtype=uints(10),
    )
)
def test_round_trip(pdu):
    assert decode_ecpdu(encode_ecpdu(pdu)) == pdu


@pytest.mark.parametrize(
    "raw, field",
    [
        ("", "ecp.header"),
        ("10", "ecp.header"),
        ("1001", "ecp.sequence"),
        ("100100", "ecp.sequence"),
        (
            "02070402",
            "ecp.version",
        ),  # ovs_responder.pcap #49: an LLDPDU sent with the ECP EtherType
        ("20010001", "ecp.version"),
        ("18010001", "ecp.op"),
        ("1c010001", "ecp.op"),
        ("1401000100000001", "ecp.padding"),
    ],
)
def test_malformed(raw, field):
    with codec_error(field):
        decode_ecpdu(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"sequence": 1 << 16}, "ecp.sequence"),
        ({"subtype": 1 << 10}, "ecp.subtype"),
        ({"op": 2}, "ecp.op"),
        ({"version": 2}, "ecp.version"),
        ({"payload": "x"}, "ecp.payload"),
    ],
)
def test_invalid_objects_are_rejected(kwargs, field):
    with codec_error(field):
        EcpPdu(**{"op": EcpOp.REQUEST, "sequence": 1} | kwargs)
