"""REST and the fault monitor: subscriptions (webhooks get alarms at once, per tenant), alarms,
servers and maintenance mode; what was accepted survives a restart."""

import json

import pytest

from tests.unit.test_rest_harness import BLUE_TOKEN, RED_TOKEN, VSI_A
from tests.unit.test_vcenter_http import answering, served

PORT_DOWN = dict(switch="edge1", port="edge1-s1", role="server", up=False)
PORT_UP = dict(PORT_DOWN, up=True)


def received(app) -> list[dict]:
    return [json.loads(body) for _, _, _, body in app.requests]


def subscribe(harness, url, token=None, **extra):
    kwargs = {"token": token} if token else {}
    status, body = harness.call("POST", "/v1/subscriptions", {"url": url, **extra}, **kwargs)
    assert status == 201, body
    return body


# subscriptions and notifications ------------------------------------------------------------
def test_a_fault_reaches_the_subscribers_whose_vms_it_affects(harness):
    admin_app, blue_app, red_app = (answering(204, b"") for _ in range(3))
    with served(admin_app) as admin, served(blue_app) as blue, served(red_app) as red:
        subscribe(harness, admin + "/doctor")
        mine = subscribe(harness, blue + "/hook", BLUE_TOKEN)
        subscribe(harness, red + "/hook", RED_TOKEN)
        assert mine["tenant"] == "blue" and mine["kinds"] == sorted(mine["kinds"])
        harness.events.emit("port.modified", **PORT_DOWN)
        harness.events.emit("port.modified", **PORT_UP)
        assert harness.monitor.subscribers.flush(5)
    raised, cleared = received(admin_app)
    assert raised["alarm_id"] == "port.down:edge1/edge1-s1" and raised["alarm_name"] == "port.down"
    assert (raised["current"], raised["previous"], raised["severity"]) == (
        "alarm",
        "ok",
        "critical",
    )
    assert [vm["vsi_id"] for vm in raised["reason_data"]["affected_vms"]] == [VSI_A]
    assert (cleared["current"], cleared["previous"], cleared["seq"]) == ("ok", "alarm", 2)
    assert [b["current"] for b in received(blue_app)] == ["alarm", "ok"]
    assert received(red_app) == []  # none of red's VMs is on that port


def test_a_subscription_can_ask_for_some_kinds(harness):
    app = answering(204, b"")
    with served(app) as url:
        subscribe(harness, url + "/x", kinds=["switch.down"])
        harness.events.emit("port.modified", **PORT_DOWN)
        harness.events.emit("switch.disconnected", switch="edge1")
        assert harness.monitor.subscribers.flush(5)
    assert [b["alarm_name"] for b in received(app)] == ["switch.down"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "url"),
        ({"url": "ftp://x/y"}, "url"),
        ({"url": "http://host-without-path"}, "url"),
        ({"url": 7}, "url"),
        ({"url": "http://h:1/p", "kinds": []}, "kinds"),
        ({"url": "http://h:1/p", "kinds": "port.down"}, "kinds"),
        ({"url": "http://h:1/p", "kinds": ["port.down", "disk.full"]}, "kinds[1]"),
        ({"url": "http://h:1/p", "secret": "x"}, "secret"),
    ],
)
def test_bad_subscriptions_are_400_naming_the_field(harness, body, field):
    status, answer = harness.call("POST", "/v1/subscriptions", body)
    assert status == 400 and answer["field"] == field, answer
    assert harness.call("GET", "/v1/subscriptions") == (200, [])


def test_tenants_see_and_remove_only_their_subscriptions(harness):
    admin = subscribe(harness, "http://127.0.0.1:9/admin")
    blue = subscribe(harness, "http://127.0.0.1:9/blue", BLUE_TOKEN)
    assert [s["id"] for s in harness.call("GET", "/v1/subscriptions")[1]] == [
        admin["id"],
        blue["id"],
    ]
    assert [s["id"] for s in harness.call("GET", "/v1/subscriptions", token=BLUE_TOKEN)[1]] == [
        blue["id"]
    ]
    assert harness.call("GET", "/v1/subscriptions", token=RED_TOKEN) == (200, [])
    status, body = harness.call("DELETE", f"/v1/subscriptions/{admin['id']}", token=BLUE_TOKEN)
    assert status == 404 and body["field"] == "id"
    assert harness.call("DELETE", f"/v1/subscriptions/{blue['id']}", token=BLUE_TOKEN) == (
        200,
        {"deleted": blue["id"]},
    )
    assert harness.call("DELETE", f"/v1/subscriptions/{blue['id']}")[0] == 404


def test_subscriptions_and_maintenance_survive_a_restart(harness):
    sub = subscribe(harness, "http://127.0.0.1:9/doctor", kinds=["vm.lost"])
    assert (
        harness.call("PUT", "/v1/servers/edge1/edge1-s1/maintenance", {"reason": "BIOS upgrade"})[0]
        == 200
    )
    harness.reopen()
    [listed] = harness.call("GET", "/v1/subscriptions")[1]
    shown = {k: v for k, v in sub.items() if k != "secret"}  # shown once, at creation
    assert {k: listed[k] for k in shown} == shown and "secret" not in listed
    [server] = [s for s in harness.call("GET", "/v1/servers")[1] if s["port"] == "edge1-s1"]
    assert server["maintenance"]["reason"] == "BIOS upgrade"


