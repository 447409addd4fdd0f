"""etcd v3 through its JSON gateway (etcd3gw, `/v3/` of etcd 3.4 and later): transactions and
ranges read in pages, over several endpoints.

A call goes to the endpoint that answered last; one that cannot be reached, or that answers
"unavailable" (a member down, a leader election under way), passes the call to the next, and so
on until one answers or `timeout` seconds have passed. Every write of ours is a put or a delete
of a key we name, so a call retried after a lost answer writes the same thing again. What etcd
itself refuses (a transaction too large, a compacted revision) is not retried: it raises
StoreError with etcd's reason."""

import base64
import time
import warnings
from collections.abc import Iterator, Sequence
from urllib.parse import quote, urlsplit

import requests

with warnings.catch_warnings():
    # etcd3gw imports futurist, which imports eventlet (installed for os-ken), which warns on
    # import that it is deprecated: nothing of ours uses it.
    warnings.simplefilter("ignore")
    from etcd3gw import exceptions as etcd_errors
    from etcd3gw.client import Etcd3Client

from app.store.base import StoreError

DEFAULT_PORT = 2379
PAGE = 1000  # keys per range request while reading a prefix
RETRY_PAUSE = 0.1  # seconds between two rounds of the endpoints
# etcd's own defaults (--max-txn-ops, --max-request-bytes): what the writes that may be split
# (app/store/write_behind.py batches) keep under, so they work on any etcd.
DEFAULT_TXN_OPS = 128
DEFAULT_REQUEST_BYTES = 1024 * 1024  # of keys and values, under etcd's 1.5 MiB with room
_UNAVAILABLE = (
    etcd_errors.ConnectionFailedError,
    etcd_errors.ConnectionTimeoutError,
    requests.RequestException,
)


_COMPACTED = "required revision has been compacted"  # etcd's reason


class Compacted(StoreError):
    """A read at a revision etcd has compacted away."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def key_part(text) -> str:
    """A name as one segment of a key: any "/" or odd character escaped."""
    return quote(str(text), safe="")


def prefix_end(prefix: str) -> str:
    """The first key after every key starting with `prefix` (ASCII keys)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def put(key: str, value: bytes) -> dict:
    return {"request_put": {"key": _b64(key.encode()), "value": _b64(value)}}


def delete(key: str, range_end: str | None = None) -> dict:
    request = {"key": _b64(key.encode())}
    if range_end is not None:
        request["range_end"] = _b64(range_end.encode())
    return {"request_delete_range": request}


def get(key: str) -> dict:
    return {"request_range": {"key": _b64(key.encode())}}


def same_mod_revision(key: str, revision: int) -> dict:
    """A transaction's condition: `key` was last written at `revision` (0: it does not exist)."""
    return {
        "key": _b64(key.encode()),
        "target": "MOD",
        "result": "EQUAL",
        "mod_revision": str(revision),
    }


def same_create_revision(key: str, revision: int) -> dict:
    """A transaction's condition: `key` was created at `revision` (0: it does not exist), i.e.
    it is the same key, not one deleted and created again since."""
    return {
        "key": _b64(key.encode()),
        "target": "CREATE",
        "result": "EQUAL",
        "create_revision": str(revision),
    }


def put_with_lease(key: str, value: bytes, lease: int) -> dict:
    """A put whose key etcd deletes when `lease` ends (expires or is revoked)."""
    return {"request_put": {"key": _b64(key.encode()), "value": _b64(value), "lease": str(lease)}}


def op_size(op: dict) -> int:
    """What one put or delete weighs in a request (base64 keys and values)."""
    request = next(iter(op.values()))
    return sum(len(text) for text in request.values())


def split(ops: list[dict], max_ops: int, max_bytes: int = DEFAULT_REQUEST_BYTES) -> list[list]:
    """`ops` in order, in chunks of at most `max_ops` operations and `max_bytes` (an operation
    heavier than that alone in its chunk)."""
    chunks: list[list] = []
    size = 0
    for op in ops:
        weight = op_size(op)
        if not chunks or len(chunks[-1]) >= max_ops or size + weight > max_bytes:
            chunks.append([])
            size = 0
        chunks[-1].append(op)
        size += weight
    return chunks


def values(response: dict) -> list[bytes | None]:
    """The value of each range request of a transaction's response (None: no such key)."""
    found: list[bytes | None] = []
    for item in response.get("responses", []):
        kvs = item.get("response_range", {}).get("kvs", [])
        found.append(base64.b64decode(kvs[0].get("value", "")) if kvs else None)
    return found


def _reason(err: Exception | None) -> str:
    """What went wrong, in one short line (etcd's JSON error, a connection's failure)."""
    text = getattr(err, "detail_text", None) or str(err) or type(err).__name__
    return " ".join(text.split())[:300]


