"""ECP22 (IEEE 802.1Qbg-2012 clause 43) for one port, both directions, behaving like lldpad's
qbg/ecp22.c so that lldpad stations interoperate:

* Receive: every request is acknowledged. The first request is delivered whatever its sequence;
  afterwards a request whose sequence equals the last delivered one is a duplicate (our ACK was
  lost): acknowledged again, not delivered.
* Transmit: one outstanding PDU at a time, the rest waits in a FIFO of at most ``queue_limit``
  PDUs (a station that never acknowledges must not grow it forever): beyond, a new PDU is
  dropped and counted (``overflow``), as if it had been given up. Sequence numbers start at 1
  and skip 0 on wrap. A PDU is retransmitted every 10us*2^RTE until acknowledged, at most R times
  (R + 1 transmissions), then dropped and reported, and the next one goes.

Pure: ``now`` is passed in; ``poll(now)`` says what to transmit and when to call it again.
"""

import collections
from dataclasses import dataclass, field

from app.codec.ecp import SUBTYPE_VDP, EcpOp, EcpPdu
from app.session.evb_negotiation import evb_duration

COUNTERS = (
    "rx_requests",
    "duplicates",
    "acks_tx",
    "acks_rx",
    "acks_unexpected",
    "tx_pdus",
    "retransmits",
    "gave_up",
    "overflow",
)
QUEUE_LIMIT = 1000  # PDUs waiting behind the outstanding one


def next_sequence(sequence: int) -> int:
    """The sequence after ``sequence``: 0xFFFF wraps to 1, as lldpad never sends 0."""
    return sequence % 0xFFFF + 1


@dataclass(frozen=True)
class EcpReceive:
    """``ack``: to send back (every request has one). ``delivered``: the payload of a new
    request, for the upper layer; None for duplicates and for ACKs."""

    ack: EcpPdu | None = None
    delivered: bytes | None = None

    @property
    def duplicate(self) -> bool:
        return self.ack is not None and self.delivered is None


@dataclass(frozen=True)
class EcpTransmit:
    """``pdus``: first transmissions and retransmissions due now, in order. ``gave_up``: PDUs
    dropped after R retries without an ACK (the station never got them)."""

    pdus: list[EcpPdu] = field(default_factory=list)
    gave_up: list[EcpPdu] = field(default_factory=list)


@dataclass
class _Outstanding:
    pdu: EcpPdu
    transmissions: int
    deadline: float  # when to retransmit, or give up after the last transmission


class EcpMachine:
    """``r`` and ``rte`` may be changed at any time (after EVB negotiation); a change applies
    from the next (re)transmission."""

    def __init__(
        self, r: int = 3, rte: int = 14, first_sequence: int = 1, queue_limit: int = QUEUE_LIMIT
    ) -> None:
        """``first_sequence``: lldpad starts at 1; a restarted bridge should not, or its first
        PDU may repeat the last sequence the station delivered and be taken for a duplicate."""
        self.r = r
        self.rte = rte
        self.queue_limit = queue_limit
        self._rx_last: int | None = None
        self._tx_sequence = first_sequence - 1 if first_sequence > 1 else 0  # the last used
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_since: float | None = None  # when the head of the queue could have gone
        self._outstanding: _Outstanding | None = None
        self._counters = collections.Counter(dict.fromkeys(COUNTERS, 0))

    @property
    def retransmit_interval(self) -> float:
        return evb_duration(self.rte)

    @property
    def counters(self) -> dict[str, int]:
        """rx_requests, duplicates, acks_tx, acks_rx (ACKs that completed our PDU),
        acks_unexpected (stale or unknown ACKs), tx_pdus (first transmissions), retransmits,
        gave_up, overflow (PDUs dropped because the queue was full)."""
        return dict(self._counters)

    @property
    def outstanding(self) -> EcpPdu | None:
        return self._outstanding.pdu if self._outstanding else None

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def last_received(self) -> int | None:
        return self._rx_last

    def reset_receiver(self) -> None:
        """Forget the last delivered sequence (the station restarted): its next request is a
        first one and is delivered whatever its sequence."""
        self._rx_last = None

    def on_pdu(self, pdu: EcpPdu, now: float) -> EcpReceive:
        if pdu.op == EcpOp.ACK:
            if self._outstanding is not None and self._outstanding.pdu.sequence == pdu.sequence:
                self._counters["acks_rx"] += 1
                self._outstanding = None
                if self._queue:
                    self._queued_since = now
            else:
                self._counters["acks_unexpected"] += 1
            return EcpReceive()
        self._counters["rx_requests"] += 1
        self._counters["acks_tx"] += 1
        ack = EcpPdu(EcpOp.ACK, pdu.sequence, subtype=pdu.subtype)
        if self._rx_last is not None and pdu.sequence == self._rx_last:
            self._counters["duplicates"] += 1
            return EcpReceive(ack)
        self._rx_last = pdu.sequence
        return EcpReceive(ack, pdu.payload)

    def send(self, payload: bytes, now: float) -> bool:
        """Queue ``payload`` (an upper layer PDU); ``poll`` transmits it. False, and counted,
        when the queue is full: the payload is dropped."""
        if len(self._queue) >= self.queue_limit:
            self._counters["overflow"] += 1
            return False
        if not self._queue and self._outstanding is None:
            self._queued_since = now
        self._queue.append(payload)
        return True

    def poll(self, now: float) -> EcpTransmit:
        out = EcpTransmit()
        while True:
            current = self._outstanding
            if current is not None:
                if now < current.deadline:
                    break
                if current.transmissions > self.r:
                    self._counters["gave_up"] += 1
                    out.gave_up.append(current.pdu)
                    self._outstanding = None
                    continue
                current.transmissions += 1
                current.deadline = now + self.retransmit_interval
                self._counters["retransmits"] += 1
                out.pdus.append(current.pdu)
                break
            if not self._queue:
                break
            self._tx_sequence = next_sequence(self._tx_sequence)
            pdu = EcpPdu(EcpOp.REQUEST, self._tx_sequence, self._queue.popleft(), SUBTYPE_VDP)
            self._outstanding = _Outstanding(pdu, 1, now + self.retransmit_interval)
            self._counters["tx_pdus"] += 1
            out.pdus.append(pdu)
            break
        self._queued_since = None
        return out

    def next_deadline(self) -> float | None:
        """When ``poll`` has something to do: a retransmission or give-up, or a queued PDU
        that can go (since it was queued or the previous one completed); None when idle."""
        if self._outstanding is not None:
            return self._outstanding.deadline
        return self._queued_since if self._queue else None
