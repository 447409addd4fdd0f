"""Refusal events bounded per port, error and interval (issue 10: every refused TLV was one
event row and one log line)."""

from app.fabric.ports import PortRef
from app.refusal_events import RefusalSummary

A, B = PortRef(1, 1), PortRef(1, 2)


def refused(port=A, error="other_failure", **more):
    return {"at": port, "error": error, "reason": f"unknown VSI type {more.pop('n', 0)}", **more}


def test_the_first_few_are_told_the_rest_summed_up_when_the_interval_ends():
    summary = RefusalSummary(interval=10.0, in_full=3)
    told = [summary.admit(refused(n=n), 1.0 + n * 0.01) for n in range(40)]
    assert told == [True] * 3 + [False] * 37
    assert summary.due(10.9) == []
    ((kind, fields),) = summary.due(11.0)
    assert kind == "vsi.refused_summary"
    assert fields == {
        "at": A,
        "error": "other_failure",
        "refused": 40,
        "told": 3,
        "since": 1.0,
        "interval": 10.0,
        "reason": "unknown VSI type 0",
    }
    assert summary.due(100.0) == []
    assert summary.admit(refused(), 12.0)  # a new interval tells again


def test_ports_and_errors_have_their_own_budget():
    summary = RefusalSummary(interval=10.0, in_full=1)
    assert summary.admit(refused(A), 0.0) and not summary.admit(refused(A), 0.1)
    assert summary.admit(refused(B), 0.2)
    assert summary.admit(refused(A, error="invalid_vid_mac"), 0.3)
    # Only the window that held more than it told is summed up.
    assert [f["at"] for _, f in summary.due(20.0)] == [A]


def test_a_refusal_that_released_an_attachment_is_always_told():
    summary = RefusalSummary(interval=10.0, in_full=1)
    assert summary.admit(refused(), 0.0)
    assert summary.admit(refused(released="associated"), 0.1)
    assert not summary.admit(refused(), 0.2)
