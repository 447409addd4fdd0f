"""Which flow batches are still on their way, so a VDP response leaves only after its flows.

Each batch goes to one switch as its messages followed by a barrier; a ticket (one VDP outcome)
may span several switches. A ticket completes when every barrier of it has answered, when its
switch disconnected, or after TIMEOUT; an OpenFlow error for one of its messages marks that
switch failed. xids come from their own range so replies are routed here and nowhere else.
"""
import itertools
from dataclasses import dataclass, field

XID_BASE = 0xEC000000
_XID_SPAN = 0x01000000
TIMEOUT = 5.0


@dataclass
class _Ticket:
    started: float
    waiting: set = field(default_factory=set)      # (dpid, barrier xid)
    failed: dict = field(default_factory=dict)     # dpid -> reason


class BatchTracker:
    def __init__(self):
        self._xids = itertools.count()
        self._tickets: dict[int, _Ticket] = {}
        self._by_xid: dict[tuple[int, int], int] = {}   # every message's (dpid, xid) -> ticket

    def stamp(self, ticket: int | None, dpid: int, msgs: list, barrier, now: float) -> list:
        """Gives msgs and the barrier our xids; returns them in sending order."""
        out = [*msgs, barrier]
        for msg in out:
            msg.xid = XID_BASE + next(self._xids) % _XID_SPAN
        if ticket is not None:
            entry = self._tickets.setdefault(ticket, _Ticket(now))
            entry.waiting.add((dpid, barrier.xid))
            for msg in out:
                self._by_xid[(dpid, msg.xid)] = ticket
        return out

    def on_error(self, dpid: int, xid: int, reason: str) -> None:
        ticket = self._by_xid.get((dpid, xid))
        if ticket in self._tickets:
            self._tickets[ticket].failed.setdefault(dpid, reason)

    def on_barrier(self, dpid: int, xid: int) -> list[tuple[int, dict]]:
        ticket = self._by_xid.get((dpid, xid))
        if ticket not in self._tickets:
            return []
        self._tickets[ticket].waiting.discard((dpid, xid))
        return self._completed()

    def on_disconnect(self, dpid: int) -> list[tuple[int, dict]]:
        for entry in self._tickets.values():
            if any(d == dpid for d, _ in entry.waiting):
                entry.waiting = {w for w in entry.waiting if w[0] != dpid}
                entry.failed.setdefault(dpid, "switch disconnected")
        return self._completed()

    def expire(self, now: float) -> list[tuple[int, dict]]:
        for entry in self._tickets.values():
            if now - entry.started > TIMEOUT:
                for dpid, _ in entry.waiting:
                    entry.failed.setdefault(dpid, f"no barrier reply within {TIMEOUT} s")
                entry.waiting.clear()
        return self._completed()

    def _completed(self) -> list[tuple[int, dict]]:
        """(ticket, failed switches) of every ticket with no barrier outstanding."""
        done = [(t, e.failed) for t, e in self._tickets.items() if not e.waiting]
        for ticket, _ in done:
            del self._tickets[ticket]
        if done:
            finished = {t for t, _ in done}
            self._by_xid = {k: t for k, t in self._by_xid.items() if t not in finished}
        return done

    def owns(self, xid: int) -> bool:
        return XID_BASE <= xid < XID_BASE + _XID_SPAN
