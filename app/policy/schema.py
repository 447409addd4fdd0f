"""The YAML schema of a policy file: turns a composed YAML node tree into VSI type profiles.

Works on nodes rather than loaded data so that every error names the line of the offending
value. This module checks shapes and YAML types; the profile classes check values and
cross-field rules, and their errors are located here by the field they name.
"""

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from app.policy.acl import AclRule, MacMatch, parse_eth_type, parse_ip_proto
from app.policy.errors import PolicyError
from app.policy.profile import (
    Limits,
    Qos,
    VsiTypeKey,
    VsiTypeProfile,
    normalize_manager_id,
    vlan_set,
    vlan_span,
)

TOP_KEYS = ("vsi_types",)
PROFILE_KEYS = (
    "type_id",
    "version",
    "name",
    "tenant",
    "vlans",
    "default_vlan",
    "manager_ids",
    "ingress_acl",
    "egress_acl",
    "acl_default",
    "qos",
    "limits",
    "groups",
    "whole_vlan",
)
PROFILE_REQUIRED = ("type_id", "version", "name", "tenant", "vlans", "manager_ids")
RULE_KEYS = (
    "action",
    "eth_src",
    "eth_dst",
    "eth_type",
    "ipv4_src",
    "ipv4_dst",
    "ipv6_src",
    "ipv6_dst",
    "ip_proto",
    "tp_src",
    "tp_dst",
)
# The most items of a profile's lists. Each ACL rule is a flow per VM and rules are checked
# pairwise for contradictions; more VLAN items than VLANs only repeat; all bound the work one
# profile costs (a pushed one included).
ITEMS_MAX = {
    "vlans": 4094,
    "manager_ids": 32,
    "ingress_acl": 256,
    "egress_acl": 256,
    "groups": 4094,
}
QOS_KEYS = ("rate_kbps", "burst_kb", "pcp", "dscp")
LIMITS_KEYS = ("max_per_port", "max_per_switch")
GROUP_KEYS = ("id", "vlan")

_NULL_TAG = "tag:yaml.org,2002:null"
_FIELD_NAME = re.compile(r"[A-Za-z_0-9]+")


def _line(node: Node) -> int:
    return node.start_mark.line + 1


def _kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "null" if node.tag == _NULL_TAG else repr(node.value)


def _is_null(node: Node | None) -> bool:
    return node is None or (isinstance(node, ScalarNode) and node.tag == _NULL_TAG)


