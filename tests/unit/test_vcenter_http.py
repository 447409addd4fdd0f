"""The vCenter HTTP transport: a hard deadline whatever the server does, plain errors, strict JSON.
Also the in-process servers the other test_vcenter_* files use."""

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest

from app.vcenter.transport import MAX_BODY, TransportError, error_text, exchange, parse_json


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # handlers still sleeping in a slow app must not hold the tests


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass


@contextmanager
def served(app) -> Iterator[str]:
    """Serves the WSGI ``app`` on a free local port; yields its base URL. (RestServer does the
    same, but its shutdown waits for the default half-second poll.)"""
    server = make_server("127.0.0.1", 0, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """The URL of a local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


class Scripted:
    """A WSGI app answering every request with ``answer(request_number, environ)`` -> (status,
    body); records (method, path, query, body) of each request."""

    def __init__(self, answer: Callable[[int, dict], tuple[int, bytes | object]]) -> None:
        self._answer = answer
        self.requests: list[tuple[str, str, str, bytes]] = []
        self._lock = threading.Lock()

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        with self._lock:
            self.requests.append(
                (
                    environ["REQUEST_METHOD"],
                    environ["PATH_INFO"],
                    environ.get("QUERY_STRING", ""),
                    body,
                )
            )
            number = len(self.requests)
        status, payload = self._answer(number, environ)
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        start_response(
            f"{status} X",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))],
        )
        return [payload]

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)


def answering(status: int, payload, delay: float = 0.0) -> Scripted:
    def answer(number, environ):
        time.sleep(delay)
        return status, payload

    return Scripted(answer)


def test_answer_of_any_status_is_returned():
    with served(answering(503, {"error": "busy"})) as url:
        answer = exchange("GET", url + "/x?y=1", timeout=1)
    assert answer.status == 503
    assert parse_json(answer.body) == {"error": "busy"}


def test_body_is_sent_as_json():
    app = answering(204, b"")
    with served(app) as url:
        answer = exchange("POST", url + "/n", body={"kind": "k", "n": 1}, timeout=1)
    assert answer.status == 204
    assert app.requests == [("POST", "/n", "", b'{"kind": "k", "n": 1}')]


def test_refused_connection():
    with pytest.raises(TransportError, match="connection refused"):
        exchange("GET", closed_port_url() + "/x", timeout=1)


def test_slow_answer_ends_at_the_deadline():
    with served(answering(200, b"{}", delay=3)) as url:
        start = time.monotonic()
        with pytest.raises(TransportError, match="within 0.3 s"):
            exchange("GET", url, timeout=0.3)
        assert time.monotonic() - start < 2.5  # not the server's 3 s


def test_trickling_answer_ends_at_the_deadline():
    """Each byte comes well within the socket timeout; the whole answer would take 10 s."""

    def trickle(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        for _ in range(100):
            time.sleep(0.1)
            yield b"x"

    with served(trickle) as url:
        start = time.monotonic()
        with pytest.raises(TransportError, match="within 0.5 s"):
            exchange("GET", url, timeout=0.5)
        assert time.monotonic() - start < 5  # not the answer's 10 s


@pytest.mark.parametrize("size", [MAX_BODY + 1, 3 * MAX_BODY])
def test_oversized_answer_is_refused(size):
    with served(answering(200, b"x" * size)) as url:
        with pytest.raises(TransportError, match="larger than"):
            exchange("GET", url, timeout=2)


def test_answer_cut_short():
    def short(environ, start_response):
        start_response("200 OK", [("Content-Length", "100")])
        return [b"{}"]

    with served(short) as url:
        with pytest.raises(TransportError, match="answer cut short"):
            exchange("GET", url, timeout=2)


def test_connection_closed_without_answer():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def hang_up():
            connection = listener.accept()[0]
            connection.recv(65536)  # unread data would make the close a reset
            connection.close()

        threading.Thread(target=hang_up, daemon=True).start()
        with pytest.raises(TransportError, match="closed without an answer"):
            exchange("GET", f"http://127.0.0.1:{port}/", timeout=2)


@pytest.mark.parametrize("url", ["ftp://host/x", "127.0.0.1:8090", "http://"])
def test_bad_url(url):
    with pytest.raises(ValueError, match="http"):
        exchange("GET", url, timeout=1)


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"{not json", "line 1 column 2"),
        (b'{"a": NaN}', "NaN is not JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100000, "nested too deeply"),
        (b"", "line 1"),
    ],
)
def test_parse_json_says_what_is_wrong(body, problem):
    with pytest.raises(ValueError, match=problem):
        parse_json(body)


def test_error_text():
    assert error_text(b'{"error": "no such type"}') == ": no such type"
    assert (
        error_text(b'{"error": "expected 1-4094", "field": "vlans[0]"}')
        == ": vlans[0]: expected 1-4094"
    )
    assert (
        error_text(b'{"error": "vlans[0]: expected 1-4094", "field": "vlans[0]"}')
        == ": vlans[0]: expected 1-4094"
    )
    assert error_text(b'{"error": null, "field": "x"}') == ""
    assert error_text(b"<html>oops</html>") == ": <html>oops</html>"
    assert error_text(b"") == ""
    assert error_text(b"[1]") == ""
