from dataclasses import replace

import pytest
from hypothesis import given, settings

from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat, decode_evb_tlv, encode_evb_tlv
from tests.unit.conftest import codec_error, evb_tlvs

BRIDGE_TLV = bytes.fromhex("fe090080c20d03076e7434")  # lldpad bridge, vdp22.pcap #4


def test_decode_lldpad_bridge_tlv():
    assert decode_evb_tlv(BRIDGE_TLV) == EvbTlv(
        mode=EvbMode.BRIDGE,
        bgid=False,
        rrcap=True,
        rrctr=True,
        sgid=False,
        rrreq=True,
        rrstat=RrStat.UNKNOWN,
        r=3,
        rte=14,
        rol_rwd=True,
        rwd=20,
        rol_rka=True,
        rka=20,
    )


def test_decode_group_id_station_tlv():
    tlv = decode_evb_tlv(bytes.fromhex("fe090080c20d070d6eb434"))  # vdp22_gpid.pcap, station
    assert (tlv.mode, tlv.bgid, tlv.rrcap, tlv.rrctr) == (EvbMode.STATION, True, True, True)
    assert (tlv.sgid, tlv.rrreq, tlv.rrstat) == (True, True, RrStat.ENABLED)


def test_encode_reproduces_the_capture():
    assert encode_evb_tlv(decode_evb_tlv(BRIDGE_TLV)) == BRIDGE_TLV


def test_reserved_bits_are_kept():
    raw = bytes.fromhex("fe090080c20dfbf76e74f4")  # every reserved bit set
    tlv = decode_evb_tlv(raw)
    assert tlv.reserved == 0xF8_F0_00_00_C0
    assert replace(tlv, reserved=0) == decode_evb_tlv(BRIDGE_TLV)
    assert encode_evb_tlv(tlv) == raw


@settings(max_examples=300)
@given(evb_tlvs)
def test_round_trip(tlv):
    assert decode_evb_tlv(encode_evb_tlv(tlv)) == tlv


@pytest.mark.parametrize(
    "raw, field",
    [
        ("fe", "evb.header"),
        ("fe020080", "evb.oui"),
        ("fe030080c2", "evb.subtype"),
        ("fe080080c20d03076e74", "evb.length"),
        ("fe0a0080c20d03076e743400", "evb.length"),
        ("fe090080c20d03076e74", "evb.length"),  # header says 9, 8 octets follow
        ("fe090080c30d03076e7434", "evb.oui"),
        ("fe090080c20e03076e7434", "evb.subtype"),
        ("0c090080c20d03076e7434", "evb.type"),
    ],
)
def test_malformed(raw, field):
    with codec_error(field):
        decode_evb_tlv(bytes.fromhex(raw))


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"mode": 4}, "evb.mode"),
        ({"r": 8}, "evb.r"),
        ({"rte": 32}, "evb.rte"),
        ({"rwd": 32}, "evb.rwd"),
        ({"rka": -1}, "evb.rka"),
        ({"rrstat": 4}, "evb.rrstat"),
        ({"bgid": 2}, "evb.bgid"),
        ({"reserved": 0x01}, "evb.reserved"),
    ],
)
def test_invalid_fields_are_rejected(kwargs, field):
    with codec_error(field):
        EvbTlv(**{"mode": EvbMode.BRIDGE} | kwargs)
