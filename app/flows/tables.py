"""Names for every table, priority, cookie and meter the controller programs.

docs/pipeline.md draws the pipeline these constants describe; keep the two in step.
"""
from enum import IntEnum


class Table(IntEnum):
    """OpenFlow tables, in the order a packet walks them."""

    CLASSIFY = 0     # punt EVB control frames; trunk ports -> FORWARD; server ports: admit VMs or deny
    INGRESS_ACL = 1  # per-VM ingress ACL and QoS (meter, marking) for admitted VM traffic
    FORWARD = 2      # destination MAC + VLAN -> local VM, trunk, or flood group
    EGRESS_ACL = 3   # per-VM egress ACL before the frame reaches the destination VM


class Priority(IntEnum):
    """Flow priorities. Wider gaps than needed so later rules can slot in between."""

    CONTROL_PUNT = 60000   # LLDP/ECP to the nearest-bridge group addresses
    CANARY = 50000         # never matches real traffic; its absence means the switch lost our flows
    VM_ADMIT = 40000       # in_port + source MAC (+VID) of an associated VM
    PORT_ROLE = 20000      # trunk port -> FORWARD; server port -> counted drop
    TABLE_MISS = 0         # explicit drop with our cookie, so dropped traffic is counted


# Cookies: the top byte says the flow is ours; the next byte says what kind; the low 48 bits
# identify the owner (a port number for base flows, a VSI handle for a VM's flows). A sweep or a
# move of one VM deletes by (cookie, COOKIE_MASK_OWNER) and touches nothing else.
COOKIE_APP = 0xEB << 56
COOKIE_MASK_APP = 0xFF << 56
COOKIE_MASK_KIND = 0xFFFF << 48
COOKIE_MASK_OWNER = 0xFFFFFFFFFFFFFFFF
_OWNER_BITS = 48


class CookieKind(IntEnum):
    BASE = 1     # pipeline skeleton: punts, port roles, table misses
    CANARY = 2
    VSI = 3      # one associated VM's flows


def cookie(kind: CookieKind, owner: int = 0) -> int:
    if not 0 <= owner < (1 << _OWNER_BITS):
        raise ValueError(f"cookie owner {owner} does not fit in {_OWNER_BITS} bits")
    return COOKIE_APP | (int(kind) << _OWNER_BITS) | owner


def cookie_kind(value: int) -> CookieKind | None:
    """The kind of one of our cookies, None for a flow that is not ours."""
    if value & COOKIE_MASK_APP != COOKIE_APP:
        return None
    try:
        return CookieKind((value >> _OWNER_BITS) & 0xFF)
    except ValueError:
        return None


class Meter(IntEnum):
    PUNT = 1  # rate limit of every control frame punted to the controller


# Default punt limit: far above what EVB needs (LLDP every second, a few VDP PDUs per VM per
# keep-alive), far below what would starve the controller.
PUNT_RATE_PPS = 1000
PUNT_BURST_PKTS = 200

# The canary's match: an ethertype from the IEEE local-experimental range with a source MAC that
# is a group address, which no real frame may carry.
CANARY_ETH_TYPE = 0x88B5
CANARY_ETH_SRC = "01:eb:00:00:ca:11"
