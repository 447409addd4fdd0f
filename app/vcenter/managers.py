"""The table of VM managers (the setting ``vm_managers``): which VSI Manager IDs each answers
for, and how the controller reaches it: URL, timeout, cache, credentials, webhook, tenants.

A station names its VSI manager in every VDP request (the 16-octet Manager ID). The controller
asks that manager about types it does not know and tells it what became of the VSIs that named
it (app/vcenter/routes.py). An ID is written as a name (``mgr1``), a UUID, or an address, which
VDP carries in the 16 octets as an IPv6 address, an IPv4 one as an IPv4-mapped IPv6 address
(``::ffff:192.0.2.5``, RFC 4291). Every form is normalized as app/policy/profile.py normalizes
the received octets, so a table lookup is one dict lookup.
"""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from app.policy.profile import manager_id_from_octets, normalize_manager_id
from app.vcenter.destinations import DestinationRefused, parse_target

MAX_MANAGERS = 64
MAX_IDS = 64  # Manager IDs per manager
TENANT_MAX = 64
NOTIFICATIONS = "/v1/notifications"
SPEC_KEYS = (
    "name",
    "manager_ids",
    "url",
    "timeout",
    "ttl",
    "negative_ttl",
    "cache",
    "token_file",
    "secret_file",
    "webhook_url",
    "tenants",
)
# key -> (lowest, highest, what)
LIMITS = {
    "timeout": (0.05, 10, "seconds"),
    "ttl": (1, 86400, "seconds"),
    "negative_ttl": (0.1, 3600, "seconds"),
    "cache": (1, 1_000_000, "answers"),
}


@dataclass(frozen=True)
class ManagerSpec:
    """One VM manager. ``manager_ids`` are normalized; ``tenants`` empty: any tenant. Credential
    files are read at each use (app/vcenter/credentials.py); "" sends none."""

    name: str
    manager_ids: tuple[str, ...]
    url: str
    timeout: float = 1.0
    ttl: float = 60.0
    negative_ttl: float = 5.0
    cache: int = 4096
    token_file: str = ""
    secret_file: str = ""
    webhook_url: str = ""  # "": url + /v1/notifications
    tenants: frozenset[str] = frozenset()

    @property
    def notifications_url(self) -> str:
        return self.webhook_url or self.url.rstrip("/") + NOTIFICATIONS

    def refusal(self, tenant: str) -> str | None:
        """Why this manager may not speak for ``tenant``, None if it may."""
        if not self.tenants or tenant in self.tenants:
            return None
        return f"VM manager {self.name} answers for tenants {', '.join(sorted(self.tenants))}"


def manager_id_key(value) -> str:
    """A configured Manager ID in its normalized form: a name or UUID as text, or
    ``{ipv4: ADDRESS}`` / ``{ipv6: ADDRESS}`` as VDP carries the address (ValueError: why)."""
    if isinstance(value, Mapping):
        if len(value) != 1 or not set(value) <= {"ipv4", "ipv6"}:
            raise ValueError(f"expected a name, a UUID, {{ipv4: A}} or {{ipv6: A}}, got {value!r}")
        ((family, text),) = value.items()
        try:
            address = ipaddress.ip_address(text) if isinstance(text, str) else None
        except ValueError:
            address = None
        if address is None or address.version != int(family[-1]):
            raise ValueError(f"expected an {family.upper()} address, got {text!r}")
        if isinstance(address, ipaddress.IPv4Address):
            address = ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + address.packed)
        return manager_id_from_octets(address.packed)
    return normalize_manager_id(value)


def _number(item: dict, key: str, where: str, integer: bool = False):
    low, high, what = LIMITS[key]
    value = item[key]
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        raise ValueError(f"{where}.{key}: expected {low} to {high} {what}, got {value!r}")
    return value


def _url(item: dict, key: str, where: str) -> str:
    url = item[key]
    try:
        parse_target(url)
    except DestinationRefused as err:
        raise ValueError(f"{where}.{key}: {err}") from None
    return url


def _path(item: dict, key: str, where: str) -> str:
    if not isinstance(item[key], str):
        raise ValueError(f"{where}.{key}: expected a file path, got {item[key]!r}")
    return item[key]


def parse_vm_managers(value) -> tuple[ManagerSpec, ...]:
    """``vm_managers`` as the config file writes it: a list of mappings (keys: SPEC_KEYS;
    ``manager_ids`` and ``url`` required). ValueError names the entry and the field."""
    if not isinstance(value, list) or len(value) > MAX_MANAGERS:
        raise ValueError(f"expected a list of at most {MAX_MANAGERS} {{manager_ids, url, ...}}")
    specs: list[ManagerSpec] = []
    owner: dict[str, str] = {}  # Manager ID -> where it was given
    names: set[str] = set()
    for index, item in enumerate(value):
        where = f"vm_managers[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping {{manager_ids, url, ...}}")
        for key in item:
            if key not in SPEC_KEYS:
                raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(SPEC_KEYS)})")
        for key in ("manager_ids", "url"):
            if key not in item:
                raise ValueError(f"{where}.{key}: required")
        ids = item["manager_ids"]
        if not isinstance(ids, list) or not 1 <= len(ids) <= MAX_IDS:
            raise ValueError(f"{where}.manager_ids: expected a list of 1 to {MAX_IDS} Manager IDs")
        keys = []
        for position, given in enumerate(ids):
            field = f"{where}.manager_ids[{position}]"
            try:
                key = manager_id_key(given)
            except ValueError as err:
                raise ValueError(f"{field}: {err}") from None
            other = owner.setdefault(key, field)
            if other != field:
                raise ValueError(f"{field}: Manager ID {key} is given at {other} already")
            keys.append(key)
        fields: dict = {"manager_ids": tuple(keys), "url": _url(item, "url", where)}
        name = item.get("name", keys[0])
        if not isinstance(name, str) or not name.strip() or len(name) > TENANT_MAX:
            raise ValueError(f"{where}.name: expected a text of 1-{TENANT_MAX} characters")
        if name in names:
            raise ValueError(f"{where}.name: {name!r} names another manager already")
        names.add(name)
        for key in ("timeout", "ttl", "negative_ttl", "cache"):
            if key in item:
                fields[key] = _number(item, key, where, integer=key == "cache")
        for key in ("token_file", "secret_file"):
            if key in item:
                fields[key] = _path(item, key, where)
        if "webhook_url" in item:
            fields["webhook_url"] = _url(item, "webhook_url", where)
        tenants = item.get("tenants", [])
        if not isinstance(tenants, list) or not all(
            isinstance(t, str) and t.strip() and len(t) <= TENANT_MAX for t in tenants
        ):
            raise ValueError(f"{where}.tenants: expected a list of tenant names")
        specs.append(ManagerSpec(name=name, tenants=frozenset(tenants), **fields))
    return tuple(specs)