# alarms ---------------------------------------------------------------------------------------
def test_alarms_listed_per_tenant_and_cleared_ones_on_request(harness):
    harness.events.emit("switch.disconnected", switch="edge1")
    [alarm] = harness.call("GET", "/v1/alarms")[1]
    assert alarm["id"] == "switch.down:edge1" and alarm["state"] == "alarm"
    assert harness.call("GET", "/v1/alarms", token=BLUE_TOKEN)[1][0]["id"] == alarm["id"]
    assert harness.call("GET", "/v1/alarms", token=RED_TOKEN) == (200, [])  # red is on edge2
    harness.events.emit("switch.ready", switch="edge1")
    assert harness.call("GET", "/v1/alarms") == (200, [])
    [cleared] = harness.call("GET", "/v1/alarms?state=all")[1]
    assert cleared["state"] == "ok" and cleared["cleared"] >= cleared["raised"]
    status, body = harness.call("GET", "/v1/alarms?state=old")
    assert status == 400 and body["field"] == "state"
    kinds = [e["kind"] for e in harness.call("GET", "/v1/events?kind=alarm.")[1]]
    assert kinds == ["alarm.raised", "alarm.cleared"]


# servers and maintenance ----------------------------------------------------------------------
def test_servers_list_ports_stations_vms_and_maintenance(harness):
    status, servers = harness.call("GET", "/v1/servers")
    assert status == 200
    assert servers == [
        {
            "switch": "edge1",
            "port": "edge1-s1",
            "up": True,
            "station": "a6:00:00:00:00:01",
            "vms": [VSI_A],
            "maintenance": None,
        },
        {
            "switch": "edge2",
            "port": "edge2-s2",
            "up": False,
            "station": None,
            "vms": [],
            "maintenance": None,
        },
    ]
    assert harness.call("GET", "/v1/servers", token=BLUE_TOKEN)[0] == 403


def test_maintenance_names_the_vms_to_move_and_reports_the_drained_server(harness):
    status, body = harness.call(
        "PUT", "/v1/servers/edge1/edge1-s1/maintenance", {"reason": "BIOS upgrade"}
    )
    assert status == 200 and body["vms"] == [VSI_A] and not body["drained"]
    # Faults of a server under announced work are listed, not notified.
    app = answering(204, b"")
    with served(app) as url:
        subscribe(harness, url + "/doctor")
        harness.events.emit("port.modified", **PORT_DOWN)
        assert harness.monitor.subscribers.flush(5)
    assert received(app) == []
    assert harness.call("GET", "/v1/alarms")[1][0]["maintenance"] is True
    # The VM manager moves the VM away: the server is drained.
    harness.service.held = [v for v in harness.service.held if v["vsi_id"] != VSI_A]
    harness.events.emit("vsi.deassociated", switch="edge1", port="edge1-s1", vsi=VSI_A)
    kinds = [e["kind"] for e in harness.call("GET", "/v1/events?kind=server.")[1]]
    assert kinds == ["server.maintenance", "server.drained"]
    maintenance = harness.call("GET", "/v1/servers")[1][0]["maintenance"]
    assert maintenance["drained"] is True
    assert harness.call("DELETE", "/v1/servers/edge1/edge1-s1/maintenance") == (
        200,
        {"switch": "edge1", "port": "edge1-s1", "maintenance": None},
    )
    assert harness.call("GET", "/v1/servers")[1][0]["maintenance"] is None
    assert harness.call("DELETE", "/v1/servers/edge1/edge1-s1/maintenance")[0] == 404
    assert harness.call("GET", "/v1/events?kind=server.resumed")[1][0]["switch"] == "edge1"


def test_an_empty_server_is_drained_at_once_and_ports_may_be_given_by_number(harness):
    status, body = harness.call(
        "PUT", "/v1/servers/0000000000000002/2/maintenance", {"reason": "fan"}
    )
    assert status == 200 and (body["switch"], body["port"]) == ("edge2", "edge2-s2")
    assert body["vms"] == [] and body["drained"] is True


@pytest.mark.parametrize(
    "path, body, status, field",
    [
        ("/v1/servers/edge9/edge1-s1/maintenance", {"reason": "x"}, 404, "switch"),
        ("/v1/servers/edge1/edge1-s9/maintenance", {"reason": "x"}, 404, "port"),
        ("/v1/servers/edge1/edge1-up1/maintenance", {"reason": "x"}, 400, "port"),
        ("/v1/servers/edge1/edge1-s1/maintenance", {}, 400, "reason"),
        ("/v1/servers/edge1/edge1-s1/maintenance", {"reason": ""}, 400, "reason"),
        ("/v1/servers/edge1/edge1-s1/maintenance", {"reason": "x", "until": 5}, 400, "until"),
    ],
)
def test_bad_maintenance_requests(harness, path, body, status, field):
    answer = harness.call("PUT", path, body)
    assert answer[0] == status and answer[1]["field"] == field, answer
    assert all(s["maintenance"] is None for s in harness.call("GET", "/v1/servers")[1])


def test_only_admins_start_maintenance(harness):
    assert (
        harness.call(
            "PUT", "/v1/servers/edge1/edge1-s1/maintenance", {"reason": "x"}, token=BLUE_TOKEN
        )[0]
        == 403
    )
