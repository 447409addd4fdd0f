"""The data-plane probe frame (app/fabric/probes.py): tagged with the VLAN it tests, sent to a
VM's MAC, EtherType ETHERTYPE_PROBE, and a payload only this controller can have written.

Payload: MAGIC, version, source dpid, destination dpid, VID, sequence number, then the first
TAG_LENGTH octets of HMAC-SHA256 over all of it under a key the controller draws at start and
never shows. A VM cannot forge a probe (it has no key), nor replay one: the controller accepts
each sequence number once, from the switch it was sent to, before its deadline. Pure.
"""

import hashlib
import hmac
import struct
from dataclasses import dataclass

from app.codec.errors import CodecError
from app.codec.ethernet import (
    MIN_FRAME_LENGTH,
    EthernetFrame,
    VlanTag,
    decode_ethernet,
    encode_ethernet,
)

ETHERTYPE_PROBE = 0x88B6  # IEEE 802 local experimental EtherType 2 (the canary has 1)
# Locally administered, unicast: no switch floods it, no NIC owns it.
PROBE_SRC = "0e:eb:00:00:0b:e1"
MAGIC = b"EVBP"
VERSION = 1
TAG_LENGTH = 16
_BODY = struct.Struct("!4sBQQHQ")


@dataclass(frozen=True)
class Probe:
    src: int  # the edge it was sent from (dpid)
    dst: int  # the edge it must reach
    vid: int
    seq: int


def encode_probe(probe: Probe, dst_mac: str, key: bytes) -> bytes:
    body = _BODY.pack(MAGIC, VERSION, probe.src, probe.dst, probe.vid, probe.seq)
    tag = hmac.new(key, body, hashlib.sha256).digest()[:TAG_LENGTH]
    frame = EthernetFrame(dst_mac, PROBE_SRC, ETHERTYPE_PROBE, body + tag, VlanTag(probe.vid))
    data = encode_ethernet(frame)
    return data + bytes(max(0, MIN_FRAME_LENGTH - len(data)))


def decode_probe(data: bytes, key: bytes) -> Probe:
    """The probe `data` carries. CodecError unless it is a probe of ours, intact: its tag
    checked in constant time, its VID the one it was tagged with."""
    eth = decode_ethernet(data)
    if eth.ethertype != ETHERTYPE_PROBE:
        raise CodecError("ethernet.ethertype", f"{eth.ethertype:#06x} is not a probe")
    if len(eth.payload) < _BODY.size + TAG_LENGTH:
        raise CodecError("probe", "too short")
    body, tag = eth.payload[: _BODY.size], eth.payload[_BODY.size : _BODY.size + TAG_LENGTH]
    magic, version, src, dst, vid, seq = _BODY.unpack(body)
    if magic != MAGIC or version != VERSION:
        raise CodecError("probe", "not a probe of this controller's format")
    expected = hmac.new(key, body, hashlib.sha256).digest()[:TAG_LENGTH]
    if not hmac.compare_digest(tag, expected):
        raise CodecError("probe.tag", "not signed with this controller's key")
    if eth.vlan is None or eth.vlan.vid != vid:
        raise CodecError("probe.vid", "not tagged with the VLAN it tests")
    return Probe(src, dst, vid, seq)


def is_probe(data: bytes) -> bool:
    """A punted frame of the probe EtherType (tagged or not), before any check."""
    offset = 16 if data[12:14] == b"\x81\x00" else 12
    return data[offset : offset + 2] == ETHERTYPE_PROBE.to_bytes(2, "big")
