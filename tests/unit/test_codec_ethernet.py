import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.ethernet import TPID_STAG, EthernetFrame, VlanTag, decode_ethernet, encode_ethernet
from tests.unit.conftest import codec_error, macs, vlan_tags

UNTAGGED = bytes.fromhex("0180c2000000020000005101894014010001")
TAGGED = bytes.fromhex("0180c200000002000000510188a8b064894014010001")


def test_decode_untagged_frame():
    assert decode_ethernet(UNTAGGED) == EthernetFrame(
        dst="01:80:c2:00:00:00",
        src="02:00:00:00:51:01",
        ethertype=0x8940,
        payload=bytes.fromhex("14010001"),
    )


def test_decode_s_tagged_frame():
    frame = decode_ethernet(TAGGED)
    assert frame.vlan == VlanTag(vid=100, pcp=5, dei=True, tpid=TPID_STAG)
    assert frame.ethertype == 0x8940
    assert encode_ethernet(frame) == TAGGED


def test_macs_are_normalized_to_lowercase():
    frame = EthernetFrame("01:80:C2:00:00:0E", "AA:bb:CC:dd:EE:ff", 0x88CC)
    assert frame.src == "aa:bb:cc:dd:ee:ff"


@settings(max_examples=200)
@given(
    st.builds(
        EthernetFrame,
        macs,
        macs,
        st.integers(0, 0xFFFF).filter(lambda t: t not in (0x8100, 0x88A8)),
        st.binary(max_size=64),
        st.none() | vlan_tags,
    )
)
def test_round_trip(frame):
    assert decode_ethernet(encode_ethernet(frame)) == frame


@pytest.mark.parametrize(
    "length, field",
    [
        (0, "ethernet.dst"),
        (5, "ethernet.dst"),
        (6, "ethernet.src"),
        (11, "ethernet.src"),
        (12, "ethernet.ethertype"),
        (13, "ethernet.ethertype"),
        (14, "ethernet.vlan"),
        (15, "ethernet.vlan"),
        (16, "ethernet.ethertype"),
        (17, "ethernet.ethertype"),
    ],
)
def test_truncated_at_each_field(length, field):
    with codec_error(field):
        decode_ethernet(TAGGED[:length])


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"dst": "01:80:c2:00:00"}, "ethernet.dst"),
        ({"src": "02-00-00-00-51-01"}, "ethernet.src"),
        ({"ethertype": 0x10000}, "ethernet.ethertype"),
        ({"ethertype": 0x8100}, "ethernet.ethertype"),
        ({"payload": "text"}, "ethernet.payload"),
    ],
)
def test_invalid_frames_are_rejected(kwargs, field):
    fields = {"dst": "01:80:c2:00:00:00", "src": "02:00:00:00:51:01", "ethertype": 0x8940} | kwargs
    with codec_error(field):
        EthernetFrame(**fields)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"vid": 4096}, "ethernet.vlan.vid"),
        ({"vid": 1, "pcp": 8}, "ethernet.vlan.pcp"),
        ({"vid": 1, "dei": 2}, "ethernet.vlan.dei"),
        ({"vid": 1, "tpid": 0x9100}, "ethernet.vlan.tpid"),
    ],
)
def test_invalid_vlan_tags_are_rejected(kwargs, field):
    with codec_error(field):
        VlanTag(**kwargs)
