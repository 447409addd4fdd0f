"""The reference VM manager (`evb-vcenter`): its resources, end to end with the controller's client
and notifier, pushing profiles to the controller, and the command line."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.events import EventLog
from app.policy.loader import load_file
from app.registry.documents import parse_profile, profile_document
from app.vcenter.client import LookupStatus, VcenterClient
from app.vcenter.notifier import Notifier
from app.vcenter.reference import ReferenceManager, main, push
from app.vcenter.transport import exchange, parse_json
from tests.unit.test_vcenter_http import Scripted, closed_port_url, served

ROOT = Path(__file__).resolve().parents[2]
POLICY = """\
vsi_types:
  - type_id: 5
    version: 4
    name: web
    tenant: blue
    vlans: [100, 101]
    default_vlan: 100
    manager_ids: [mgr1]
    ingress_acl:
      - {action: deny, eth_type: ipv4, ip_proto: tcp, tp_dst: 23}
    qos: {rate_kbps: 10000, burst_kb: 1000}
  - type_id: 6
    version: 1
    name: db
    tenant: green
    vlans: ["200-209"]
    manager_ids: [mgr1, mgr2]
"""
VSI = "a1b2c3d4-0000-0000-0000-000000001122"
VM = {
    "tenant": "blue",
    "type_id": 5,
    "type_version": 4,
    "macs": ["52:00:00:11:22:33"],
    "name": "web-1",
    "group": "web-tier",
}


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "vcenter.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def profiles(policy_file):
    return load_file(policy_file)


def call(method: str, url: str, body=None):
    answer = exchange(method, url, body=body, timeout=2)
    return answer.status, (parse_json(answer.body) if answer.body else None)


# resources


def test_vsi_types(profiles):
    with served(ReferenceManager(profiles)) as url:
        assert call("GET", url + "/v1/vsi-types/5/4?manager=mgr1") == (
            200,
            profile_document(profiles[0]),
        )
        assert call("GET", url + "/v1/vsi-types/6/1/") == (200, profile_document(profiles[1]))
        assert call("GET", url + "/v1/vsi-types") == (200, [profile_document(p) for p in profiles])
        assert call("GET", url + "/v1/vsi-types/5/3") == (404, {"error": "no VSI type 5 version 3"})
        status, body = call("GET", url + "/v1/vsi-types/5/256")
        assert status == 400 and "version: " in body["error"]


def test_vm_registration_and_deregistration(profiles):
    with served(ReferenceManager(profiles)) as url:
        vm_url = f"{url}/v1/vms/{VSI.upper()}"
        status, created = call("PUT", vm_url, VM)
        assert status == 201
        assert created == {
            "vsi_id": VSI,
            **VM,
            "registered": created["registered"],
            "updated": created["registered"],
            "ips": [],
            "network": None,
            "host": None,
        }
        time.sleep(0.01)
        status, updated = call("PUT", vm_url, {**VM, "vsi_id": VSI, "group": "db-tier"})
        assert status == 200 and updated["group"] == "db-tier"
        assert updated["registered"] == created["registered"] < updated["updated"]
        assert call("GET", f"{url}/v1/vms/{VSI}") == (200, updated)
        assert call("GET", f"{url}/v1/vms")[1] == [updated]
        assert call("DELETE", vm_url) == (204, None)
        assert call("GET", vm_url)[0] == 404
        status, body = call("DELETE", vm_url)
        assert status == 404 and "no VM with VSI ID" in body["error"]


def test_vm_tenant_defaults_to_its_types(profiles):
    with served(ReferenceManager(profiles)) as url:
        vm = {key: value for key, value in VM.items() if key != "tenant"}
        assert call("PUT", f"{url}/v1/vms/{VSI}", vm)[1]["tenant"] == "blue"
        status, body = call("PUT", f"{url}/v1/vms/{VSI}", {**vm, "type_id": 9})
        assert status == 400 and "not in the VSI type database" in body["error"]


@pytest.mark.parametrize(
    "body, message",
    [
        ({**VM, "macs": ["x"]}, "macs[0]: "),
        ({**VM, "vsi_id": "a1b2c3d4-0000-0000-0000-000000009999"}, "vsi_id: "),
        ({**VM, "colour": "red"}, "colour: unknown field"),
        ([VM], "expected a JSON object"),
    ],
)
def test_vm_registration_refuses_bad_input(body, message):
    with served(ReferenceManager()) as url:
        status, answer = call("PUT", f"{url}/v1/vms/{VSI}", body)
        assert status == 400 and message in answer["error"]
        assert call("GET", f"{url}/v1/vms")[1] == []


def test_bad_json_body_and_bad_vsi_id():
    with served(ReferenceManager()) as url:
        answer = exchange("PUT", f"{url}/v1/vms/{VSI}", timeout=2, body=None)
        assert answer.status == 400 and b"bad JSON" in answer.body
        status, body = call("GET", f"{url}/v1/vms/10.0.0.1")
        assert status == 400 and "expected a VSI ID (a UUID" in body["error"]


def test_notifications_are_stored_and_read_back():
    with served(ReferenceManager()) as url:
        assert call("POST", url + "/v1/notifications", {"kind": "vsi.refused", "seq": 1}) == (
            204,
            None,
        )
        assert call("POST", url + "/v1/notifications", {"kind": "vsi.associated"})[0] == 204
        assert call("POST", url + "/v1/notifications", {"seq": 3})[0] == 400
        stored = call("GET", url + "/v1/notifications")[1]
        assert [n["kind"] for n in stored] == ["vsi.refused", "vsi.associated"]
        assert all(isinstance(n["received"], float) for n in stored)
        assert [n["kind"] for n in call("GET", url + "/v1/notifications?kind=vsi.refused")[1]] == [
            "vsi.refused"
        ]


def test_unknown_resources_and_methods():
    with served(ReferenceManager()) as url:
        assert call("GET", url + "/v2/vsi-types")[0] == 404
        status, body = call("DELETE", url + "/v1/vsi-types/5/4")
        assert status == 405 and "allowed: GET" in body["error"]
        assert call("GET", url + "/v1/health") == (
            200,
            {"status": "ok", "profiles": 0, "vms": 0, "notifications": 0},
        )


def test_delay_slows_every_answer():
    with served(ReferenceManager(delay=0.3)) as url:
        start = time.monotonic()
        assert call("GET", url + "/v1/health")[0] == 200
        assert time.monotonic() - start >= 0.3


# end to end with the controller's side


def test_client_and_notifier_end_to_end(profiles):
    manager = ReferenceManager(profiles)
    with served(manager) as url:
        vcenter = VcenterClient(url, timeout=1.0)
        found = vcenter.lookup_profile(5, 4, "mgr1")
        assert found.found and found.value == profiles[0]
        assert vcenter.lookup_profile(7, 1, "mgr1").status is LookupStatus.NOT_FOUND

        assert vcenter.lookup_vm(VSI).status is LookupStatus.NOT_FOUND
        assert call("PUT", f"{url}/v1/vms/{VSI}", VM)[0] == 201
        vm = VcenterClient(url).lookup_vm(VSI)
        assert vm.found and vm.value.group == "web-tier" and vm.value.macs == tuple(VM["macs"])

        notifier = Notifier(url + "/v1/notifications")
        log = EventLog()
        log.add_sink(notifier)
        log.emit("vsi.associated", switch="edge1", port="edge1-s1", vsi=VSI)
        log.emit("flows.installed", switch="edge1")
        log.emit(
            "vsi.associated", switch="edge2", port="edge2-s1", vsi=VSI, moved_from="edge1/edge1-s1"
        )
        log.emit("vsi.deassociated", switch="edge2", port="edge2-s1", vsi=VSI, initiator="station")
        assert notifier.flush(5)
        stored = call("GET", url + "/v1/notifications")[1]
        assert [(n["kind"], n["seq"]) for n in stored] == [
            ("vsi.associated", 1),
            ("vsi.associated", 2),
            ("vsi.deassociated", 3),
        ]
        assert stored[1]["detail"]["moved_from"] == "edge1/edge1-s1"
        notifier.close()


def test_slow_reference_manager_is_unreachable_for_the_client(profiles):
    with served(ReferenceManager(profiles, delay=3)) as url:
        start = time.monotonic()
        result = VcenterClient(url, timeout=0.5).lookup_profile(5, 4, "mgr1")
        assert result.status is LookupStatus.UNREACHABLE
        assert time.monotonic() - start < 2.5  # not the manager's 3 s


# pushing profiles to the controller


def controller(status: int = 200) -> tuple[Scripted, list[str]]:
    """A stand-in for the controller's PUT /v1/profiles/{type_id}/{version}."""
    tokens = []

    def answer(number, environ):
        tokens.append(environ.get("HTTP_AUTHORIZATION"))
        return status, ({"error": "vlans[0]: out of range"} if status >= 400 else {})

    return Scripted(answer), tokens


