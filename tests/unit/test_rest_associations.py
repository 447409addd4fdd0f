"""REST: associations, lookup (draft 5.4), relocation/replication (5.5/5.6) and events."""

import re

import pytest

from app.events import Event
from tests.unit.test_rest_harness import BLUE_TOKEN, MAC_A, MAC_B, RED_TOKEN, VSI_A, VSI_B

UNKNOWN = "a1b2c3d4-0000-0000-0000-0000000000ff"


def ids(vsis):
    return [v["vsi_id"] for v in vsis]


# associations -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [VSI_A, VSI_B]),
        ("?tenant=blue", [VSI_A]),
        ("?switch=edge2", [VSI_B]),
        ("?switch=0000000000000001", [VSI_A]),
        ("?state=associated", [VSI_A]),
        ("?state=pre-associated&tenant=red", [VSI_B]),
        ("?state=suspended", []),
        ("?switch=core9", []),
    ],
)
def test_associations_filtered(harness, query, expected):
    status, body = harness.call("GET", "/v1/associations" + query)
    assert status == 200 and ids(body) == expected


def _pages(harness, path, token=None):
    """Every page of `path`, following the Link headers."""
    pages = []
    while path is not None:
        response = harness.response("GET", path, **({"token": token} if token else {}))
        assert response.status_code == 200, response.text
        pages.append(ids(response.json))
        link = response.headers.get("Link")
        path = re.match(r'<([^>]+)>; rel="next"', link).group(1) if link else None
    return pages


def test_associations_in_pages_follow_their_links_in_vsi_id_order(harness):
    held = harness.service.held
    held += [{**held[0], "vsi_id": f"a1b2c3d4-0000-0000-0001-{n:012x}"} for n in range(5)]
    every = sorted(ids(held))
    pages = _pages(harness, "/v1/associations?limit=2")
    assert [vsi for page in pages for vsi in page] == every
    assert [len(page) for page in pages] == [2, 2, 2, 1]
    # A filter applies within the pages; a tenant's pages hold only its VSIs.
    blue = [vsi for page in _pages(harness, "/v1/associations?limit=2&tenant=blue") for vsi in page]
    assert VSI_B not in blue and len(blue) == len(every) - 1
    red = _pages(harness, "/v1/associations?limit=3", token=RED_TOKEN)
    assert [vsi for page in red for vsi in page] == [VSI_B]


@pytest.mark.parametrize(
    "query, field",
    [("?limit=0", "limit"), ("?limit=1001", "limit"), ("?after=not-an-id", "after")],
)
def test_bad_association_pages_are_400(harness, query, field):
    status, body = harness.call("GET", "/v1/associations" + query)
    assert status == 400 and body["field"] == field


def test_a_bad_state_filter_is_400(harness):
    status, body = harness.call("GET", "/v1/associations?state=happy")
    assert status == 400 and body["field"] == "state" and "associated" in body["error"]


def test_one_association(harness):
    status, body = harness.call("GET", f"/v1/associations/{VSI_A.upper()}")
    assert status == 200 and body["attachments"][0]["port"] == "edge1-s1"
    status, body = harness.call("GET", f"/v1/associations/{UNKNOWN}")
    assert status == 404 and UNKNOWN in body["error"]


STATS_FIELDS = {
    "switch",
    "port",
    "packets_in",
    "bytes_in",
    "packets_out",
    "bytes_out",
    "acl_drops",
    "meter_drops",
    "polled_at",
}


def test_a_vms_stats_per_attachment_also_in_its_association(harness):
    status, body = harness.call("GET", f"/v1/vms/{VSI_A.upper()}/stats")
    assert status == 200 and body["vsi_id"] == VSI_A
    (attachment,) = body["attachments"]
    assert set(attachment) == STATS_FIELDS
    assert (attachment["switch"], attachment["port"], attachment["packets_in"]) == (
        "edge1",
        "edge1-s1",
        10,
    )
    status, association = harness.call("GET", f"/v1/associations/{VSI_A}")
    assert association["stats"] == body["attachments"]


def test_a_vms_stats_are_its_tenants_only(harness):
    assert harness.call("GET", f"/v1/vms/{VSI_A}/stats", token=BLUE_TOKEN)[0] == 200
    status, body = harness.call("GET", f"/v1/vms/{VSI_A}/stats", token=RED_TOKEN)
    assert status == 404 and VSI_A in body["error"]  # as for a VSI it does not hold
    assert harness.call("GET", f"/v1/vms/{UNKNOWN}/stats")[0] == 404
    assert harness.call("GET", f"/v1/vms/{VSI_A}/stats", token=None)[0] == 401
    assert harness.call("GET", f"/v1/vms/{VSI_A}/stats?x=1")[0] == 400


