"""The shim's side of the election (docs/ha.md): the switch connections this controller holds
and the role it asks of each.

Every connection that speaks for a switch is held. A follower asks each for SLAVE with the
generation of the leader it knows and hands none to the fabric: it neither hears nor changes
the switches. The leader asks each for MASTER with its generation before anything else, then
hands it to the fabric (`adopt`), which reconciles it as after a restart; at the takeover every
connection held so far gets both, in that order. Not thread-safe: the shim calls it with its
connections lock held, as it changes its routing table."""

from collections.abc import Callable

from app.ha.election import Leader
from app.ha.roles import MASTER, SLAVE, role_request


class Leadership:
    def __init__(self, adopt: Callable[[int, object, str | None], None]):
        self._adopt = adopt
        self._held: dict[int, tuple[object, str | None]] = {}
        self.leading = False
        self.generation: int | None = None  # the leader's, as far as this controller knows

    def connected(self, dpid: int, conn, address: str | None) -> None:
        self._held[dpid] = (conn, address)
        if self.leading:
            self._master(dpid, conn, address)
        elif self.generation is not None:
            conn.send_msg(role_request(conn, SLAVE, self.generation))

    def released(self, dpid: int, conn) -> None:
        if self._held.get(dpid, (None,))[0] is conn:
            del self._held[dpid]

    def connections(self) -> list:
        return [conn for conn, _ in self._held.values()]

    def follow(self, leader: Leader | None) -> None:
        """Another controller leads (or none is known): SLAVE under its generation."""
        if self.leading or leader is None:
            return
        self.generation = leader.generation
        for conn, _ in self._held.values():
            conn.send_msg(role_request(conn, SLAVE, leader.generation))

    def lead(self, generation: int) -> None:
        """This controller leads from now on: every switch held becomes ours."""
        self.leading, self.generation = True, generation
        for dpid, (conn, address) in self._held.items():
            self._master(dpid, conn, address)

    def _master(self, dpid: int, conn, address: str | None) -> None:
        assert self.generation is not None
        conn.send_msg(role_request(conn, MASTER, self.generation))
        self._adopt(dpid, conn, address)
