import pytest

from app.cli.evb_nms import parse_args, settings_from_args
from app.config import EVB_TIMERS, ConfigError, Settings, build_settings, load_file
from app.session.evb_negotiation import BridgeEvbConfig, bridge_keepalive_timeout, evb_duration


def test_defaults_are_valid():
    settings = build_settings({}, {})
    assert settings == Settings()
    assert settings.rest_address == ("127.0.0.1", 8080)


def test_flags_override_the_file(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("of-port: 7000\nrest_listen: 127.0.0.1:9000\ntrunk_ports: ['x*']\n")
    settings = settings_from_args(parse_args(["--config", str(conf), "--of-port", "7001"]))
    assert settings.of_port == 7001
    assert settings.rest_address == ("127.0.0.1", 9000)
    assert settings.trunk_ports == ("x*",)


def test_repeated_trunk_port_flags_make_a_list():
    settings = settings_from_args(parse_args(["--trunk-port", "a*", "--trunk-port", "b*"]))
    assert settings.trunk_ports == ("a*", "b*")


def test_log_level_is_case_insensitive():
    assert settings_from_args(parse_args(["--log-level", "debug"])).log_level == "DEBUG"


@pytest.mark.parametrize(
    "values, field",
    [
        ({"of_port": 0}, "of_port"),
        ({"of_port": "6653"}, "of_port"),
        ({"of_port": True}, "of_port"),
        ({"rest_listen": "8080"}, "rest_listen"),
        ({"rest_listen": "nohost:80"}, "rest_listen"),
        ({"rest_listen": "127.0.0.1:99999"}, "rest_listen"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"trunk_ports": ()}, "trunk_ports"),
        ({"canary_interval": "soon"}, "canary_interval"),
        ({"canary_interval": 0.01}, "canary_interval"),
        ({"stats_interval": 0.5}, "stats_interval"),
        ({"stats_interval": -1}, "stats_interval"),
        ({"stats_interval": True}, "stats_interval"),
        ({"of_echo_interval": 0.01}, "of_echo_interval"),
        ({"of_echo_interval": "1"}, "of_echo_interval"),
        ({"of_echo_timeout": 0}, "of_echo_timeout"),
        ({"of_echo_timeout": True}, "of_echo_timeout"),
        ({"expected_switch_timeout": 0.5}, "expected_switch_timeout"),
        ({"expected_switch_timeout": -1}, "expected_switch_timeout"),
        ({"db_path": ""}, "db_path"),
        ({"evb_r": 8}, "evb_r"),
        ({"evb_r": -1}, "evb_r"),
        ({"evb_rte": 32}, "evb_rte"),
        ({"evb_rwd": 32}, "evb_rwd"),
        ({"evb_rka": 32}, "evb_rka"),
        ({"evb_rka": "22"}, "evb_rka"),
        ({"evb_rka": 22.0}, "evb_rka"),
        ({"evb_rka": True}, "evb_rka"),
    ],
)
def test_bad_values_name_the_setting(values, field):
    with pytest.raises(ConfigError, match=field):
        build_settings(values, {})


