"""The VSI type profile classes: invariants, Manager IDs, ACL matching, the database."""

import ipaddress
import uuid

import pytest

from app.policy import (
    AclRule,
    Limits,
    MacMatch,
    PolicyError,
    Qos,
    VsiTypeDatabase,
    VsiTypeKey,
    VsiTypeProfile,
    manager_id_from_octets,
    normalize_manager_id,
)

NET4 = ipaddress.IPv4Network
NET6 = ipaddress.IPv6Network


def profile(**fields) -> VsiTypeProfile:
    values = dict(
        key=VsiTypeKey(5, 4),
        name="web",
        tenant="blue",
        vlans=frozenset({100, 101}),
        manager_ids=frozenset({"mgr1"}),
    )
    values.update(fields)
    return VsiTypeProfile(**values)


# Manager IDs


def test_lldpad_name_manager_id_is_the_name():
    assert manager_id_from_octets(b"mgr1" + bytes(12)) == "mgr1"
    assert normalize_manager_id("mgr1") == "mgr1"


def test_sixteen_character_name_needs_no_padding():
    assert manager_id_from_octets(b"A" * 16) == "A" * 16


def test_binary_manager_id_is_a_uuid():
    value = uuid.UUID("6ba7b810-9dad-11d1-80b4-00c04fd430c8")
    assert manager_id_from_octets(value.bytes) == str(value)
    assert manager_id_from_octets(bytes(16)) == "00000000-0000-0000-0000-000000000000"


def test_configured_uuid_is_normalized_like_the_wire_form():
    assert (
        normalize_manager_id("6BA7B810-9DAD-11D1-80B4-00C04FD430C8")
        == "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    )
    assert (
        normalize_manager_id("6ba7b8109dad11d180b400c04fd430c8")
        == "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    )
    # The same 16 octets as the name mgr1: one normalized form.
    assert normalize_manager_id("6d677231-0000-0000-0000-000000000000") == "mgr1"


def test_name_with_nul_inside_is_not_a_name():
    assert manager_id_from_octets(b"ab\0cd" + bytes(11)) == str(
        uuid.UUID(bytes=b"ab\0cd" + bytes(11))
    )


@pytest.mark.parametrize("text", ["", "a b", "x" * 17, "caf\u00e9", "tab\t"])
def test_bad_manager_ids_are_refused(text):
    with pytest.raises(ValueError, match="Manager ID"):
        normalize_manager_id(text)


def test_wrong_octet_count_is_refused():
    with pytest.raises(ValueError, match="16 octets"):
        manager_id_from_octets(b"mgr1")


# Key, QoS, limits


@pytest.mark.parametrize(
    "type_id, version, field",
    [(-1, 0, "type_id"), (0x1000000, 0, "type_id"), (True, 0, "type_id"), (0, 256, "version")],
)
def test_key_ranges(type_id, version, field):
    with pytest.raises(PolicyError) as info:
        VsiTypeKey(type_id, version)
    assert info.value.field == field


def test_key_extremes_are_valid():
    assert VsiTypeKey(0xFFFFFF, 255) > VsiTypeKey(0, 0)


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"pcp": 8}, "pcp"),
        ({"dscp": 64}, "dscp"),
        ({"rate_kbps": 0}, "rate_kbps"),
        ({"burst_kb": 10}, "burst_kb"),
        ({"rate_kbps": 1, "burst_kb": 2**32}, "burst_kb"),
    ],
)
def test_qos_checks(fields, field):
    with pytest.raises(PolicyError) as info:
        Qos(**fields)
    assert info.value.field == field


def test_limits_per_port_above_per_switch_is_a_contradiction():
    with pytest.raises(PolicyError, match="exceeds") as info:
        Limits(max_per_port=5, max_per_switch=4)
    assert info.value.field == "max_per_port"
    assert Limits(max_per_port=4, max_per_switch=4).max_per_port == 4


# Profile


def test_vid_zero_resolves_to_the_default_vlan():
    assert profile(default_vlan=101).resolve_vid(0) == 101
    assert profile(default_vlan=101).resolve_vid(100) == 100
    assert profile(default_vlan=101).resolve_vid(102) is None


def test_vid_zero_without_default_takes_the_only_vlan_or_is_refused():
    assert profile(vlans=frozenset({200})).resolve_vid(0) == 200
    assert profile().resolve_vid(0) is None


def test_vid_1_is_allowed():
    assert profile(vlans=frozenset({1})).resolve_vid(1) == 1


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"default_vlan": 7}, "default_vlan"),
        ({"vlans": frozenset()}, "vlans"),
        ({"vlans": frozenset({4095})}, "vlans"),
        ({"vlans": frozenset({0})}, "vlans"),
        ({"manager_ids": frozenset()}, "manager_ids"),
        ({"manager_ids": frozenset({"6BA7B810-9DAD-11D1-80B4-00C04FD430C8"})}, "manager_ids"),
        ({"manager_ids": frozenset({"a b"})}, "manager_ids"),
        ({"name": " "}, "name"),
        ({"tenant": "t" * 65}, "tenant"),
        ({"acl_default": "allow"}, "acl_default"),
    ],
)
def test_profile_invariants(fields, field):
    with pytest.raises(PolicyError) as info:
        profile(**fields)
    assert info.value.field == field


def test_manager_check():
    assert profile().allows_manager("mgr1")
    assert not profile().allows_manager("MGR1")


def test_source_is_file_and_line_and_not_part_of_equality():
    located = profile(source_file="policies/a.yaml", source_line=3)
    assert located.source == "policies/a.yaml:3"
    assert located == profile()


# ACL rules


