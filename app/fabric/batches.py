"""Which flow batches are still on their way, so a VDP response leaves only after its flows.

Each batch goes to one switch as its messages (a bundle's open, adds and commit among them,
app/fabric/bundles.py) followed by a barrier; a ticket (one VDP outcome) may span several
switches. A ticket completes when every barrier of it has answered, when its
switch disconnected, or after TIMEOUT; an OpenFlow error for one of its messages marks that
switch failed. Messages are known by (dpid, xid): the xids come from the controller's one space
(app/fabric/xids.py), so a reply this tracker does not own answers something else.
"""

from dataclasses import dataclass, field

TIMEOUT = 5.0


@dataclass
class _Ticket:
    started: float
    waiting: set = field(default_factory=set)  # (dpid, barrier xid)
    failed: dict = field(default_factory=dict)  # dpid -> reason
    messages: list = field(default_factory=list)  # every (dpid, xid) of it, barriers included


class BatchTracker:
    def __init__(self):
        self._tickets: dict[int, _Ticket] = {}
        self._by_xid: dict[tuple[int, int], int] = {}  # every message's (dpid, xid) -> ticket

    def track(self, ticket: int, dpid: int, xids: list[int], barrier_xid: int, now: float) -> None:
        """A batch sent to `dpid` for `ticket`: its messages' xids and its barrier's."""
        entry = self._tickets.setdefault(ticket, _Ticket(now))
        entry.waiting.add((dpid, barrier_xid))
        for xid in (*xids, barrier_xid):
            entry.messages.append((dpid, xid))
            self._by_xid[(dpid, xid)] = ticket

    def pending(self) -> bool:
        """Some batch is still waiting for its barrier."""
        return bool(self._tickets)

    def owns(self, dpid: int, xid: int) -> bool:
        return (dpid, xid) in self._by_xid

    def on_error(self, dpid: int, xid: int, reason: str) -> None:
        ticket = self._by_xid.get((dpid, xid))
        if ticket is not None:
            self._tickets[ticket].failed.setdefault(dpid, reason)

    def on_barrier(self, dpid: int, xid: int) -> list[tuple[int, dict, float]]:
        ticket = self._by_xid.get((dpid, xid))
        if ticket is None:
            return []
        self._tickets[ticket].waiting.discard((dpid, xid))
        return self._completed()

    def on_disconnect(self, dpid: int) -> list[tuple[int, dict, float]]:
        for entry in self._tickets.values():
            if any(d == dpid for d, _ in entry.waiting):
                entry.waiting = {w for w in entry.waiting if w[0] != dpid}
                entry.failed.setdefault(dpid, "switch disconnected")
        return self._completed()

    def expire(self, now: float) -> list[tuple[int, dict, float]]:
        for entry in self._tickets.values():
            if now - entry.started > TIMEOUT:
                for dpid, _ in entry.waiting:
                    entry.failed.setdefault(dpid, f"no barrier reply within {TIMEOUT} s")
                entry.waiting.clear()
        return self._completed()

    def _completed(self) -> list[tuple[int, dict, float]]:
        """(ticket, failed switches, when it was sent) of every ticket with no barrier
        outstanding."""
        done = [(t, e) for t, e in self._tickets.items() if not e.waiting]
        for ticket, entry in done:
            del self._tickets[ticket]
            for key in entry.messages:
                del self._by_xid[key]
        return [(ticket, entry.failed, entry.started) for ticket, entry in done]
