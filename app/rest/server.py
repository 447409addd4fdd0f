"""The HTTP server of the REST API (and of the reference VM manager): one asyncio thread reads
every request whole, within a deadline, before a bounded pool of worker threads runs the WSGI
app on it; TLS when given a context.

A client that connects and sends nothing, or trickles its headers (slowloris), costs one socket
and a coroutine until its deadline, never a worker thread; the pool and its queue are bounded,
and a request beyond them is answered 503 at once. The request is parsed and the response
written by the standard library's wsgiref, as before: only the I/O around it is new.

Why not a packaged server: cheroot hands a connection to a worker thread once its first bytes
arrive, so as many half-sent requests as it has threads stall it (measured: 50 half-open
connections, 8 threads, a normal request unanswered after 30 s); waitress reads asynchronously
as this does but has no TLS. os-ken runs native threads (no eventlet), so one more thread with
its own event loop is at home here.
"""

import asyncio
import io
import json
import logging
import socket
import ssl
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler

LOG = logging.getLogger("evb_nms.rest")


@dataclass(frozen=True)
class ServerLimits:
    workers: int = 8  # WSGI calls at once
    queue: int = 64  # requests read whole and waiting for a worker; beyond: 503
    connections: int = 1024  # open connections; beyond, a new one is closed at once
    read_timeout: float = 10.0  # for the whole request, headers and body; then 408
    handler_timeout: float = 30.0  # for the app's answer; then 503 (its worker finishes)
    backlog: int = 1024  # connections the kernel queues before they are accepted
    max_head: int = 64 * 1024  # request line and headers; beyond: 431
    max_body: int = (1 << 20) + (64 << 10)  # the API's bodies are at most 1 MiB; beyond: 413


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_REASONS = {
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}


def refusal(status: int, message: str) -> bytes:
    """A complete HTTP response refusing a request the app never sees (the API's error shape)."""
    body = json.dumps({"error": message, "field": None}).encode() + b"\n"
    retry = b"Retry-After: 1\r\n" if status == 503 else b""
    return (
        f"HTTP/1.0 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n".encode()
        + retry
        + b"\r\n"
        + body
    )


def body_length(head: bytes, limit: int) -> int:
    """The Content-Length a request head announces (0 without one), or _Refused."""
    lengths = set()
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"transfer-encoding":
            raise _Refused(501, "chunked request bodies are not supported: send Content-Length")
        if name == b"content-length":
            value = value.strip()
            if not value.isdigit() or len(value) > 12:
                raise _Refused(400, "Content-Length is not a number")
            lengths.add(int(value))
    if len(lengths) > 1:
        raise _Refused(400, "Content-Length is given twice with different values")
    length = lengths.pop() if lengths else 0
    if length > limit:
        raise _Refused(413, f"request body larger than {limit} bytes")
    return length


class _Gateway:
    """What wsgiref's request handler asks of its server: the app and the base environ."""

    def __init__(self, app, host: str, port: int, tls: bool) -> None:
        self._app = app
        self.base_environ = {
            "SERVER_NAME": host,
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PORT": str(port),
            "REMOTE_HOST": "",
            "CONTENT_LENGTH": "",
            "SCRIPT_NAME": "",
            **({"HTTPS": "on"} if tls else {}),
        }

    def get_app(self):
        return self._app


class _BufferedHandler(WSGIRequestHandler):
    """wsgiref's handler on a request already read (``request`` is (raw bytes, output))."""

    def setup(self) -> None:
        raw, self.wfile = self.request
        self.rfile = io.BytesIO(raw)

    def finish(self) -> None:
        """The output stays open: the server sends it."""

    def log_message(self, format, *args):  # noqa: A002 - the signature is the stdlib's
        LOG.debug("%s %s", self.address_string(), format % args)


class RestServer:
    def __init__(
        self,
        host: str,
        port: int,
        wsgi_app,
        *,
        tls: ssl.SSLContext | None = None,
        limits: ServerLimits | None = None,
    ) -> None:
        """Binds and listens at once (a busy port fails here); serves from start()."""
        limits = limits or ServerLimits()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=limits.backlog)
        self._gateway = _Gateway(wsgi_app, host, self.port, tls is not None)
        self._tls = tls
        self.limits = limits
        self._loop = asyncio.new_event_loop()
        self._workers = ThreadPoolExecutor(limits.workers, thread_name_prefix="rest-worker")
        self._open = 0  # connections; these three only on the loop's thread
        self._waiting = 0  # requests handed to the pool and not finished
        self.counters: Counter[str] = Counter()  # refusals and timeouts by kind
        self._thread = threading.Thread(target=self._serve, name="rest", daemon=True)

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        else:
            self._socket.close()
        self._workers.shutdown(wait=False, cancel_futures=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(
                self._connection,
                sock=self._socket,
                ssl=self._tls,
                backlog=self.limits.backlog,
                limit=self.limits.max_head,
                ssl_handshake_timeout=self.limits.read_timeout if self._tls else None,
            )
        )
        try:
            self._loop.run_forever()
        finally:
            server.close()
            tasks = asyncio.all_tasks(self._loop)
            for task in tasks:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self._loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if self._open >= self.limits.connections:
            self.counters["connections_refused"] += 1
            writer.transport.abort()
            return
        self._open += 1
        try:
            response = await self._answer(reader, writer.get_extra_info("peername"))
            if response:
                writer.write(response)
                await asyncio.wait_for(writer.drain(), self.limits.read_timeout)
            writer.close()
        except OSError:  # the client left or stopped reading (TimeoutError included)
            self.counters["clients_lost"] += 1
            writer.transport.abort()
        finally:
            self._open -= 1

    async def _answer(self, reader: asyncio.StreamReader, peer) -> bytes:
        try:
            raw = await asyncio.wait_for(self._read(reader), self.limits.read_timeout)
        except TimeoutError:
            self.counters["read_timeouts"] += 1
            return refusal(408, f"the request did not arrive within {self.limits.read_timeout} s")
        except asyncio.IncompleteReadError:
            return b""  # closed before the request was complete: nobody to answer
        except asyncio.LimitOverrunError:
            return refusal(431, f"request headers larger than {self.limits.max_head} bytes")
        except _Refused as refused:
            return refusal(refused.status, refused.message)
        if self._waiting >= self.limits.workers + self.limits.queue:
            self.counters["busy"] += 1
            return refusal(503, "the API is busy: try again")
        self._waiting += 1
        future = self._loop.run_in_executor(self._workers, self._call, raw, peer)
        future.add_done_callback(self._finished)  # when the worker ends, not when we stop waiting
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.limits.handler_timeout)
        except TimeoutError:
            self.counters["handler_timeouts"] += 1
            return refusal(503, f"no answer within {self.limits.handler_timeout} s")
        except Exception:  # wsgiref answers the app's own errors; this is the server's
            LOG.exception("REST request from %s failed", peer)
            return refusal(500, "internal error")

    def _finished(self, _future) -> None:
        self._waiting -= 1

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = body_length(head, self.limits.max_body)
        return head + (await reader.readexactly(length) if length else b"")

    def _call(self, raw: bytes, peer) -> bytes:
        """On a worker: the WSGI app's whole response to one request."""
        output = io.BytesIO()
        address = peer[:2] if isinstance(peer, tuple) else ("", 0)
        _BufferedHandler((raw, output), address, self._gateway)
        return output.getvalue()
