"""What a switch port is for, decided from its name.

OpenFlow tells the controller only port numbers and names, so the operator names the role:
ports whose name matches one of the trunk patterns (shell globs) face other switches; every other
port faces a server and is closed until a VM on it is associated (default deny).
"""

import fnmatch
from dataclasses import dataclass
from enum import Enum

DEFAULT_TRUNK_PATTERNS = ("*-up*", "*-dn*", "*trunk*")


class PortRole(str, Enum):
    TRUNK = "trunk"
    SERVER = "server"


def port_role(name: str, trunk_patterns=DEFAULT_TRUNK_PATTERNS) -> PortRole:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in trunk_patterns):
        return PortRole.TRUNK
    return PortRole.SERVER


@dataclass(frozen=True)
class Port:
    number: int
    name: str
    hw_addr: str
    role: PortRole
    up: bool = True


@dataclass(frozen=True, order=True)
class PortRef:
    """Where a station attaches: a switch port anywhere in the fabric or, with ``svid``, one
    S-channel of a server port (802.1Qbg clause 40: each S-channel is a bridge port of its own,
    with its own EVB station, VSIs and flows). ``svid`` 0: the port itself (its default
    S-channel, untagged)."""

    dpid: int
    port_no: int
    svid: int = 0

    @property
    def physical(self) -> "PortRef":
        """The switch port that carries this S-channel (itself when it is no S-channel)."""
        return PortRef(self.dpid, self.port_no) if self.svid else self

    def __str__(self) -> str:
        channel = f".{self.svid}" if self.svid else ""
        return f"{self.dpid:016x}:{self.port_no}{channel}"
