import pytest
from hypothesis import given, settings

from app.codec.cdcp_tlv import (
    MAX_CHANNELS,
    CdcpRole,
    CdcpTlv,
    SChannel,
    decode_cdcp_tlv,
    encode_cdcp_tlv,
)
from tests.unit.conftest import cdcp_tlvs, codec_error

# Station, SComp set, ChnCap 167, S-channels (1, 0) and (2, 100).
STATION_TLV = bytes.fromhex("fe0e0080c20e880000a7001000002064")


def test_decode_known_encoding():
    assert decode_cdcp_tlv(STATION_TLV) == CdcpTlv(
        role=CdcpRole.STATION, scomp=True, chncap=167, channels=(SChannel(1, 0), SChannel(2, 100))
    )


def test_encode_known_encoding():
    assert encode_cdcp_tlv(decode_cdcp_tlv(STATION_TLV)) == STATION_TLV


def test_167_pairs_fill_the_9_bit_length():
    tlv = CdcpTlv(
        role=CdcpRole.BRIDGE,
        chncap=MAX_CHANNELS,
        channels=tuple(SChannel(n, 4094 - n) for n in range(1, MAX_CHANNELS + 1)),
    )
    raw = encode_cdcp_tlv(tlv)
    assert len(raw) == 2 + 8 + 3 * 167 == 2 + 509
    assert decode_cdcp_tlv(raw) == tlv


def test_more_than_167_pairs_are_rejected():
    with codec_error("cdcp.channels"):
        CdcpTlv(
            role=CdcpRole.BRIDGE, channels=tuple(SChannel(1, 1) for _ in range(MAX_CHANNELS + 1))
        )


def test_reserved_bits_are_kept():
    raw = bytes.fromhex("fe0b0080c20e7fffffff001000")
    tlv = decode_cdcp_tlv(raw)
    assert (tlv.role, tlv.scomp, tlv.chncap, tlv.reserved) == (0, True, 0xFFF, 0x77FFF000)
    assert encode_cdcp_tlv(tlv) == raw


@settings(max_examples=300)
@given(cdcp_tlvs)
def test_round_trip(tlv):
    assert decode_cdcp_tlv(encode_cdcp_tlv(tlv)) == tlv


@pytest.mark.parametrize(
    "raw, field",
    [
        ("fe", "cdcp.header"),
        ("fe020080", "cdcp.oui"),
        ("fe030080c2", "cdcp.subtype"),
        ("fe070080c20e880000", "cdcp.role"),
        ("fe0a0080c20e880000a70010", "cdcp.length"),
        ("fe0c0080c20e880000a700100000", "cdcp.length"),
        ("fe0e0080c20e880000a7001000", "cdcp.length"),  # header says 14, 11 octets follow
        ("fe080080c20d880000a7", "cdcp.subtype"),
    ],
)
def test_malformed(raw, field):
    with codec_error(field):
        decode_cdcp_tlv(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"role": 2}, "cdcp.role"),
        ({"chncap": 4096}, "cdcp.chncap"),
        ({"scomp": "yes"}, "cdcp.scomp"),
        ({"reserved": 1}, "cdcp.reserved"),
        ({"channels": ((1, 2),)}, "cdcp.channels"),
    ],
)
def test_invalid_fields_are_rejected(kwargs, field):
    with codec_error(field):
        CdcpTlv(**{"role": CdcpRole.BRIDGE} | kwargs)


def test_channel_ids_are_12_bit():
    with codec_error("cdcp.channel.svid"):
        SChannel(1, 4096)
