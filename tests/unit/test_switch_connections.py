"""SwitchConnections (app/fabric/connections.py): which connection speaks for a dpid."""

from app.fabric.connections import (
    HELLO_TIMEOUT,
    MAX_UNIDENTIFIED,
    REPORT_INTERVAL,
    Adopt,
    Close,
    Probe,
    Release,
    Report,
    SwitchConnections,
)


class Conn:
    def __init__(self, name):
        self.name, self.open = name, True

    def __repr__(self):
        return self.name


def conns(**kwargs):
    """Without liveness checks unless asked: the duplicate checks on their own."""
    return SwitchConnections(
        is_open=lambda c: c.open, timeout=3.0, **{"echo_interval": 0, **kwargs}
    )


def reports(steps):
    return [(s.kind, s.detail.get("outcome")) for s in steps if isinstance(s, Report)]


def test_the_first_connection_is_adopted_and_only_it_speaks_for_the_dpid():
    table, a, b = conns(), Conn("a"), Conn("b")
    assert table.connected(1, a, "127.0.0.1", 0) == [Adopt(1, a, "127.0.0.1")]
    assert table.dpid_of(a) == 1 and table.dpid_of(b) is None


def test_a_duplicate_waits_while_the_holder_is_probed_and_is_closed_when_it_says_anything():
    table, a, b = conns(), Conn("a"), Conn("b")
    table.connected(1, a, "127.0.0.1", 0)
    steps = table.connected(1, b, "10.0.0.9", 1)
    [probe] = [s for s in steps if isinstance(s, Probe)]
    assert probe.conn is a and reports(steps) == [("switch.duplicate", "checking")]
    assert table.dpid_of(b) is None
    assert table.heard(b, 1.2) == []  # the newcomer's own messages prove nothing
    steps = table.heard(a, 1.5)
    assert Close(b) in steps and reports(steps) == [("switch.duplicate", "refused")]
    assert table.dpid_of(a) == 1
    assert table.expire(10) == []


def test_a_holder_that_stays_silent_is_replaced_at_the_deadline():
    table, a, b = conns(), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    table.connected(1, b, None, 1)
    assert table.expire(3.9) == []
    steps = table.expire(4.0)
    assert steps[:2] == [Release(1, a), Adopt(1, b, None)]
    assert reports(steps) == [("switch.duplicate", "replaced")]
    assert table.dpid_of(b) == 1 and table.dpid_of(a) is None


def test_a_holder_that_closes_while_probed_is_replaced_at_once():
    table, a, b = conns(), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    table.connected(1, b, None, 1)
    a.open = False
    steps = table.closed(a, 1.2)
    assert steps[:2] == [Release(1, a), Adopt(1, b, None)]


def test_a_newcomer_that_leaves_while_waiting_is_forgotten():
    table, a, b = conns(), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    table.connected(1, b, None, 1)
    assert table.closed(b, 1.1) == []
    assert table.expire(10) == [] and table.dpid_of(a) == 1


def test_only_one_newcomer_waits_per_dpid():
    table, a, b, c = conns(), Conn("a"), Conn("b"), Conn("c")
    table.connected(1, a, None, 0)
    table.connected(1, b, None, 1)
    steps = table.connected(1, c, None, 1.1)
    assert steps[0] == Close(c) and reports(steps) == [("switch.duplicate", "refused")]


def test_a_second_features_reply_on_one_connection_closes_it():
    table, a = conns(), Conn("a")
    table.connected(1, a, None, 0)
    steps = table.connected(2, a, None, 1)
    assert Release(1, a) in steps and Close(a) in steps
    assert table.dpid_of(a) is None


def test_the_allow_list_refuses_other_dpids():
    table, a, b = conns(allowed_dpids=[1]), Conn("a"), Conn("b")
    steps = table.connected(2, a, "10.0.0.9", 0)
    assert steps[0] == Close(a) and reports(steps) == [("switch.refused", None)]
    assert table.connected(1, b, None, 0) == [Adopt(1, b, None)]


def test_reports_are_throttled_and_count_what_they_suppressed():
    table = conns(allowed_dpids=[1])
    seen = [reports(table.connected(2, Conn(str(i)), None, i * 0.5)) for i in range(10)]
    assert sum(map(len, seen)) == 1  # 10 attempts in 4.5 s: one report
    steps = table.connected(2, Conn("late"), None, REPORT_INTERVAL + 0.1)
    [report] = [s for s in steps if isinstance(s, Report)]
    assert report.detail["suppressed"] == 9