def test_a_tenant_sees_only_its_associations(harness):
    assert ids(harness.call("GET", "/v1/associations", token=BLUE_TOKEN)[1]) == [VSI_A]
    assert (
        ids(harness.call("GET", "/v1/associations?state=pre-associated", token=BLUE_TOKEN)[1]) == []
    )
    assert harness.call("GET", f"/v1/associations/{VSI_B}", token=BLUE_TOKEN)[0] == 404
    assert harness.call("GET", "/v1/associations?tenant=red", token=BLUE_TOKEN)[0] == 403


def test_a_registration_that_does_not_admit_the_held_vsi_deassociates_it(harness):
    """An admin registers blue's held VSI A for red with red's type: the bridge held it with a
    blue type, which its registration no longer admits, so it is de-associated (keep-alives
    are not authorized again) and A is red's."""
    harness.call(
        "PUT",
        "/v1/profiles/9/1",
        {"name": "x", "tenant": "red", "vlans": [210], "manager_ids": ["mgr1"]},
    )
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 9, "type_version": 1})
    assert [vsi for vsi, _ in harness.service.deassociated] == [VSI_A]
    assert ids(harness.call("GET", "/v1/associations", token=RED_TOKEN)[1]) == [VSI_B]
    assert harness.call("GET", f"/v1/vms/{VSI_A}", token=RED_TOKEN)[0] == 200
    assert harness.call("GET", f"/v1/vms/{VSI_A}", token=BLUE_TOKEN)[0] == 404


# lookup -------------------------------------------------------------------------------------
def test_lookup_by_vsi_id_and_by_mac(harness):
    status, body = harness.call("GET", f"/v1/lookup?vsi_id={VSI_A}")
    assert status == 200 and body["current"][0]["switch"] == "edge1" and body["vm"] is None
    assert body["previous"] == [
        {"switch": "edge2", "port": "edge2-s1", "until": 12.5, "host": None}
    ]
    status, body = harness.call("GET", f"/v1/lookup?mac={MAC_B.upper()}")
    assert status == 200 and body["vsi_id"] == VSI_B


def test_lookup_includes_the_registration(harness):
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 5, "type_version": 4, "macs": [MAC_A]})
    assert harness.call("GET", f"/v1/lookup?mac={MAC_A}")[1]["vm"]["tenant"] == "blue"


def test_lookup_of_a_registered_vm_the_bridge_never_saw(harness):
    harness.call(
        "PUT",
        f"/v1/vms/{UNKNOWN}",
        {"type_id": 5, "type_version": 4, "macs": ["52:00:00:00:00:ff"]},
    )
    status, body = harness.call("GET", "/v1/lookup?mac=52:00:00:00:00:ff")
    assert status == 200 and body["current"] == [] and body["vm"]["vsi_id"] == UNKNOWN


@pytest.mark.parametrize(
    "query, status, field",
    [
        ("", 400, "vsi_id"),
        (f"?vsi_id={VSI_A}&mac={MAC_A}", 400, "vsi_id"),
        ("?vsi_id=nope", 400, "vsi_id"),
        ("?mac=52:00:00", 400, "mac"),
        ("?mac=", 400, "mac"),
        (f"?vsi_id={UNKNOWN}", 404, "vsi_id"),
        ("?mac=52:00:00:00:00:99", 404, "mac"),
    ],
)
def test_bad_lookups(harness, query, status, field):
    answer = harness.call("GET", "/v1/lookup" + query)
    assert answer[0] == status and answer[1]["field"] == field, answer


def test_a_tenant_looks_up_only_its_vms(harness):
    assert harness.call("GET", f"/v1/lookup?vsi_id={VSI_A}", token=BLUE_TOKEN)[0] == 200
    status, body = harness.call("GET", f"/v1/lookup?mac={MAC_B}", token=BLUE_TOKEN)
    assert (status, body["field"]) == (404, "mac") and "was ever seen" in body["error"]


# relocation ---------------------------------------------------------------------------------
def test_relocate_and_replicate(harness):
    status, body = harness.call(
        "POST", f"/v1/vms/{VSI_A}/relocate", {"switch": "edge2", "port": "edge2-s1"}
    )
    assert status == 200 and body["prepared"] == {"switch": "edge2", "port": "edge2-s1"}
    harness.call(
        "POST", f"/v1/vms/{VSI_A}/relocate", {"switch": "edge2", "port": 2, "replicate": True}
    )
    assert harness.service.relocated == [
        (VSI_A, "edge2", "edge2-s1", False),
        (VSI_A, "edge2", 2, True),
    ]


