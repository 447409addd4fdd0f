"""A VSI type profile: what a VM of one VSI Type ID + version may do. Pure data, no I/O.

Every class checks its own invariants on construction and raises PolicyError naming the field,
so a profile built by the YAML loader or pushed over REST is valid by construction.
"""

import functools
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from app.policy.acl import ACTIONS, AclRule, check_acl
from app.policy.errors import PolicyError, check_range

TYPE_ID_MAX = 0xFFFFFF  # 24-bit VSI Type ID
VERSION_MAX = 0xFF  # 8-bit VSI Type Version
VID_MIN, VID_MAX = 1, 4094
RATE_MAX = 0xFFFFFFFF  # OpenFlow meter band rate and burst are 32-bit
GROUP_ID_MIN, GROUP_ID_MAX = 1, 0xFFFFFFFF  # a VDP filter's 32-bit group ID; lldpad refuses 0

MANAGER_ID_OCTETS = 16
_VLAN_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
_UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}(-?[0-9a-fA-F]{4}){3}-?[0-9a-fA-F]{12}")


def manager_id_from_octets(octets: bytes) -> str:
    """The normalized form of the 16-octet VSI Manager ID of a VDP frame: printable ASCII
    followed by NUL padding (lldpad's ``mgrid2=mgr1``) is that text, anything else is the
    lower-case UUID form (``6ba7b810-9dad-11d1-80b4-00c04fd430c8``)."""
    if len(octets) != MANAGER_ID_OCTETS:
        raise ValueError(f"a Manager ID is {MANAGER_ID_OCTETS} octets, got {len(octets)}")
    name = octets.rstrip(b"\0")
    if name and all(0x21 <= octet <= 0x7E for octet in name):
        return name.decode("ascii")
    return str(uuid.UUID(bytes=bytes(octets)))


def normalize_manager_id(text: str) -> str:
    """A configured Manager ID (a name of 1-16 printable ASCII characters, or a UUID) in the form
    ``manager_id_from_octets`` gives for the same wire octets, so the two compare equal."""
    if not isinstance(text, str):
        raise ValueError(f"expected a Manager ID as text, got {text!r}")
    if _UUID_TEXT.fullmatch(text):
        return manager_id_from_octets(uuid.UUID(text).bytes)
    if (
        1 <= len(text) <= MANAGER_ID_OCTETS
        and text.isascii()
        and text.isprintable()
        and " " not in text
    ):
        return text
    raise ValueError(
        f"expected a Manager ID: a name of 1-{MANAGER_ID_OCTETS} printable ASCII "
        f"characters without spaces, or a UUID; got {text!r}"
    )


def check_vid(field_name: str, vid) -> None:
    check_range(field_name, vid, VID_MIN, VID_MAX, "a VLAN ID")


def vlan_span(value) -> range:
    """The VLAN IDs of one item of a VLAN list: a VLAN ID or a ``"first-last"`` range.
    Raises PolicyError (without a field: the error is the item's)."""
    span = _VLAN_RANGE.fullmatch(value) if isinstance(value, str) else None
    first, last = (int(span[1]), int(span[2])) if span else (value, value)
    check_vid("", first)
    check_vid("", last)
    if first > last:
        raise PolicyError(f"range {value!r} is empty")
    return range(first, last + 1)


def parse_vlans(items) -> frozenset[int]:
    """A VLAN list as policy files and JSON documents write it (``[100, "110-119"]``); the
    PolicyError of a bad item names it (``[2]``)."""
    if not isinstance(items, (list, tuple)):
        raise PolicyError(f"expected a list of VLAN IDs and ranges, got {items!r}")
    spans = []
    for index, item in enumerate(items):
        try:
            spans.append(vlan_span(item))
        except PolicyError as err:
            raise err.located(field_prefix=f"[{index}]") from None
    return vlan_set(spans)


def vlan_set(spans: Iterable[range]) -> frozenset[int]:
    """The VLAN IDs of ``spans`` in the time of their number plus 4094, however they overlap
    (a list of 20,000 full ranges cost 80 million set insertions)."""
    vids: set[int] = set()
    end = 0  # by start: the span that reached ``end`` covers every ID from this start to it
    for span in sorted(spans, key=lambda span: span.start):
        if span.stop > end:
            vids.update(range(max(span.start, end), span.stop))
            end = span.stop
    return frozenset(vids)


@dataclass(frozen=True, order=True)
class VsiTypeKey:
    type_id: int
    version: int

    def __post_init__(self) -> None:
        check_range("type_id", self.type_id, 0, TYPE_ID_MAX, "a VSI type ID")
        check_range("version", self.version, 0, VERSION_MAX, "a VSI type version")

    def __str__(self) -> str:
        return f"VSI type {self.type_id} version {self.version}"


@dataclass(frozen=True)
class Qos:
    """Rate limit (kilobits per second, burst in kilobits) and marking; None = leave as is."""

    rate_kbps: int | None = None
    burst_kb: int | None = None
    pcp: int | None = None
    dscp: int | None = None

    def __post_init__(self) -> None:
        if self.rate_kbps is not None:
            check_range("rate_kbps", self.rate_kbps, 1, RATE_MAX, "a rate in kbit/s")
        if self.burst_kb is not None:
            check_range("burst_kb", self.burst_kb, 1, RATE_MAX, "a burst in kbit")
            if self.rate_kbps is None:
                raise PolicyError("burst_kb limits nothing without rate_kbps", field="burst_kb")
        if self.pcp is not None:
            check_range("pcp", self.pcp, 0, 7, "a priority code point")
        if self.dscp is not None:
            check_range("dscp", self.dscp, 0, 63, "a DSCP value")


