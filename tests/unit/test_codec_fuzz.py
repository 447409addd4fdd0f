"""Decoders given arbitrary or damaged input either raise CodecError or
succeed, and whatever they accept re-encodes to exactly the input."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.cdcp_tlv import decode_cdcp_tlv, encode_cdcp_tlv
from app.codec.ecp import decode_ecpdu, encode_ecpdu
from app.codec.errors import CodecError
from app.codec.ethernet import decode_ethernet, encode_ethernet
from app.codec.evb_tlv import decode_evb_tlv, encode_evb_tlv
from app.codec.frame import decode_evb_frame, encode_evb_frame
from app.codec.lldp import decode_lldpdu, encode_lldpdu
from app.codec.vdp import decode_vdpdu, encode_vdpdu
from tests.unit.conftest import captured_frames, cdcp_tlvs, evb_frames, evb_tlvs, lldpdus, vdpdus

CODECS = {
    "ethernet": (decode_ethernet, encode_ethernet),
    "lldp": (decode_lldpdu, encode_lldpdu),
    "evb": (decode_evb_tlv, encode_evb_tlv),
    "cdcp": (decode_cdcp_tlv, encode_cdcp_tlv),
    "ecp": (decode_ecpdu, encode_ecpdu),
    "vdp": (decode_vdpdu, encode_vdpdu),
    "frame": (decode_evb_frame, encode_evb_frame),
}
# Valid encodings to damage, per codec.
VALID = {
    "lldp": lldpdus.map(encode_lldpdu),
    "evb": evb_tlvs.map(encode_evb_tlv),
    "cdcp": cdcp_tlvs.map(encode_cdcp_tlv),
    "vdp": vdpdus.map(encode_vdpdu),
    "frame": evb_frames.map(encode_evb_frame)
    | st.sampled_from([raw for _, _, raw in captured_frames()]),
}


def assert_rejected_or_exact(codec: str, data: bytes) -> None:
    decode, encode = CODECS[codec]
    try:
        decoded = decode(data)
    except CodecError:
        return
    assert encode(decoded) == data


@st.composite
def damaged(draw, valid: st.SearchStrategy[bytes]) -> bytes:
    """``valid`` with one to three octets flipped, inserted or deleted, or a truncation."""
    raw = bytearray(draw(valid))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(raw)))
        damage = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if damage == "flip" and position < len(raw):
            raw[position] ^= draw(st.integers(1, 255))
        elif damage == "insert":
            raw[position:position] = draw(st.binary(min_size=1, max_size=3))
        elif damage == "delete":
            del raw[position : position + 1]
        elif damage == "truncate":
            del raw[position:]
    return bytes(raw)


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=300)
@given(data=st.binary(max_size=128))
def test_random_bytes(codec, data):
    assert_rejected_or_exact(codec, data)


@pytest.mark.parametrize("codec", VALID)
@settings(max_examples=300)
@given(data=st.data())
def test_damaged_valid_encodings(codec, data):
    assert_rejected_or_exact(codec, data.draw(damaged(VALID[codec])))


@settings(max_examples=300)
@given(
    header=st.sampled_from(
        [bytes.fromhex("88cc"), bytes.fromhex("894010010001"), bytes.fromhex("894014010001")]
    ),
    payload=st.binary(max_size=96),
)
def test_random_payload_behind_a_valid_header(header, payload):
    assert_rejected_or_exact("frame", bytes.fromhex("0180c2000000020000005101") + header + payload)
