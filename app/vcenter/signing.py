"""Webhook signatures: how a receiver knows a POST comes from this controller, unchanged and
fresh.

Every webhook POST carries two headers:

    X-EVB-Timestamp: 1700000000                 (Unix seconds when it was signed)
    X-EVB-Signature: sha256=<64 hex digits>     HMAC-SHA256(secret, "<timestamp>." + body)

The timestamp is inside the signed text, so a receiver that refuses timestamps older than a few
minutes (and remembers the ``seq`` it has seen) cannot be fed an old POST again. A retried POST
is signed anew.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "X-EVB-Signature"
TIMESTAMP_HEADER = "X-EVB-Timestamp"
SCHEME = "sha256="
TOLERANCE = 300.0  # seconds: what ``verify`` accepts by default, either way of the clock


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return SCHEME + mac.hexdigest()


def signed_headers(secret: str, timestamp: float, body: bytes) -> dict[str, str]:
    stamp = int(timestamp)
    return {TIMESTAMP_HEADER: str(stamp), SIGNATURE_HEADER: signature(secret, stamp, body)}


def verify(
    secret: str, headers: dict[str, str], body: bytes, now: float, tolerance: float = TOLERANCE
) -> bool:
    """What a receiver does (the reference manager and the tests use it): True when the
    signature matches and the timestamp is within ``tolerance`` of ``now``. ``headers`` with
    the names above (exact case)."""
    stamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(given, signature(secret, int(stamp), body))
