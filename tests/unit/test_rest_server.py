"""The REST server under abuse: idle and trickling connections (slowloris), a full worker pool, a
slow handler, oversized requests; and TLS."""

import http.client
import json
import socket
import ssl
import subprocess
import threading
import time
from contextlib import contextmanager

import pytest

from app.cli.evbctl import Client
from app.config import Settings
from app.rest.listener import rest_server
from app.rest.server import RestServer, ServerLimits

HEAD = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n"  # half a request: the blank line never comes


def hello(environ, start_response):
    body = json.dumps({"path": environ["PATH_INFO"], "scheme": environ["wsgi.url_scheme"]})
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body.encode()]


@contextmanager
def serving(app=hello, **kwargs):
    server = RestServer("127.0.0.1", 0, app, **kwargs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def get(port: int, path: str = "/v1/health", timeout: float = 5.0, context=None):
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", port, timeout=timeout, context=context
        )
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def half_open(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        client = socket.create_connection(("127.0.0.1", port), timeout=2)
        client.sendall(HEAD)
        sockets.append(client)
    return sockets


def test_slowloris_neither_holds_threads_nor_delays_a_normal_request():
    with serving() as server:
        threads = threading.active_count()
        started = time.monotonic()
        idle = half_open(server.port, 300)  # wsgiref's backlog of 5 made this take 30 s
        assert time.monotonic() - started < 10
        try:
            started = time.monotonic()
            assert get(server.port)[0] == 200
            assert time.monotonic() - started < 1.0
            # no thread per connection (wsgiref started one for each)
            assert threading.active_count() - threads < 20
        finally:
            for client in idle:
                client.close()


def test_a_trickling_request_is_cut_at_the_read_deadline():
    with serving(limits=ServerLimits(read_timeout=0.5)) as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        started = time.monotonic()
        try:
            for byte in HEAD:  # one byte every 0.1 s: never idle, never complete
                client.sendall(bytes([byte]))
                time.sleep(0.1)
        except OSError:
            pass
        answer = client.recv(4096)
        assert answer.startswith(b"HTTP/1.0 408") and time.monotonic() - started < 2
        client.close()
        assert server.counters["read_timeouts"] == 1


def test_beyond_the_connection_limit_new_connections_are_closed_at_once():
    with serving(limits=ServerLimits(connections=16)) as server:
        idle = half_open(server.port, 16)
        try:
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            try:
                assert extra.recv(100) == b""
            except ConnectionResetError:
                pass
            extra.close()
            assert server.counters["connections_refused"] >= 1
        finally:
            for client in idle:
                client.close()
        time.sleep(0.2)
        assert get(server.port)[0] == 200  # the idle ones gone, it serves again


def blocking_app(release: threading.Event):
    def app(environ, start_response):
        release.wait(5)
        return hello(environ, start_response)

    return app


def test_a_full_worker_pool_and_queue_answer_503_at_once():
    release = threading.Event()
    limits = ServerLimits(workers=1, queue=1)
    with serving(blocking_app(release), limits=limits) as server:
        results = []
        waiting = [
            threading.Thread(target=lambda: results.append(get(server.port)[0])) for _ in range(2)
        ]
        for thread in waiting:
            thread.start()
        time.sleep(0.3)  # one request on the worker, one in the queue
        started = time.monotonic()
        status, body = get(server.port)
        assert status == 503 and "busy" in body["error"] and time.monotonic() - started < 1
        release.set()
        for thread in waiting:
            thread.join(5)
        assert results == [200, 200] and server.counters["busy"] == 1


def test_a_handler_that_takes_too_long_is_answered_503():
    release = threading.Event()
    limits = ServerLimits(handler_timeout=0.3)
    with serving(blocking_app(release), limits=limits) as server:
        status, body = get(server.port)
        release.set()
        assert status == 503 and "0.3 s" in body["error"]


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"PUT / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", b"413"),
        (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", b"501"),
        (b"GET / HTTP/1.1\r\nX: " + b"a" * 70000 + b"\r\n\r\n", b"431"),
        (b"PUT / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", b"400"),
    ],
)
def test_malformed_or_oversized_requests_are_refused(request_bytes, status):
    with serving() as server:
        client = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        client.sendall(request_bytes)
        assert client.recv(100).split(b" ")[1] == status
        client.close()


def test_a_request_with_a_body_reaches_the_app_whole():
    def echo(environ, start_response):
        body = environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"]))
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"length": len(body)}).encode()]

    with serving(echo) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        connection.request("PUT", "/x", body=b"x" * 300_000)
        assert json.loads(connection.getresponse().read()) == {"length": 300_000}
        connection.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A self-signed certificate for 127.0.0.1 and its key (openssl, as docs/security.md)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "rest.crt", folder / "rest.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-days", "2", "-subj", "/CN=evb-nms", "-keyout", str(key), "-out", str(cert)]
        + ["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


@pytest.fixture
def tls_port(certificate):
    """The port of a server started from the TLS settings, as the controller starts it."""
    cert, key = certificate
    settings = Settings(rest_listen="127.0.0.1:0", rest_tls_cert=cert, rest_tls_key=key)
    server = rest_server(settings, hello)  # port 0: any free one
    server.start()
    yield server.port
    server.stop()


def test_tls_serves_clients_that_trust_the_certificate(certificate, tls_port):
    cert, _ = certificate
    trusting = ssl.create_default_context(cafile=cert)
    assert get(tls_port, "/v1/x", context=trusting) == (200, {"path": "/v1/x", "scheme": "https"})
    with pytest.raises(ssl.SSLCertVerificationError):
        get(tls_port, context=ssl.create_default_context())
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        get(tls_port)  # plain HTTP on the TLS port: no answer
    assert get(tls_port, context=trusting)[0] == 200  # and it still serves
    evbctl = Client(f"https://127.0.0.1:{tls_port}", None, ca_file=cert)
    assert evbctl.call("GET", "/v1/y") == {"path": "/v1/y", "scheme": "https"}


def test_a_slow_tls_handshake_holds_no_worker(certificate, tls_port):
    idle = [socket.create_connection(("127.0.0.1", tls_port)) for _ in range(50)]
    started = time.monotonic()
    assert get(tls_port, context=ssl.create_default_context(cafile=certificate[0]))[0] == 200
    assert time.monotonic() - started < 1.0
    for client in idle:
        client.close()
