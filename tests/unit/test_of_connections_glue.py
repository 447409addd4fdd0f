"""The os-ken glue's connection handling (app/controller/evb_app.py), driven with fake datapaths:
which connection speaks for a dpid, and what happens to a second one claiming it."""

import queue
import time
import types

import pytest
from os_ken.controller import ofp_event
from os_ken.controller.handler import CONFIG_DISPATCHER, DEAD_DISPATCHER, HANDSHAKE_DISPATCHER
from os_ken.ofproto import ofproto_protocol
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.config import Settings
from app.controller.evb_app import EvbApp
from app.controller.leadership import Leadership
from app.fabric.connections import HELLO_TIMEOUT


class FakeDatapath(ofproto_protocol.ProtocolDesc):
    """What the glue uses of os-ken's Datapath: address, state, socket, send, send_msg."""

    def __init__(self, host: str):
        super().__init__(ofp.OFP_VERSION)
        self.address = (host, 40000)
        self.state = CONFIG_DISPATCHER
        self.send_q: queue.Queue = queue.Queue(16)  # os-ken's: a full one blocks a sender
        self.sent: list = []
        self.closed = False
        self.socket = types.SimpleNamespace(
            fileno=lambda: -1 if self.closed else 7, shutdown=lambda how: self.close()
        )

    def send(self, buf, close_socket=False):
        self.sent.append(bytes(buf))
        return True

    def send_msg(self, msg, close_socket=False):
        msg.serialize()
        self.sent.append(msg)
        return True

    def close(self):
        self.closed = True

    def echo_requests(self) -> list:
        return [m for m in self.sent if isinstance(m, parser.OFPEchoRequest)]


@pytest.fixture
def make_app(tmp_path):
    apps = []

    def make(**settings):
        EvbApp.settings = Settings(
            db_path=str(tmp_path / "evb.db"), rest_listen="127.0.0.1:0", **settings
        )
        app = EvbApp()
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.rest.stop()  # never started, but its socket is bound already
        app.store.close()
        app.intent_store.close()
        app.monitor.close()
    EvbApp.settings = Settings()


def features(datapath, dpid):
    msg = parser.OFPSwitchFeatures(datapath, datapath_id=dpid)
    return ofp_event.EventOFPSwitchFeatures(msg)


def echo_reply(datapath, xid):
    msg = parser.OFPEchoReply(datapath)
    msg.xid = xid
    return ofp_event.EventOFPEchoReply(msg)


def opened(datapath):
    """What os-ken reports of a new connection, before any message."""
    datapath.state = HANDSHAKE_DISPATCHER
    return ofp_event.EventOFPStateChange(datapath)


def dead(datapath):
    """What os-ken reports once it has reaped a closed connection."""
    datapath.closed, datapath.state = True, DEAD_DISPATCHER
    return ofp_event.EventOFPStateChange(datapath)


def drain(app):
    """What the worker thread does with the queued switch events."""
    events, frames = app._work.take(10000, timeout=0)
    with app.lock:
        for call in [*events, *frames]:
            app._send(call(time.monotonic()) or [])


def kinds(app, prefix="switch."):
    return [e.kind for e in app.event_log.recent(prefix)]


def test_a_second_connection_claiming_a_connected_dpid_does_not_take_it(make_app):
    app = make_app()
    real, impostor = FakeDatapath("127.0.0.1"), FakeDatapath("10.9.9.9")
    app._on_features(features(real, 1))
    drain(app)
    app._on_features(features(impostor, 1))
    drain(app)
    assert app._datapaths[1] is real
    duplicate = app.event_log.recent("switch.duplicate")
    assert duplicate and duplicate[-1].detail["address"] == "10.9.9.9"
    assert [a.kind for a in app.monitor.book.active()] == ["switch.duplicate"]


def connect(app, datapath, dpid):
    app._on_features(features(datapath, dpid))
    drain(app)


def test_the_connected_switch_answering_the_echo_keeps_it_and_the_newcomer_is_closed(make_app):
    app = make_app()
    real, impostor = FakeDatapath("127.0.0.1"), FakeDatapath("10.9.9.9")
    connect(app, real, 1)
    connect(app, impostor, 1)
    [echo] = real.echo_requests()
    assert not impostor.closed
    app._on_heard(echo_reply(real, echo.xid))
    drain(app)
    assert impostor.closed and not real.closed and app._datapaths[1] is real
    outcomes = [e.detail["outcome"] for e in app.event_log.recent("switch.duplicate")]
    assert outcomes == ["checking", "refused"]
    assert kinds(app).count("switch.connected") == 1


def test_messages_of_a_connection_that_does_not_hold_the_dpid_are_dropped(make_app):
    app = make_app()
    real, impostor = FakeDatapath("127.0.0.1"), FakeDatapath("10.9.9.9")
    connect(app, real, 1)
    connect(app, impostor, 1)
    msg = parser.OFPPacketIn(impostor, match=parser.OFPMatch(in_port=1), data=b"x" * 60)
    app._on_packet_in(ofp_event.EventOFPPacketIn(msg))
    assert len(app._work) == 0 and app.stray_messages == 1


def test_a_silent_connected_switch_is_replaced_after_the_deadline(make_app, monkeypatch):
    app = make_app(of_echo_interval=0)  # the duplicate check's own deadline
    real, successor = FakeDatapath("127.0.0.1"), FakeDatapath("127.0.0.1")
    connect(app, real, 1)
    connect(app, successor, 1)
    assert app._datapaths[1] is real
    later = time.monotonic() + 60
    app._connection_steps(lambda conns, now: conns.expire(later))
    drain(app)
    assert app._datapaths[1] is successor and real.closed
    assert kinds(app)[-3:] == ["switch.disconnected", "switch.connected", "switch.duplicate"]
    assert app.event_log.recent("switch.duplicate")[-1].detail["outcome"] == "replaced"


