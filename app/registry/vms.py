"""VM registrations (draft-fw-nvo3-server2vcenter 5.1/5.2): the VM manager says which VSI IDs it
created, with which MACs, for which tenant and VSI type, and what the draft's VM information
(3.5) adds: its IP addresses, its virtual network instance and the host (server) it runs on.
A VM is known by its VSI ID, a UUID."""

import ipaddress
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from app.policy.acl import MacMatch
from app.policy.profile import TYPE_ID_MAX, VERSION_MAX, VsiTypeKey
from app.registry.errors import Conflict, InvalidInput, join
from app.registry.fields import array, integer, mapping, text

VM_KEYS = (
    "vsi_id",
    "macs",
    "tenant",
    "type_id",
    "type_version",
    "name",
    "group",
    "ips",
    "network",
    "host",
)
MAX_IPS = 64
VM_REQUIRED = ("type_id", "type_version")
READ_ONLY_KEYS = ("registered", "updated", "association")  # in what the API returns


@dataclass(frozen=True)
class VmRecord:
    vsi_id: str  # lower-case UUID with dashes
    tenant: str
    type_id: int
    type_version: int
    macs: tuple[str, ...] = ()  # lower-case colon form, unicast, no duplicates
    name: str | None = None
    group: str | None = None  # the group registration (draft 5.3) that last wrote it
    registered: float = 0.0  # time.time() of the first registration
    updated: float = 0.0  # and of the last change
    ips: tuple[str, ...] = ()  # IPv4/IPv6 addresses in their compressed form, no duplicates
    network: str | None = None  # its virtual network instance (draft 3.5)
    host: str | None = None  # the host (vServer) the VM manager runs it on, by name

    @property
    def type_key(self) -> VsiTypeKey:
        return VsiTypeKey(self.type_id, self.type_version)

    def document(self) -> dict:
        # the fields are immutable: a shallow copy, not asdict's deep one (a group writes 19,000)
        return {**vars(self), "macs": list(self.macs), "ips": list(self.ips)}

    @classmethod
    def from_document(cls, document: dict) -> "VmRecord":
        """A stored registration; one stored before IPs were kept has none."""
        return cls(
            **{**document, "macs": tuple(document["macs"]), "ips": tuple(document.get("ips") or ())}
        )


def parse_vsi_id(value, field: str = "vsi_id") -> str:
    """A VSI ID as the REST API writes it: the UUID in lower case with dashes."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidInput(
            f"expected a VSI ID (a UUID like a1b2c3d4-0000-0000-0000-000000001122), got {value!r}",
            field,
        ) from None


def canonical_vsi_id(value: str) -> str:
    """UUID VSI IDs in the bridge's form; other formats (``mac:...``) as given."""
    try:
        return parse_vsi_id(value)
    except InvalidInput:
        return value


def parse_mac(value, field: str) -> str:
    """A VM's MAC address: unicast, in lower-case colon form."""
    try:
        if not isinstance(value, str):
            raise ValueError(f"expected a MAC address like 02:00:00:00:00:01, got {value!r}")
        match = MacMatch.parse(value)
        if match.mask is not None:
            raise ValueError(f"expected one MAC address, got the masked {value!r}")
    except ValueError as err:
        raise InvalidInput(str(err), field) from None
    if int(match.address[:2], 16) & 1:
        raise InvalidInput(f"{match.address} is a multicast address; a VM's MAC is unicast", field)
    return match.address


def parse_vm(
    body,
    field: str,
    tenant_of: Callable[[VsiTypeKey], str | None],
    *,
    vsi_id: str | None = None,
    defaults: dict | None = None,
) -> VmRecord:
    """The registration in a JSON body. ``vsi_id`` is the one of the URL (the body may repeat
    it); ``defaults`` fill fields the body leaves out (a group's type and name). The tenant,
    when left out, is the tenant of the VM's type (``tenant_of``)."""
    fields = {**(defaults or {}), **mapping(body, field, VM_KEYS, ignored=READ_ONLY_KEYS)}
    for key in VM_REQUIRED:
        if key not in fields:
            raise InvalidInput("required field is missing", join(field, key))
    if "vsi_id" in fields:
        given = parse_vsi_id(fields["vsi_id"], join(field, "vsi_id"))
        if vsi_id is not None and given != vsi_id:
            raise InvalidInput(
                f"{given} differs from the VSI ID of the URL, {vsi_id}", join(field, "vsi_id")
            )
        vsi_id = given
    if vsi_id is None:
        raise InvalidInput("required field is missing", join(field, "vsi_id"))
    key = VsiTypeKey(
        integer(fields["type_id"], join(field, "type_id"), 0, TYPE_ID_MAX),
        integer(fields["type_version"], join(field, "type_version"), 0, VERSION_MAX),
    )
    macs = parse_list(fields.get("macs", []), join(field, "macs"), parse_mac)
    if "tenant" in fields:
        tenant = text(fields["tenant"], join(field, "tenant"))
    else:
        tenant = tenant_of(key)
        if tenant is None:
            raise unknown_type(key, join(field, "type_id"))
    optional = {
        name: text(fields[name], join(field, name))
        for name in ("name", "group", "network", "host")
        if name in fields
    }
    return VmRecord(
        vsi_id=vsi_id,
        tenant=tenant,
        type_id=key.type_id,
        type_version=key.version,
        macs=macs,
        ips=parse_list(fields.get("ips", []), join(field, "ips"), parse_ip, MAX_IPS),
        **optional,
    )


def parse_ip(value, field: str) -> str:
    """An IPv4 or IPv6 address in its compressed form."""
    try:
        if not isinstance(value, str):
            raise ValueError
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise InvalidInput(
            f"expected an IP address like 10.0.0.5 or fd00::5, got {value!r}", field
        ) from None


def parse_list(
    value, field: str, parse: Callable[[object, str], str], limit: int | None = None
) -> tuple[str, ...]:
    """A JSON array of texts, each parsed to its canonical form, none twice (MACs, IPs)."""
    items = array(value, field)
    if limit is not None and len(items) > limit:
        raise InvalidInput(f"expected at most {limit}, got {len(items)}", field)
    parsed: list[str] = []
    for index, item in enumerate(items):
        text = parse(item, f"{field}[{index}]")
        if text in parsed:
            raise InvalidInput(f"{text} is given twice", f"{field}[{index}]")
        parsed.append(text)
    return tuple(parsed)


def unknown_type(key: VsiTypeKey, field: str) -> Conflict:
    return Conflict(
        f"{key} is not in the VSI type database; push its profile first or in "
        f"the same group registration",
        field,
    )
