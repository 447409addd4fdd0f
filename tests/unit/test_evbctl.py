"""evbctl against the real REST API served over HTTP (a threaded wsgiref server on a free port)
with a fake controller behind it."""

import json
import re
import socket

import pytest

from app.cli.evbctl import EXIT_API, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE, main, table
from app.rest.server import RestServer
from tests.unit.test_rest_harness import (
    ADMIN_TOKEN,
    BLUE_TOKEN,
    MAC_B,
    RED_TOKEN,
    VSI_A,
    VSI_B,
    Harness,
)

VM_NEW = "a1b2c3d4-0000-0000-0000-0000000000c1"


@pytest.fixture(scope="module")
def server():
    """One server for the module (stopping one takes its poll interval): it serves whatever
    ``server.app`` is at the time."""

    def app(environ, start_response):
        return running.app(environ, start_response)

    running = RestServer("127.0.0.1", 0, app)
    running.start()
    yield running
    running.stop()


@pytest.fixture
def served(tmp_path, server):
    harness = Harness(str(tmp_path / "evb.db"))
    server.app = harness.api.wsgi
    harness.url = f"http://127.0.0.1:{server.port}"
    yield harness
    harness.monitor.close()  # its subscriptions' notifier threads


@pytest.fixture
def evbctl(served, capsys, monkeypatch):
    """Runs evbctl with the admin token: (exit code, stdout, stderr)."""
    monkeypatch.delenv("EVBCTL_URL", raising=False)
    monkeypatch.setenv("EVBCTL_TOKEN", ADMIN_TOKEN)

    def run(*argv, url=None):
        code = main(["--url", url or served.url, *argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.strip().splitlines()]


def test_switch_list_and_json(evbctl):
    code, out, _ = evbctl("switch", "list")
    assert code == EXIT_OK
    assert rows(out) == [
        ["NAME", "DPID", "STATE", "PORTS"],
        ["edge1", "0000000000000001", "ready", "2"],
        ["edge2", "0000000000000002", "syncing", "1"],
    ]
    for argv in (("--json", "switch", "list"), ("switch", "list", "--json")):
        code, out, _ = evbctl(*argv)
        assert [s["name"] for s in json.loads(out)] == ["edge1", "edge2"]


def test_switch_show_and_port_list(evbctl):
    code, out, _ = evbctl("switch", "show", "edge1")
    assert code == EXIT_OK and "STATE : ready" in out and "edge1-up1" in out
    code, out, _ = evbctl("port", "list")
    assert [r[:3] for r in rows(out)[1:]] == [
        ["edge1", "1", "edge1-s1"],
        ["edge1", "101", "edge1-up1"],
        ["edge2", "2", "edge2-s2"],
    ]
    code, out, _ = evbctl("port", "list", "edge2")
    assert rows(out)[1:] == [["edge2", "2", "edge2-s2", "server", "no", "-"]]
    code, out, _ = evbctl("port", "list", "edge1")
    assert rows(out)[1] == ["edge1", "1", "edge1-s1", "server", "yes", "2:4000"]


def test_station_list_shows_each_s_channel_as_a_station(evbctl):
    code, out, _ = evbctl("station", "list")
    assert rows(out)[1:] == [
        ["0000000000000001", "edge1-s1", "-", "a6:00:00:00:00:01", "agreed", "3"],
        ["0000000000000001", "edge1-s1", "4000", "a6:00:00:00:00:02", "agreed", "1"],
    ]


def test_association_list_with_filters(evbctl):
    code, out, _ = evbctl("association", "list")
    assert [r[0] for r in rows(out)[1:]] == [VSI_A, VSI_B]
    code, out, _ = evbctl("association", "list", "--state", "pre-associated", "--switch", "edge2")
    assert rows(out)[1] == [
        VSI_B,
        "pre-associated",
        "red",
        "edge2",
        "edge2-s2",
        "6/1",
        f"{MAC_B}/200",
    ]


def test_migration_list_newest_first_and_by_vsi(evbctl):
    code, out, _ = evbctl("migration", "list")
    assert code == EXIT_OK
    assert rows(out) == [
        ["ID", "STARTED", "VSI", "ID", "FROM", "TO", "OUTCOME", "ORDER", "MS"],
        ["2", "2026-11-27T00:00:01.000Z", VSI_B, "edge1/edge1-s1", "edge2/edge2-s2"]
        + ["in-progress", "prepared", "-"],
        ["1", "2026-11-27T00:00:01.000Z", VSI_A, "edge1/edge1-s1", "edge2/edge2-s2"]
        + ["completed", "libvirt", "1000.0"],
    ]
    code, out, _ = evbctl("migration", "list", "--vsi", VSI_A, "--json")
    assert [m["id"] for m in json.loads(out)] == [1]
    code, _, err = evbctl("migration", "list", "--limit", "0")
    assert code == EXIT_API and "(limit)" in err


def test_vm_list_show_relocate_deregister(evbctl, served):
    served.call(
        "PUT",
        f"/v1/vms/{VSI_A}",
        {"type_id": 5, "type_version": 4, "name": "web-1", "macs": ["52:00:00:00:00:0a"]},
    )
    code, out, _ = evbctl("vm", "list")
    assert rows(out)[1] == [
        VSI_A,
        "web-1",
        "blue",
        "5/4",
        "52:00:00:00:00:0a",
        "-",
        "-",
        "-",
        "associated",
    ]
    code, out, _ = evbctl("vm", "show", VSI_A)
    assert "TENANT     : blue" in out and "edge1-s1" in out
    code, out, _ = evbctl("vm", "stats", VSI_A)
    counters = ["10", "1000", "8", "800", "2", "1"]
    assert code == EXIT_OK and rows(out)[1][:8] == ["edge1", "edge1-s1", *counters]
    code, out, _ = evbctl("vm", "relocate", VSI_A, "edge2", "2", "--replicate")
    assert code == EXIT_OK and "replication" in out
    assert served.service.relocated == [(VSI_A, "edge2", 2, True)]
    code, out, _ = evbctl("vm", "deregister", VSI_A)
    assert code == EXIT_OK and "deregistered and de-associated" in out


def test_profile_register_show_delete(evbctl, served, tmp_path):
    path = tmp_path / "app.yaml"
    path.write_text(
        "vsi_types:\n"
        "  - {type_id: 9, version: 1, name: app, tenant: blue, vlans: [110],\n"
        "     manager_ids: [mgr1], ingress_acl: [{action: deny, eth_src: "
        "10:20:30:40:50:59}]}\n"
        "  - {type_id: 10, version: 1, name: app2, tenant: blue, vlans: [111],\n"
        "     manager_ids: [mgr1]}\n"
    )
    code, out, _ = evbctl("profile", "register", str(path))
    assert code == EXIT_OK and out.splitlines()[:2] == [
        "profile 9/1 app created",
        "profile 10/1 app2 created",
    ]
    code, out, _ = evbctl("profile", "list", "--source", "api")
    assert [r[:4] for r in rows(out)[1:]] == [
        ["9", "1", "app", "blue"],
        ["10", "1", "app2", "blue"],
    ]
    code, shown, _ = evbctl("profile", "show", "9", "1")
    assert shown.startswith("# source: api (api)") and "10:20:30:40:50:59" in shown
    path.write_text(shown.replace("name: app", "name: renamed"))
    code, out, _ = evbctl("profile", "register", str(path))
    assert out.splitlines()[0] == "profile 9/1 renamed replaced"
    assert served.registry.database().get(9, 1).name == "renamed"
    code, out, _ = evbctl("profile", "delete", "10", "1")
    assert code == EXIT_OK and out.startswith("profile 10/1 deleted")


def test_an_invalid_profile_file_is_a_usage_error_naming_file_and_line(evbctl, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "vsi_types:\n  - {type_id: 9, version: 1, name: a, tenant: b,\n"
        "     vlans: [5000], manager_ids: [m]}\n"
    )
    code, _, err = evbctl("profile", "register", str(path))
    assert code == EXIT_USAGE and "bad.yaml:3: vsi_types[0].vlans[0]" in err


def test_event_list(evbctl, served):
    served.call("PUT", f"/v1/vms/{VM_NEW}", {"type_id": 5, "type_version": 4})
    served.call("DELETE", f"/v1/vms/{VM_NEW}")
    code, out, _ = evbctl("event", "list", "--kind", "vm.", "--limit", "1")
    assert code == EXIT_OK and len(rows(out)) == 2 and "vm.deregistered" in out  # the latest
    code, out, _ = evbctl("event", "list", "--kind", "vm.", "--after", "0", "--limit", "1")
    assert code == EXIT_OK and len(rows(out)) == 2 and "vm.registered" in out  # from the start
    first = json.loads(evbctl("--json", "event", "list")[1])
    code, out, _ = evbctl("event", "list", "--after", str(first[0]["id"]))
    assert "vm.deregistered" in out and "vm.registered" not in out


def test_lookup_by_vsi_and_mac(evbctl):
    code, out, _ = evbctl("lookup", VSI_A)
    assert code == EXIT_OK and "edge1-s1" in out and "BEFORE" in out
    code, out, _ = evbctl("lookup", MAC_B.upper())
    assert VSI_B in out


def test_server_list_maintenance_and_resume(evbctl, served):
    code, out, _ = evbctl("server", "list")
    assert code == EXIT_OK
    assert rows(out) == [
        ["SWITCH", "PORT", "UP", "STATION", "VMS", "MAINTENANCE", "REASON"],
        ["edge1", "edge1-s1", "yes", "a6:00:00:00:00:01", "1", "-", "-"],
        ["edge2", "edge2-s2", "no", "-", "0", "-", "-"],
    ]
    code, out, _ = evbctl("server", "maintenance", "edge1", "edge1-s1", "--reason", "BIOS upgrade")
    assert code == EXIT_OK and out.splitlines()[0].endswith(": BIOS upgrade")
    assert out.splitlines()[1] == f"VMs to move away (the VM manager is told): {VSI_A}"
    assert rows(evbctl("server", "list")[1])[1][5:] == ["draining", "BIOS", "upgrade"]
    code, out, _ = evbctl(
        "server", "maintenance", "0000000000000002", "2", "--reason", "fan", "--json"
    )
    answer = json.loads(out)
    assert (answer["port"], answer["vms"], answer["drained"]) == ("edge2-s2", [], True)
    assert rows(evbctl("server", "list")[1])[2][5:] == ["drained", "fan"]
    code, out, _ = evbctl("server", "resume", "edge1", "edge1-s1")
    assert code == EXIT_OK and out.strip() == (
        "server edge1/edge1-s1 resumed: it takes new VMs again"
    )
    assert rows(evbctl("server", "list")[1])[1][5:] == ["-", "-"]
    code, _, err = evbctl("server", "resume", "edge1", "edge1-s1")
    assert code == EXIT_API and "404" in err and "not in maintenance" in err


def test_server_maintenance_errors(evbctl):
    code, _, err = evbctl("server", "maintenance", "edge1", "edge1-up1", "--reason", "x")
    assert code == EXIT_API and "error 400 (port)" in err
    code, _, err = evbctl("server", "maintenance", "edge9", "edge1-s1", "--reason", "x")
    assert code == EXIT_API and "error 404 (switch)" in err
    assert evbctl("server", "maintenance", "edge1", "edge1-s1")[0] == EXIT_USAGE  # no reason
    code, _, err = evbctl("--token", BLUE_TOKEN, "server", "list")
    assert code == EXIT_API and "403" in err


def test_alarm_list_active_and_all(evbctl, served):
    assert rows(evbctl("alarm", "list")[1]) == [
        ["ID", "SEVERITY", "STATE", "MAINT", "RAISED", "VMS", "REASON"]
    ]
    served.events.emit("switch.disconnected", switch="edge1")
    code, out, _ = evbctl("alarm", "list")
    assert code == EXIT_OK
    columns = re.split(r"\s{2,}", out.splitlines()[1])
    assert columns[:4] == ["switch.down:edge1", "critical", "alarm", "no"]
    assert columns[5:] == ["1", "switch edge1 lost its OpenFlow connection"]  # VMs: VSI_A
    assert "switch.down:edge1" in evbctl("--token", BLUE_TOKEN, "alarm", "list")[1]
    assert len(rows(evbctl("--token", RED_TOKEN, "alarm", "list")[1])) == 1  # not red's VMs
    served.events.emit("switch.ready", switch="edge1")
    assert len(rows(evbctl("alarm", "list")[1])) == 1
    code, out, _ = evbctl("alarm", "list", "--all")
    assert rows(out)[0] == [
        "ID",
        "SEVERITY",
        "STATE",
        "MAINT",
        "RAISED",
        "CLEARED",
        "VMS",
        "REASON",
    ]
    assert rows(out)[1][:3] == ["switch.down:edge1", "critical", "ok"]
    [alarm] = json.loads(evbctl("alarm", "list", "--all", "--json")[1])
    assert alarm["cleared"] >= alarm["raised"]


def test_subscription_add_list_delete(evbctl):
    code, out, _ = evbctl("subscription", "add", "http://127.0.0.1:9/doctor")
    added, secret = out.strip().splitlines()
    assert code == EXIT_OK and added.endswith("http://127.0.0.1:9/doctor gets all alarms")
    assert secret.startswith("signing secret (shown this once") and len(secret.split()[-1]) >= 32
    code, out, _ = evbctl(
        "--token",
        BLUE_TOKEN,
        "--json",
        "subscription",
        "add",
        "http://127.0.0.1:9/blue",
        "--kind",
        "vm.lost",
        "--kind",
        "port.down",
    )
    blue = json.loads(out)
    assert (blue["tenant"], blue["kinds"]) == ("blue", ["port.down", "vm.lost"])
    code, out, _ = evbctl("subscription", "list")
    assert [r[1:] for r in rows(out)] == [
        ["TENANT", "KINDS", "SENT", "FAILED", "DROPPED", "QUEUED", "URL"],
        ["*", "all", "0", "0", "0", "0", "http://127.0.0.1:9/doctor"],
        ["blue", "port.down,vm.lost", "0", "0", "0", "0", "http://127.0.0.1:9/blue"],
    ]
    assert [r[0] for r in rows(evbctl("--token", BLUE_TOKEN, "subscription", "list")[1])] == [
        "ID",
        blue["id"],
    ]
    code, _, err = evbctl("--token", RED_TOKEN, "subscription", "delete", blue["id"])
    assert code == EXIT_API and "error 404 (id)" in err
    code, out, _ = evbctl("subscription", "delete", blue["id"])
    assert code == EXIT_OK and out.strip() == f"subscription {blue['id']} deleted"
    assert len(rows(evbctl("subscription", "list")[1])) == 2


def test_subscription_add_errors(evbctl):
    code, _, err = evbctl("subscription", "add", "ftp://127.0.0.1/x")
    assert code == EXIT_API and "error 400 (url)" in err
    assert (
        evbctl("subscription", "add", "http://127.0.0.1:9/x", "--kind", "disk.full")[0]
        == EXIT_USAGE
    )
    assert len(rows(evbctl("subscription", "list")[1])) == 1  # nothing added


def test_an_api_error_prints_the_message_and_exits_1(evbctl):
    code, out, err = evbctl("vm", "show", VM_NEW)
    assert code == EXIT_API and out == ""
    assert err.strip() == f"evbctl: error 404 (vsi_id): VM {VM_NEW} is not registered"
    code, _, err = evbctl("association", "list", "--state", "happy")
    assert code == EXIT_API and "(state)" in err


def test_tokens(evbctl, monkeypatch):
    monkeypatch.delenv("EVBCTL_TOKEN")
    code, _, err = evbctl("vm", "list")
    assert code == EXIT_API and "401" in err
    code, _, err = evbctl("--token", BLUE_TOKEN, "switch", "list")
    assert code == EXIT_API and "403" in err
    code, out, _ = evbctl("--token", BLUE_TOKEN, "association", "list")
    assert code == EXIT_OK and VSI_B not in out


def test_usage_errors_exit_2(evbctl):
    assert evbctl("switch")[0] == EXIT_USAGE
    assert evbctl("profile", "show", "nine", "1")[0] == EXIT_USAGE
    assert evbctl("switch", "list", url="ftp://x")[0] == EXIT_USAGE
    assert evbctl("--help")[0] == EXIT_OK


def test_an_unreachable_controller_exits_3(evbctl):
    with socket.socket() as probe:  # a port nobody listens on: bound, never listening
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"
        code, _, err = evbctl("switch", "list", url=url)
    assert code == EXIT_UNREACHABLE and "cannot reach the controller" in err


def test_a_server_that_is_not_evb_nms(evbctl, server):
    def not_json(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"<html>hello</html>"]

    server.app = not_json
    code, _, err = evbctl("switch", "list")
    assert code == EXIT_API and "not JSON" in err


def test_tables_align_and_show_missing_values_as_dashes():
    assert table(["a", "bb"], [["xyz", None], [1, True]]) == "A    BB\nxyz  -\n1    yes"


def test_ha_status_of_a_single_controller(evbctl):
    code, out, _ = evbctl("ha", "status")
    assert code == EXIT_OK
    assert re.search(r"ROLE\s+: leader", out) and re.search(r"LEADER\s+: none known", out)
    assert re.search(r"STORE\s+: sqlite", out)


def test_the_inventory_and_group_sync(evbctl, served, tmp_path):
    assert evbctl("datacenter", "register", "east", "--description", "Building A")[0] == EXIT_OK
    assert evbctl("cluster", "register", "c1", "--datacenter", "east")[0] == EXIT_OK
    code, out, _ = evbctl(
        "host", "register", "srv11", "--cluster", "c1", "--address", "192.0.2.11",
        "--mac", "a6:00:00:00:00:01",
    )  # fmt: skip
    assert (code, out.strip()) == (EXIT_OK, "host srv11 registered")
    code, out, _ = evbctl("host", "list", "--datacenter", "east")
    assert rows(out)[1] == ["srv11", "east", "c1", "192.0.2.11", "edge1/edge1-s1", "0"]
    code, out, _ = evbctl("host", "show", "srv11")
    assert "edge1/edge1-s1 (lldp)" in out
    code, _, err = evbctl("cluster", "delete", "c1")
    assert code == EXIT_API and "holds host srv11" in err
    group = tmp_path / "web.yaml"
    group.write_text(
        "vms:\n"
        f"  - {{vsi_id: {VM_NEW}, type_id: 5, type_version: 4, host: srv11, ips: [10.0.0.5]}}\n"
    )
    code, out, _ = evbctl("group", "sync", "web", str(group))
    assert code == EXIT_OK and VM_NEW in out
    code, out, _ = evbctl("vm", "list", "--cluster", "c1", "--ip", "10.0.0.5")
    assert [row[0] for row in rows(out)[1:]] == [VM_NEW]
    code, out, _ = evbctl("group", "show", "web")
    assert rows(out)[1][4:6] == ["srv11", "10.0.0.5"]
    code, out, _ = evbctl("group", "delete", "web")
    assert code == EXIT_OK and VM_NEW in out
    assert evbctl("group", "sync", "web", str(tmp_path / "none.yaml"))[0] == EXIT_USAGE
    served.service.previous_host = "srv11"
    code, out, _ = evbctl("lookup", VSI_A)
    assert "srv11 (192.0.2.11)" in out
    code, out, _ = evbctl("association", "list", "--host", "srv11")
    assert [row[0] for row in rows(out)[1:]] == [VSI_A]
