"""Primitive field helpers shared by all codecs: bounds-checked reads, range
checks and MAC address conversion.  Every failure is a CodecError naming the
field, so truncated input reports which field ran out of data."""

import re

from app.codec.errors import CodecError


class Reader:
    """Sequential big-endian reader over ``data``."""

    def __init__(self, data: bytes) -> None:
        self._data = bytes(data)
        self._pos = 0

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def take(self, size: int, field: str) -> bytes:
        if size > self.remaining:
            raise CodecError(field, f"truncated: needs {size} octets, {self.remaining} left")
        chunk = self._data[self._pos : self._pos + size]
        self._pos += size
        return chunk

    def uint(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def mac(self, field: str) -> str:
        return mac_from_bytes(self.take(6, field))

    def rest(self) -> bytes:
        chunk = self._data[self._pos :]
        self._pos = len(self._data)
        return chunk


def check_uint(value: object, bits: int, field: str) -> int:
    """Return ``value`` if it is an int that fits in ``bits`` unsigned bits."""
    if not isinstance(value, int) or not 0 <= value < 1 << bits:
        raise CodecError(field, f"must be an integer in 0..{(1 << bits) - 1}, got {value!r}")
    return value


def check_flag(value: object, field: str) -> bool:
    """Return ``value`` if it is a one-bit flag (a bool, or the int 0 or 1)."""
    if not isinstance(value, int) or value not in (0, 1):
        raise CodecError(field, f"must be a bool, got {value!r}")
    return bool(value)


def check_bytes(
    value: object, field: str, size: int | None = None, max_size: int | None = None
) -> bytes:
    """Return ``value`` as bytes if it has exactly ``size`` / at most ``max_size`` octets."""
    if not isinstance(value, (bytes, bytearray)):
        raise CodecError(field, f"must be bytes, got {type(value).__name__}")
    if size is not None and len(value) != size:
        raise CodecError(field, f"must be {size} octets, got {len(value)}")
    if max_size is not None and len(value) > max_size:
        raise CodecError(field, f"must be at most {max_size} octets, got {len(value)}")
    return bytes(value)


_MAC = re.compile(r"[0-9a-fA-F]{2}(?::[0-9a-fA-F]{2}){5}")
_CANONICAL_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def normalize_mac(mac: object, field: str) -> str:
    """Return ``mac`` in the canonical lowercase ``aa:bb:cc:dd:ee:ff`` form."""
    if isinstance(mac, str) and _CANONICAL_MAC.fullmatch(mac):
        return mac  # the common case: every frame we build names MACs already in this form
    return mac_from_bytes(mac_to_bytes(mac, field))


def mac_to_bytes(mac: object, field: str) -> bytes:
    if not isinstance(mac, str) or not _MAC.fullmatch(mac):
        raise CodecError(field, f"must be a MAC address like 'aa:bb:cc:dd:ee:ff', got {mac!r}")
    return bytes.fromhex(mac.replace(":", ""))


def mac_from_bytes(raw: bytes) -> str:
    return ":".join(f"{b:02x}" for b in raw)