def test_push_puts_each_profile(profiles):
    app, tokens = controller()
    with served(app) as url:
        assert push(profiles, url + "/", token="s3cret") == [(p, None) for p in profiles]
    assert [(method, path) for method, path, query, body in app.requests] == [
        ("PUT", "/v1/profiles/5/4"),
        ("PUT", "/v1/profiles/6/1"),
    ]
    assert [parse_profile(json.loads(body)) for method, path, query, body in app.requests] == list(
        profiles
    )
    assert tokens == ["Bearer s3cret"] * 2


def test_push_without_token(profiles):
    app, tokens = controller()
    with served(app) as url:
        push(profiles[:1], url)
    assert tokens == [None]


def test_push_reports_refusals(profiles):
    app, _ = controller(400)
    with served(app) as url:
        [(_, problem)] = push(profiles[:1], url)
    assert problem == f"{url}/v1/profiles/5/4: HTTP 400: vlans[0]: out of range"


def test_push_command(policy_file, profiles, capsys):
    app, tokens = controller()
    with served(app) as url:
        assert (
            main(["push", "--profiles", str(policy_file), "--controller-url", url, "--token", "t"])
            == 0
        )
    assert capsys.readouterr().out.splitlines() == [
        "VSI type 5 version 4 (web): pushed",
        "VSI type 6 version 1 (db): pushed",
    ]
    assert app.count == 2 and tokens == ["Bearer t"] * 2


