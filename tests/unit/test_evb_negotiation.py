"""Bridge-side EVB TLV negotiation: the captured lldpad exchanges, a table of the rules, the
derived timers, and that any station TLV negotiates to a valid answer."""

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat, decode_evb_tlv, encode_evb_tlv
from app.session.evb_negotiation import (
    BridgeEvbConfig,
    bridge_keepalive_timeout,
    bridge_tlv_unsolicited,
    evb_duration,
    evb_tlv_fields,
    negotiate,
)
from tests.unit.conftest import evb_tlvs

DEFAULT = BridgeEvbConfig()


def _tlv(info_hex: str) -> EvbTlv:
    return decode_evb_tlv(bytes.fromhex("fe090080c20d" + info_hex))


def _info(tlv: EvbTlv) -> str:
    return encode_evb_tlv(tlv)[-5:].hex()


@pytest.mark.parametrize(
    "station, bridge",
    [
        ("00076e9414", "03076e7434"),  # vdp22.pcap #1 -> #4: first station TLV, RRSTAT unknown
        ("03056eb434", "03056e7434"),  # #5 -> #8: the station saw RRCTR and reports RRSTAT yes
        ("02046eb434", "03046e7434"),  # #6 -> #7: the other station, before it saw RRCTR
    ],
)
def test_captured_lldpad_exchanges(station, bridge):
    assert _info(negotiate(_tlv(station), DEFAULT).bridge_tlv) == bridge


def test_unsolicited_tlv_is_lldpads_before_it_hears_a_station():
    assert _info(bridge_tlv_unsolicited(DEFAULT)) == "02006e5414"  # vdp22.pcap #2


STATION = EvbTlv(
    mode=EvbMode.STATION, rrreq=True, rrstat=RrStat.UNKNOWN, r=3, rte=14, rwd=20, rka=20
)


@pytest.mark.parametrize(
    "station, config, expected",
    [
        # RRCTR: station RRREQ and our RRCAP.
        (STATION, DEFAULT, dict(rr_granted=True)),
        (replace(STATION, rrreq=False), DEFAULT, dict(rr_granted=False)),
        (STATION, BridgeEvbConfig(rrcap=False), dict(rr_granted=False)),
        # Group IDs: BGID and SGID.
        (replace(STATION, sgid=True), BridgeEvbConfig(bgid=True), dict(group_ids=True)),
        (replace(STATION, sgid=True), DEFAULT, dict(group_ids=False)),
        (STATION, BridgeEvbConfig(bgid=True), dict(group_ids=False)),
        # The larger value wins; ROL when the station's value was taken (also when equal, as
        # lldpad).
        (replace(STATION, r=5, rte=10), DEFAULT, dict(r=5, rte=14)),
        (replace(STATION, r=1, rte=16), DEFAULT, dict(r=3, rte=16)),
        (
            replace(STATION, rwd=25, rka=10),
            DEFAULT,
            dict(rwd=25, rol_rwd=True, rka=20, rol_rka=False),
        ),
        (
            replace(STATION, rwd=10, rka=25),
            DEFAULT,
            dict(rwd=20, rol_rwd=False, rka=25, rol_rka=True),
        ),
        # Above the bridge's maxima: clamped, and not the station's value (ROL clear).
        (
            replace(STATION, r=7, rte=31, rwd=31, rka=31),
            DEFAULT,
            dict(r=7, rte=16, rwd=25, rol_rwd=False, rka=25, rol_rka=False),
        ),
        (
            replace(STATION, rka=24),
            BridgeEvbConfig(max_rka=22),
            dict(rka=22, rol_rka=False, clamped={"rka": 24}),
        ),
        # The bridge's own value is always allowed, even above the maximum.
        (
            replace(STATION, rka=31),
            BridgeEvbConfig(rka=27, max_rka=25),
            dict(rka=27, rol_rka=False, clamped={"rka": 31}),
        ),
        (STATION, DEFAULT, dict(rwd=20, rol_rwd=True, rka=20, rol_rka=True)),
        (
            STATION,
            BridgeEvbConfig(rwd=21, rka=19),
            dict(rwd=21, rol_rwd=False, rka=20, rol_rka=True),
        ),
    ],
)
def test_negotiation_table(station, config, expected):
    agreement = negotiate(station, config)
    tlv = agreement.bridge_tlv
    got = dict(
        rr_granted=agreement.rr_granted,
        group_ids=agreement.group_ids,
        r=agreement.r,
        rte=agreement.rte,
        rwd=agreement.rwd,
        rka=agreement.rka,
        rol_rwd=tlv.rol_rwd,
        rol_rka=tlv.rol_rka,
        clamped=agreement.clamped,
    )
    assert {key: got[key] for key in expected} == expected
    assert (tlv.mode, tlv.rrcap, tlv.bgid, tlv.rrctr) == (
        EvbMode.BRIDGE,
        config.rrcap,
        config.bgid,
        agreement.rr_granted,
    )
    assert (tlv.r, tlv.rte, tlv.rwd, tlv.rka) == (
        agreement.r,
        agreement.rte,
        agreement.rwd,
        agreement.rka,
    )
    # The station status is echoed.
    assert (tlv.sgid, tlv.rrreq, tlv.rrstat) == (station.sgid, station.rrreq, station.rrstat)