def test_eth_type_is_inferred_from_prefixes():
    assert AclRule("deny", ipv4_dst=NET4("10.0.0.0/8")).eth_type == 0x0800
    assert AclRule("deny", ipv6_src=NET6("2001:db8::/32")).eth_type == 0x86DD
    assert AclRule("deny").eth_type is None


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"tp_dst": 80}, "tp_dst"),
        ({"eth_type": 0x0800, "ip_proto": 1, "tp_src": 80}, "tp_src"),
        ({"ip_proto": 6}, "ip_proto"),
        ({"eth_type": 0x0806, "ip_proto": 6}, "ip_proto"),
        ({"eth_type": 0x86DD, "ipv4_src": NET4("10.0.0.0/8")}, "eth_type"),
        ({"ipv4_src": NET4("10.0.0.0/8"), "ipv6_dst": NET6("::/0")}, "ipv6_dst"),
        ({"eth_type": 0x05FF}, "eth_type"),
        ({"eth_type": 0x0800, "ip_proto": 256}, "ip_proto"),
        ({"eth_type": 0x0800, "ip_proto": 6, "tp_dst": 65536}, "tp_dst"),
    ],
)
def test_rule_prerequisites(fields, field):
    with pytest.raises(PolicyError) as info:
        AclRule("deny", **fields)
    assert info.value.field == field


def test_rule_action_is_checked():
    with pytest.raises(PolicyError) as info:
        AclRule("drop")
    assert info.value.field == "action"


def test_mac_match_parses_and_normalizes():
    assert MacMatch.parse("02:AA:00:00:00:01") == MacMatch("02:aa:00:00:00:01")
    assert MacMatch.parse("02:00:00:00:00:00/FF:FF:FF:FF:FF:FF") == MacMatch("02:00:00:00:00:00")
    masked = MacMatch.parse("02:00:00:00:00:00/ff:00:00:00:00:00")
    assert str(masked) == "02:00:00:00:00:00/ff:00:00:00:00:00"
    assert masked.covers(MacMatch("02:12:34:56:78:9a"))
    assert not MacMatch("02:12:34:56:78:9a").covers(masked)


@pytest.mark.parametrize(
    "text",
    [
        "02:00:00:00:00",
        "02-00-00-00-00-01",
        "zz:00:00:00:00:01",
        "02:00:00:00:00:01/00:00:00:00:00:00",
        "02:00:00:00:00:01/ff:00:00:00:00:00",
        "2:0:0:0:0:1",
    ],
)
def test_bad_macs_are_refused(text):
    with pytest.raises(ValueError):
        MacMatch.parse(text)


def test_covers():
    tcp = AclRule("deny", eth_type=0x0800, ip_proto=6)
    web = AclRule("permit", ipv4_dst=NET4("10.1.0.0/16"), ip_proto=6, tp_dst=80)
    assert tcp.covers(web)
    assert not web.covers(tcp)
    assert AclRule("deny").covers(tcp)
    assert AclRule("deny", ipv4_dst=NET4("10.0.0.0/8")).covers(web)
    assert not AclRule("deny", ipv4_dst=NET4("10.2.0.0/16")).covers(web)
    assert not AclRule("deny", eth_src=MacMatch("02:00:00:00:00:01")).covers(tcp)


def test_rule_hidden_by_an_earlier_rule_with_the_other_action_is_a_contradiction():
    with pytest.raises(PolicyError, match="contradicting ACL rules") as info:
        profile(
            ingress_acl=(
                AclRule("deny", eth_type=0x0800, ip_proto=6, line=10),
                AclRule("permit", eth_type=0x0800, ip_proto=6, tp_dst=80, line=11),
            )
        )
    assert (info.value.field, info.value.line) == ("ingress_acl[1]", 11)
    assert "line 10" in info.value.message


def test_rule_hidden_by_an_earlier_rule_with_the_same_action_is_allowed():
    rule = AclRule("deny", eth_type=0x0800)
    assert profile(egress_acl=(rule, rule)).egress_acl == (rule, rule)


def test_more_specific_rule_first_is_fine():
    acl = (
        AclRule("permit", eth_type=0x0800, ip_proto=6, tp_dst=80),
        AclRule("deny", eth_type=0x0800, ip_proto=6),
    )
    assert profile(egress_acl=acl).egress_acl == acl


# Database


def test_database_lookup_and_updates():
    web, db = profile(), profile(key=VsiTypeKey(6, 1), name="db")
    database = VsiTypeDatabase([db, web])
    assert database.get(5, 4) is web
    assert database.get(5, 5) is None
    assert database[VsiTypeKey(6, 1)] is db
    assert database.types() == (VsiTypeKey(5, 4), VsiTypeKey(6, 1))
    assert list(database) == [web, db]
    assert len(database) == 2 and VsiTypeKey(5, 4) in database

    renamed = profile(name="www")
    updated = database.with_profile(renamed)
    assert updated.get(5, 4) is renamed and database.get(5, 4) is web
    smaller = database.without(VsiTypeKey(5, 4))
    assert smaller.types() == (VsiTypeKey(6, 1),) and len(database) == 2
    with pytest.raises(KeyError):
        smaller.without(VsiTypeKey(5, 4))
    assert VsiTypeDatabase() == VsiTypeDatabase([]) and len(VsiTypeDatabase()) == 0


def test_database_refuses_a_type_twice_naming_both_places():
    first = profile(source_file="a.yaml", source_line=3)
    second = profile(source_file="b.yaml", source_line=7)
    with pytest.raises(PolicyError, match="already defined at a.yaml:3") as info:
        VsiTypeDatabase([first, second])
    assert (info.value.file, info.value.line, info.value.field) == ("b.yaml", 7, "type_id")