class _Document:
    """One file's node tree: typed access to nodes, errors located in that file."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._constructor = SafeConstructor()

    def error(self, node: Node, field: str, message: str) -> PolicyError:
        return PolicyError(message, file=self.file, line=_line(node), field=field or None)

    @contextmanager
    def at(self, node: Node, field: str, children: dict[str, Node] | None = None) -> Iterator:
        """Locates errors raised inside: at the child node the error's field names (when
        ``children`` are given and hold it), else at ``node``; fields are prefixed by ``field``.
        A ValueError without a field is an error of ``node`` itself."""
        try:
            yield
        except PolicyError as err:
            if err.file is not None:  # raised by this document, already located
                raise
            name = _FIELD_NAME.match(err.field or "")
            child = children.get(name.group()) if children and name else None
            raise err.located(
                file=self.file, line=_line(child or node), field_prefix=field
            ) from None
        except ValueError as err:
            raise self.error(node, field, str(err)) from None

    def mapping(
        self, node: Node, field: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()
    ) -> dict[str, Node]:
        """The mapping's values by key, null values left out; unknown, duplicate and missing
        keys are errors."""
        if not isinstance(node, MappingNode):
            raise self.error(node, field, f"expected a mapping, got {_kind(node)}")
        children: dict[str, Node] = {}
        seen = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                raise self.error(key_node, field, f"expected a key name, got {_kind(key_node)}")
            key = key_node.value
            path = f"{field}.{key}" if field else key
            if key not in allowed:
                raise self.error(
                    key_node, path, f"unknown key {_kind(key_node)}; allowed: {', '.join(allowed)}"
                )
            if key in seen:
                raise self.error(key_node, path, "key given twice")
            seen.add(key)
            if not _is_null(value_node):
                children[key] = value_node
        missing = [repr(key) for key in required if key not in children]
        if missing:
            raise self.error(node, field, f"missing key {', '.join(missing)}")
        return children

    def sequence(self, node: Node, field: str, most: int | None = None) -> list[Node]:
        if not isinstance(node, SequenceNode):
            raise self.error(node, field, f"expected a list, got {_kind(node)}")
        if most is not None and len(node.value) > most:
            raise self.error(node, field, f"expected at most {most} items, got {len(node.value)}")
        return node.value

    def scalar(self, node: Node, field: str):
        """The node's value as YAML types it (int, str, ...)."""
        if not isinstance(node, ScalarNode):
            raise self.error(node, field, f"expected a single value, got {_kind(node)}")
        try:
            return self._constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as err:
            raise self.error(
                node, field, f"bad value {node.value!r}: {getattr(err, 'problem', None) or err}"
            ) from None

    def integer(self, node: Node, field: str) -> int:
        value = self.scalar(node, field)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(node, field, f"expected an integer, got {_kind(node)}")
        return value

    def boolean(self, node: Node, field: str) -> bool:
        value = self.scalar(node, field)
        if not isinstance(value, bool):
            raise self.error(node, field, f"expected true or false, got {_kind(node)}")
        return value

    def text(self, node: Node, field: str) -> str:
        """The text as written: a MAC address or a name stays text even where YAML would read
        a number or a boolean (``10:20:30:40:50:59`` is a base-60 integer in YAML 1.1)."""
        if not isinstance(node, ScalarNode):
            raise self.error(node, field, f"expected a text, got {_kind(node)}")
        return node.value


def parse_document(root: Node | None, file: str) -> tuple[VsiTypeProfile, ...]:
    """The profiles of one composed YAML document (None for an empty file). Raises PolicyError
    listing one problem per bad profile entry."""
    if root is None:
        return ()
    document = _Document(file)
    children = document.mapping(root, "", TOP_KEYS, TOP_KEYS)
    profiles, errors = [], []
    for index, node in enumerate(document.sequence(children["vsi_types"], "vsi_types")):
        try:
            profiles.append(_profile(document, node, f"vsi_types[{index}]"))
        except PolicyError as err:
            errors.append(err)
    if errors:
        raise PolicyError.combine(errors)
    return tuple(profiles)


def _profile(document: _Document, node: Node, field: str) -> VsiTypeProfile:
    children = document.mapping(node, field, PROFILE_KEYS, PROFILE_REQUIRED)
    with document.at(node, field, children):
        key = VsiTypeKey(
            document.integer(children["type_id"], f"{field}.type_id"),
            document.integer(children["version"], f"{field}.version"),
        )
    fields = dict(
        key=key,
        name=document.text(children["name"], f"{field}.name"),
        tenant=document.text(children["tenant"], f"{field}.tenant"),
        vlans=_vlans(document, children["vlans"], f"{field}.vlans"),
        manager_ids=_manager_ids(document, children["manager_ids"], f"{field}.manager_ids"),
        ingress_acl=_acl(document, children, field, "ingress_acl"),
        egress_acl=_acl(document, children, field, "egress_acl"),
        qos=_section(document, children.get("qos"), f"{field}.qos", Qos, QOS_KEYS),
        limits=_section(document, children.get("limits"), f"{field}.limits", Limits, LIMITS_KEYS),
        source_file=document.file,
        source_line=_line(node),
    )
    if "default_vlan" in children:
        fields["default_vlan"] = document.integer(children["default_vlan"], f"{field}.default_vlan")
    if "acl_default" in children:
        fields["acl_default"] = document.text(children["acl_default"], f"{field}.acl_default")
    if "groups" in children:
        fields["groups"] = _groups(document, children["groups"], f"{field}.groups")
    if "whole_vlan" in children:
        fields["whole_vlan"] = document.boolean(children["whole_vlan"], f"{field}.whole_vlan")
    with document.at(node, field, children):
        return VsiTypeProfile(**fields)


