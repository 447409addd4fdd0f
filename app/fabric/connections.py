"""Which OpenFlow connection speaks for each switch (dpid), and what a connection claiming a dpid
gets.

Pure: the shim (app/controller/evb_app.py) reports every features reply, echo reply and closed
connection with the time, and carries out the steps returned. Connections are opaque objects
(os-ken's datapaths); `is_open` tells whether one is still open.

- A dpid outside the allow-list (when there is one) is refused: the connection is closed.
- A dpid that no open connection holds goes to the newcomer (a switch reconnecting).
- A dpid held by an open connection is a duplicate: the holder is sent an echo request. If it
  answers within `timeout` the newcomer is refused; if it does not, or closes, the newcomer
  replaces it. The holder keeps the dpid (and nothing goes to the newcomer) until then. Every
  duplicate is reported (switch.duplicate, which raises an alarm), whatever its outcome.
- One newcomer per dpid waits for the verdict; more are refused at once. A connection that
  sends a second features reply is closed: one connection is one switch.
- A connection that has not sent its features reply within HELLO_TIMEOUT is closed, and at most
  MAX_UNIDENTIFIED wait for theirs: a client that connects and says nothing holds os-ken's
  threads for a bounded time only.

Reports of one kind, dpid and outcome come at most once per REPORT_INTERVAL, with the number
suppressed in between, so a client reconnecting in a loop cannot flood the event store.
"""

import itertools
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# A live switch answers an echo request in milliseconds, or behind the flow batch it is
# applying: seconds at most.
CHALLENGE_TIMEOUT = 3.0
# Our echo requests' xids: apart from the flow messages' (app/fabric/xids.py) and os-ken's.
ECHO_XID_BASE = 0xEC000000
ECHO_XID_SPAN = 0x01000000
HELLO_TIMEOUT = 10.0
MAX_UNIDENTIFIED = 256
REPORT_INTERVAL = 10.0
REPORT_KEYS = 1024  # (kind, dpid, outcome) throttled at once; the oldest is forgotten first


@dataclass(frozen=True)
class Adopt:
    """`conn` speaks for `dpid` from now on: route its messages, tell the fabric."""

    dpid: int
    conn: Any
    address: str | None


@dataclass(frozen=True)
class Release:
    """`conn` no longer speaks for `dpid` (closed, or proven dead): close it, tell the fabric."""

    dpid: int
    conn: Any


@dataclass(frozen=True)
class Close:
    """Close a connection that never spoke for its dpid."""

    conn: Any


@dataclass(frozen=True)
class Probe:
    """Send an echo request with `xid` to `conn`."""

    conn: Any
    xid: int


@dataclass(frozen=True)
class Report:
    """An event to emit (switch.refused, switch.duplicate)."""

    kind: str
    dpid: int
    detail: dict[str, Any] = field(default_factory=dict)


Step = Adopt | Release | Close | Probe | Report


@dataclass
class _Holder:
    conn: Any
    address: str | None


@dataclass
class _Challenge:
    newcomer: Any
    address: str | None
    xid: int
    deadline: float