def test_reserved_bits_of_the_station_are_not_echoed():
    station = replace(STATION, reserved=0xF8_F0_00_00_C0)
    assert negotiate(station, DEFAULT).bridge_tlv.reserved == 0


def test_durations_are_10us_times_two_to_the_exponent():
    agreement = negotiate(STATION, DEFAULT)
    assert agreement.ecp_retransmit_interval == pytest.approx(0.16384)
    assert agreement.keepalive_interval == pytest.approx(10.48576)
    assert agreement.resource_wait_delay == pytest.approx(10.48576)
    assert evb_duration(0) == pytest.approx(10e-6)


def test_bridge_keepalive_timeout_is_lldpads():
    # qbg/vdp22sm.c vdp22_timeout: ((1 + 2R) * 10us*2^RTE + 10us*2^RKA) * 1.5, in microseconds:
    # (7 * 163840 + 10485760) * 3 / 2 = 17448960 us, the 17.45 s seen in vdp22.pcap.
    assert bridge_keepalive_timeout(3, 14, 20) == pytest.approx(17.44896)
    assert negotiate(STATION, DEFAULT).bridge_keepalive_timeout == pytest.approx(17.44896)
    longer = negotiate(replace(STATION, rka=22, r=7), DEFAULT)
    assert longer.bridge_keepalive_timeout == pytest.approx((15 * 0.16384 + 41.94304) * 1.5)


def test_summary_is_plain_values():
    summary = negotiate(STATION, DEFAULT).summary()
    assert summary["rr_granted"] is True and summary["r"] == 3
    assert summary["bridge_keepalive_timeout"] == pytest.approx(17.44896)


def test_tlv_fields_carry_the_raw_octets():
    fields = evb_tlv_fields(_tlv("00076e9414"))
    assert fields["raw"] == "00076e9414"
    assert (fields["mode"], fields["rrreq"], fields["rrstat"], fields["rka"]) == (2, True, 3, 20)


@pytest.mark.parametrize(
    "changes",
    [
        dict(r=8),
        dict(rte=32),
        dict(rwd=-1),
        dict(rka=True),
        dict(rrcap=1),
        dict(lldp_tx_interval=0),
        dict(lldp_fast_tx_interval=-1.0),
        dict(lldp_tx_hold=0),
        dict(lldp_fast_tx_count=0),
        dict(lldp_tx_interval=20000.0),  # TTL over 65535
    ],
)
def test_config_rejects_out_of_range_values(changes):
    with pytest.raises(ValueError):
        BridgeEvbConfig(**changes)


def test_config_ttl_is_interval_times_hold_like_lldpad():
    assert DEFAULT.lldp_ttl == 120
    assert BridgeEvbConfig(lldp_tx_interval=2.5, lldp_tx_hold=3).lldp_ttl == 8


@settings(max_examples=300)
@given(
    evb_tlvs,
    st.booleans(),
    st.booleans(),
    st.integers(0, 7),
    st.integers(0, 31),
    st.integers(0, 31),
    st.integers(0, 31),
)
def test_any_station_tlv_negotiates_to_a_valid_answer(station, rrcap, bgid, r, rte, rwd, rka):
    config = BridgeEvbConfig(rrcap=rrcap, bgid=bgid, r=r, rte=rte, rwd=rwd, rka=rka)
    agreement = negotiate(station, config)
    tlv = agreement.bridge_tlv
    assert decode_evb_tlv(encode_evb_tlv(tlv)) == tlv
    for name, ours in (("r", r), ("rte", rte), ("rwd", rwd), ("rka", rka)):
        ceiling = max(ours, getattr(config, f"max_{name}"))
        theirs = getattr(station, name)
        assert getattr(agreement, name) == min(max(theirs, ours), ceiling)
        assert (name in agreement.clamped) == (theirs > ceiling)
    assert tlv.rol_rwd == (rwd <= station.rwd <= max(rwd, config.max_rwd))
    assert tlv.rol_rka == (rka <= station.rka <= max(rka, config.max_rka))
    assert agreement.bridge_keepalive_timeout > agreement.keepalive_interval
    # Whatever the station asks, the bridge keeps a silent VSI no longer than its maxima allow.
    assert agreement.bridge_keepalive_timeout <= bridge_keepalive_timeout(
        max(r, config.max_r), max(rte, config.max_rte), max(rka, config.max_rka)
    )


def test_a_station_cannot_make_the_bridge_keep_its_vsis_for_days():
    """Issue 10: R=7, RTE=31, RKA=31 gave a keep-alive timeout of 6 days."""
    greedy = replace(STATION, r=7, rte=31, rka=31)
    assert bridge_keepalive_timeout(7, 31, 31) > 5 * 86400  # what it was
    agreement = negotiate(greedy, DEFAULT)
    assert agreement.bridge_keepalive_timeout < 9 * 60
    assert agreement.clamped == {"rte": 31, "rka": 31}
    assert agreement.summary()["clamped"] == {"rte": 31, "rka": 31}
    assert (agreement.bridge_tlv.rte, agreement.bridge_tlv.rka) == (16, 25)
