"""The bridge's EVB settings per port pattern (evb_ports): the file's form, which rule a port
gets, what a rule leaves to the bridge-wide settings, and errors that name the rule's field."""

import pytest

from app.cli.evb_nms import parse_args, settings_from_args
from app.config import ConfigError, build_settings
from app.session.evb_negotiation import BridgeEvbConfig
from app.session.evb_settings import EvbPortSettings, parse_evb_ports, settings_view


def _settings(rules, default=BridgeEvbConfig()):
    return EvbPortSettings(default, parse_evb_ports(rules))


def test_the_first_matching_rule_decides_and_what_it_leaves_out_is_bridge_wide():
    settings = _settings(
        [
            {"switch": "edge1", "port": "edge1-s1", "rka": 18, "rwd": 17, "rr": "deny"},
            {"switch": "edge*", "rka": 24, "bgid": True, "max_rka": 27},
            {"port": "*-s9", "r": 5},
        ],
        BridgeEvbConfig(rka=23, r=4),
    )
    s1 = settings.for_port("edge1", "edge1-s1")
    assert (s1.rka, s1.rwd, s1.rrcap, s1.bgid, s1.r, s1.max_rka) == (18, 17, False, False, 4, 25)
    s2 = settings.for_port("edge1", "edge1-s2")
    assert (s2.rka, s2.rwd, s2.rrcap, s2.bgid, s2.max_rka) == (24, 20, True, True, 27)
    assert settings.for_port("edge2", "edge2-s9").rka == 24  # the second rule comes first
    assert settings.for_port("agg1", "agg1-s9").r == 5
    assert settings.for_port("agg1", "agg1-dn1") == BridgeEvbConfig(rka=23, r=4)


def test_the_view_writes_the_settings_as_the_file_does():
    view = settings_view(_settings([{"port": "p", "rr": "deny"}]).for_port("s", "p"))
    assert view == {
        "r": 3,
        "rte": 14,
        "rwd": 20,
        "rka": 20,
        "max_r": 7,
        "max_rte": 16,
        "max_rwd": 25,
        "max_rka": 25,
        "rr": "deny",
        "bgid": False,
    }


@pytest.mark.parametrize(
    "rules, message",
    [
        ("edge1", r"expected a list"),
        (["edge1"], r"evb_ports\[0\]: expected a mapping"),
        ([{"rka": 20}], r"evb_ports\[0\]: give switch, port or both"),
        ([{"port": "p"}], r"evb_ports\[0\]: no setting given"),
        ([{"port": "p", "rka": 20, "ttl": 4}], r"evb_ports\[0\]\.ttl: unknown key"),
        ([{"port": "", "rka": 20}], r"evb_ports\[0\]\.port: expected a name pattern"),
        ([{"port": "p", "rka": 20}, {"port": "q", "rr": "yes"}], r"evb_ports\[1\]\.rr: expected"),
        ([{"port": "p", "rr": ["grant"]}], r"evb_ports\[0\]\.rr: expected one of grant, deny"),
    ],
)
def test_malformed_rules_are_refused_naming_the_rule(rules, message):
    with pytest.raises(ValueError, match=message):
        parse_evb_ports(rules)


@pytest.mark.parametrize(
    "rule, message",
    [
        ({"port": "p", "rka": 32}, r"evb_ports\[0\]\.rka: expected an integer 0\.\.31, got 32"),
        ({"port": "p", "r": 8}, r"evb_ports\[0\]\.r: expected an integer 0\.\.7"),
        ({"port": "p", "rwd": True}, r"evb_ports\[0\]\.rwd: expected an integer"),
        ({"port": "p", "bgid": "on"}, r"evb_ports\[0\]\.bgid: expected a bool"),
    ],
)
def test_values_out_of_range_are_refused_naming_the_rules_field(rule, message):
    with pytest.raises(ValueError, match=message):
        _settings([rule])


def test_the_config_file_takes_evb_ports_and_evb_rr(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text(
        "evb_rka: 22\nevb_rr: deny\n"
        "evb_ports:\n  - {switch: edge1, port: 'edge1-s*', rka: 24, rr: grant}\n"
    )
    settings = settings_from_args(parse_args(["--config", str(conf)]))
    ports = settings.evb_port_settings
    assert (ports.for_port("edge1", "edge1-s1").rka, ports.for_port("edge1", "edge1-s1").rrcap) == (
        24,
        True,
    )
    assert (ports.for_port("edge2", "edge2-s1").rka, ports.for_port("edge2", "edge2-s1").rrcap) == (
        22,
        False,
    )
    assert settings_from_args(parse_args(["--evb-rr", "deny"])).evb_config.rrcap is False


def test_bad_evb_ports_in_the_file_stop_the_start_naming_file_rule_and_field(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("evb_ports:\n  - {port: 'edge1-s*', rkaa: 24}\n")
    with pytest.raises(ConfigError, match=r"evb\.yaml: evb_ports\[0\]\.rkaa: unknown key"):
        settings_from_args(parse_args(["--config", str(conf)]))
    conf.write_text("evb_ports:\n  - {port: 'edge1-s*', rka: 40}\n")
    with pytest.raises(ConfigError, match=r"evb_ports\[0\]\.rka: expected an integer 0\.\.31"):
        settings_from_args(parse_args(["--config", str(conf)]))
    with pytest.raises(ConfigError, match="evb_rr: expected one of grant, deny, got 'maybe'"):
        build_settings({"evb_rr": "maybe"}, {})