def _vlans(document: _Document, node: Node, field: str) -> frozenset[int]:
    """VLAN IDs and ``first-last`` ranges."""
    spans = []
    for index, item in enumerate(document.sequence(node, field, ITEMS_MAX["vlans"])):
        path = f"{field}[{index}]"
        value = document.scalar(item, path)
        with document.at(item, path):
            spans.append(vlan_span(value))
    return vlan_set(spans)


def _manager_ids(document: _Document, node: Node, field: str) -> frozenset[str]:
    ids = set()
    for index, item in enumerate(document.sequence(node, field, ITEMS_MAX["manager_ids"])):
        path = f"{field}[{index}]"
        with document.at(item, path):
            ids.add(normalize_manager_id(document.text(item, path)))
    return frozenset(ids)


def _groups(document: _Document, node: Node, field: str) -> tuple[tuple[int, int], ...]:
    """``{id: GROUP ID, vlan: VLAN}`` items, each group once; sorted for the profile."""
    pairs: dict[int, int] = {}
    for index, item in enumerate(document.sequence(node, field, ITEMS_MAX["groups"])):
        path = f"{field}[{index}]"
        children = document.mapping(item, path, GROUP_KEYS, GROUP_KEYS)
        group_id = document.integer(children["id"], f"{path}.id")
        if group_id in pairs:
            raise document.error(
                children["id"], f"{path}.id", f"group ID {group_id} is given twice"
            )
        pairs[group_id] = document.integer(children["vlan"], f"{path}.vlan")
    return tuple(sorted(pairs.items()))


def _acl(
    document: _Document, children: dict[str, Node], field: str, key: str
) -> tuple[AclRule, ...]:
    """The rules of the profile's ``key`` (ingress_acl, egress_acl); ``field``: the profile."""
    node = children.get(key)
    if node is None:
        return ()
    path = f"{field}.{key}"
    return tuple(
        _rule(document, item, f"{path}[{index}]")
        for index, item in enumerate(document.sequence(node, path, ITEMS_MAX[key]))
    )


def _rule(document: _Document, node: Node, field: str) -> AclRule:
    children = document.mapping(node, field, RULE_KEYS, ("action",))
    # Any: each key's value has the type its AclRule field takes (checked there).
    fields: dict[str, Any] = {"action": document.text(children["action"], f"{field}.action")}
    for key, child in children.items():
        path = f"{field}.{key}"
        with document.at(child, path):
            if key in ("eth_src", "eth_dst"):
                fields[key] = MacMatch.parse(document.text(child, path))
            elif key in ("ipv4_src", "ipv4_dst"):
                fields[key] = _network(ipaddress.IPv4Network, document.text(child, path))
            elif key in ("ipv6_src", "ipv6_dst"):
                fields[key] = _network(ipaddress.IPv6Network, document.text(child, path))
            elif key == "eth_type":
                fields[key] = parse_eth_type(document.scalar(child, path))
            elif key == "ip_proto":
                fields[key] = parse_ip_proto(document.scalar(child, path))
            elif key in ("tp_src", "tp_dst"):
                fields[key] = _port(document, child, path)
    with document.at(node, field, children):
        return AclRule(**fields, line=_line(node))


def _network(cls, text: str):
    try:
        return cls(text)
    except ValueError as err:
        example = "10.0.0.0/8" if cls is ipaddress.IPv4Network else "2001:db8::/32"
        raise ValueError(f"expected a prefix like {example}, got {text!r}: {err}") from None


def _port(document: _Document, node: Node, field: str) -> int:
    value = document.scalar(node, field)
    if isinstance(value, str) and "-" in value:
        raise ValueError(
            "port ranges are not supported: OpenFlow 1.3 matches a TCP/UDP port "
            "exactly; write one rule per port"
        )
    return value


def _section(document: _Document, node: Node | None, field: str, cls, keys: tuple[str, ...]):
    """A mapping of optional integers (qos, limits) into ``cls``."""
    if node is None:
        return cls()
    children = document.mapping(node, field, keys)
    values = {key: document.integer(child, f"{field}.{key}") for key, child in children.items()}
    with document.at(node, field, children):
        return cls(**values)
