"""ECP22, both directions: duplicates, one outstanding PDU, retransmission, give-up, wrap."""

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.ecp import SUBTYPE_VDP, EcpOp, EcpPdu
from app.session.ecp_machine import EcpMachine, next_sequence

RTE14 = 0.16384


def req(sequence: int, payload: bytes = b"vdp") -> EcpPdu:
    return EcpPdu(EcpOp.REQUEST, sequence, payload)


def ack(sequence: int) -> EcpPdu:
    return EcpPdu(EcpOp.ACK, sequence)


# Receive


def test_first_request_is_delivered_whatever_its_sequence_and_acked():
    ecp = EcpMachine()
    got = ecp.on_pdu(req(4711, b"first"), 0.0)
    assert got.ack == EcpPdu(EcpOp.ACK, 4711, subtype=SUBTYPE_VDP)
    assert got.delivered == b"first" and not got.duplicate
    assert ecp.last_received == 4711


def test_repeated_sequence_is_a_duplicate_acked_again_not_delivered():
    ecp = EcpMachine()
    ecp.on_pdu(req(7), 0.0)
    again = ecp.on_pdu(req(7), 0.2)
    assert again.ack == ack(7) and again.delivered is None and again.duplicate
    assert ecp.on_pdu(req(8, b"next"), 0.3).delivered == b"next"
    counters = ecp.counters
    assert (counters["rx_requests"], counters["duplicates"], counters["acks_tx"]) == (3, 1, 3)


def test_only_the_last_delivered_sequence_is_a_duplicate():
    # As lldpad: any other sequence, even an older one, is new (a restarted station counts from 1).
    ecp = EcpMachine()
    for sequence in (5, 3, 5):
        assert ecp.on_pdu(req(sequence), 0.0).delivered is not None


def test_reset_receiver_accepts_the_same_sequence_again():
    ecp = EcpMachine()
    ecp.on_pdu(req(1), 0.0)
    ecp.reset_receiver()
    assert ecp.on_pdu(req(1), 1.0).delivered == b"vdp"


# Transmit


def test_sequence_starts_at_1_and_one_pdu_is_outstanding_at_a_time():
    ecp = EcpMachine()
    ecp.send(b"a", 0.0)
    ecp.send(b"b", 0.0)
    assert ecp.next_deadline() == 0.0
    first = ecp.poll(0.0)
    assert first.pdus == [EcpPdu(EcpOp.REQUEST, 1, b"a")] and first.gave_up == []
    assert ecp.poll(0.1).pdus == []  # b waits for a's ACK
    assert (ecp.outstanding.sequence, ecp.queued) == (1, 1)
    ecp.on_pdu(ack(1), 0.1)
    assert ecp.next_deadline() == 0.1  # b can go as soon as a completed
    assert ecp.poll(0.1).pdus == [EcpPdu(EcpOp.REQUEST, 2, b"b")]
    ecp.on_pdu(ack(2), 0.2)
    assert ecp.poll(0.2).pdus == [] and ecp.next_deadline() is None and ecp.outstanding is None
    assert ecp.counters["acks_rx"] == 2 and ecp.counters["tx_pdus"] == 2


def test_ack_for_another_sequence_leaves_the_pdu_outstanding():
    ecp = EcpMachine()
    ecp.send(b"a", 0.0)
    ecp.poll(0.0)
    ecp.on_pdu(ack(9), 0.01)
    assert ecp.outstanding.sequence == 1 and ecp.counters["acks_unexpected"] == 1


