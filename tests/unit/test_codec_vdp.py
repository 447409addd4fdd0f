import ipaddress
import uuid

import pytest
from hypothesis import given, settings

from app.codec.vdp import (
    STATUS_M,
    STATUS_S,
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpOrgTlv,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiIdFormat,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
    make_deassociate,
    make_response,
)
from tests.unit.conftest import codec_error, vdpdus

MGRID = bytes.fromhex("0a10") + b"blabla".ljust(16, b"\x00")
# Associate request body as lldpad sends it (vdp22.pcap #25), after the TLV header.
ASSOC_BODY = bytes.fromhex("000000050405a1b2c3d40000000000000000000011220200015200001122330064")
ASSOC_TLV = bytes.fromhex("0621") + ASSOC_BODY


def vsi_tlv(**changes) -> VsiTlv:
    fields = dict(
        mode=VdpTlvType.ASSOCIATE,
        status=0,
        type_id=5,
        type_version=4,
        vsi_id=VsiId.from_uuid("a1b2c3d4-0000-0000-0000-000000001122"),
        filter_format=FilterFormat.MAC_VID,
        filters=(FilterEntry(vid=100, mac="52:00:00:11:22:33"),),
    )
    return VsiTlv(**fields | changes)


def test_decode_associate_request():
    pdu = decode_vdpdu(MGRID + ASSOC_TLV)
    assert pdu == Vdpdu((ManagerIdTlv.from_name("blabla"), vsi_tlv()))
    assert pdu.tlvs[0].name == "blabla"
    assert (pdu.end_tlv, pdu.padding) == (False, 0)
    assert encode_vdpdu(pdu) == MGRID + ASSOC_TLV


def test_make_response_sets_only_the_status():
    response = make_response(vsi_tlv())
    assert (
        encode_vdpdu(Vdpdu((ManagerIdTlv.from_name("blabla"), response)))
        == MGRID + bytes.fromhex("0621") + b"\x40" + ASSOC_BODY[1:]
    )
    assert response.is_response and response.error == VdpError.SUCCESS
    assert not (response.keep or response.hard or response.m_bit or response.s_bit)


def test_make_response_with_error_keep_hard_and_new_filters():
    filters = (FilterEntry(vid=300, pcp=3, ps=True, mac="52:00:00:11:22:33"),)
    response = make_response(
        vsi_tlv(), VdpError.INSUFFICIENT_RESOURCES, keep=True, hard=True, filters=filters
    )
    assert response.status == 0x40 | 0x20 | 0x10 | 2
    assert (response.keep, response.hard, response.error) == (
        True,
        True,
        VdpError.INSUFFICIENT_RESOURCES,
    )
    assert response.filters == filters


def test_make_response_rejects_error_codes_beyond_the_nibble():
    with codec_error("vdp.vsi.status.error"):
        make_response(vsi_tlv(), 16)


def test_make_deassociate_is_unsolicited():
    deassociate = make_deassociate(make_response(vsi_tlv()))
    assert (deassociate.mode, deassociate.status) == (VdpTlvType.DE_ASSOCIATE, 0)
    assert not deassociate.is_response


@pytest.mark.parametrize(
    "status, m_bit, s_bit", [(0, False, False), (STATUS_M, True, False), (STATUS_S, False, True)]
)
def test_request_hints(status, m_bit, s_bit):
    request = vsi_tlv(status=status)
    assert (request.m_bit, request.s_bit, request.is_response, request.keep, request.hard) == (
        m_bit,
        s_bit,
        False,
        False,
        False,
    )


@pytest.mark.parametrize(
    "filter_format, entry, raw",
    [
        (FilterFormat.VID, FilterEntry(vid=100, pcp=5, ps=True), "d064"),
        (FilterFormat.MAC_VID, FilterEntry(vid=4095, mac="52:00:00:aa:bb:cc"), "520000aabbcc0fff"),
        (FilterFormat.GROUP_VID, FilterEntry(vid=0, pcp=7, group_id=1234), "000004d27000"),
        (
            FilterFormat.GROUP_MAC_VID,
            FilterEntry(vid=300, group_id=0xFFFFFFFF, mac="52:00:00:aa:bb:cc"),
            "ffffffff520000aabbcc012c",
        ),
    ],
)
def test_filter_formats(filter_format, entry, raw):
    tlv = vsi_tlv(filter_format=filter_format, filters=(entry, entry))
    encoded = encode_vdpdu(Vdpdu((ManagerIdTlv(bytes(16)), tlv)))
    entries = bytes.fromhex(raw) * 2
    assert encoded.endswith(bytes([filter_format]) + b"\x00\x02" + entries)
    assert int.from_bytes(encoded[18:20], "big") & 0x1FF == 25 + len(entries)
    assert decode_vdpdu(encoded).tlvs[1] == tlv


