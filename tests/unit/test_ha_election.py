"""The leader election on a real etcd (app/ha/election.py): one leader at a time, a generation
that grows with every election, a dead leader's place taken at once (its port refuses), a
leader cut off replaced when its lease ends, a stopping leader handing over, and the store
refusing a deposed leader's intent (the fence)."""

import socket
import threading
import uuid

import pytest

from app.ha.election import Election, leader_key, leader_value, parse_leader, refused
from app.store.base import Fenced, IntentChanges
from app.store.etcd_intent import EtcdIntentStore
from app.store.etcd_kv import EtcdKv

WAIT = 10.0


class Candidate:
    """An Election with its callbacks recorded, and a REST port of its own that the tests
    close to play a dead process."""

    def __init__(self, endpoints, prefix, name, ttl=2):
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        self.elected = threading.Event()
        self.deposed = threading.Event()
        self.generation = None
        self.reasons: list[str] = []
        self.leaders: list = []
        self.election = Election(
            EtcdKv(endpoints, 1.0),
            prefix,
            name,
            f"http://127.0.0.1:{port}",
            ttl,
            on_elected=self._elected,
            on_leader=self.leaders.append,
            on_deposed=self._deposed,
        )

    def _elected(self, generation):
        self.generation = generation
        self.elected.set()

    def _deposed(self, reason):
        self.reasons.append(reason)
        self.deposed.set()

    def start(self):
        self.election.start()
        return self

    def die(self):
        """kill -9 as the others see it: the port refuses, nothing renews the lease."""
        self.listener.close()
        self.election._stopping.set()


def _prefix():
    return f"/test-ha/{uuid.uuid4().hex}"


@pytest.mark.etcd
def test_one_leader_then_a_dead_leaders_place_is_taken_at_once(etcd_endpoints):
    prefix = _prefix()
    first = Candidate(etcd_endpoints, prefix, "a").start()
    assert first.elected.wait(WAIT)
    second = Candidate(etcd_endpoints, prefix, "b").start()
    # The follower learns the leader, connects to its port once, and is not elected.
    assert not second.elected.wait(1.0)
    assert second.election.leader is not None and second.election.leader.id == "a"
    assert second.election.status()["role"] == "follower"
    first.die()
    assert second.elected.wait(WAIT)
    assert second.election.revoked == 1  # not a lease expiry: the fast path
    assert second.generation > first.generation
    second.election.stop()


@pytest.mark.etcd
def test_a_leader_cut_off_is_replaced_when_its_lease_ends_and_learns_it_is_deposed(
    etcd_endpoints,
):
    prefix = _prefix()
    first = Candidate(etcd_endpoints, prefix, "a").start()
    assert first.elected.wait(WAIT)
    second = Candidate(etcd_endpoints, prefix, "b").start()
    # Cut off: its renewals go to an etcd that is not there; its port still accepts.
    reachable = first.election._kv
    first.election._kv = EtcdKv(["http://127.0.0.1:1"], 0.2)
    assert second.elected.wait(WAIT)
    assert second.election.revoked == 0
    assert not first.deposed.is_set()  # it cannot know yet; the fences hold it meanwhile
    first.election._kv = reachable
    assert first.deposed.wait(WAIT)
    assert first.reasons == ["the leader lease has ended"]
    second.election.stop()


@pytest.mark.etcd
def test_a_stopping_leader_hands_over_and_its_fenced_intent_writes_are_refused(
    etcd_endpoints,
):
    prefix = _prefix()
    first = Candidate(etcd_endpoints, prefix, "a").start()
    assert first.elected.wait(WAIT)
    intent = EtcdIntentStore(EtcdKv(etcd_endpoints, 2.0), prefix)
    intent.fence(leader_key(prefix), first.generation)
    intent.save(IntentChanges(vsis={"1:aa": [{"x": 1}]}))
    second = Candidate(etcd_endpoints, prefix, "b").start()
    first.election.stop()
    assert second.elected.wait(WAIT)
    with pytest.raises(Fenced):
        intent.save(IntentChanges(vsis={"1:aa": [{"x": 2}]}))
    assert intent.load()["vsis"] == [{"x": 1}]
    second.election.stop()


@pytest.mark.etcd
def test_a_restarted_controller_revokes_the_key_of_its_previous_life(etcd_endpoints):
    prefix = _prefix()
    first = Candidate(etcd_endpoints, prefix, "a", ttl=30).start()
    assert first.elected.wait(WAIT)
    first.die()  # its 30 s lease would hold the key long after the process ended
    again = Candidate(etcd_endpoints, prefix, "a", ttl=30).start()
    assert again.elected.wait(WAIT)
    assert again.generation > first.generation
    again.election.stop()


def test_leader_records_round_trip_and_foreign_values_are_refused():
    leader = parse_leader(leader_value("a", "http://h:1", 77), 9)
    assert leader is not None and (leader.id, leader.url, leader.lease) == ("a", "http://h:1", 77)
    assert leader.generation == 9
    assert parse_leader(b"not json", 1) is None
    assert parse_leader(b'{"id": "a"}', 1) is None


def test_a_closed_port_refuses_and_an_open_one_accepts():
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert refused(f"http://127.0.0.1:{port}") is False
    assert refused(f"http://127.0.0.1:{port}") is True
