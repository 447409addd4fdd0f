"""The REST API's exposure: an open API beyond loopback refuses to start; tokens from the config
file, a tokens file and the environment; rotation with SIGHUP; TLS from the command line."""

import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.cli.evb_nms import main
from app.config import ApiToken, ConfigError, Settings, build_settings
from app.rest.listener import check_exposure
from app.rest.tokens import ENV, TokenSource, gather_tokens, tokens_from_env, tokens_from_file
from tests.unit.test_rest_harness import Harness
from tests.unit.test_rest_server import certificate  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
ADMIN = ApiToken("admin-secret", "*")


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "10.0.0.1:8080", "[::]:8080"])
def test_an_open_api_beyond_loopback_is_refused(listen):
    with pytest.raises(ConfigError, match="--insecure-open-api"):
        check_exposure(Settings(rest_listen=listen), ())
    check_exposure(Settings(rest_listen=listen, insecure_open_api=True), ())
    check_exposure(Settings(rest_listen=listen), (ADMIN,))


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "127.0.0.2:80", "[::1]:8080", "localhost:1"])
def test_an_open_api_on_loopback_starts(listen):
    check_exposure(Settings(rest_listen=listen), ())


def test_the_command_refuses_to_start_open_on_every_address(capsys, tmp_path):
    ports = ["--of-port", str(free_port()), "--rest-listen", f"0.0.0.0:{free_port()}"]
    assert main([*ports, "--db-path", str(tmp_path / "d")]) == 2
    assert "anyone there would be admin" in capsys.readouterr().err


def test_tokens_from_the_environment():
    environ = {ENV: " *:admin-secret, blue:blue-secret:with-colon\n"}
    assert tokens_from_env(environ) == (ADMIN, ApiToken("blue-secret:with-colon", "blue"))
    assert tokens_from_env({}) == ()
    with pytest.raises(ConfigError, match=f"{ENV}: expected TENANT:TOKEN"):
        tokens_from_env({ENV: "admin-secret"})
    with pytest.raises(ConfigError, match=rf"{ENV}\[0\].token: expected a text of at least 8"):
        tokens_from_env({ENV: "*:short"})


def write_tokens(path: Path, *tokens: ApiToken, mode: int = 0o600) -> None:
    path.write_text(json.dumps([{"token": t.token, "tenant": t.tenant} for t in tokens]))
    path.chmod(mode)


def test_a_tokens_file_must_be_closed_to_other_users(tmp_path):
    path = tmp_path / "tokens.yaml"
    write_tokens(path, ADMIN, mode=0o640)
    assert tokens_from_file(str(path)) == (ADMIN,)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="open to other users .mode 0644.: chmod o-rw"):
        tokens_from_file(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        tokens_from_file(str(tmp_path / "missing"))


def test_all_sources_count_and_a_token_given_twice_is_refused(tmp_path):
    path = tmp_path / "tokens.yaml"
    write_tokens(path, ApiToken("blue-secret", "blue"))
    settings = Settings(api_tokens=(ADMIN,), api_tokens_file=str(path))
    assert [t.tenant for t in gather_tokens(settings, {ENV: "red:red-secret"})] == [
        "*",
        "blue",
        "red",
    ]
    with pytest.raises(ConfigError, match="given twice"):
        gather_tokens(settings, {ENV: "red:blue-secret"})


def test_rotation_takes_effect_at_the_next_request_and_a_bad_file_changes_nothing(tmp_path):
    path = tmp_path / "tokens.yaml"
    write_tokens(path, ApiToken("old-secret", "*"))
    source = TokenSource(lambda: tokens_from_file(str(path)))
    harness = Harness(str(tmp_path / "evb.db"), tokens=source)
    assert harness.call("GET", "/v1/vms", token="old-secret")[0] == 200
    write_tokens(path, ApiToken("new-secret", "*"))
    assert source.reload()
    assert harness.call("GET", "/v1/vms", token="new-secret")[0] == 200
    assert harness.call("GET", "/v1/vms", token="old-secret")[0] == 401
    path.write_text("[{token: x}]")
    assert not source.reload()
    assert harness.call("GET", "/v1/vms", token="new-secret")[0] == 200


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def status_of(port: int, token: str, context: ssl.SSLContext) -> int:
    connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=5, context=context)
    try:
        connection.request("GET", "/v1/vms", headers={"Authorization": f"Bearer {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_the_controller_serves_tls_and_rotates_its_tokens_on_sighup(tmp_path, certificate):  # noqa: F811
    cert, key = certificate
    tokens = tmp_path / "tokens.yaml"
    write_tokens(tokens, ApiToken("old-secret", "*"))
    port = free_port()
    command = [sys.executable, "-m", "app.cli.evb_nms", "--of-port", str(free_port())]
    command += ["--rest-listen", f"127.0.0.1:{port}", "--db-path", str(tmp_path / "evb.db")]
    command += ["--api-tokens-file", str(tokens), "--rest-tls-cert", cert, "--rest-tls-key", key]
    environ = {**os.environ, ENV: "blue:env-secret"}
    process = subprocess.Popen(
        command, cwd=ROOT, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    trusting = ssl.create_default_context(cafile=cert)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert status_of(port, "old-secret", trusting) == 200
                break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.2)
        assert status_of(port, "env-secret", trusting) == 200
        write_tokens(tokens, ApiToken("new-secret", "*"))
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while status_of(port, "new-secret", trusting) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert status_of(port, "old-secret", trusting) == 401
        assert status_of(port, "env-secret", trusting) == 200
    finally:
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=20)
    assert b"API tokens reloaded: 2 (1 admin)" in errors


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rest_tls_cert": "rest.crt"}, "rest_tls_cert, rest_tls_key: give both or none"),
        ({"rest_workers": 0}, "rest_workers: expected 1 to 256 threads, got 0"),
        ({"rest_max_connections": 2}, "rest_max_connections: expected 16 to 60000"),
        ({"rest_read_timeout": "10"}, "rest_read_timeout: expected 0.1 to 300 seconds"),
        ({"insecure_open_api": "yes"}, "insecure_open_api: expected true or false"),
        ({"api_tokens_file": 5}, "api_tokens_file: expected a file path"),
    ],
)
def test_rest_settings_are_checked(values, message):
    with pytest.raises(ConfigError, match=message):
        build_settings(values, {})


def test_a_certificate_that_does_not_load_refuses_the_start(capsys, tmp_path):
    (tmp_path / "bad.pem").write_text("not a certificate")
    bad = str(tmp_path / "bad.pem")
    ports = ["--of-port", str(free_port()), "--rest-listen", f"127.0.0.1:{free_port()}"]
    assert main([*ports, "--rest-tls-cert", bad, "--rest-tls-key", bad]) == 2
    assert "rest_tls_cert, rest_tls_key: cannot load" in capsys.readouterr().err