def test_vsi_id_accessors():
    assert VsiId.from_ipv4("192.0.2.7").value == bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 7])
    assert VsiId.from_ipv4("192.0.2.7").ipv4 == ipaddress.IPv4Address("192.0.2.7")
    assert VsiId.from_ipv6("2001:db8::1").ipv6 == ipaddress.IPv6Address("2001:db8::1")
    assert VsiId.from_mac("52:00:00:AA:BB:CC").value == bytes(10) + bytes.fromhex("520000aabbcc")
    assert VsiId.from_mac("52:00:00:aa:bb:cc").mac == "52:00:00:aa:bb:cc"
    assert VsiId.from_uuid("a1b2c3d4-0000-0000-0000-000000001122").uuid == uuid.UUID(
        "a1b2c3d4-0000-0000-0000-000000001122"
    )
    assert VsiId.from_local(b"0123456789abcdef").value == b"0123456789abcdef"


@pytest.mark.parametrize(
    "vsi_id, accessor, field",
    [
        (VsiId.from_uuid(uuid.uuid4()), "ipv4", "vdp.vsiid.format"),
        (VsiId(VsiIdFormat.IPV4, bytes(12) + b"\xc0\x00\x02\x07"), "ipv4", "vdp.vsiid.value"),
        (VsiId(VsiIdFormat.MAC, b"\x01" + bytes(15)), "mac", "vdp.vsiid.value"),
        (VsiId.from_mac("52:00:00:aa:bb:cc"), "uuid", "vdp.vsiid.format"),
    ],
)
def test_vsi_id_accessors_check_format_and_contents(vsi_id, accessor, field):
    with codec_error(field):
        getattr(vsi_id, accessor)


def test_vsis_with_manager():
    first, second = ManagerIdTlv.from_name("one"), ManagerIdTlv.from_name("two")
    a, b, c = vsi_tlv(type_id=1), vsi_tlv(type_id=2), vsi_tlv(type_id=3)
    org = VdpOrgTlv(0x00000C, b"cisco")
    pdu = Vdpdu((org, first, a, org, b, second, c))
    assert pdu.vsis_with_manager() == ((first, a), (first, b), (second, c))
    assert decode_vdpdu(encode_vdpdu(pdu)) == pdu


@pytest.mark.parametrize(
    "tail, end_tlv, padding",
    [
        (b"", False, 0),
        (b"\x00", False, 1),
        (b"\x00\x00", True, 0),
        (bytes(30), True, 28),
    ],
)
def test_end_tlv_and_padding_rule(tail, end_tlv, padding):
    pdu = decode_vdpdu(MGRID + ASSOC_TLV + tail)
    assert (pdu.end_tlv, pdu.padding) == (end_tlv, padding)
    assert encode_vdpdu(pdu) == MGRID + ASSOC_TLV + tail


def test_empty_vdpdu():
    assert decode_vdpdu(bytes(40)) == Vdpdu(end_tlv=True, padding=38)


@settings(max_examples=300)
@given(vdpdus)
def test_round_trip(pdu):
    assert decode_vdpdu(encode_vdpdu(pdu)) == pdu


# The field a VSI TLV body cut to ``length`` octets runs out in.
_FIELD_ENDS = [
    (1, "vdp.vsi.status"),
    (4, "vdp.vsi.type_id"),
    (5, "vdp.vsi.type_version"),
    (6, "vdp.vsiid.format"),
    (22, "vdp.vsiid.value"),
    (23, "vdp.filter.format"),
    (25, "vdp.filter.count"),
    (len(ASSOC_BODY), "vdp.filter.count"),
]


@pytest.mark.parametrize("length", range(len(ASSOC_BODY)))
def test_vsi_tlv_truncated_at_each_field(length):
    field = next(name for end, name in _FIELD_ENDS if length < end)
    with codec_error(field):
        decode_vdpdu(MGRID + (0x0600 | length).to_bytes(2, "big") + ASSOC_BODY[:length])


