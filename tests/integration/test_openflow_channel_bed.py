"""The OpenFlow channel on real Open vSwitch (no Mininet: plain bridges): OVS connects over TLS
with a certificate of the switch CA and is refused with any other; a raw TCP client claiming the
dpid of a connected bridge gets nothing and is closed, the bridge keeps its connection, and an
alarm is raised."""

import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.bed import MARKS, wait_until

pytestmark = MARKS
REPO = Path(__file__).resolve().parents[2]
DPID = 0x00000000000000E1
OUR_XIDS = range(0xEB000000, 0xEC000000)  # app/fabric/xids.py: the fabric's flow messages


def ovs(*args, check=True):
    return subprocess.run(
        ["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True, check=check
    ).stdout.strip()


def pki(*args):
    subprocess.run(
        ["bash", str(REPO / "scripts/of-pki.sh"), *args], check=True, stdout=subprocess.DEVNULL
    )


@pytest.fixture
def bridge():
    """A userspace bridge with a fixed dpid, removed (and the SSL settings restored) after."""
    name = "evbof-br1"
    ssl_before = ovs("get-ssl")
    ovs(
        "--may-exist", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev",
        "protocols=OpenFlow13", "fail-mode=secure", f"other-config:datapath-id={DPID:016x}",
    )  # fmt: skip
    try:
        yield name
    finally:
        ovs("--if-exists", "del-br", name, check=False)
        if not ssl_before:
            ovs("del-ssl", check=False)


def controller_process(tmp_path, *extra):
    from topologies.controller_process import ControllerProcess, free_port

    return ControllerProcess(
        tmp_path / "controller",
        of_port=free_port(),
        rest_port=free_port(),
        extra_args=list(extra),
        log_level="DEBUG",
    )


def connected(bridge) -> bool:
    """OVS's own view: is the bridge's controller connection up?"""
    uuid = ovs("get", "bridge", bridge, "controller").strip("[]")
    return bool(uuid) and ovs("get", "controller", uuid, "is_connected") == "true"


def ready(controller, bridge):
    return any(
        s["name"] == bridge and s["state"] == "ready" for s in controller.rest("/v1/switches")
    )


def test_ovs_connects_over_tls_only_with_a_certificate_of_the_switch_ca(tmp_path, bridge):
    pki_dir, rogue = tmp_path / "pki", tmp_path / "rogue"
    pki("init", str(pki_dir))
    pki("controller", str(pki_dir))
    pki("switch", str(pki_dir), "edge1")
    pki("init", str(rogue))  # another CA: its switch certificates must not be accepted
    pki("switch", str(rogue), "edge1")
    tls = [
        "--of-tls-privkey", str(pki_dir / "controller-privkey.pem"),
        "--of-tls-cert", str(pki_dir / "controller-cert.pem"),
        "--of-tls-ca-certs", str(pki_dir / "switchca/cacert.pem"),
    ]  # fmt: skip
    controller_ca = str(pki_dir / "controllerca/cacert.pem")
    with controller_process(tmp_path, *tls) as controller:
        target = f"ssl:127.0.0.1:{controller.of_port}"
        # A certificate of another CA: the handshake fails, the bridge never connects.
        ovs(
            "set-ssl",
            str(rogue / "edge1-privkey.pem"),
            str(rogue / "edge1-cert.pem"),
            controller_ca,
        )
        ovs("set-controller", bridge, target)
        time.sleep(6)
        assert not connected(bridge) and not ready(controller, bridge)
        assert "refused in the TLS handshake: [SSL: CERTIFICATE_VERIFY_FAILED]" in (
            controller.log_text()
        )
        # Plain TCP on the TLS port: no OpenFlow either.
        ovs("set-controller", bridge, f"tcp:127.0.0.1:{controller.of_port}")
        time.sleep(3)
        assert not connected(bridge) and not ready(controller, bridge)
        # The certificate of the switch CA: it connects and is reconciled.
        ovs("del-controller", bridge)
        ovs(
            "set-ssl",
            str(pki_dir / "edge1-privkey.pem"),
            str(pki_dir / "edge1-cert.pem"),
            controller_ca,
        )
        ovs("set-controller", bridge, target)
        wait_until(lambda: ready(controller, bridge), timeout=30, message="no TLS switch")
        wait_until(lambda: connected(bridge), timeout=10, message="OVS: not connected")
        # A client without any certificate gets no OpenFlow hello.
        assert read_without_certificate(controller.of_port, controller_ca) == b""
        log = controller.log_text()
    assert "event=switch.connected switch=" in log


def read_without_certificate(port: int, cafile: str) -> bytes:
    """What a TLS client with no certificate of its own reads: nothing, or an error."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                return tls.recv(8)  # TLS 1.3: the server's refusal arrives on the first read
    except (ssl.SSLError, OSError):
        return b""


class RawSwitch:
    """A TCP client speaking just enough OpenFlow 1.3 to claim a dpid: hello, features reply,
    an empty port description; then it only listens."""

    def __init__(self, port: int, dpid: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.dpid = dpid
        self.received: list[tuple[int, int]] = []  # (type, xid)
        self.closed = False
        self._buf = b""

    def handshake(self):
        """Up to the port description, or until the controller closes the connection."""
        self.sock.sendall(struct.pack("!BBHI", 4, 0, 8, 1))  # OFPT_HELLO
        while not self.closed:
            msg_type, xid, body = self.read()
            if msg_type == 5:  # FEATURES_REQUEST
                reply = struct.pack("!QIBB2xII", self.dpid, 0, 254, 0, 0, 0)
                self.sock.sendall(struct.pack("!BBHI", 4, 6, 8 + len(reply), xid) + reply)
            elif msg_type == 18 and struct.unpack("!H", body[:2])[0] == 13:  # PORT_DESC request
                self.sock.sendall(struct.pack("!BBHIHH4x", 4, 19, 16, xid, 13, 0))
                return

    def read(self):
        """The next message (type, xid, body); (None, None, b"") once the peer has closed."""
        while len(self._buf) < 8 or len(self._buf) < struct.unpack("!H", self._buf[2:4])[0]:
            try:
                chunk = self.sock.recv(65536)
            except ConnectionError:
                chunk = b""
            if not chunk:
                self.closed = True
                return None, None, b""
            self._buf += chunk
        _, msg_type, length, xid = struct.unpack("!BBHI", self._buf[:8])
        body, self._buf = self._buf[8:length], self._buf[length:]
        self.received.append((msg_type, xid))
        return msg_type, xid, body

    def closed_within(self, seconds: float) -> bool:
        """Reads (and records) what arrives until the controller closes the connection."""
        self.sock.settimeout(0.5)
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            try:
                self.read()
            except TimeoutError:
                continue
        return self.closed


def test_a_second_connection_claiming_a_connected_dpid_is_refused(tmp_path, bridge):
    with controller_process(tmp_path) as controller:
        ovs("set-controller", bridge, f"tcp:127.0.0.1:{controller.of_port}")
        wait_until(lambda: ready(controller, bridge), timeout=30, message="bridge not ready")
        impostor = RawSwitch(controller.of_port, DPID)
        impostor.handshake()
        assert impostor.closed_within(10), impostor.received
        ours = [(t, hex(x)) for t, x in impostor.received if x in OUR_XIDS]
        assert not ours, f"the impostor got the controller's messages: {ours}"
        assert ready(controller, bridge)
        wait_until(lambda: connected(bridge), timeout=10, message="OVS: not connected")
        # The impostor is closed as the verdict is reached; its event is stored just after
        # (events are written behind, at most 0.1 s late).
        wait_until(
            lambda: outcomes(controller) == ["checking", "refused"],
            timeout=5,
            message=f"switch.duplicate outcomes: {outcomes(controller)}",
        )
        alarms = controller.rest("/v1/alarms")
        assert f"switch.duplicate:{bridge}" in [a["id"] for a in alarms], alarms
        assert not any(e["kind"] == "switch.disconnected" for e in controller.rest("/v1/events"))


def outcomes(controller) -> list[str]:
    return [e["detail"]["outcome"] for e in controller.rest("/v1/events?kind=switch.duplicate")]


def test_a_client_that_never_names_its_dpid_is_closed(tmp_path):
    with controller_process(tmp_path) as controller:
        silent = RawSwitch(controller.of_port, DPID)  # connects, never says hello
        started = time.monotonic()
        assert silent.closed_within(20)
        assert time.monotonic() - started < 15  # HELLO_TIMEOUT, 10 s, and a tick