def test_push_command_fails_when_the_controller_is_down(policy_file, capsys):
    url = closed_port_url()
    assert main(["push", "--profiles", str(policy_file), "--controller-url", url]) == 1
    assert "connection refused" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["push"], "push needs --profiles"),
        (
            [
                "push",
                "--profiles",
                str(ROOT / "policies" / "default.yaml"),
                "--controller-url",
                "127.0.0.1:8080",
            ],
            "--controller-url: expected an http:// or https:// URL",
        ),
        (["--listen", "nowhere"], "expected --listen HOST:PORT"),
        (["--delay", "-1"], "--delay >= 0"),
    ],
)
def test_command_line_errors(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_bad_profiles_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("vsi_types:\n  - type_id: 5\n")
    assert main(["--profiles", str(path)]) == 2
    assert f"{path}:2: vsi_types[0]: missing key" in capsys.readouterr().err


def test_listen_address_in_use(capsys):
    with served(ReferenceManager()) as url:
        assert main(["--listen", url.removeprefix("http://")]) == 2
    assert "cannot listen on" in capsys.readouterr().err


def test_serve_command_stops_on_sigterm(policy_file):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.vcenter.reference",
            "--listen",
            "127.0.0.1:0",
            "--profiles",
            str(policy_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("evb-vcenter: 2 VSI types on http://127.0.0.1:"), line
        url = line.split()[-1]
        assert call("GET", url + "/health")[1]["profiles"] == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(5) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
