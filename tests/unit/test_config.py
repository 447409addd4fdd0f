import pytest

from app.cli.evb_nms import parse_args, settings_from_args
from app.config import ConfigError, Settings, build_settings, load_file


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


@pytest.mark.parametrize("values, field", [
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
    ({"db_path": ""}, "db_path"),
])
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
    for flag in ("--of-port", "--of-listen-host", "--rest-listen", "--policies-dir", "--db-path",
                 "--log-level", "--trunk-port", "--canary-interval", "--config"):
        assert flag in text