def _with_body(offset: int, replacement: str) -> bytes:
    new = bytes.fromhex(replacement)
    body = ASSOC_BODY[:offset] + new + ASSOC_BODY[offset + len(new) :]
    return MGRID + (0x0600 | len(body)).to_bytes(2, "big") + body


@pytest.mark.parametrize(
    "raw, field",
    [
        (_with_body(5, "00"), "vdp.vsiid.format"),
        (_with_body(5, "06"), "vdp.vsiid.format"),
        (_with_body(22, "00"), "vdp.filter.format"),
        (_with_body(22, "05"), "vdp.filter.format"),
        (_with_body(23, "0000"), "vdp.filter.count"),
        (_with_body(23, "0002"), "vdp.filter.count"),
        (MGRID + bytes.fromhex("0623") + ASSOC_BODY + b"\x00\x00", "vdp.vsi.length"),
        (MGRID + bytes.fromhex("0622") + ASSOC_BODY, "vdp.tlv.length"),
        (MGRID[:-1], "vdp.tlv.length"),
        (bytes.fromhex("0a0f") + bytes(15), "vdp.mgrid.length"),
        (bytes.fromhex("0a11") + bytes(17), "vdp.mgrid.length"),
        (ASSOC_TLV, "vdp.mgrid"),
        (MGRID + bytes.fromhex("0c00"), "vdp.tlv.type"),
        (MGRID + bytes.fromhex("fc00"), "vdp.tlv.type"),
        (MGRID + bytes.fromhex("fe020000"), "vdp.org.oui"),
        (MGRID + ASSOC_TLV + bytes.fromhex("000000ff"), "vdp.padding"),
        (MGRID + ASSOC_TLV + b"\x06", "vdp.tlv.header"),
    ],
)
def test_malformed(raw, field):
    with codec_error(field):
        decode_vdpdu(raw)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: vsi_tlv(filters=()), "vdp.filter.count"),
        (
            lambda: vsi_tlv(filters=(FilterEntry(vid=1, mac="52:00:00:11:22:33"),) * 61),
            "vdp.filter.count",
        ),
        (lambda: vsi_tlv(filters=(FilterEntry(vid=1),)), "vdp.filter.mac"),
        (lambda: vsi_tlv(filter_format=FilterFormat.GROUP_MAC_VID), "vdp.filter.group_id"),
        (lambda: vsi_tlv(filter_format=FilterFormat.VID), "vdp.filter.mac"),
        (lambda: vsi_tlv(filter_format=9), "vdp.filter.format"),
        (lambda: vsi_tlv(filters=("entry",)), "vdp.filter"),
        (lambda: vsi_tlv(mode=VdpTlvType.MANAGER_ID), "vdp.vsi.mode"),
        (lambda: vsi_tlv(mode=6), "vdp.vsi.mode"),
        (lambda: vsi_tlv(status=256), "vdp.vsi.status"),
        (lambda: vsi_tlv(type_id=1 << 24), "vdp.vsi.type_id"),
        (lambda: vsi_tlv(type_version=-1), "vdp.vsi.type_version"),
        (lambda: vsi_tlv(vsi_id=b"x" * 16), "vdp.vsiid"),
        (lambda: VsiId(6, bytes(16)), "vdp.vsiid.format"),
        (lambda: VsiId(VsiIdFormat.LOCAL, bytes(15)), "vdp.vsiid.value"),
        (lambda: FilterEntry(vid=4096), "vdp.filter.vid"),
        (lambda: FilterEntry(vid=1, pcp=8), "vdp.filter.pcp"),
        (lambda: FilterEntry(vid=1, ps=3), "vdp.filter.ps"),
        (lambda: FilterEntry(vid=1, mac="52:00:00:11:22"), "vdp.filter.mac"),
        (lambda: FilterEntry(vid=1, group_id=1 << 32), "vdp.filter.group_id"),
        (lambda: ManagerIdTlv(bytes(15)), "vdp.mgrid"),
        (lambda: ManagerIdTlv.from_name("a name that is too long"), "vdp.mgrid"),
        (lambda: VdpOrgTlv(0x00000C, bytes(509)), "vdp.org.data"),
        (lambda: Vdpdu((vsi_tlv(),)), "vdp.mgrid"),
        (lambda: Vdpdu((b"raw",)), "vdp.tlv"),
        (lambda: Vdpdu(end_tlv=False, padding=2), "vdp.padding"),
    ],
)
def test_invalid_objects_are_rejected(make, field):
    with codec_error(field):
        make()
