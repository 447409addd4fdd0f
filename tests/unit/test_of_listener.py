"""The OpenFlow listener's TLS handshake (app/controller/of_listener.py): a client that never
completes it is cut off at the deadline, and each failure is logged with its reason."""

import logging
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from app.controller import of_listener

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/of-pki.sh"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    for args in (["init"], ["controller"], ["switch", None, "edge1"]):
        command = [args[0], str(root), *args[2:]]
        subprocess.run(["bash", str(SCRIPT), *command], check=True, stdout=subprocess.DEVNULL)
    return root


@pytest.fixture
def listener(pki, monkeypatch):
    monkeypatch.setattr(of_listener, "HANDSHAKE_TIMEOUT", 0.5)
    sessions = []
    server = of_listener.OpenFlowListener(
        ("127.0.0.1", 0),
        lambda sock, addr: sessions.append(sock.recv(5)),
        ssl_ctx=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER),
        keyfile=str(pki / "controller-privkey.pem"),
        certfile=str(pki / "controller-cert.pem"),
        cert_reqs=ssl.CERT_REQUIRED,
        ca_certs=str(pki / "switchca/cacert.pem"),
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server.getsockname()[1], sessions
    server.server.close()


def test_a_client_silent_in_the_handshake_is_cut_off_and_logged(listener, caplog):
    port, sessions = listener
    caplog.set_level(logging.WARNING, "evb_nms.controller")
    with socket.create_connection(("127.0.0.1", port)) as silent:
        silent.settimeout(5)
        started = time.monotonic()
        assert silent.recv(1) == b""  # closed by the listener
        assert time.monotonic() - started < 3
    # ssl closes the socket as the handshake fails, just before the listener logs why.
    deadline = time.monotonic() + 2
    while "refused in the TLS handshake" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "refused in the TLS handshake" in caplog.text and not sessions


def test_a_switch_with_a_certificate_of_the_ca_gets_its_session(listener, pki):
    port, sessions = listener
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(pki / "controllerca/cacert.pem")
    context.load_cert_chain(pki / "edge1-cert.pem", pki / "edge1-privkey.pem")
    with socket.create_connection(("127.0.0.1", port)) as raw:
        with context.wrap_socket(raw) as tls:
            tls.sendall(b"hello")
            deadline = time.monotonic() + 5
            while not sessions and time.monotonic() < deadline:
                time.sleep(0.01)
    assert sessions == [b"hello"]
