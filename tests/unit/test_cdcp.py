"""CDCP, bridge side (app/session/cdcp.py): what a station's CDCP TLV gets, and the port's
S-channels after it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.cdcp_tlv import CdcpRole, CdcpTlv, SChannel
from app.session.cdcp import DEFAULT_CHANNEL, CdcpConfig, answer
from tests.unit.conftest import cdcp_tlvs

CONFIG = CdcpConfig(max_channels=4, svids=(100, 102))


def station(*pairs, chncap=8, scomp=True, role=CdcpRole.STATION, default=True):
    channels = ((DEFAULT_CHANNEL,) if default else ()) + tuple(SChannel(*p) for p in pairs)
    return CdcpTlv(role=role, scomp=scomp, chncap=chncap, channels=channels)


def pairs(tlv):
    return [(c.scid, c.svid) for c in tlv.channels]


def test_wanted_channels_get_the_lowest_free_s_vids_in_the_station_order():
    result = answer(station((3, 0), (2, 0)), {}, CONFIG)
    assert result.channels == {3: 100, 2: 101} and result.refused == ()
    assert result.tlv == CdcpTlv(
        role=CdcpRole.BRIDGE,
        scomp=True,
        chncap=4,
        channels=(DEFAULT_CHANNEL, SChannel(3, 100), SChannel(2, 101)),
    )


def test_held_channels_keep_their_s_vid_and_new_ones_take_the_next_free():
    result = answer(station((2, 101), (5, 0)), {2: 101}, CONFIG)
    assert result.channels == {2: 101, 5: 100}
    assert pairs(result.tlv) == [(1, 1), (2, 101), (5, 100)]


def test_a_channel_the_station_no_longer_lists_is_removed_and_its_s_vid_freed():
    result = answer(station((5, 0)), {2: 100, 3: 101}, CONFIG)
    assert result.channels == {5: 100}


def test_the_station_s_own_s_vid_is_kept_when_free_and_in_range():
    """A bridge that lost its state keeps the station's channels where it can."""
    assert answer(station((2, 102)), {}, CONFIG).channels == {2: 102}
    assert answer(station((2, 4000)), {}, CONFIG).channels == {2: 100}  # out of the range
    assert answer(station((2, 101), (3, 101)), {2: 101}, CONFIG).channels == {2: 101, 3: 100}


def test_beyond_the_smaller_chncap_or_the_s_vid_range_a_channel_is_answered_with_s_vid_0():
    # ChnCap 4 with the default: three channels; the range has three S-VIDs.
    result = answer(station((2, 0), (3, 0), (4, 0), (5, 0)), {}, CONFIG)
    assert result.channels == {2: 100, 3: 101, 4: 102} and result.refused == (5,)
    assert pairs(result.tlv)[-1] == (5, 0)
    result = answer(station((2, 0), (3, 0), chncap=2), {}, CONFIG)  # the station's ChnCap
    assert result.channels == {2: 100} and result.refused == (3,)
    narrow = CdcpConfig(max_channels=8, svids=(100, 100))
    assert answer(station((2, 0), (3, 0)), {}, narrow).refused == (3,)


def test_a_lower_chncap_drops_the_channels_beyond_it():
    held = {2: 100, 3: 101, 4: 102}
    result = answer(station((2, 100), (3, 101), (4, 102), chncap=3), held, CONFIG)
    assert result.channels == {2: 100, 3: 101} and result.refused == (4,)


def test_a_station_without_an_s_component_has_the_default_channel_only():
    result = answer(station((2, 0), scomp=False), {2: 100}, CONFIG)
    assert result.channels == {} and pairs(result.tlv) == [(1, 1)]


@pytest.mark.parametrize(
    "tlv, reason",
    [
        (station((2, 0), role=CdcpRole.BRIDGE), "station role"),
        (station((2, 0), default=False), "default S-channel"),
        (station(), None),
        (CdcpTlv(role=CdcpRole.STATION, channels=()), "default S-channel"),
        (station((2, 0), (2, 0)), "listed twice"),
        (station((0, 0)), "SCID is 0"),
        (station((1, 1)), "listed twice"),
    ],
)
def test_a_tlv_that_is_not_a_station_s_well_formed_request_changes_nothing(tlv, reason):
    held = {2: 100}
    result = answer(tlv, held, CONFIG)
    if reason is None:  # the default channel alone: a valid request for no channel
        assert result.channels == {} and result.ignored is None
        return
    assert result.tlv is None and result.channels == held and reason in result.ignored


requests = st.builds(
    lambda wanted, chncap, scomp: station(*wanted, chncap=chncap, scomp=scomp),
    st.lists(
        st.tuples(st.integers(2, 4095), st.integers(0, 4095)), max_size=30, unique_by=lambda p: p[0]
    ),
    st.integers(0, 4095),
    st.booleans(),
)


@settings(max_examples=300)
@given(
    st.one_of(cdcp_tlvs, requests),
    # What a port holds: each S-VID once, as the allocation leaves it.
    st.dictionaries(st.integers(2, 4095), st.integers(2, 4094), max_size=10).filter(
        lambda held: len(set(held.values())) == len(held)
    ),
    st.integers(0, 167),
    st.integers(2, 4094).flatmap(lambda a: st.tuples(st.just(a), st.integers(a, 4094))),
)
def test_whatever_the_station_sends_the_channels_stay_within_bounds(tlv, held, chncap, svids):
    config = CdcpConfig(chncap, svids)
    result = answer(tlv, held, config)
    if result.ignored is not None:
        assert result.channels == held and result.tlv is None
        return
    assert len(result.channels) <= max(0, min(chncap, tlv.chncap) - 1)
    assert len(set(result.channels.values())) == len(result.channels)  # an S-VID once a port
    assert all(scid in {c.scid for c in tlv.channels[1:]} for scid in result.channels)
    assert all(
        svids[0] <= svid <= svids[1] or held.get(scid) == svid
        for scid, svid in result.channels.items()
    )
    assert result.tlv is not None and result.tlv.channels[0] == DEFAULT_CHANNEL
    assert len(result.tlv.channels) == len(tlv.channels) if tlv.scomp else 1


@pytest.mark.parametrize(
    "kwargs", [{"max_channels": 168}, {"svids": (1, 10)}, {"svids": (10, 4095)}, {"svids": (9, 8)}]
)
def test_the_config_is_checked(kwargs):
    with pytest.raises(ValueError):
        CdcpConfig(**kwargs)