def test_unknown_key_in_file_is_named(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("of_prot: 1\n")
    with pytest.raises(ConfigError, match=r"evb.yaml: unknown setting 'of_prot'"):
        load_file(str(conf))


def test_bad_yaml_names_file_and_line(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("of_port: 1\nrest_listen: [unclosed\n")
    with pytest.raises(ConfigError, match=r"evb.yaml:\d+: not valid YAML"):
        load_file(str(conf))


def test_non_mapping_file_is_refused(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_file(str(conf))


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_file(str(tmp_path / "nope.yaml"))


def test_empty_file_means_defaults(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("")
    assert load_file(str(conf)) == {}


def test_help_documents_every_setting(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in (
        "--of-port",
        "--of-listen-host",
        "--rest-listen",
        "--policies-dir",
        "--db-path",
        "--log-level",
        "--trunk-port",
        "--canary-interval",
        "--config",
        "--evb-r",
        "--evb-rte",
        "--evb-rwd",
        "--evb-rka",
        "--store",
        "--etcd-endpoints",
        "--etcd-prefix",
        "--etcd-timeout",
        "--cdcp-max-channels",
        "--cdcp-svids",
    ):
        assert flag in text


def test_the_default_keepalive_lets_one_lldpad_station_keep_hundreds_of_vsis():
    """lldpad sends one VSI per ECP PDU, one PDU per 10us*2^RTE: at the default RKA a station
    with 200 VMs spends well under half of its ECP on keep-alives (docs/evb-timers.md)."""
    settings = Settings()
    config = settings.evb_config
    assert (config.r, config.rte, config.rwd) == (3, 14, 20)  # lldpad's defaults
    assert config.rka == settings.evb_rka == 23
    assert evb_duration(config.rka) / evb_duration(config.rte) == 512
    assert 200 * evb_duration(config.rte) < 0.4 * evb_duration(config.rka)
    assert bridge_keepalive_timeout(config.r, config.rte, config.rka) == pytest.approx(
        127.55, abs=0.01
    )


def test_evb_timers_from_flags_reach_the_bridge_config():
    settings = settings_from_args(
        parse_args(["--evb-r", "5", "--evb-rte", "15", "--evb-rwd", "21", "--evb-rka", "24"])
    )
    assert (settings.evb_r, settings.evb_rte, settings.evb_rwd, settings.evb_rka) == (5, 15, 21, 24)
    assert settings.evb_config == BridgeEvbConfig(r=5, rte=15, rwd=21, rka=24)


def test_evb_timers_from_the_file_and_flags_win(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("evb-rka: 22\nevb_rwd: 21\n")
    settings = settings_from_args(parse_args(["--config", str(conf), "--evb-rka", "25"]))
    assert settings.evb_config == BridgeEvbConfig(rwd=21, rka=25)


def test_a_bad_evb_timer_in_the_file_names_the_setting_and_its_range(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("evb_rka: 40\n")
    with pytest.raises(
        ConfigError,
        match=r"evb_rka: expected an integer 0-31 "
        r"\(VDP keep-alive exponent.*\), got 40",
    ):
        settings_from_args(parse_args(["--config", str(conf)]))


def test_a_bad_evb_timer_flag_is_refused_by_the_command(capsys):
    from app.cli.evb_nms import main

    assert main(["--evb-r", "9"]) == 2
    assert "evb-nms: evb_r: expected an integer 0-7 (ECP retries), got 9" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(EVB_TIMERS))
def test_evb_timer_ranges_are_the_bridge_configs(name):
    """Every value the setting accepts makes a BridgeEvbConfig, and the values just outside
    are refused by both."""
    field, low, high, _ = EVB_TIMERS[name]
    for value in (low, high):
        assert getattr(build_settings({name: value}, {}).evb_config, field) == value
    for value in (low - 1, high + 1):
        with pytest.raises(ConfigError, match=name):
            build_settings({name: value}, {})
        with pytest.raises(ValueError):
            BridgeEvbConfig(**{field: value})


def test_evb_maxima_and_the_ecp_queue_limit_reach_the_bridge_config():
    settings = settings_from_args(
        parse_args(["--evb-max-rka", "24", "--evb-max-rte", "15", "--ecp-queue-limit", "50"])
    )
    config = settings.evb_config
    assert (config.max_rka, config.max_rte, config.ecp_queue_limit) == (24, 15, 50)
    assert (Settings().evb_config.max_rka, Settings().evb_config.max_rte) == (25, 16)
    with pytest.raises(ConfigError, match="ecp_queue_limit: expected 1 to 1000000 PDUs, got 0"):
        build_settings({"ecp_queue_limit": 0}, {})


def test_event_retention_settings():
    settings = settings_from_args(
        parse_args(["--event-retention-days", "7", "--event-retention-rows", "20000"])
    )
    assert (settings.event_retention_days, settings.event_retention_rows) == (7.0, 20000)
    with pytest.raises(ConfigError, match="event_retention_rows: expected 1000 to"):
        build_settings({"event_retention_rows": 10}, {})
    with pytest.raises(ConfigError, match="event_retention_days"):
        build_settings({"event_retention_days": "forever"}, {})


def test_ownership_settings_from_the_file_and_flags(tmp_path):
    path = tmp_path / "evb-nms.yaml"
    path.write_text(
        "vdp_admission_by_tenant: {red: registered-only}\n"
        "port_tenants:\n"
        "  - {switch: edge1, port: 'edge1-s*', tenants: [blue]}\n"
        "max_vsis_per_port: 64\n"
    )
    flags = parse_args(
        ["--config", str(path), "--vdp-admission", "registered-only", "--max-vsis-per-switch", "99"]
    )
    settings = settings_from_args(flags)
    policy = settings.admission
    assert (policy.mode, policy.mode_for("red"), policy.mode_for("blue")) == (
        "registered-only",
        "registered-only",
        "registered-only",
    )
    assert (policy.max_per_port, policy.max_per_switch) == (64, 99)
    (rule,) = settings.port_tenants
    assert rule.matches("edge1", "edge1-s2") and rule.tenants == {"blue"}
    defaults = Settings().admission
    assert (defaults.mode, defaults.max_per_port, defaults.max_per_switch) == (
        "type-only",
        1024,
        16384,
    )


@pytest.mark.parametrize(
    "values, field",
    [
        ({"vdp_admission": "everyone"}, "vdp_admission"),
        ({"vdp_admission_by_tenant": {"red": "open"}}, "vdp_admission_by_tenant.red"),
        ({"vdp_admission_by_tenant": ["red"]}, "vdp_admission_by_tenant"),
        ({"max_vsis_per_port": 0}, "max_vsis_per_port"),
        ({"max_vsis_per_switch": "many"}, "max_vsis_per_switch"),
        ({"port_tenants": ({"switch": "edge1"},)}, "port_tenants"),
    ],
)
def test_bad_ownership_settings_name_the_setting(values, field):
    with pytest.raises(ConfigError, match=field):
        build_settings(values, {})


@pytest.mark.parametrize(
    "rule",
    [
        "[{switch: edge1, port: 'e*'}]",
        "[{switch: edge1, port: '', tenants: [blue]}]",
        "[{switch: edge1, port: 'e*', tenants: blue}]",
        "{switch: edge1}",
    ],
)
def test_bad_port_tenants_in_the_file_are_named(tmp_path, rule):
    path = tmp_path / "evb-nms.yaml"
    path.write_text(f"port_tenants: {rule}\n")
    with pytest.raises(ConfigError, match="port_tenants"):
        load_file(str(path))


def test_store_settings_from_the_file_and_flags(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text(
        "store: etcd\netcd_endpoints: [http://127.0.0.1:2379, 'https://[::1]:2381']\n"
        "etcd-prefix: /evb-nms/fabric1\n"
    )
    settings = settings_from_args(parse_args(["--config", str(conf), "--etcd-timeout", "2"]))
    assert (settings.store, settings.etcd_prefix, settings.etcd_timeout) == (
        "etcd",
        "/evb-nms/fabric1",
        2.0,
    )
    assert settings.etcd_endpoints == ("http://127.0.0.1:2379", "https://[::1]:2381")
    flags = parse_args(["--etcd-endpoints", "http://a:1, http://b:2"])
    assert settings_from_args(flags).etcd_endpoints == ("http://a:1", "http://b:2")
    conf.write_text("etcd_endpoints: http://c:3,http://d:4\n")
    assert load_file(str(conf)) == {"etcd_endpoints": ("http://c:3", "http://d:4")}


@pytest.mark.parametrize(
    "values, message",
    [
        ({"store": "redis"}, "store: expected one of sqlite, etcd"),
        ({"etcd_endpoints": ()}, "etcd_endpoints: expected a list"),
        ({"etcd_endpoints": ("ftp://a:1",)}, r"etcd_endpoints\[0\]: expected http"),
        ({"etcd_endpoints": ("http://a:1", "http://a:x")}, r"etcd_endpoints\[1\]"),
        ({"etcd_endpoints": ("http://a:1/v3",)}, r"etcd_endpoints\[0\]"),
        ({"etcd_endpoints": ("127.0.0.1:2379",)}, r"etcd_endpoints\[0\]"),
        ({"etcd_endpoints": (5,)}, r"etcd_endpoints\[0\]"),
        ({"etcd_prefix": "evb"}, "etcd_prefix: expected a key prefix"),
        ({"etcd_prefix": "/"}, "etcd_prefix"),
        ({"etcd_prefix": "/a b"}, "etcd_prefix"),
        ({"etcd_prefix": "/é"}, "etcd_prefix"),
        ({"etcd_timeout": 0}, "etcd_timeout: expected 0.1 to 600"),
        ({"etcd_timeout": "5"}, "etcd_timeout"),
    ],
)
def test_bad_store_settings_are_clear_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        build_settings(values, {})


def test_a_bad_store_in_the_file_is_named(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("etcd_endpoints: {a: 1}\n")
    with pytest.raises(ConfigError, match="evb.yaml: etcd_endpoints: expected a list"):
        load_file(str(conf))


def test_cdcp_settings_from_the_file_and_flags(tmp_path):
    assert Settings().cdcp_config.max_channels == 8 and Settings().cdcp_config.svids == (4000, 4094)
    conf = tmp_path / "evb.yaml"
    conf.write_text("cdcp_max_channels: 4\ncdcp_svids: 3000-3099\n")
    settings = settings_from_args(parse_args(["--config", str(conf)]))
    assert (settings.cdcp_config.max_channels, settings.cdcp_config.svids) == (4, (3000, 3099))
    flags = parse_args(
        ["--config", str(conf), "--cdcp-svids", "2000-2010", "--cdcp-max-channels", "0"]
    )
    settings = settings_from_args(flags)
    assert settings.cdcp_svids == (2000, 2010) and not settings.cdcp_config.enabled


@pytest.mark.parametrize(
    "values, message",
    [
        ({"cdcp_max_channels": 168}, r"cdcp_max_channels: expected 0 \(CDCP off\) to 167"),
        ({"cdcp_max_channels": "8"}, "cdcp_max_channels"),
        ({"cdcp_svids": (1, 100)}, "cdcp_svids: expected FIRST-LAST within 2-4094"),
        ({"cdcp_svids": (100, 99)}, "cdcp_svids: expected FIRST-LAST"),
        ({"cdcp_svids": (4000, 4095)}, "cdcp_svids: expected FIRST-LAST"),
        (
            {"cdcp_svids": (4000, 4002)},
            "cdcp_svids: 4000-4002 holds 3 S-VIDs; cdcp_max_channels 8 needs 7",
        ),
        (
            {"cdcp_svids": (100, 199), "vlan_pools": {"blue": frozenset({150})}},
            "cdcp_svids: 100-199 holds VLAN 150 of the pool of tenant blue",
        ),
    ],
)
def test_bad_cdcp_settings_are_clear_errors(values, message):
    with pytest.raises(ConfigError, match=message):
        build_settings({}, values)


def test_a_bad_cdcp_range_is_named_in_the_file_and_by_the_command(tmp_path, capsys):
    from app.cli.evb_nms import main

    conf = tmp_path / "evb.yaml"
    conf.write_text("cdcp_svids: lots\n")
    with pytest.raises(ConfigError, match="cdcp_svids: expected FIRST-LAST S-VIDs like 4000-4094"):
        load_file(str(conf))
    with pytest.raises(SystemExit):
        main(["--cdcp-svids", "4000-x"])
    assert "cdcp_svids: expected FIRST-LAST S-VIDs" in capsys.readouterr().err


@pytest.mark.parametrize(
    "values, named",
    [
        ({"audit_rate": -1}, "audit_rate"),
        ({"audit_rate": 1001}, "audit_rate"),
        ({"audit_rate": True}, "audit_rate"),
        ({"probe_vlans": (0,)}, "probe_vlans"),
        ({"probe_vlans": (4095,)}, "probe_vlans"),
        ({"probe_vlans": tuple(range(1, 66))}, "probe_vlans"),
        ({"probe_interval": 0.1}, "probe_interval"),
    ],
)
def test_the_audit_and_probe_settings_are_bounded(values, named):
    with pytest.raises(ConfigError, match=named):
        Settings(**values).validated()


def test_the_audit_and_probes_come_from_flags_and_files(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("audit-rate: 0\nprobe-vlans: [100, 200]\n")
    settings = build_settings(load_file(str(config)), {"probe_interval": 1.5})
    assert (settings.audit_rate, settings.probe_vlans, settings.probe_interval) == (
        0,
        (100, 200),
        1.5,
    )


def test_liveness_can_be_turned_off_and_its_flags_are_read():
    from app.cli.evb_nms import parse_args, settings_from_args

    args = ["--of-echo-interval", "0", "--of-echo-timeout", "2", "--expected-switch-timeout", "0"]
    settings = settings_from_args(parse_args(args))
    assert (settings.of_echo_interval, settings.of_echo_timeout) == (0, 2)
    assert settings.expected_switch_timeout == 0
    with pytest.raises(ConfigError, match=r"of_echo_interval: expected 0 \(off\) or 0.05 to"):
        build_settings({"of_echo_interval": 0.01}, {})