class SwitchConnections:
    def __init__(
        self,
        allowed_dpids: Iterable[int] = (),
        is_open: Callable[[Any], bool] = lambda conn: True,
        timeout: float = CHALLENGE_TIMEOUT,
    ) -> None:
        """`allowed_dpids`: the dpids that may connect; empty: any."""
        self._allowed = frozenset(allowed_dpids)
        self._is_open = is_open
        self._timeout = timeout
        self._holders: dict[int, _Holder] = {}
        self._challenges: dict[int, _Challenge] = {}
        self._claims: dict[Any, int] = {}  # holders and waiting newcomers -> their dpid
        self._unidentified: dict[Any, float] = {}  # connections without a dpid -> deadline
        self.unidentified_closed = 0  # at the deadline or beyond MAX_UNIDENTIFIED
        self._xids = itertools.count()
        self._reports: OrderedDict[tuple, tuple[float, int]] = OrderedDict()

    def dpid_of(self, conn) -> int | None:
        """The dpid `conn` speaks for; None for any other connection (its messages are not the
        switch's)."""
        dpid = self._claims.get(conn)
        holder = self._holders.get(dpid) if dpid is not None else None
        return dpid if holder is not None and holder.conn is conn else None

    def opened(self, conn, now: float) -> list[Step]:
        """A new connection (os-ken's HANDSHAKE_DISPATCHER): it has HELLO_TIMEOUT seconds to
        name its dpid."""
        if len(self._unidentified) >= MAX_UNIDENTIFIED:
            self.unidentified_closed += 1
            return [Close(conn)]
        self._unidentified[conn] = now + HELLO_TIMEOUT
        return []

    def connected(self, dpid: int, conn, address: str | None, now: float) -> list[Step]:
        """`conn` sent a features reply claiming `dpid`."""
        self._unidentified.pop(conn, None)
        if not self._is_open(conn):
            return []
        if conn in self._claims:
            steps = [*self.closed(conn, now), Close(conn)]
            return steps + self._report(
                "switch.refused",
                dpid,
                now,
                address=address,
                reason="a second features reply on one connection",
            )
        if self._allowed and dpid not in self._allowed:
            return [Close(conn)] + self._report(
                "switch.refused", dpid, now, address=address, reason="dpid not allowed"
            )
        holder = self._holders.get(dpid)
        if holder is None:
            return self._adopt(dpid, conn, address)
        if not self._is_open(holder.conn):  # a switch reconnecting before its old one is reaped
            return [self._release(dpid), *self._adopt(dpid, conn, address)]
        duplicate = {"address": address, "connected": holder.address}
        if dpid in self._challenges:
            return [Close(conn)] + self._report(
                "switch.duplicate",
                dpid,
                now,
                **duplicate,
                outcome="refused",
                reason="another connection claiming it is being checked",
            )
        xid = ECHO_XID_BASE + next(self._xids) % ECHO_XID_SPAN
        self._challenges[dpid] = _Challenge(conn, address, xid, now + self._timeout)
        self._claims[conn] = dpid
        return [Probe(holder.conn, xid)] + self._report(
            "switch.duplicate",
            dpid,
            now,
            **duplicate,
            outcome="checking",
            reason=f"the connected switch is sent an echo request: refused if it answers "
            f"within {self._timeout:g} s, replaced if not",
        )

    def echo_reply(self, conn, xid: int, now: float) -> list[Step]:
        """The holder answered: it is alive, the newcomer is refused."""
        dpid = self.dpid_of(conn)
        challenge = self._challenges.get(dpid) if dpid is not None else None
        if dpid is None or challenge is None or challenge.xid != xid:
            return []
        del self._challenges[dpid]
        del self._claims[challenge.newcomer]
        return [Close(challenge.newcomer)] + self._report(
            "switch.duplicate",
            dpid,
            now,
            address=challenge.address,
            connected=self._holders[dpid].address,
            outcome="refused",
            reason="the connected switch answered",
        )

    def closed(self, conn, now: float) -> list[Step]:
        """`conn` is gone (os-ken's DEAD_DISPATCHER)."""
        self._unidentified.pop(conn, None)
        dpid = self._claims.get(conn)
        if dpid is None:
            return []
        challenge = self._challenges.get(dpid)
        if challenge is not None and challenge.newcomer is conn:
            del self._challenges[dpid]
            del self._claims[conn]
            return []
        return self._replace(dpid, now, "the connected switch closed its connection")

    def expire(self, now: float) -> list[Step]:
        """Checks whose holder did not answer in time: their newcomers replace them.
        Connections still without a dpid at their deadline are closed."""
        steps: list[Step] = []
        for conn in [c for c, deadline in self._unidentified.items() if deadline <= now]:
            del self._unidentified[conn]
            self.unidentified_closed += 1
            steps.append(Close(conn))
        for dpid in [d for d, c in self._challenges.items() if c.deadline <= now]:
            steps += self._replace(
                dpid, now, f"the connected switch did not answer within {self._timeout:g} s"
            )
        return steps

    def _replace(self, dpid: int, now: float, why: str) -> list[Step]:
        """The holder of `dpid` is gone: its waiting newcomer, if any and still open, takes
        over."""
        steps: list[Step] = [self._release(dpid)]
        challenge = self._challenges.pop(dpid, None)
        if challenge is None:
            return steps
        del self._claims[challenge.newcomer]
        if not self._is_open(challenge.newcomer):
            return steps
        steps += self._adopt(dpid, challenge.newcomer, challenge.address)
        return steps + self._report(
            "switch.duplicate",
            dpid,
            now,
            address=challenge.address,
            outcome="replaced",
            reason=why,
        )

    def _adopt(self, dpid: int, conn, address: str | None) -> list[Step]:
        self._holders[dpid] = _Holder(conn, address)
        self._claims[conn] = dpid
        return [Adopt(dpid, conn, address)]

    def _release(self, dpid: int) -> Release:
        holder = self._holders.pop(dpid)
        del self._claims[holder.conn]
        return Release(dpid, holder.conn)

    def _report(self, kind: str, dpid: int, now: float, **detail) -> list[Step]:
        key = (kind, dpid, detail.get("outcome"))
        last = self._reports.get(key)
        if last is not None and now - last[0] < REPORT_INTERVAL:
            self._reports[key] = (last[0], last[1] + 1)
            return []
        self._reports.pop(key, None)
        self._reports[key] = (now, 0)
        while len(self._reports) > REPORT_KEYS:
            self._reports.popitem(last=False)
        suppressed = last[1] if last is not None else 0
        return [
            Report(kind, dpid, {**detail, **({"suppressed": suppressed} if suppressed else {})})
        ]
