"""Names for every table, priority, cookie and meter the controller programs.

docs/pipeline.md draws the pipeline these constants describe; keep the two in step.
"""

from enum import IntEnum

from os_ken.ofproto import ofproto_v1_3 as ofp


class Table(IntEnum):
    """OpenFlow tables, in the order a packet walks them."""

    CLASSIFY = 0  # punt EVB control frames; trunks -> FORWARD; server ports: admit VMs or deny
    INGRESS_ACL = 1  # per-VM ingress ACL of admitted VM traffic (QoS is applied at admission)
    FORWARD = 2  # VLAN + destination MAC -> local VM (via EGRESS_ACL) or trunk; VLAN flooding
    EGRESS_ACL = 3  # per-VM egress ACL, then delivery to the destination VM's port
    PUNT = 4  # control frames that passed their server port's meter: switch-wide meter, punt


class Priority(IntEnum):
    """Flow priorities. Wider gaps than needed so later rules can slot in between. The values
    must stay distinct: an IntEnum makes equal values aliases of one name."""

    PORT_PUNT = 60010  # CONTROL_PUNT from a server port: through its own meter first
    CONTROL_PUNT = 60000  # LLDP/ECP to the nearest-bridge group addresses
    PROBE_INJECT = 50500  # a data-plane probe sent by the controller (packet-out) -> FORWARD
    CANARY = 50000  # never matches real traffic; its absence means the switch lost our flows
    PROBE_GUARD = 40500  # a server port's frames of the probe EtherType: dropped (no forgery)
    VM_ADMIT_IP = 40010  # VM_ADMIT split by eth_type IPv4/IPv6 to mark DSCP (needs an IP match)
    VM_ADMIT = 40000  # in_port + source MAC (+VID) of a forwarding VM
    VM_UNICAST = 35000  # FORWARD: VLAN + a forwarding VM's MAC
    PROBE_PUNT = 32500  # EGRESS_ACL: a probe that reached its edge -> the controller
    VLAN_OWNER = 31000  # FORWARD: unicast of a VLAN no VM_UNICAST claims -> the VLAN's owner
    ACL_TOP = 32000  # ACL tables: rule i of a VM at ACL_TOP - 2i (in_port hairpin variant)
    # and ACL_TOP - 2i - 1; acl_default takes the slot after the last rule
    LINK_GUARD = 30000  # multicast arriving on a linked trunk port outside the flood tree: drop
    DEFAULT_UP = 27000  # FORWARD, below a root: tagged unicast no VM entry claims -> uplink
    VLAN_FLOOD_HAIRPIN = 25010  # VLAN_FLOOD from a reflective-relay port: back out of it too
    VLAN_FLOOD = 25000  # FORWARD: group-addressed frame of a VLAN -> its member ports
    PORT_ROLE = 20000  # trunk port -> FORWARD; server port -> counted drop
    TABLE_MISS = 0  # explicit drop with our cookie, so dropped traffic is counted


# Cookies: the top byte says the flow is ours; the next byte says what kind; the low 48 bits
# identify the owner (a port number for base and link flows, a VSI handle for a VM's flows, a
# VID for a VLAN's flood flows). A sweep or a move of one VM deletes by (cookie, COOKIE_MASK_OWNER)
# and touches nothing else; flows shared by several VMs (VLAN, LINK) are recomputed from the
# bindings and reconciled, never swept with a VM.
COOKIE_APP = 0xEB << 56
COOKIE_MASK_APP = 0xFF << 56
COOKIE_MASK_KIND = 0xFFFF << 48
COOKIE_MASK_OWNER = 0xFFFFFFFFFFFFFFFF
_OWNER_BITS = 48


class CookieKind(IntEnum):
    BASE = 1  # pipeline skeleton: punts, port roles, table misses
    CANARY = 2
    VSI = 3  # one bound VM's flows, on its edge and the unicast entries toward it elsewhere
    VLAN = 4  # one VLAN's flood flows (depend on all its members); owner = VID
    LINK = 5  # flows that follow the inter-switch link graph (guards, default up); owner = port


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
    PROBE = 2  # data-plane probes punted at their destination: their own share, nobody else's


# Meter ids above PORT_PUNT_METER_BASE belong to server ports, one each: PORT_PUNT_METER_BASE +
# port number, up to OVS's highest port number (0xfeff); a port numbered above has only the
# switch-wide PUNT meter. Ids above VM_METER_BASE belong to VMs, one per binding: VM_METER_BASE +
# handle. Ids below PORT_PUNT_METER_BASE stay free for pipeline meters like PUNT. Only ids in
# the port and VM ranges are ever deleted as stale.
PORT_PUNT_METER_BASE = 0x100
VM_METER_BASE = 1 << 16


def port_punt_meter_id(port_no: int) -> int | None:
    """The punt meter of a server port, None for a port number beyond the range."""
    meter_id = PORT_PUNT_METER_BASE + port_no
    return meter_id if 0 < port_no and meter_id < VM_METER_BASE else None


def is_swept_meter(meter_id: int) -> bool:
    """A per-port or per-VM meter: deleted when its port or VM no longer wants it."""
    return PORT_PUNT_METER_BASE < meter_id <= ofp.OFPM_MAX


def vm_meter_id(handle: int) -> int:
    meter_id = VM_METER_BASE + handle
    if handle < 1 or meter_id > ofp.OFPM_MAX:
        raise ValueError(
            f"handle {handle} gives no meter id in {VM_METER_BASE + 1}..{ofp.OFPM_MAX}"
        )
    return meter_id


# Default punt limit: far above what EVB needs (LLDP every second, a few VDP PDUs per VM per
# keep-alive), far below what would starve the controller.
PUNT_RATE_PPS = 1000
PUNT_BURST_PKTS = 200
# Per server port: lldpad sends at most one ECP PDU per 164 ms and an LLDPDU a second, so 100
# pkt/s is 15 times what one station needs, and one flooding port takes at most a tenth of the
# switch's PUNT budget.
PORT_PUNT_RATE_PPS = 100
PORT_PUNT_BURST_PKTS = 50
# Data-plane probes (app/fabric/probes.py) punted at their destination edge: at most a few per
# member edge and probed VLAN a second; their own meter, so nothing else can crowd them out.
PROBE_RATE_PPS = 200
PROBE_BURST_PKTS = 100

# The canary's match: an ethertype from the IEEE local-experimental range with a source MAC that
# is a group address, which no real frame may carry.
CANARY_ETH_TYPE = 0x88B5
CANARY_ETH_SRC = "01:eb:00:00:ca:11"

# eth_dst under this mask matches every group-addressed (broadcast, multicast) frame.
GROUP_ADDRESS_BIT = "01:00:00:00:00:00"