def test_a_connection_that_names_no_dpid_in_time_is_closed():
    table, quiet, switch = conns(), Conn("quiet"), Conn("switch")
    assert table.opened(quiet, 0) == [] and table.opened(switch, 0) == []
    table.connected(1, switch, None, 1)
    assert table.expire(HELLO_TIMEOUT - 0.1) == []
    assert table.expire(HELLO_TIMEOUT) == [Close(quiet)]
    assert table.unidentified_closed == 1 and table.dpid_of(switch) == 1


def test_at_most_so_many_connections_wait_for_their_features_reply():
    table = conns()
    for i in range(MAX_UNIDENTIFIED):
        assert table.opened(Conn(str(i)), 0) == []
    extra = Conn("extra")
    assert table.opened(extra, 0) == [Close(extra)]


def probes(steps):
    return [s.conn for s in steps if isinstance(s, Probe)]


def test_a_quiet_holder_is_sent_an_echo_request_and_anything_it_says_keeps_it():
    table, a, b = conns(echo_interval=1.0, echo_timeout=0.5), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    table.connected(2, b, None, 0.5)
    assert table.expire(0.99) == []
    assert probes(table.expire(1.0)) == [a]
    assert table.expire(1.2) == []  # one echo out at a time
    assert table.heard(a, 1.3) == []  # any message answers it, not only the echo reply
    assert probes(table.expire(1.5)) == [b]
    table.heard(b, 1.6)
    assert table.expire(2.29) == []  # a heard at 1.3: quiet again from 2.3
    assert probes(table.expire(2.3)) == [a]


def test_a_holder_silent_past_its_echo_deadline_is_hung_reported_first_then_released():
    table, a, b = conns(echo_interval=1.0, echo_timeout=0.5), Conn("a"), Conn("b")
    table.connected(1, a, "10.0.0.1", 0)
    table.connected(2, b, None, 0)
    table.expire(1.0)
    table.heard(b, 1.2)
    assert table.expire(1.49) == []
    steps = table.expire(1.5)
    report, release = steps
    assert report.kind == "switch.hung" and report.dpid == 1
    assert report.detail["address"] == "10.0.0.1" and report.detail["silent_s"] == 1.5
    assert report.detail["timeout"] == 0.5
    assert release == Release(1, a) and table.dpid_of(a) is None
    assert probes(table.expire(100)) == [b]  # a is checked no more


def test_a_hung_holder_gives_its_dpid_to_the_newcomer_waiting_for_it():
    table, a, b = conns(echo_interval=1.0, echo_timeout=0.5), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    steps = table.connected(1, b, None, 0.2)
    assert probes(steps) == [a]  # the duplicate check is the liveness check's echo
    steps = table.expire(0.7)
    assert [type(s) for s in steps[:3]] == [Report, Release, Adopt]
    assert reports(steps) == [("switch.hung", None), ("switch.duplicate", "replaced")]
    assert table.dpid_of(b) == 1


def test_only_the_holders_due_are_probed():
    table = conns(echo_interval=1.0, echo_timeout=0.5)
    holders = [Conn(str(i)) for i in range(1000)]
    for i, conn in enumerate(holders):
        table.connected(i, conn, None, i / 1000)
    assert len(probes(table.expire(1.0105))) == 11


def test_every_hang_is_reported_even_in_quick_succession():
    table = conns(echo_interval=1.0, echo_timeout=0.5)
    hangs = 0
    for i in range(3):
        table.connected(1, Conn(str(i)), None, i * 2.0)
        table.expire(i * 2.0 + 1.0)
        hangs += len(reports(table.expire(i * 2.0 + 1.5)))
    assert hangs == 3


def test_a_switch_with_a_backlog_of_ours_is_given_the_time_to_work_through_it():
    table, a = conns(echo_interval=1.0, echo_timeout=0.5), Conn("a")
    table.connected(1, a, None, 0)
    table.sent(a, 20_000, 0.9)  # a reconnecting aggregation switch: an entry per VM
    table.expire(1.0)
    # Its echo waits behind 2 s of flow-mods: worked off at 2.9, then the timeout, 0.5 s.
    assert hung_at(table, 1.02, 5.0) == 3.4


def hung_at(table, start: float, end: float) -> float | None:
    """When the ticks (every 20 ms, as the shim's) from `start` find a switch hung."""
    for tick in range(round(start * 50), round(end * 50)):
        if reports(table.expire(tick / 50)):
            return tick / 50
    return None


def test_a_backlog_is_bounded_and_a_newcomers_sends_count_for_nothing():
    table, a, b = conns(echo_interval=1.0, echo_timeout=0.5), Conn("a"), Conn("b")
    table.connected(1, a, None, 0)
    table.sent(b, 10**9, 0)  # not a holder
    table.sent(a, 10**9, 0)
    table.expire(1.0)
    assert hung_at(table, 1.02, 40.0) == 30.5  # 30 s of backlog at most, then the timeout
