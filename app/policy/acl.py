"""ACL rules of a VSI type: one OpenFlow 1.3 match (L2-L4) plus permit/deny, and the checks that
reject rules OpenFlow cannot express or that contradict an earlier rule.

Each rule maps to exactly one OpenFlow match, so every field obeys OpenFlow's prerequisites:
IP fields need an IP eth_type, TCP/UDP ports need ip_proto tcp or udp. TCP/UDP ports are single
ports: OpenFlow 1.3 matches them exactly (no mask), and expanding a range into masked matches
would rely on an Open vSwitch extension and multiply flows, so a range is refused with a hint to
write one rule per port.
"""

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.policy.errors import PolicyError, check_range

ACTIONS = ("permit", "deny")

ETH_TYPE_IPV4 = 0x0800
ETH_TYPE_IPV6 = 0x86DD
ETH_TYPE_NAMES = {"ipv4": ETH_TYPE_IPV4, "ipv6": ETH_TYPE_IPV6, "arp": 0x0806}

IP_PROTO_TCP = 6
IP_PROTO_UDP = 17
IP_PROTO_NAMES = {"icmp": 1, "tcp": IP_PROTO_TCP, "udp": IP_PROTO_UDP, "icmpv6": 58}

_MAC_ALL_ONES = (1 << 48) - 1


def _mac_text(value: int) -> str:
    return ":".join(f"{byte:02x}" for byte in value.to_bytes(6, "big"))


def _mac_int(text: str) -> int:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(part) == 2 for part in parts):
        raise ValueError(f"expected a MAC address like 02:00:00:00:00:01, got {text!r}")
    try:
        return int("".join(parts), 16)
    except ValueError:
        raise ValueError(f"expected a MAC address like 02:00:00:00:00:01, got {text!r}") from None


@dataclass(frozen=True)
class MacMatch:
    """A MAC address, optionally under a bit mask (OpenFlow 1.3 masks eth_src/eth_dst).
    Both are lower-case colon form; ``mask`` is None for an exact match."""

    address: str
    mask: str | None = None

    @classmethod
    def parse(cls, text: str) -> "MacMatch":
        """``02:00:00:00:00:01`` or ``02:00:00:00:00:00/ff:ff:ff:00:00:00``."""
        address_text, _, mask_text = text.strip().partition("/")
        address = _mac_int(address_text)
        mask = _mac_int(mask_text) if mask_text else _MAC_ALL_ONES
        if mask == 0:
            raise ValueError(f"mask of {text!r} matches every address; leave the field out")
        if address & ~mask:
            raise ValueError(f"{text!r} has address bits outside its mask")
        return cls(_mac_text(address), None if mask == _MAC_ALL_ONES else _mac_text(mask))

    def _bits(self) -> tuple[int, int]:
        return _mac_int(self.address), _mac_int(self.mask) if self.mask else _MAC_ALL_ONES

    def covers(self, other: "MacMatch") -> bool:
        """True if every address ``other`` matches is also matched by this one."""
        address, mask = self._bits()
        other_address, other_mask = other._bits()
        return mask & other_mask == mask and other_address & mask == address

    def __str__(self) -> str:
        return self.address if self.mask is None else f"{self.address}/{self.mask}"


def parse_eth_type(value) -> int:
    """An EtherType number or one of the names in ETH_TYPE_NAMES."""
    # A name it lacks stays as given: AclRule refuses it with its own message.
    return ETH_TYPE_NAMES[value] if isinstance(value, str) and value in ETH_TYPE_NAMES else value


def parse_ip_proto(value) -> int:
    """An IP protocol number or one of the names in IP_PROTO_NAMES."""
    return IP_PROTO_NAMES[value] if isinstance(value, str) and value in IP_PROTO_NAMES else value