@dataclass(frozen=True)
class Limits:
    """How many VMs of the type may be associated per port and per switch; None = no limit."""

    max_per_port: int | None = None
    max_per_switch: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_per_port", "max_per_switch"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), 1, 0xFFFF, "a VM count")
        if (
            self.max_per_port is not None
            and self.max_per_switch is not None
            and self.max_per_port > self.max_per_switch
        ):
            raise PolicyError(
                f"max_per_port {self.max_per_port} exceeds max_per_switch {self.max_per_switch}",
                field="max_per_port",
            )


def _check_groups(groups: tuple[tuple[int, int], ...], vlans: frozenset[int]) -> None:
    """(group ID, VLAN) pairs sorted by group ID, each group once, each VLAN one of ``vlans``."""
    if not isinstance(groups, tuple):
        raise PolicyError("expected (group ID, VLAN) pairs", field="groups")
    for index, pair in enumerate(groups):
        where = f"groups[{index}]"
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise PolicyError("expected a (group ID, VLAN) pair", field=where)
        group_id, vlan = pair
        check_range(f"{where}.id", group_id, GROUP_ID_MIN, GROUP_ID_MAX, "a group ID")
        if index and groups[index - 1][0] >= group_id:
            raise PolicyError(
                f"group ID {group_id} is given twice or out of order", field=f"{where}.id"
            )
        if vlan not in vlans:
            raise PolicyError(
                f"VLAN {vlan!r} of group {group_id} is not one of vlans", field=f"{where}.vlan"
            )


@dataclass(frozen=True)
class VsiTypeProfile:
    """``ingress_acl`` filters what the VM sends, ``egress_acl`` what is delivered to it; rules
    apply in order, first match wins, ``acl_default`` decides when none matches.
    ``source_file``/``source_line`` say where the profile was defined (no part in equality)."""

    key: VsiTypeKey
    name: str
    tenant: str
    vlans: frozenset[int]
    manager_ids: frozenset[str]
    default_vlan: int | None = None
    ingress_acl: tuple[AclRule, ...] = ()
    egress_acl: tuple[AclRule, ...] = ()
    acl_default: str = "permit"
    qos: Qos = Qos()
    limits: Limits = Limits()
    # Group ID -> its VLAN (the tenant segment a GroupID filter names), sorted by group ID.
    groups: tuple[tuple[int, int], ...] = ()
    # Whether a VSI of this type may own a whole VLAN at its port (VID, GroupID/VID filters).
    whole_vlan: bool = False
    source_file: str | None = field(default=None, compare=False)
    source_line: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("name", "tenant"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip() or len(value) > 64:
                raise PolicyError(
                    f"expected a non-empty text of at most 64 characters, got {value!r}", field=name
                )
        if not self.vlans:
            raise PolicyError("expected at least one VLAN ID", field="vlans")
        for vid in self.vlans:
            check_vid("vlans", vid)
        if self.default_vlan is not None and self.default_vlan not in self.vlans:
            raise PolicyError(
                f"default_vlan {self.default_vlan} is not one of vlans {sorted(self.vlans)}",
                field="default_vlan",
            )
        if not self.manager_ids:
            raise PolicyError("expected at least one Manager ID", field="manager_ids")
        for manager_id in self.manager_ids:
            try:
                normalized = normalize_manager_id(manager_id)
            except ValueError as err:
                raise PolicyError(str(err), field="manager_ids") from None
            if normalized != manager_id:
                raise PolicyError(
                    f"Manager ID {manager_id!r} is not normalized, expected {normalized!r}",
                    field="manager_ids",
                )
        if self.acl_default not in ACTIONS:
            raise PolicyError(
                f"expected one of {', '.join(ACTIONS)}, got {self.acl_default!r}",
                field="acl_default",
            )
        check_acl("ingress_acl", self.ingress_acl)
        check_acl("egress_acl", self.egress_acl)
        _check_groups(self.groups, self.vlans)
        if not isinstance(self.whole_vlan, bool):
            raise PolicyError(
                f"expected true or false, got {self.whole_vlan!r}", field="whole_vlan"
            )

    @functools.cached_property
    def group_vlans(self) -> Mapping[int, int]:
        return dict(self.groups)

    @property
    def source(self) -> str:
        """``file:line`` where the profile was defined, for messages."""
        if self.source_line is None:
            return self.source_file or "?"
        return f"{self.source_file}:{self.source_line}"

    def resolve_vid(self, requested: int, group_id: int | None = None) -> int | None:
        """The VLAN a filter entry asking for ``requested`` gets, or None to refuse. VID 0 means
        "the bridge chooses": the default_vlan, else the only VLAN of the type. An entry with a
        group ID gets its group's VLAN (VID 0, or that VLAN named); a group the type does not
        map is refused."""
        if group_id is not None:
            vlan = self.group_vlans.get(group_id)
            return vlan if vlan is not None and requested in (0, vlan) else None
        if requested == 0:
            if self.default_vlan is not None:
                return self.default_vlan
            return next(iter(self.vlans)) if len(self.vlans) == 1 else None
        return requested if requested in self.vlans else None

    def allows_manager(self, manager_id: str) -> bool:
        """``manager_id`` in normalized form (see manager_id_from_octets)."""
        return manager_id in self.manager_ids
