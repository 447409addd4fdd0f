"""OpenFlow 1.3 controller roles of one switch, decided as Open vSwitch decides them (ofproto.c
handle_role_request, connmgr.c ofconn_set_role / ofconn_set_master_election_id): pure logic,
no I/O. A switch has one connection per controller, each known here by the controller's index.

* A connection starts EQUAL.
* A MASTER or SLAVE request carries a generation id, checked against the one the switch cached:
  stale if (int64)(generation - cached) < 0 (OFPET_ROLE_REQUEST_FAILED / OFPRRFC_STALE, role
  unchanged); else it is cached. EQUAL and NOCHANGE requests leave the generation alone.
* A new MASTER turns the MASTER before it into a SLAVE (OpenFlow 1.3 tells it nothing).
* Packet-ins go to MASTER and EQUAL connections (OVS's default asynchronous configuration).
* A SLAVE may read (multipart, barrier, echo, features, role) but not change the switch:
  flow-mods, group-mods, port-mods, table-mods, meter-mods, packet-outs and bundles get
  OFPET_BAD_REQUEST / OFPBRC_IS_SLAVE.
"""

from dataclasses import dataclass

from bench.ofsim import ofwire as w

NOCHANGE, EQUAL, MASTER, SLAVE = range(4)
NAMES = {EQUAL: "equal", MASTER: "master", SLAVE: "slave"}

OFPET_ROLE_REQUEST_FAILED = 11
OFPRRFC_STALE = 0
OFPRRFC_BAD_ROLE = 2
OFPBRC_IS_SLAVE = 10

# What a SLAVE may not send. EXPERIMENTER: the only experimenter messages the simulated switch
# takes are ONF bundles, which OVS refuses from a SLAVE (open, add and commit alike).
WRITES = frozenset(
    (w.FLOW_MOD, w.GROUP_MOD, w.PORT_MOD, w.TABLE_MOD, w.METER_MOD, w.PACKET_OUT, w.EXPERIMENTER)
)
_U64 = 1 << 64


@dataclass(frozen=True)
class Answer:
    """A role request's outcome: error is None (then role and generation go in the reply) or
    the OFPET_ROLE_REQUEST_FAILED code."""

    error: int | None
    role: int
    generation: int


class Roles:
    __slots__ = ("generation", "_roles")

    def __init__(self) -> None:
        self.generation: int | None = None  # OVS's master_election_id, once defined
        self._roles: dict[int, int] = {}  # controller index -> role of its connection

    def connect(self, controller: int) -> None:
        self._roles[controller] = EQUAL

    def disconnect(self, controller: int) -> None:
        self._roles.pop(controller, None)

    def role(self, controller: int) -> int | None:
        return self._roles.get(controller)

    def request(self, controller: int, role: int, generation: int) -> Answer:
        """A ROLE_REQUEST from `controller`'s connection (which must be connected)."""
        current = self._roles[controller]
        if role not in (NOCHANGE, EQUAL, MASTER, SLAVE):
            return Answer(OFPRRFC_BAD_ROLE, current, self.generation or 0)
        if role in (MASTER, SLAVE):
            if self.generation is not None and (generation - self.generation) % _U64 >= 1 << 63:
                return Answer(OFPRRFC_STALE, current, self.generation)
            self.generation = generation
        if role == MASTER:
            for other, other_role in self._roles.items():
                if other_role == MASTER:
                    self._roles[other] = SLAVE
        if role != NOCHANGE:
            self._roles[controller] = role
        return Answer(None, self._roles[controller], self.generation or 0)

    def may_send(self, controller: int, msg_type: int) -> bool:
        """Whether the switch carries out a message of `msg_type` from `controller`."""
        return msg_type not in WRITES or self._roles.get(controller) != SLAVE

    def packet_in_targets(self) -> list[int]:
        """The controllers whose connection gets a packet-in, in index order."""
        return sorted(c for c, role in self._roles.items() if role != SLAVE)

    def master(self) -> int | None:
        return next((c for c, role in self._roles.items() if role == MASTER), None)
