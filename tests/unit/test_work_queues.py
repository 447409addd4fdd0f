"""The worker's queues: switch events first, then at most one slow event (a switch's flows to
reconcile), then the punted frames, each in its order and bounded."""

from app.controller.work import WorkQueues


def test_each_batch_takes_every_event_one_slow_event_then_frames():
    work = WorkQueues(limit=10)
    for name in ("flows-a", "flows-b"):
        work.put_slow(name)
    work.put_frame("keepalive-1")
    work.put_event("barrier-1")
    work.put_frame("keepalive-2")
    assert work.take(max_frames=1, timeout=0) == (["barrier-1", "flows-a"], ["keepalive-1"])
    work.put_event("barrier-2")
    assert work.take(max_frames=5, timeout=0) == (["barrier-2", "flows-b"], ["keepalive-2"])
    assert work.take(max_frames=5, timeout=0) == ([], [])
    assert len(work) == 0


def test_a_full_queue_drops_and_counts():
    work = WorkQueues(limit=1)
    work.put_slow("flows-a")
    work.put_slow("flows-b")
    work.put_frame("f1")
    work.put_frame("f2")
    assert work.dropped == 2 and len(work) == 2