@dataclass(frozen=True)
class AclRule:
    """One ACL entry. Unset match fields are wildcards. ``eth_type`` is inferred from the IP
    prefixes when left out. ``line`` only locates the rule in error messages; it takes no part
    in comparisons."""

    action: str
    eth_src: MacMatch | None = None
    eth_dst: MacMatch | None = None
    eth_type: int | None = None
    ipv4_src: ipaddress.IPv4Network | None = None
    ipv4_dst: ipaddress.IPv4Network | None = None
    ipv6_src: ipaddress.IPv6Network | None = None
    ipv6_dst: ipaddress.IPv6Network | None = None
    ip_proto: int | None = None
    tp_src: int | None = None
    tp_dst: int | None = None
    line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise PolicyError(
                f"expected one of {', '.join(ACTIONS)}, got {self.action!r}", field="action"
            )
        ipv4 = [name for name in ("ipv4_src", "ipv4_dst") if getattr(self, name) is not None]
        ipv6 = [name for name in ("ipv6_src", "ipv6_dst") if getattr(self, name) is not None]
        if ipv4 and ipv6:
            raise PolicyError(
                "a rule matches IPv4 or IPv6 prefixes, not both; write two rules", field=ipv6[0]
            )
        if self.eth_type is None and (ipv4 or ipv6):
            # Frozen: set the inferred value the one way a frozen dataclass allows.
            object.__setattr__(self, "eth_type", ETH_TYPE_IPV4 if ipv4 else ETH_TYPE_IPV6)
        if self.eth_type is not None:
            check_range(
                "eth_type",
                self.eth_type,
                0x0600,
                0xFFFF,
                "an EtherType name (ipv4, ipv6, arp) or number",
            )
        for names, version, eth_type in (
            (ipv4, "IPv4", ETH_TYPE_IPV4),
            (ipv6, "IPv6", ETH_TYPE_IPV6),
        ):
            if names and self.eth_type != eth_type:
                raise PolicyError(
                    f"{version} prefixes need eth_type {eth_type:#06x}, got {self.eth_type:#06x}",
                    field="eth_type",
                )
        if self.ip_proto is not None:
            check_range(
                "ip_proto",
                self.ip_proto,
                0,
                255,
                "an IP protocol name (tcp, udp, icmp, icmpv6) or number",
            )
            if self.eth_type not in (ETH_TYPE_IPV4, ETH_TYPE_IPV6):
                raise PolicyError(
                    "ip_proto needs eth_type ipv4 or ipv6 or an IP prefix (OpenFlow prerequisite)",
                    field="ip_proto",
                )
        for name in ("tp_src", "tp_dst"):
            port = getattr(self, name)
            if port is None:
                continue
            check_range(name, port, 0, 65535, "a port")
            if self.ip_proto not in (IP_PROTO_TCP, IP_PROTO_UDP):
                raise PolicyError(
                    "a port needs ip_proto tcp or udp (OpenFlow prerequisite)", field=name
                )

    def covers(self, other: "AclRule") -> bool:
        """True if this rule matches every packet ``other`` matches (actions aside)."""
        for name in ("eth_type", "ip_proto", "tp_src", "tp_dst"):
            mine = getattr(self, name)
            if mine is not None and mine != getattr(other, name):
                return False
        for name in ("eth_src", "eth_dst"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and (theirs is None or not mine.covers(theirs)):
                return False
        for name in ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is not None and (theirs is None or not theirs.subnet_of(mine)):
                return False
        return True


def check_acl(field_name: str, rules: Sequence[AclRule]) -> None:
    """Refuses a rule that can never match because an earlier rule with the other action already
    matches everything it does: the operator meant the later rule and would get the earlier one.
    (An unreachable rule with the same action changes nothing and is allowed.)"""
    for index, rule in enumerate(rules):
        for earlier_index, earlier in enumerate(rules[:index]):
            if earlier.action != rule.action and earlier.covers(rule):
                at = f" (line {earlier.line})" if earlier.line is not None else ""
                raise PolicyError(
                    f"contradicting ACL rules: this {rule.action} rule never matches, "
                    f"rule {earlier_index}{at} already matches all it does with "
                    f"{earlier.action}",
                    field=f"{field_name}[{index}]",
                    line=rule.line,
                )