@pytest.mark.parametrize(
    "body, status, field, words",
    [
        ({"switch": "edge2"}, 400, "port", "missing"),
        ({"switch": "edge2", "port": True}, 400, "port", "port name or number"),
        ({"switch": "edge2", "port": 1, "replicate": "yes"}, 400, "replicate", "true or false"),
        ({"switch": "edge2", "port": 1, "force": True}, 400, "force", "unknown field"),
        ({"switch": 2, "port": 1}, 400, "switch", "text"),
        ({"switch": "core9", "port": 1}, 404, "vsi_id", "unknown switch core9"),
        ({"switch": "edge2", "port": "edge2-full"}, 409, None, "limit of VSI type"),
    ],
)
def test_bad_relocations(harness, body, status, field, words):
    answer = harness.call("POST", f"/v1/vms/{VSI_A}/relocate", body)
    assert answer[0] == status and answer[1]["field"] == field, answer
    assert words in answer[1]["error"]
    assert harness.service.relocated == []


def test_relocating_an_unknown_vsi_is_404(harness):
    status, body = harness.call(
        "POST", f"/v1/vms/{UNKNOWN}/relocate", {"switch": "edge2", "port": 1}
    )
    assert status == 404 and UNKNOWN in body["error"]
    status, body = harness.call(
        "POST", f"/v1/vms/{UNKNOWN}/relocate", {"switch": "edge2", "port": 1}, token=BLUE_TOKEN
    )
    assert status == 404


def test_a_tenant_relocates_only_its_vms(harness):
    assert (
        harness.call(
            "POST", f"/v1/vms/{VSI_A}/relocate", {"switch": "edge2", "port": 1}, token=BLUE_TOKEN
        )[0]
        == 200
    )
    assert (
        harness.call(
            "POST", f"/v1/vms/{VSI_B}/relocate", {"switch": "edge1", "port": 1}, token=BLUE_TOKEN
        )[0]
        == 404
    )
    assert [r[0] for r in harness.service.relocated] == [VSI_A]


# events -------------------------------------------------------------------------------------
@pytest.fixture
def with_events(harness):
    for kind, switch, detail in [
        ("switch.ready", "edge1", {}),
        ("vsi.associated", "0000000000000001", {"tenant": "blue", "vsi": VSI_A}),
        ("vsi.refused", "0000000000000002", {"tenant": "red", "vsi": VSI_B}),
        ("port.added", "edge2", {"vsi": "mac:52:54:00:00:00:0a"}),
    ]:
        harness.store.append_event(Event(kind, switch=switch, detail=detail))
    return harness


@pytest.mark.parametrize(
    "query, kinds",
    [
        ("", ["switch.ready", "vsi.associated", "vsi.refused", "port.added"]),
        ("?kind=vsi.", ["vsi.associated", "vsi.refused"]),
        ("?switch=edge2", ["port.added"]),
        ("?tenant=red", ["vsi.refused"]),
        (f"?vsi={VSI_A.upper()}", ["vsi.associated"]),
        ("?vsi=mac:52:54:00:00:00:0a", ["port.added"]),
        ("?after=2&limit=1", ["vsi.refused"]),
    ],
)
def test_events_paged_and_filtered(with_events, query, kinds):
    status, body = with_events.call("GET", "/v1/events" + query)
    assert status == 200 and [e["kind"] for e in body] == kinds


def test_paging_by_the_last_id(with_events):
    first = with_events.call("GET", "/v1/events?limit=3")[1]
    rest = with_events.call("GET", f"/v1/events?after={first[-1]['id']}")[1]
    assert [e["kind"] for e in first + rest] == [
        "switch.ready",
        "vsi.associated",
        "vsi.refused",
        "port.added",
    ]


@pytest.mark.parametrize(
    "query, field",
    [
        ("?limit=lots", "limit"),
        ("?limit=0", "limit"),
        ("?limit=1001", "limit"),
        ("?after=-1", "after"),
        ("?kind=", "kind"),
        ("?level=info", "level"),
    ],
)
def test_bad_event_queries(with_events, query, field):
    status, body = with_events.call("GET", "/v1/events" + query)
    assert status == 400 and body["field"] == field


def test_a_tenant_sees_only_events_naming_it(with_events):
    body = with_events.call("GET", "/v1/events", token=BLUE_TOKEN)[1]
    assert [e["kind"] for e in body] == ["vsi.associated"]
    assert with_events.call("GET", "/v1/events?tenant=red", token=BLUE_TOKEN)[0] == 403


