"""Minimal reader for classic libpcap files (not pcapng), used by the tests."""

import struct
from pathlib import Path

_MAGIC = {
    b"\xd4\xc3\xb2\xa1": "<",
    b"\xa1\xb2\xc3\xd4": ">",  # microsecond timestamps
    b"\x4d\x3c\xb2\xa1": "<",
    b"\xa1\xb2\x3c\x4d": ">",
}  # nanosecond timestamps
LINKTYPE_ETHERNET = 1


def read_pcap(path: str | Path) -> list[bytes]:
    """The captured octets of every packet in an Ethernet capture."""
    data = Path(path).read_bytes()
    order = _MAGIC.get(data[:4])
    if order is None:
        raise ValueError(f"{path}: not a classic pcap file")
    linktype = struct.unpack_from(order + "I", data, 20)[0]
    if linktype != LINKTYPE_ETHERNET:
        raise ValueError(f"{path}: link type {linktype}, expected Ethernet")
    packets, offset = [], 24
    while offset < len(data):
        captured = struct.unpack_from(order + "I", data, offset + 8)[0]
        offset += 16
        if offset + captured > len(data):
            raise ValueError(f"{path}: packet {len(packets) + 1} is truncated")
        packets.append(data[offset : offset + captured])
        offset += captured
    return packets
