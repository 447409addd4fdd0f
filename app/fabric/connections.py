"""Which OpenFlow connection speaks for each switch (dpid), and what a connection claiming a dpid
gets.

Pure: the shim (app/controller/evb_app.py) reports every features reply, every message heard
and every closed connection with the time, asks for the deadlines due (`expire`) and carries out
the steps returned. Connections are opaque objects (os-ken's datapaths); `is_open` tells whether
one is still open.

- Liveness: any message from the connection that holds a dpid proves it alive. One quiet for
  `echo_interval` is sent an echo request; one that then says nothing within `echo_timeout` is
  hung (its TCP connection may well be open: a frozen process, a wedged proxy): reported
  (switch.hung), released and closed, so the switch is the fabric's again only once it
  reconnects. Followers hold SLAVE connections and check them the same way (docs/ha.md). An
  echo request waits behind what was sent before it: the shim reports large sends (`sent`),
  and a switch with such a backlog is given the time to work through it (MESSAGE_TIME per
  message) before its echo's timeout runs.

- A dpid outside the allow-list (when there is one) is refused: the connection is closed.
- A dpid that no open connection holds goes to the newcomer (a switch reconnecting).
- A dpid held by an open connection is a duplicate: the holder is sent an echo request (unless
  one is out already). If it says anything within `timeout` the newcomer is refused (a message
  already on its way when the newcomer came counts too: it proves the holder alive a round
  trip ago); if it is found hung first, says nothing in time, or closes, the newcomer
  replaces it. The holder keeps the dpid (and nothing goes to the newcomer) until then. Every
  duplicate is reported (switch.duplicate, which raises an alarm), whatever its outcome.
- One newcomer per dpid waits for the verdict; more are refused at once. A connection that
  sends a second features reply is closed: one connection is one switch.
- A connection that has not sent its features reply within HELLO_TIMEOUT is closed, and at most
  MAX_UNIDENTIFIED wait for theirs: a client that connects and says nothing holds os-ken's
  threads for a bounded time only.

Reports of one kind, dpid and outcome come at most once per REPORT_INTERVAL, with the number
suppressed in between, so a client reconnecting in a loop cannot flood the event store (a hung
switch excepted: one report per connection adopted, as its switch.connected).
"""

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

# A live switch answers an echo request in milliseconds, or behind the flow batch it is
# applying: seconds at most.
CHALLENGE_TIMEOUT = 3.0
# Liveness (Settings.of_echo_interval, of_echo_timeout): a hung switch is found within their sum.
ECHO_INTERVAL = 0.3
ECHO_TIMEOUT = 0.6
# Open vSwitch 3.1 (userspace) applied 20,000 flow-mods sent one by one in 1.7 s: each message
# of a backlog gives a switch this much more time to answer an echo request queued behind it,
# up to BACKLOG_MAX (a reconnecting aggregation switch may be sent an entry per VM).
MESSAGE_TIME = 100e-6
BACKLOG_MAX = 30.0
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
    deadline: float