def test_registry_changes_are_events(harness):
    harness.call(
        "PUT",
        "/v1/profiles/9/1",
        {"name": "x", "tenant": "blue", "vlans": [110], "manager_ids": ["mgr1"]},
    )
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 9, "type_version": 1})
    harness.call("DELETE", f"/v1/vms/{VSI_A}")
    body = harness.call("GET", "/v1/events", token=BLUE_TOKEN)[1]
    assert [(e["kind"], e["detail"]["tenant"]) for e in body] == [
        ("profile.pushed", "blue"),
        ("vm.registered", "blue"),
        ("vm.deregistered", "blue"),
    ]
    assert body[0]["detail"]["created"] is True and body[1]["detail"]["type_id"] == 9
    assert harness.call("GET", "/v1/events", token=RED_TOKEN)[1] == []


# ownership of what the bridge holds --------------------------------------------------------
def test_a_tenant_cannot_take_another_tenants_running_vm(harness):
    """Issue 10: red's VSI B is held by the bridge but not registered; blue registered it with
    B's MAC (201), then read its association and lookup, relocated it, and its DELETE
    de-associated red's running VM. Now B is, to blue, as if it did not exist."""
    blue_web = {"type_id": 5, "type_version": 4, "macs": [MAC_B]}
    status, body = harness.call("PUT", f"/v1/vms/{VSI_B}", blue_web, token=BLUE_TOKEN)
    assert (status, body["field"]) == (404, "vsi_id"), body
    group = {"vms": [{"vsi_id": VSI_B, "type_id": 5, "type_version": 4}]}
    status, body = harness.call("POST", "/v1/groups", group, token=BLUE_TOKEN)
    assert (status, body["field"]) == (404, "vms[0].vsi_id"), body
    # Another VSI ID with B's MAC: the MAC is in use.
    status, body = harness.call("PUT", f"/v1/vms/{UNKNOWN}", blue_web, token=BLUE_TOKEN)
    assert (status, body["field"]) == (409, "macs[0]") and "red" not in body["error"], body
    assert harness.registry.vm(VSI_B) is None and harness.registry.vm(UNKNOWN) is None
    for method, path, request in [
        ("GET", f"/v1/associations/{VSI_B}", None),
        ("GET", f"/v1/lookup?vsi_id={VSI_B}", None),
        ("GET", f"/v1/lookup?mac={MAC_B}", None),
        ("GET", f"/v1/vms/{VSI_B}", None),
        ("POST", f"/v1/vms/{VSI_B}/relocate", {"switch": "edge1", "port": 1}),
        ("DELETE", f"/v1/vms/{VSI_B}", None),
    ]:
        status, body = harness.call(method, path, request, token=BLUE_TOKEN)
        unknown = harness.call(
            method,
            path.replace(VSI_B, UNKNOWN).replace(MAC_B, "52:00:00:00:00:99"),
            request,
            token=BLUE_TOKEN,
        )
        assert status == unknown[0] == 404 and body["field"] == unknown[1]["field"], (path, body)
    assert harness.service.deassociated == [] and harness.service.relocated == []
    assert harness.call("GET", f"/v1/associations/{VSI_B}", token=RED_TOKEN)[0] == 200
    # Red registers its own VM; an admin acts across tenants.
    red_db = {"type_id": 6, "type_version": 1, "macs": [MAC_B]}
    assert harness.call("PUT", f"/v1/vms/{VSI_B}", red_db, token=RED_TOKEN)[0] == 201
    assert harness.call("PUT", f"/v1/vms/{UNKNOWN}", blue_web)[0] == 409  # registered MAC
    assert harness.call("PUT", f"/v1/vms/{UNKNOWN}", {**blue_web, "macs": []})[0] == 201


def test_a_tenant_registers_what_the_bridge_holds_for_it(harness):
    blue_web = {"type_id": 5, "type_version": 4, "macs": [MAC_A]}
    # A MAC the bridge holds for another of blue's VSIs (a VM re-created under a new VSI ID):
    # blue's own business.
    assert harness.call("PUT", f"/v1/vms/{UNKNOWN}", blue_web, token=BLUE_TOKEN)[0] == 201
    assert harness.call("DELETE", f"/v1/vms/{UNKNOWN}", token=BLUE_TOKEN)[0] == 200
    assert harness.call("PUT", f"/v1/vms/{VSI_A}", blue_web, token=BLUE_TOKEN)[0] == 201
