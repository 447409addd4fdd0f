"""One HTTP exchange with a hard deadline, and strict JSON decoding of its body (stdlib only).

``http.client`` timeouts bound each socket operation, not the exchange: a manager that answers a
byte at a time could hold a caller for many timeouts. A timer therefore shuts the socket down
when the deadline passes, which wakes the blocked read at once.
"""

import functools
import http.client
import json
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

MAX_BODY = 1 << 20  # an answer larger than this is not a profile, a VM or an ack
USER_AGENT = "evb-nms"


class TransportError(Exception):
    """No HTTP answer (refused, reset, timed out, too large); the message says which."""


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes


def exchange(
    method: str,
    url: str,
    *,
    timeout: float,
    body: Any = None,
    headers: dict[str, str] | None = None,
    address: str | None = None,
) -> HttpAnswer:
    """Sends ``body`` (bytes as they are, else JSON-encoded unless None) and returns the
    answer, whatever its status, within ``timeout`` seconds (the connect included; name
    resolution is not, so give addresses or names the resolver answers locally). ``address``:
    connect there instead of resolving the URL's host, which still names the Host header and
    the TLS peer (app/vcenter/destinations.py checked that address). Raises TransportError, or
    ValueError for a URL that is not http(s)."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, port, timeout=timeout)
    if address is not None:  # http.client's own hook for how it opens its socket
        pinned = functools.partial(_connect_to, address)
        connection._create_connection = pinned  # type: ignore[attr-defined]
    if body is None or isinstance(body, bytes):
        payload = body
    else:
        payload = json.dumps(body, default=str).encode()
    all_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    if payload is not None:
        all_headers["Content-Type"] = "application/json"
    path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
    expired = threading.Event()
    sockets: list[socket.socket] = []  # the timer's hold on the socket: http.client lets go
    timer = threading.Timer(timeout, _abort, (sockets, expired))  # of it on HTTP/1.0 answers
    timer.daemon = True
    timer.start()
    try:
        connection.connect()
        sockets.append(connection.sock)
        if expired.is_set():  # the timer fired during the connect, before it saw the socket
            raise TimeoutError
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        data = response.read(MAX_BODY + 1)
        if expired.is_set():  # the shutdown ends a read early, not always with an error
            raise TimeoutError
        if len(data) > MAX_BODY:
            raise TransportError(f"answer larger than {MAX_BODY} bytes")
        if response.length:  # bytes the Content-Length announced and that never came
            raise http.client.IncompleteRead(data, response.length)
    except (OSError, http.client.HTTPException) as err:
        if expired.is_set() or isinstance(err, TimeoutError):
            raise TransportError(f"no complete answer within {timeout:g} s") from None
        raise TransportError(_describe(err)) from None
    finally:
        timer.cancel()
        connection.close()
    return HttpAnswer(response.status, data)


def _connect_to(address: str, host_and_port, timeout, source_address) -> socket.socket:
    """http.client's connect hook, pinned to ``address``: the name is not resolved again."""
    return socket.create_connection((address, host_and_port[1]), timeout, source_address)


def _abort(sockets: list[socket.socket], expired: threading.Event) -> None:
    expired.set()
    for sock in sockets:  # none while connecting: the connect timeout bounds that
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already closed: the exchange ended meanwhile


def _describe(err: Exception) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, http.client.RemoteDisconnected):
        return "connection closed without an answer"
    if isinstance(err, http.client.IncompleteRead):
        return "answer cut short"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror.lower()
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def parse_json(body: bytes) -> Any:
    """Strict JSON (UTF-8, no NaN/Infinity); ValueError saying what is wrong."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError as err:
        raise ValueError(f"not UTF-8 (byte {err.start})") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def error_text(body: bytes) -> str:
    """``": message"`` for an error answer: from a JSON body {"error": ..., "field": ...} (the
    controller's and the reference manager's form) ``": field: error"``, else the start of the
    body as text; empty if there is nothing to say."""
    try:
        data = parse_json(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
    else:
        text = ""
        if isinstance(data, dict) and data.get("error"):
            text = str(data["error"])
            if data.get("field") and not text.startswith(f"{data['field']}:"):
                text = f"{data['field']}: {text}"
    return f": {text[:200]}" if text else ""
