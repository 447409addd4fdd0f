"""VSI type profiles as JSON documents: what the REST API takes and returns and the store keeps.

A document has the fields of a profile in a policy file (docs/vsi-types.md), with JSON types.
It is checked by the policy file schema itself (app/policy/schema.py), so a profile pushed over
REST obeys exactly the rules of one loaded from policies/*.yaml.
"""

import dataclasses
import re

import yaml

from app.policy.acl import ETH_TYPE_NAMES, IP_PROTO_NAMES, AclRule
from app.policy.errors import PolicyError
from app.policy.loader import load_text
from app.policy.profile import VsiTypeProfile
from app.policy.schema import ITEMS_MAX, PROFILE_KEYS, PROFILE_REQUIRED, RULE_KEYS
from app.registry.errors import InvalidInput, join
from app.registry.fields import mapping

API_SOURCE = "api"  # source_file of a pushed profile
# Added to the documents the API returns (see ProfileSet.view); ignored on input.
READ_ONLY_KEYS = ("source", "origin", "replaces")
_WRAPPER = "vsi_types[0]"  # the field path of the one profile in the wrapped document
# Lines of the YAML text the document is checked as: they mean nothing to a JSON client.
_LINE_NOTE = re.compile(r" \(line \d+\)")
_NAMES = {
    "eth_type": {number: name for name, number in ETH_TYPE_NAMES.items()},
    "ip_proto": {number: name for name, number in IP_PROTO_NAMES.items()},
}


def parse_profile(body, field: str = "") -> VsiTypeProfile:
    """The profile of a JSON document; InvalidInput names the field (under ``field``)."""
    fields = mapping(body, field, PROFILE_KEYS, PROFILE_REQUIRED, ignored=READ_ONLY_KEYS)
    for name, most in ITEMS_MAX.items():  # before the YAML round trip, which costs per item
        items = fields.get(name)
        if isinstance(items, list) and len(items) > most:
            raise InvalidInput(f"at most {most} items, got {len(items)}", join(field, name))
    # JSON data dumped as YAML reads back with the same types (strings stay quoted strings),
    # so the YAML schema sees exactly what the client sent.
    text = yaml.safe_dump({"vsi_types": [fields]})
    try:
        (profile,) = load_text(text, API_SOURCE)
    except PolicyError as err:
        where = (err.field or "").removeprefix(_WRAPPER).lstrip(".")
        raise InvalidInput(_LINE_NOTE.sub("", err.message), join(field, where)) from None
    return dataclasses.replace(profile, source_file=API_SOURCE, source_line=None)


def profile_document(profile: VsiTypeProfile) -> dict:
    """The JSON document of ``profile``; parse_profile gives the same profile back."""
    document = {
        "type_id": profile.key.type_id,
        "version": profile.key.version,
        "name": profile.name,
        "tenant": profile.tenant,
        "vlans": vlan_ranges(profile.vlans),
        "manager_ids": sorted(profile.manager_ids),
    }
    if profile.default_vlan is not None:
        document["default_vlan"] = profile.default_vlan
    document.update(
        ingress_acl=[rule_document(rule) for rule in profile.ingress_acl],
        egress_acl=[rule_document(rule) for rule in profile.egress_acl],
        acl_default=profile.acl_default,
        qos=_set_fields(profile.qos),
        limits=_set_fields(profile.limits),
    )
    if profile.groups:
        document["groups"] = [{"id": group, "vlan": vlan} for group, vlan in profile.groups]
    if profile.whole_vlan:
        document["whole_vlan"] = True
    return document


def rule_document(rule: AclRule) -> dict:
    """The rule's set fields; EtherTypes and IP protocols by name where they have one."""
    document = {}
    for name in RULE_KEYS:
        value = getattr(rule, name)
        if value is not None:
            value = _NAMES.get(name, {}).get(value, value)
            document[name] = value if isinstance(value, (str, int)) else str(value)
    return document


def vlan_ranges(vids) -> list:
    """Sorted VLAN IDs, runs of three or more written as "first-last" as in policy files."""
    result: list = []
    for vid in sorted(vids):
        last = result[-1] if result else None
        if isinstance(last, str) and int(last.split("-")[1]) == vid - 1:
            result[-1] = f"{last.split('-')[0]}-{vid}"
        elif (
            len(result) >= 2
            and result[-1] == vid - 1
            and result[-2] == vid - 2
            and isinstance(result[-2], int)
        ):
            result[-2:] = [f"{vid - 2}-{vid}"]
        else:
            result.append(vid)
    return result


def _set_fields(section) -> dict:
    return {name: value for name, value in dataclasses.asdict(section).items() if value is not None}