def test_a_switch_reconnecting_after_its_connection_closed_is_no_duplicate(make_app):
    app = make_app()
    old, new = FakeDatapath("127.0.0.1"), FakeDatapath("127.0.0.1")
    connect(app, old, 1)
    old.closed = True  # os-ken has not reported it yet
    connect(app, new, 1)
    assert app._datapaths[1] is new
    app._on_disconnect(dead(old))  # the late report of the old one changes nothing
    drain(app)
    assert app._datapaths[1] is new
    assert not app.event_log.recent("switch.duplicate")
    assert kinds(app) == ["switch.connected", "switch.disconnected", "switch.connected"]


def test_a_dpid_outside_the_allow_list_is_refused(make_app):
    app = make_app(of_allowed_dpids=(1,))
    stranger = FakeDatapath("127.0.0.1")
    connect(app, stranger, 2)
    assert stranger.closed and 2 not in app._datapaths
    [refused] = app.event_log.recent("switch.refused")
    assert refused.detail["reason"] == "dpid not allowed"
    assert refused.switch == "0000000000000002"
    allowed = FakeDatapath("127.0.0.1")
    connect(app, allowed, 1)
    assert app._datapaths[1] is allowed


def test_a_connection_that_says_nothing_is_closed_after_the_hello_timeout(make_app):
    app = make_app()
    quiet = FakeDatapath("10.9.9.9")
    app._on_connection(opened(quiet))
    app._connection_steps(lambda conns, now: conns.expire(now + 1))
    assert not quiet.closed
    app._connection_steps(lambda conns, now: conns.expire(now + HELLO_TIMEOUT))
    assert quiet.closed


def test_any_message_of_the_connected_switch_refuses_the_newcomer(make_app):
    app = make_app()
    real, impostor = FakeDatapath("127.0.0.1"), FakeDatapath("10.9.9.9")
    connect(app, real, 1)
    connect(app, impostor, 1)
    app._on_barrier(ofp_event.EventOFPBarrierReply(parser.OFPBarrierReply(real)))
    drain(app)
    assert impostor.closed and app._datapaths[1] is real
    outcomes = [e.detail["outcome"] for e in app.event_log.recent("switch.duplicate")]
    assert outcomes == ["checking", "refused"]


def expire_at(app, when: float) -> None:
    app._connection_steps(lambda conns, now: conns.expire(when))
    drain(app)


def test_a_hung_switch_is_alarmed_and_its_connection_reset(make_app):
    app = make_app(of_echo_interval=1.0, of_echo_timeout=0.5)
    switch = FakeDatapath("127.0.0.1")
    connect(app, switch, 1)
    start = time.monotonic()
    expire_at(app, start + 1.1)
    [echo] = switch.echo_requests()
    app._on_heard(echo_reply(switch, echo.xid))  # heard now, i.e. about `start`
    expire_at(app, start + 1.6)  # answered: not hung; quiet for 1 s again: the next echo ...
    assert not switch.closed and len(switch.echo_requests()) == 2
    expire_at(app, start + 2.2)  # ... not answered
    assert switch.closed and 1 not in app._datapaths
    assert kinds(app)[-2:] == ["switch.hung", "switch.disconnected"]
    [alarm] = app.monitor.book.active()
    assert alarm.id == "switch.down:0000000000000001" and alarm.detail == {"cause": "hung"}
    assert "stopped answering" in alarm.reason


def test_an_echo_is_not_sent_into_a_full_send_queue_and_its_deadline_runs(make_app):
    app = make_app(of_echo_interval=1.0, of_echo_timeout=0.5)
    switch = FakeDatapath("127.0.0.1")
    connect(app, switch, 1)
    for _ in range(16):
        switch.send_q.put(b"")  # a switch that reads nothing
    expire_at(app, time.monotonic() + 1.1)
    assert not switch.echo_requests()
    expire_at(app, time.monotonic() + 1.7)
    assert switch.closed and kinds(app)[-2:] == ["switch.hung", "switch.disconnected"]


def test_a_follower_resets_its_hung_slave_connection_and_raises_no_alarm(make_app):
    app = make_app(of_echo_interval=1.0, of_echo_timeout=0.5)
    app.leadership = Leadership(app._adopt)  # a follower: it holds, never adopts
    switch = FakeDatapath("127.0.0.1")
    connect(app, switch, 1)
    expire_at(app, time.monotonic() + 1.1)
    assert switch.echo_requests()  # echo is a SLAVE's right too
    expire_at(app, time.monotonic() + 1.7)
    assert switch.closed and app.leadership.connections() == []
    [hung] = app.event_log.recent("switch.hung")
    assert hung.detail["role"] == "slave"
    assert not app.monitor.book.active()


def test_a_large_send_gives_the_switch_time_before_its_echo_must_be_answered(make_app):
    app = make_app(of_echo_interval=1.0, of_echo_timeout=0.5)
    switch = FakeDatapath("127.0.0.1")
    connect(app, switch, 1)
    start = time.monotonic()
    with app.lock:
        app._send([(1, parser.OFPBarrierRequest(None)) for _ in range(20_000)])  # 2 s of work
    expire_at(app, start + 1.1)
    expire_at(app, start + 1.7)
    assert not switch.closed
    expire_at(app, time.monotonic() + 2.6)
    assert switch.closed and kinds(app)[-2:] == ["switch.hung", "switch.disconnected"]