def parse_endpoint(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an endpoint URL such as http://127.0.0.1:2379; ValueError if it
    is not one."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"expected http(s)://HOST:PORT, got {url!r}")
    return parts.scheme, parts.hostname, parts.port or DEFAULT_PORT


class EtcdKv:
    def __init__(self, endpoints: Sequence[str], timeout: float):
        self.endpoints = tuple(endpoints)
        self._clients = []
        for url in self.endpoints:
            scheme, host, port = parse_endpoint(url)
            client = Etcd3Client(host, port, protocol=scheme, timeout=timeout, api_path="/v3/")
            # No proxy or netrc from the environment: requests would read it on every call
            # (a third of the client's CPU per call).
            client.session.trust_env = False
            self._clients.append(client)
        self._timeout = timeout
        self._current = 0  # the endpoint that answered last

    def _post(self, what: str, path: str, body: dict) -> dict:
        deadline = time.monotonic() + self._timeout
        last: Exception | None = None
        while True:
            for _ in self._clients:
                client = self._clients[self._current]
                try:
                    return client.post(client.get_url(path), json=body)
                except _UNAVAILABLE as err:
                    last = err
                    self._current = (self._current + 1) % len(self._clients)
                except etcd_errors.Etcd3Exception as err:
                    reason = _reason(err)
                    refused = Compacted if _COMPACTED in reason else StoreError
                    raise refused(f"etcd refused the {what}: {reason}") from None
            if time.monotonic() >= deadline:
                raise StoreError(
                    f"etcd: no endpoint of {', '.join(self.endpoints)} answered the {what} "
                    f"within {self._timeout:g} s (last: {_reason(last)})"
                )
            time.sleep(RETRY_PAUSE)

    def txn(self, ops: list[dict], compare: Sequence[dict] = ()) -> dict:
        """One transaction: `ops` if every condition of `compare` holds, else nothing (see the
        response's "succeeded")."""
        return self._post(
            f"transaction of {len(ops)} operations",
            "kv/txn",
            {"compare": list(compare), "success": ops, "failure": []},
        )

    def revision(self) -> int:
        """The store's revision now (every write acknowledged before is at or below it)."""
        return int(self.txn([])["header"]["revision"])

    def get(self, key: str, revision: str = "mod_revision") -> tuple[bytes, int] | None:
        """The value of `key` and its mod revision (or `revision`: "create_revision"), None if
        there is none."""
        response = self._post("read", "kv/range", {"key": _b64(key.encode())})
        kvs = response.get("kvs", [])
        if not kvs:
            return None
        return base64.b64decode(kvs[0].get("value", "")), int(kvs[0][revision])

    def scan(
        self,
        start: str,
        end: str,
        *,
        reverse: bool = False,
        limit: int | None = None,
        revision: int | None = None,
    ) -> Iterator[tuple[str, bytes, int]]:
        """(key, value, mod revision) of the keys in [start, end) in key order (or reverse),
        read in pages of PAGE at one revision (`revision`, else the first page's), so a prefix
        read while it changes is one snapshot."""
        body: dict = {
            "key": _b64(start.encode()),
            "range_end": _b64(end.encode()),
            "sort_order": "DESCEND" if reverse else "ASCEND",
            "sort_target": "KEY",
        }
        if revision is not None:
            body["revision"] = str(revision)
        remaining = limit
        while remaining is None or remaining > 0:
            body["limit"] = PAGE if remaining is None else min(PAGE, remaining)
            response = self._post("read", "kv/range", body)
            body.setdefault("revision", response["header"]["revision"])
            kvs = response.get("kvs", [])
            for kv in kvs:
                yield (
                    base64.b64decode(kv["key"]).decode(),
                    base64.b64decode(kv.get("value", "")),
                    int(kv["mod_revision"]),
                )
            if not response.get("more") or not kvs:
                return
            if remaining is not None:
                remaining -= len(kvs)
            last = base64.b64decode(kvs[-1]["key"])
            if reverse:
                body["range_end"] = _b64(last)
            else:
                body["key"] = _b64(last + b"\0")

    def scan_prefix(
        self, prefix: str, revision: int | None = None
    ) -> Iterator[tuple[str, bytes, int]]:
        return self.scan(prefix, prefix_end(prefix), revision=revision)

    # leases (app/ha/election.py) --------------------------------------------------------------
    def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: its id and the TTL etcd granted (at least etcd's minimum)."""
        response = self._post("lease grant", "lease/grant", {"TTL": ttl, "ID": 0})
        return int(response["ID"]), int(response["TTL"])

    def keepalive(self, lease: int) -> int:
        """Renews `lease` for its whole TTL; the seconds it has left now, 0 once it has ended."""
        response = self._post("lease keep-alive", "lease/keepalive", {"ID": str(lease)})
        return int(response.get("result", {}).get("TTL", 0))

    def revoke(self, lease: int) -> None:
        """Ends `lease` now and deletes its keys; a lease already ended is no error."""
        try:
            self._post("lease revoke", "kv/lease/revoke", {"ID": str(lease)})
        except StoreError as err:
            if "lease not found" not in str(err):
                raise

    def close(self) -> None:
        for client in self._clients:
            client.session.close()
