"""The OpenFlow channel's settings: loopback by default, TLS all-or-nothing with files that load,
the dpid allow-list from the file and the flags."""

import subprocess
from pathlib import Path

import pytest

from app.cli.evb_nms import _check_of_tls, main, parse_args, settings_from_args
from app.config import ConfigError, Settings, build_settings, load_file, parse_dpid
from topologies.controller_process import free_port

SCRIPT = Path(__file__).resolve().parents[2] / "scripts/of-pki.sh"


def test_openflow_listens_on_loopback_by_default():
    assert Settings().of_listen_host == "127.0.0.1"
    assert settings_from_args(parse_args([])).of_listen_host == "127.0.0.1"


@pytest.mark.parametrize(
    "given", [{"of_tls_privkey": "k.pem", "of_tls_cert": "c.pem"}, {"of_tls_ca_certs": "ca.pem"}]
)
def test_tls_needs_key_certificate_and_ca_certificates_together(given):
    with pytest.raises(ConfigError, match="give all three or none"):
        build_settings(given, {})


def test_tls_files_that_do_not_load_stop_the_start(tmp_path, capsys):
    bad = tmp_path / "nothing.pem"
    bad.write_text("not a certificate\n")
    flags = ["--of-tls-privkey", str(bad), "--of-tls-cert", str(bad), "--of-tls-ca-certs", str(bad)]
    ports = ["--of-port", str(free_port()), "--rest-listen", f"127.0.0.1:{free_port()}"]
    assert main(flags + ports) == 2
    assert "of_tls_cert, of_tls_privkey: cannot load" in capsys.readouterr().err


def test_tls_files_issued_by_the_pki_script_load(tmp_path):
    for args in (["init", str(tmp_path)], ["controller", str(tmp_path)]):
        subprocess.run(["bash", str(SCRIPT), *args], check=True, stdout=subprocess.DEVNULL)
    settings = settings_from_args(
        parse_args(
            [
                "--of-tls-privkey", str(tmp_path / "controller-privkey.pem"),
                "--of-tls-cert", str(tmp_path / "controller-cert.pem"),
                "--of-tls-ca-certs", str(tmp_path / "switchca/cacert.pem"),
            ]
        )
    )  # fmt: skip
    _check_of_tls(settings)


def test_allowed_dpids_from_the_file_and_the_flags(tmp_path):
    conf = tmp_path / "evb.yaml"
    conf.write_text("of_allowed_dpids: [1, '00000000000000e1', '00:00:00:00:00:00:00:e2']\n")
    assert load_file(str(conf))["of_allowed_dpids"] == (1, 0xE1, 0xE2)
    args = parse_args(["--of-allow-dpid", "0x10", "--of-allow-dpid", "0000000000000011"])
    assert settings_from_args(args).of_allowed_dpids == (0x10, 0x11)


@pytest.mark.parametrize("text", ["", "xyz", "1" * 17, True, 1.5])
def test_a_bad_dpid_is_named(text):
    with pytest.raises(ConfigError, match="of_allowed_dpids"):
        parse_dpid(text)


def test_a_dpid_beyond_64_bits_is_refused():
    with pytest.raises(ConfigError, match="of_allowed_dpids"):
        build_settings({"of_allowed_dpids": (2**64,)}, {})