class SwitchConnections:
    def __init__(
        self,
        allowed_dpids: Iterable[int] = (),
        is_open: Callable[[Any], bool] = lambda conn: True,
        timeout: float = CHALLENGE_TIMEOUT,
        echo_interval: float = ECHO_INTERVAL,
        echo_timeout: float = ECHO_TIMEOUT,
    ) -> None:
        """`allowed_dpids`: the dpids that may connect; empty: any. `echo_interval` 0: no
        liveness checks (a duplicate's holder is still probed)."""
        self._allowed = frozenset(allowed_dpids)
        self._is_open = is_open
        self._timeout = timeout
        self._echo_interval = echo_interval or math.inf
        self._echo_timeout = echo_timeout
        self._holders: dict[int, _Holder] = {}
        # Every holder is in one of the two, each in the order of its deadline, so `expire`
        # looks only at what is due: quiet ones by when they were last heard, those with an
        # echo request out by its deadline (and when they were last heard).
        self._quiet: OrderedDict[Any, float] = OrderedDict()
        self._probed: OrderedDict[Any, tuple[float, float]] = OrderedDict()
        self._busy_until: dict[Any, float] = {}  # holders -> when our backlog is worked off
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
            return self._adopt(dpid, conn, address, now)
        if not self._is_open(holder.conn):  # a switch reconnecting before its old one is reaped
            return [self._release(dpid), *self._adopt(dpid, conn, address, now)]
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
        self._challenges[dpid] = _Challenge(conn, address, now + self._timeout)
        self._claims[conn] = dpid
        return self._probe(holder.conn, now) + self._report(
            "switch.duplicate",
            dpid,
            now,
            **duplicate,
            outcome="checking",
            reason=f"the connected switch is sent an echo request: refused if it answers "
            f"within {self._timeout:g} s, replaced if not",
        )

    def heard(self, conn, now: float) -> list[Step]:
        """A message from `conn`, whatever it is: a holder is alive, and a newcomer waiting
        for its dpid is refused."""
        dpid = self.dpid_of(conn)
        if dpid is None:
            return []
        self._probed.pop(conn, None)
        self._quiet[conn] = now
        self._quiet.move_to_end(conn)
        challenge = self._challenges.pop(dpid, None)
        if challenge is None:
            return []
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

    def sent(self, conn, messages: int, now: float) -> None:
        """`messages` went to `conn`: an echo behind them is answered that much later."""
        if self.dpid_of(conn) is None:
            return
        start = max(self._busy_until.get(conn, now), now)
        self._busy_until[conn] = min(start + messages * MESSAGE_TIME, now + BACKLOG_MAX)

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
        """What is due: echo requests to holders quiet for the echo interval; holders silent
        past their echo's deadline are hung; checks whose holder did not answer in time: their
        newcomers replace them. Connections still without a dpid at their deadline are
        closed. Costs what is due, not the connections held."""
        steps: list[Step] = []
        while self._probed:
            conn, (deadline, last_heard) = next(iter(self._probed.items()))
            if deadline > now:
                break
            busy_until = self._busy_until.get(conn, -math.inf)
            if busy_until + self._echo_timeout > now:
                # Still (or just) busy with our backlog: the timeout runs from its end, and
                # at least from now, which keeps the deadlines in order.
                del self._probed[conn]
                self._probed[conn] = (max(busy_until, now) + self._echo_timeout, last_heard)
                continue
            steps += self._hung(conn, last_heard, now)
        while self._quiet:
            conn, last_heard = next(iter(self._quiet.items()))
            if last_heard + self._echo_interval > now:
                break
            steps += self._probe(conn, now)
        for conn in [c for c, deadline in self._unidentified.items() if deadline <= now]:
            del self._unidentified[conn]
            self.unidentified_closed += 1
            steps.append(Close(conn))
        for dpid in [d for d, c in self._challenges.items() if c.deadline <= now]:
            steps += self._replace(
                dpid, now, f"the connected switch did not answer within {self._timeout:g} s"
            )
        return steps

    def _probe(self, conn, now: float) -> list[Step]:
        """An echo request to a holder, unless one is out already; with liveness checks on,
        its deadline."""
        if conn in self._probed:
            return []
        if self._echo_interval < math.inf:
            self._probed[conn] = (now + self._echo_timeout, self._quiet.pop(conn))
        return [Probe(conn, ECHO_XID_BASE + next(self._xids) % ECHO_XID_SPAN)]

    def _hung(self, conn, last_heard: float, now: float) -> list[Step]:
        """Reported first, so that the alarm finds the switch's VMs where they are. Never
        throttled: its alarm's cause would be lost, and there is one per adopted connection
        at most, as there is one switch.connected."""
        dpid = self._claims[conn]
        report = Report(
            "switch.hung",
            dpid,
            {
                "address": self._holders[dpid].address,
                "silent_s": round(now - last_heard, 3),
                "timeout": self._echo_timeout,
                "reason": f"no answer to an echo request within {self._echo_timeout:g} s",
            },
        )
        return [report] + self._replace(
            dpid, now, f"the connected switch was hung: no answer within {self._echo_timeout:g} s"
        )

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
        steps += self._adopt(dpid, challenge.newcomer, challenge.address, now)
        return steps + self._report(
            "switch.duplicate",
            dpid,
            now,
            address=challenge.address,
            outcome="replaced",
            reason=why,
        )

    def _adopt(self, dpid: int, conn, address: str | None, now: float) -> list[Step]:
        self._holders[dpid] = _Holder(conn, address)
        self._claims[conn] = dpid
        self._quiet[conn] = now
        return [Adopt(dpid, conn, address)]

    def _release(self, dpid: int) -> Release:
        holder = self._holders.pop(dpid)
        del self._claims[holder.conn]
        self._quiet.pop(holder.conn, None)
        self._probed.pop(holder.conn, None)
        self._busy_until.pop(holder.conn, None)
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
