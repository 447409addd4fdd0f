"""Loading policies/*.yaml: the shipped files, every field, and errors naming file, line, field."""

import ipaddress
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from app.policy import (
    AclRule,
    Limits,
    MacMatch,
    PolicyError,
    Qos,
    VsiTypeDatabase,
    VsiTypeKey,
    VsiTypeProfile,
    load_file,
    load_policies,
    load_text,
    schema,
)

POLICIES = Path(__file__).resolve().parents[2] / "policies"

FULL = """\
vsi_types:
  - type_id: 0x1234
    version: 255
    name: app
    tenant: green
    vlans: [300, "310-312"]
    default_vlan: 311
    manager_ids: [mgr1, 6BA7B810-9DAD-11D1-80B4-00C04FD430C8]
    ingress_acl:
      - action: permit
        eth_src: 10:20:30:40:50:59
        eth_dst: 02:00:00:00:00:00/ff:ff:ff:00:00:00
        eth_type: ipv4
        ipv4_src: 10.30.0.0/16
        ipv4_dst: 10.40.1.7
        ip_proto: tcp
        tp_src: 1024
        tp_dst: 5432
      - {action: deny, ipv6_src: "2001:db8::/32", ipv6_dst: "::/0", ip_proto: 17, tp_dst: 53}
    egress_acl:
      - {action: permit, eth_type: 0x0806}
    acl_default: deny
    qos: {rate_kbps: 50000, burst_kb: 5000, pcp: 3, dscp: 26}
    limits: {max_per_port: 8, max_per_switch: 32}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def test_shipped_policies_load():
    database = load_policies(POLICIES)
    web = database.get(5, 4)
    assert (web.name, web.tenant, web.resolve_vid(0)) == ("web", "blue", 100)
    assert web.vlans == {100, 101} and web.allows_manager("mgr1")
    assert web.qos.rate_kbps == 10000
    telnet = AclRule("deny", eth_type=0x0800, ip_proto=6, tp_dst=23)
    assert web.ingress_acl[0] == telnet and web.acl_default == "permit"
    db = database.get(6, 1)
    assert (db.name, db.tenant, db.vlans, db.resolve_vid(0)) == ("db", "red", {200}, 200)
    assert any(p.limits != Limits() for p in database)
    assert web.source.startswith(str(POLICIES / "default.yaml") + ":")


def test_example_is_skipped_but_valid_and_documents_every_field():
    example = POLICIES / "vsi-types.example.yaml"
    assert all(p.source_file != str(example) for p in load_policies(POLICIES))
    assert len(load_file(example)) == 1
    keys = set(re.findall(r"^\s*(?:- )?(\w+):", example.read_text(), re.MULTILINE))
    documented = (
        schema.TOP_KEYS
        + schema.PROFILE_KEYS
        + schema.RULE_KEYS
        + schema.QOS_KEYS
        + schema.LIMITS_KEYS
    )
    assert set(documented) <= keys


def test_every_field_reaches_the_model():
    (loaded,) = load_text(FULL, "full.yaml")
    expected = VsiTypeProfile(
        key=VsiTypeKey(0x1234, 255),
        name="app",
        tenant="green",
        vlans=frozenset({300, 310, 311, 312}),
        default_vlan=311,
        manager_ids=frozenset({"mgr1", "6ba7b810-9dad-11d1-80b4-00c04fd430c8"}),
        ingress_acl=(
            AclRule(
                "permit",
                eth_src=MacMatch("10:20:30:40:50:59"),
                eth_dst=MacMatch("02:00:00:00:00:00", "ff:ff:ff:00:00:00"),
                eth_type=0x0800,
                ipv4_src=ipaddress.IPv4Network("10.30.0.0/16"),
                ipv4_dst=ipaddress.IPv4Network("10.40.1.7/32"),
                ip_proto=6,
                tp_src=1024,
                tp_dst=5432,
            ),
            AclRule(
                "deny",
                eth_type=0x86DD,
                ipv6_src=ipaddress.IPv6Network("2001:db8::/32"),
                ipv6_dst=ipaddress.IPv6Network("::/0"),
                ip_proto=17,
                tp_dst=53,
            ),
        ),
        egress_acl=(AclRule("permit", eth_type=0x0806),),
        acl_default="deny",
        qos=Qos(rate_kbps=50000, burst_kb=5000, pcp=3, dscp=26),
        limits=Limits(max_per_port=8, max_per_switch=32),
    )
    assert loaded == expected
    assert (loaded.source_file, loaded.source_line) == ("full.yaml", 2)
    assert [rule.line for rule in loaded.ingress_acl] == [10, 19]


def test_optional_fields_default_and_null_means_left_out():
    (loaded,) = load_text(
        "vsi_types:\n- {type_id: 1, version: 1, name: a, tenant: t, "
        "vlans: [5], manager_ids: [m], default_vlan: ~, qos: null}\n",
        "f",
    )
    assert (loaded.default_vlan, loaded.ingress_acl, loaded.egress_acl) == (None, (), ())
    assert (loaded.acl_default, loaded.qos, loaded.limits) == ("permit", Qos(), Limits())


def test_empty_or_comment_only_file_has_no_profiles():
    assert load_text("", "f") == ()
    assert load_text("# nothing yet\n", "f") == ()
    assert load_text("vsi_types: []\n", "f") == ()


def replace_line(number: int, new: str) -> str:
    lines = FULL.splitlines()
    lines[number - 1] = new
    return "\n".join(lines) + "\n"


ERROR_CASES = {
    "yaml syntax": ("vsi_types: [\n  - x\n", 2, None, "not valid YAML"),
    "tab indent": ("vsi_types:\n\t- x\n", 2, None, "not valid YAML"),
    "two documents": ("vsi_types: []\n---\nvsi_types: []\n", 2, None, "not valid YAML"),
    "control character": ("vsi_types: []\n# \x07\n", 2, None, "not allowed"),
    "top level list": ("- type_id: 5\n", 1, None, "expected a mapping, got a list"),
    "top level scalar": ("hello\n", 1, None, "expected a mapping, got 'hello'"),
    "no vsi_types": ("{}\n", 1, None, "missing key 'vsi_types'"),
    "vsi_types not a list": ("vsi_types: {a: 1}\n", 1, "vsi_types", "expected a list"),
    "unknown top key": (
        "vsi_types: []\nvsi_type: []\n",
        2,
        "vsi_type",
        "unknown key 'vsi_type'; allowed: vsi_types",
    ),
    "unknown profile key": (
        replace_line(4, "    nmae: app"),
        4,
        "vsi_types[0].nmae",
        "unknown key 'nmae'; allowed: type_id, version, name",
    ),
    "unknown rule key": (
        replace_line(17, "        port: 1024"),
        17,
        "vsi_types[0].ingress_acl[0].port",
        "allowed: action, eth_src",
    ),
    "duplicate key": (replace_line(5, "    name: x"), 5, "vsi_types[0].name", "twice"),
    "missing key": (replace_line(5, ""), 2, "vsi_types[0]", "missing key 'tenant'"),
    "type id wrong type": (
        replace_line(2, "  - type_id: five"),
        2,
        "vsi_types[0].type_id",
        "expected an integer, got 'five'",
    ),
    "type id boolean": (
        replace_line(2, "  - type_id: yes"),
        2,
        "vsi_types[0].type_id",
        "expected an integer",
    ),
    "type id float": (
        replace_line(2, "  - type_id: 5.0"),
        2,
        "vsi_types[0].type_id",
        "expected an integer",
    ),
    "type id range": (
        replace_line(2, "  - type_id: 16777216"),
        2,
        "vsi_types[0].type_id",
        "expected a VSI type ID 0-16777215, got 16777216",
    ),
    "version range": (replace_line(3, "    version: 256"), 3, "vsi_types[0].version", "0-255"),
    "name a list": (replace_line(4, "    name: [a]"), 4, "vsi_types[0].name", "expected a text"),
    "vlans not a list": (
        replace_line(6, "    vlans: 300"),
        6,
        "vsi_types[0].vlans",
        "expected a list, got '300'",
    ),
    "vlan range": (
        replace_line(6, "    vlans: [300, 4095]"),
        6,
        "vsi_types[0].vlans[1]",
        "expected a VLAN ID 1-4094, got 4095",
    ),
    "vlan zero": (replace_line(6, "    vlans: [0]"), 6, "vsi_types[0].vlans[0]", "got 0"),
    "vlan span backwards": (
        replace_line(6, "    vlans: [300, '312-310']"),
        6,
        "vsi_types[0].vlans[1]",
        "is empty",
    ),
    "vlan span out of range": (
        replace_line(6, "    vlans: ['4000-4095']"),
        6,
        "vsi_types[0].vlans[0]",
        "got 4095",
    ),
    "default not in vlans": (
        replace_line(7, "    default_vlan: 400"),
        7,
        "vsi_types[0].default_vlan",
        r"default_vlan 400 is not one of vlans \[300, 310, 311, 312\]",
    ),
    "bad manager id": (
        replace_line(8, "    manager_ids: [mgr1, a-name-longer-than-16]"),
        8,
        "vsi_types[0].manager_ids[1]",
        "1-16 printable ASCII",
    ),
    "no manager ids": (
        replace_line(8, "    manager_ids: []"),
        8,
        "vsi_types[0].manager_ids",
        "at least one",
    ),
    "rule not a mapping": (
        replace_line(19, "      - permit"),
        19,
        "vsi_types[0].ingress_acl[1]",
        "expected a mapping, got 'permit'",
    ),
    "bad action": (
        replace_line(10, "      - action: allow"),
        10,
        "vsi_types[0].ingress_acl[0].action",
        "expected one of permit, deny",
    ),
    "bad mac": (
        replace_line(11, "        eth_src: 10:20:30:40:50"),
        11,
        "vsi_types[0].ingress_acl[0].eth_src",
        "expected a MAC address",
    ),
    "bad eth type": (
        replace_line(13, "        eth_type: ip"),
        13,
        "vsi_types[0].ingress_acl[0].eth_type",
        "expected an EtherType",
    ),
    "bad prefix": (
        replace_line(14, "        ipv4_src: 10.30.0.1/16"),
        14,
        "vsi_types[0].ingress_acl[0].ipv4_src",
        "host bits set",
    ),
    "ipv6 in ipv4 field": (
        replace_line(14, "        ipv4_src: '2001:db8::/32'"),
        14,
        "vsi_types[0].ingress_acl[0].ipv4_src",
        "expected a prefix like",
    ),
    "ipv4 with ipv6 eth type": (
        replace_line(13, "        eth_type: ipv6"),
        13,
        "vsi_types[0].ingress_acl[0].eth_type",
        "IPv4 prefixes need eth_type 0x0800",
    ),
    "port out of range": (
        replace_line(18, "        tp_dst: 70000"),
        18,
        "vsi_types[0].ingress_acl[0].tp_dst",
        "expected a port 0-65535, got 70000",
    ),
    "port range": (
        replace_line(18, "        tp_dst: 8000-8080"),
        18,
        "vsi_types[0].ingress_acl[0].tp_dst",
        "port ranges are not supported",
    ),
    "port without protocol": (
        replace_line(16, ""),
        17,
        "vsi_types[0].ingress_acl[0].tp_src",
        "needs ip_proto tcp or udp",
    ),
    "port with icmp": (
        replace_line(16, "        ip_proto: icmp"),
        17,
        "vsi_types[0].ingress_acl[0].tp_src",
        "needs ip_proto tcp or udp",
    ),
    "protocol without ip": (
        replace_line(19, "      - {action: deny, ip_proto: 17}"),
        19,
        "vsi_types[0].ingress_acl[1].ip_proto",
        "needs eth_type ipv4 or ipv6",
    ),
    "contradicting rules": (
        replace_line(
            21, "      - {action: permit, eth_type: 0x0806}\n      - {action: deny, eth_type: arp}"
        ),
        22,
        "vsi_types[0].egress_acl[1]",
        r"contradicting ACL rules.*rule 0 \(line 21\)",
    ),
    "acl not a list": (
        replace_line(21, "      {action: permit}"),
        21,
        "vsi_types[0].egress_acl",
        "expected a list",
    ),
    "bad acl default": (
        replace_line(22, "    acl_default: allow"),
        22,
        "vsi_types[0].acl_default",
        "expected one of permit, deny",
    ),
    "pcp range": (
        replace_line(23, "    qos: {pcp: 8}"),
        23,
        "vsi_types[0].qos.pcp",
        "expected a priority code point 0-7, got 8",
    ),
    "dscp range": (replace_line(23, "    qos: {dscp: 64}"), 23, "vsi_types[0].qos.dscp", "0-63"),
    "burst without rate": (
        replace_line(23, "    qos: {burst_kb: 100}"),
        23,
        "vsi_types[0].qos.burst_kb",
        "without rate_kbps",
    ),
    "unknown qos key": (
        replace_line(23, "    qos: {rate: 100}"),
        23,
        "vsi_types[0].qos.rate",
        "allowed: rate_kbps, burst_kb, pcp, dscp",
    ),
    "limits contradiction": (
        replace_line(24, "    limits: {max_per_port: 9, max_per_switch: 8}"),
        24,
        "vsi_types[0].limits.max_per_port",
        "exceeds",
    ),
    "limit zero": (
        replace_line(24, "    limits: {max_per_switch: 0}"),
        24,
        "vsi_types[0].limits.max_per_switch",
        "1-65535",
    ),
    "unknown tag": (replace_line(3, "    version: !foo 1"), 3, "vsi_types[0].version", "bad value"),
    "impossible date": (
        replace_line(3, "    version: 2001-02-30"),
        3,
        "vsi_types[0].version",
        "bad value",
    ),
}


@pytest.mark.parametrize("text, line, field, message", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_errors_name_file_line_and_field(tmp_path, text, line, field, message):
    path = tmp_path / "web.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_file(path)
    error = info.value
    assert (error.file, error.line, error.field) == (str(path), line, field)
    assert re.search(message, error.message), error.message
    assert str(error).startswith(f"{path}:{line}: {field + ': ' if field else ''}")


def test_error_message_format():
    with pytest.raises(PolicyError) as info:
        load_text(replace_line(18, "        tp_dst: 70000"), "policies/web.yaml")
    assert str(info.value) == (
        "policies/web.yaml:18: vsi_types[0].ingress_acl[0].tp_dst: "
        "expected a port 0-65535, got 70000"
    )


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_text("vsi_types: " + "[" * 1500 + "]" * 1500, "f")


def test_aliases_work_and_recursive_ones_are_errors():
    shared = FULL.replace("    egress_acl:\n      - {action: permit, eth_type: 0x0806}\n", "")
    shared = shared.replace("    ingress_acl:\n", "    ingress_acl: &rules\n")
    shared = shared.replace(
        "    acl_default: deny\n", "    acl_default: deny\n    egress_acl: *rules\n"
    )
    (loaded,) = load_text(shared, "f")
    assert loaded.egress_acl == loaded.ingress_acl
    with pytest.raises(PolicyError, match="expected a mapping, got a list"):
        load_text("vsi_types: &a [*a]\n", "f")


def test_non_utf8_file_names_the_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("vsi_types: []\n# caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8") as info:
        load_file(path)
    assert (info.value.file, info.value.line) == (str(path), 2)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbfvsi_types: []\n")
    assert load_file(path) == ()


def test_unreadable_file_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="cannot read") as info:
        load_file(tmp_path / "missing.yaml")
    assert info.value.file == str(tmp_path / "missing.yaml")


def test_empty_directory_gives_an_empty_database(tmp_path):
    assert load_policies(tmp_path) == VsiTypeDatabase()


def test_missing_directory_is_an_error(tmp_path):
    with pytest.raises(PolicyError, match="not a directory") as info:
        load_policies(tmp_path / "nope")
    assert info.value.file == str(tmp_path / "nope")


def test_which_files_are_loaded(tmp_path):
    entry = (
        "vsi_types: [{{type_id: {0}, version: 1, name: n, tenant: t, vlans: [5], "
        "manager_ids: [m]}}]\n"
    )
    write(tmp_path, "a.yaml", entry.format(1))
    write(tmp_path, "b.yml", entry.format(2))
    write(tmp_path, "c.example.yaml", entry.format(3))
    write(tmp_path, ".#d.yaml", entry.format(4))
    write(tmp_path, "e.yaml.orig", entry.format(5))
    (tmp_path / "f.yaml").mkdir()
    assert load_policies(tmp_path).types() == (VsiTypeKey(1, 1), VsiTypeKey(2, 1))


def test_type_in_two_files_names_both(tmp_path):
    entry = (
        "vsi_types:\n  - {type_id: 5, version: 4, name: n, tenant: t, vlans: [5], "
        "manager_ids: [m]}\n"
    )
    first = write(tmp_path, "a.yaml", entry)
    second = write(tmp_path, "b.yaml", "# second\n" + entry)
    with pytest.raises(
        PolicyError, match=f"VSI type 5 version 4 is already defined at {re.escape(str(first))}:2"
    ) as info:
        load_policies(tmp_path)
    assert (info.value.file, info.value.line, info.value.field) == (str(second), 3, "type_id")


def test_type_twice_in_one_file_is_an_error(tmp_path):
    entry = "  - {type_id: 5, version: 4, name: n, tenant: t, vlans: [5], manager_ids: [m]}\n"
    write(tmp_path, "a.yaml", "vsi_types:\n" + entry + entry)
    with pytest.raises(PolicyError, match=r"a.yaml:2") as info:
        load_policies(tmp_path)
    assert info.value.line == 3


def test_all_problems_of_a_directory_are_reported_together(tmp_path):
    write(tmp_path, "a.yaml", "vsi_types: [\n")
    write(
        tmp_path,
        "b.yaml",
        """\
        vsi_types:
          - {type_id: 1, version: 1, name: n, tenant: t, vlans: [5000], manager_ids: [m]}
          - {type_id: 2, version: 1, name: n, tenant: t, vlans: [5], manager_ids: [m]}
          - {type_id: 3, version: 1, name: n, tenant: t, vlans: [5], manager_ids: []}
        """,
    )
    # A file with errors contributes no profiles; the good files are still checked together.
    for name in ("c.yaml", "d.yaml"):
        write(
            tmp_path,
            name,
            "vsi_types: [{type_id: 2, version: 1, name: n, tenant: t, "
            "vlans: [5], manager_ids: [m]}]\n",
        )
    with pytest.raises(PolicyError) as info:
        load_policies(tmp_path)
    where = [(Path(e.file).name, e.line, e.field) for e in info.value.errors]
    assert where == [
        ("a.yaml", 2, None),
        ("b.yaml", 2, "vsi_types[0].vlans[0]"),
        ("b.yaml", 4, "vsi_types[2].manager_ids"),
        ("d.yaml", 1, "type_id"),
    ]
    assert (Path(info.value.file).name, info.value.line) == ("a.yaml", 2)
    assert str(info.value).count("\n") == 3


def test_a_failed_reload_leaves_the_loaded_database_alone(tmp_path):
    write(tmp_path, "a.yaml", (POLICIES / "default.yaml").read_text())
    current = load_policies(tmp_path)
    write(tmp_path, "b.yaml", "vsi_types: [1]\n")
    with pytest.raises(PolicyError):
        current = load_policies(tmp_path)
    assert current.get(5, 4).name == "web"


def test_loader_matches_plain_yaml_reading_of_the_shipped_file():
    """Guards against the node walker and PyYAML disagreeing on what the file says."""
    data = yaml.safe_load((POLICIES / "default.yaml").read_text())
    database = load_policies(POLICIES)
    assert [(e["type_id"], e["version"], e["name"]) for e in data["vsi_types"]] == [
        (p.key.type_id, p.key.version, p.name) for p in database
    ]
