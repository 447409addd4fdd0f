"""The VM statistics polls: each switch once per interval, spread evenly over it."""

from hypothesis import given
from hypothesis import strategies as st

from app.fabric.poll_schedule import PollSchedule


def test_without_an_interval_every_switch_is_due_at_each_call():
    schedule = PollSchedule(0)
    assert schedule.due([1, 2, 3], 0.0) == [1, 2, 3]
    assert schedule.due([1, 2, 3], 0.0) == [1, 2, 3]


def test_the_polls_of_one_interval_are_spread_evenly_in_round_robin_order():
    schedule = PollSchedule(10.0)
    switches = [1, 2, 3, 4]
    polled = [(t / 10, schedule.due(switches, t / 10)) for t in range(201)]  # 0.1 s ticks
    when = [(t, d) for t, due in polled for d in due]
    assert [d for _, d in when] == [1, 2, 3, 4, 1, 2, 3, 4]  # each twice in 20 s
    gaps = [b[0] - a[0] for a, b in zip(when, when[1:], strict=False)]
    assert all(abs(gap - 2.5) < 0.11 for gap in gaps)  # one every interval / 4


def test_a_new_switch_joins_the_round_and_a_gone_one_leaves_it():
    schedule = PollSchedule(3.0)
    assert schedule.due([1, 2, 3], 0.0) == []
    assert schedule.due([1, 2, 3], 1.0) == [1]
    assert schedule.due([1, 3, 7], 2.0) == [3]  # 2 went; 3 is next after 1
    assert schedule.due([1, 3, 7], 3.0) == [7]
    assert schedule.due([1, 3, 7], 4.0) == [1]
    assert schedule.due([], 5.0) == []


def test_a_late_call_owes_at_most_one_round():
    schedule = PollSchedule(1.0)
    schedule.due([1, 2], 0.0)
    assert schedule.due([1, 2], 100.0) == [1, 2]


@given(
    st.lists(st.integers(1, 50), min_size=1, max_size=20, unique=True),
    st.lists(st.floats(0.01, 2.0), min_size=1, max_size=200),
)
def test_no_switch_is_polled_twice_before_every_other_once(switches, steps):
    switches = sorted(switches)
    schedule = PollSchedule(5.0)
    now, polled = 0.0, []
    for step in steps:
        now += step
        polled += schedule.due(switches, now)
    for i in range(len(polled) - len(switches) + 1):
        window = polled[i : i + len(switches)]
        assert len(set(window)) == len(window)
    assert len(polled) <= len(switches) * now / 5.0 + len(switches)