def test_retransmits_every_interval_r_times_then_gives_up_and_sends_the_next():
    ecp = EcpMachine(r=3, rte=14)
    ecp.send(b"a", 0.0)
    ecp.send(b"b", 0.0)
    sent = [ecp.poll(0.0).pdus]
    times = [0.0]
    for _ in range(3):
        times.append(ecp.next_deadline())
        sent.append(ecp.poll(times[-1]).pdus)
    assert [t2 - t1 for t1, t2 in pairwise(times)] == pytest.approx([RTE14] * 3)
    assert sent == [[EcpPdu(EcpOp.REQUEST, 1, b"a")]] * 4  # R=3: four transmissions
    end = ecp.next_deadline()
    assert end == pytest.approx(4 * RTE14)
    assert ecp.poll(end - 1e-6).pdus == []
    result = ecp.poll(end)
    assert result.gave_up == [EcpPdu(EcpOp.REQUEST, 1, b"a")]
    assert result.pdus == [EcpPdu(EcpOp.REQUEST, 2, b"b")]  # the queue moves on at once
    counters = ecp.counters
    assert (counters["tx_pdus"], counters["retransmits"], counters["gave_up"]) == (2, 3, 1)
    ecp.on_pdu(ack(1), end)  # too late for a
    assert counters["acks_unexpected"] + 1 == ecp.counters["acks_unexpected"]


def test_a_late_poll_gives_up_once_and_not_early():
    ecp = EcpMachine(r=1, rte=14)
    ecp.send(b"a", 0.0)
    ecp.poll(0.0)
    assert ecp.poll(10.0).pdus == [EcpPdu(EcpOp.REQUEST, 1, b"a")]  # the one retry, late
    assert ecp.poll(10.0 + RTE14).gave_up == [EcpPdu(EcpOp.REQUEST, 1, b"a")]


def test_r_and_rte_can_change_after_negotiation():
    ecp = EcpMachine(r=3, rte=14)
    ecp.r, ecp.rte = 0, 16
    ecp.send(b"a", 1.0)
    ecp.poll(1.0)
    assert ecp.next_deadline() == pytest.approx(1.0 + 0.65536)
    # R=0: no retry
    assert ecp.poll(ecp.next_deadline()).gave_up == [EcpPdu(EcpOp.REQUEST, 1, b"a")]


def test_sequence_wraps_to_1_skipping_0():
    assert [next_sequence(s) for s in (0, 1, 0xFFFE, 0xFFFF)] == [1, 2, 0xFFFF, 1]


def test_sequence_wraps_through_a_full_cycle():
    ecp = EcpMachine()
    sequences = []
    for i in range(0x10000):
        ecp.send(b"x", float(i))
        (pdu,) = ecp.poll(float(i)).pdus
        sequences.append(pdu.sequence)
        ecp.on_pdu(ack(pdu.sequence), float(i))
    assert sequences[:2] == [1, 2] and sequences[0xFFFE:] == [0xFFFF, 1]
    assert 0 not in sequences


@settings(max_examples=200)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("send"), st.binary(max_size=8)),
            st.tuples(st.just("req"), st.integers(0, 4)),
            st.tuples(st.just("ack"), st.integers(0, 4)),
            st.tuples(st.just("wait"), st.floats(0, 1)),
        ),
        max_size=40,
    )
)
def test_any_interleaving_keeps_one_outstanding_and_loses_nothing(actions):
    ecp = EcpMachine(r=2, rte=12)
    now, sent, payloads = 0.0, [], []
    for action, value in actions:
        if action == "send":
            ecp.send(value, now)
            payloads.append(value)
        elif action == "req":
            assert ecp.on_pdu(req(value), now).ack == ack(value)
        elif action == "ack":
            ecp.on_pdu(ack(value), now)
        else:
            now += value
        result = ecp.poll(now)
        assert len({p.sequence for p in result.pdus}) <= 1
        sent += [p for p in result.pdus if p not in sent]
        deadline = ecp.next_deadline()
        assert deadline is None or deadline > now
        assert (ecp.outstanding is None) == (deadline is None)
    # Every payload went out once, in order; the rest is outstanding or queued.
    assert [p.payload for p in sent] == payloads[: len(sent)]
    assert len(payloads) - len(sent) == ecp.queued
