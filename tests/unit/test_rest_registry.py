"""REST: profiles, VM registrations and group registrations, incl. bad input and tenants."""

import pytest

from app.rest.http import MAX_BODY
from tests.unit.test_rest_harness import BLUE_TOKEN, MAC_A, RED_TOKEN, VSI_A, VSI_B, profile

VM_NEW = "a1b2c3d4-0000-0000-0000-0000000000c1"


def keys(profiles):
    return [(p["type_id"], p["version"]) for p in profiles]


# profiles -----------------------------------------------------------------------------------
def test_list_profiles_of_the_files_with_their_source(harness):
    status, profiles = harness.call("GET", "/v1/profiles")
    assert status == 200 and keys(profiles) == [(5, 4), (6, 1), (7, 1)]
    assert {p["source"] for p in profiles} == {"file"}
    assert profiles[0]["origin"].endswith("default.yaml:6")
    assert profiles[0]["ingress_acl"][0] == {
        "action": "deny",
        "eth_type": "ipv4",
        "ip_proto": "tcp",
        "tp_dst": 23,
    }


def test_list_filters(harness):
    assert keys(harness.call("GET", "/v1/profiles?tenant=red")[1]) == [(6, 1)]
    assert harness.call("GET", "/v1/profiles?source=api")[1] == []
    status, body = harness.call("GET", "/v1/profiles?source=cloud")
    assert status == 400 and body["field"] == "source"


def test_put_creates_then_replaces_and_applies(harness):
    status, body = harness.call("PUT", "/v1/profiles/9/1", profile())
    assert status == 201 and body["created"] is True
    assert body["profile"]["source"] == body["profile"]["origin"] == "api"
    assert body["applied"] == {"updated": 0, "deassociated": []}
    assert harness.service.applied[-1].get(9, 1).name == "app9"
    status, body = harness.call("PUT", "/v1/profiles/9/1", profile(name="renamed"))
    assert status == 200 and body["created"] is False and body["profile"]["name"] == "renamed"
    assert harness.call("GET", "/v1/profiles/9/1")[1]["name"] == "renamed"
    assert harness.registry.database().get(9, 1).name == "renamed"


def test_put_takes_the_key_from_the_url(harness):
    document = profile()
    del document["type_id"], document["version"]
    assert harness.call("PUT", "/v1/profiles/9/1", document)[0] == 201


def test_put_refuses_a_key_differing_from_the_url(harness):
    status, body = harness.call("PUT", "/v1/profiles/9/1", profile(version=2))
    assert status == 400 and body["field"] == "version" and "URL" in body["error"]


def test_a_document_read_back_can_be_put_again(harness):
    harness.call("PUT", "/v1/profiles/9/1", profile(ingress_acl=[{"action": "deny"}]))
    read = harness.call("GET", "/v1/profiles/9/1")[1]
    status, body = harness.call("PUT", "/v1/profiles/9/1", read)
    assert status == 200 and body["profile"] == read


def test_a_pushed_profile_replaces_a_file_profile_and_delete_brings_it_back(harness):
    status, body = harness.call(
        "PUT", "/v1/profiles/5/4", profile(5, 4, vlans=[100, 101], name="web2")
    )
    assert status == 200 and body["created"] is False
    assert body["profile"]["replaces"].endswith("default.yaml:6")
    status, body = harness.call("DELETE", "/v1/profiles/5/4")
    assert status == 200 and body["file_profile_back"].endswith("default.yaml:6")
    assert harness.registry.database().get(5, 4).name == "web"
    assert harness.service.applied[-1].get(5, 4).name == "web"


def test_a_file_profile_cannot_be_deleted(harness):
    status, body = harness.call("DELETE", "/v1/profiles/6/1")
    assert status == 409 and "edit the file" in body["error"]


def test_delete_of_an_unknown_profile_is_404(harness):
    status, body = harness.call("DELETE", "/v1/profiles/99/1")
    assert status == 404 and "99" in body["error"]
    assert harness.call("GET", "/v1/profiles/99/1")[0] == 404


def test_a_pushed_profile_is_deleted(harness):
    harness.call("PUT", "/v1/profiles/9/1", profile())
    status, body = harness.call("DELETE", "/v1/profiles/9/1")
    assert status == 200 and body == {
        "deleted": {"type_id": 9, "version": 1},
        "file_profile_back": None,
        "applied": {"updated": 0, "deassociated": []},
    }
    assert harness.registry.database().get(9, 1) is None


@pytest.mark.parametrize(
    "path, field",
    [
        ("/v1/profiles/x/1", "type_id"),
        ("/v1/profiles/1/-1", "version"),
        ("/v1/profiles/16777216/1", "type_id"),
        ("/v1/profiles/1/256", "version"),
    ],
)
def test_bad_keys_in_the_url(harness, path, field):
    status, body = harness.call("PUT", path, profile())
    assert status == 400 and body["field"] == field


@pytest.mark.parametrize(
    "change, field, words",
    [
        ({"vlans": [4095]}, "vlans[0]", "VLAN ID 1-4094"),
        ({"vlans": [0]}, "vlans[0]", "VLAN ID"),
        ({"vlans": ["5-3"]}, "vlans[0]", "empty"),
        ({"vlans": "100"}, "vlans", "expected a list"),
        ({"vlans": []}, "vlans", "at least one"),
        ({"default_vlan": 300}, "default_vlan", "not one of vlans"),
        ({"type_id": "9"}, "type_id", "expected an integer"),
        ({"version": True}, "version", "expected an integer"),
        ({"version": 1.5}, "version", "expected an integer"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"manager_ids": ["a name that is far too long"]}, "manager_ids[0]", "Manager ID"),
        ({"qos": {"burst_kb": 10}}, "qos.burst_kb", "without rate_kbps"),
        ({"qos": {"rate": 10}}, "qos.rate", "unknown key"),
        ({"limits": {"max_per_port": 9, "max_per_switch": 2}}, "limits.max_per_port", "exceeds"),
        ({"acl_default": "maybe"}, "acl_default", "permit"),
        (
            {
                "ingress_acl": [
                    {"action": "permit", "tp_dst": 70000, "ip_proto": "tcp", "eth_type": "ipv4"}
                ]
            },
            "ingress_acl[0].tp_dst",
            "0-65535",
        ),
        (
            {"ingress_acl": [{"action": "permit", "tp_dst": 80}]},
            "ingress_acl[0].tp_dst",
            "needs ip_proto",
        ),
        (
            {"egress_acl": [{"action": "permit", "ipv4_src": "10.0.0.1/8"}]},
            "egress_acl[0].ipv4_src",
            "host bits",
        ),
        (
            {
                "egress_acl": [
                    {"action": "deny", "eth_type": "ipv4"},
                    {"action": "permit", "eth_type": "ipv4", "ip_proto": "tcp"},
                ]
            },
            "egress_acl[1]",
            "contradicting ACL rules",
        ),
        ({"ingress_acl": [{"verdict": "deny"}]}, "ingress_acl[0].verdict", "unknown key"),
    ],
)
def test_bad_profiles_name_the_field_and_change_nothing(harness, change, field, words):
    status, body = harness.call("PUT", "/v1/profiles/9/1", {**profile(), **change})
    assert status == 400, body
    assert body["field"] == field and words in body["error"], body
    assert harness.registry.database().get(9, 1) is None
    assert harness.service.applied == [] and harness.store.profiles() == []


def test_a_missing_required_field_is_named(harness):
    document = profile()
    del document["tenant"]
    status, body = harness.call("PUT", "/v1/profiles/9/1", document)
    assert status == 400 and body["field"] == "tenant" and "missing" in body["error"]


def test_a_profile_body_must_be_an_object(harness):
    status, body = harness.call("PUT", "/v1/profiles/9/1", [profile()])
    assert status == 400 and "JSON object" in body["error"]


def test_two_tenants_cannot_share_a_vlan(harness):
    status, body = harness.call("PUT", "/v1/profiles/9/1", profile(tenant="red", vlans=[101]))
    assert status == 409 and body["field"] == "vlans"
    assert "VLAN 101 belongs to tenant blue" in body["error"]


# VMs ------------------------------------------------------------------------------------------
def test_register_show_update_and_list_a_vm(harness):
    status, body = harness.call(
        "PUT",
        f"/v1/vms/{VSI_A.upper()}",
        {"type_id": 5, "type_version": 4, "macs": [MAC_A.upper()], "name": "web-1"},
    )
    assert status == 201 and body["created"] is True
    vm = body["vm"]
    assert (vm["vsi_id"], vm["tenant"], vm["macs"]) == (VSI_A, "blue", [MAC_A])
    assert vm["association"]["state"] == "associated"
    status, body = harness.call(
        "PUT", f"/v1/vms/{VSI_A}", {"type_id": 7, "type_version": 1, "vsi_id": VSI_A}
    )
    assert status == 200 and body["vm"]["type_id"] == 7
    assert body["vm"]["registered"] == vm["registered"]
    shown = harness.call("GET", f"/v1/vms/{VSI_A}")[1]
    assert shown["type_id"] == 7 and shown["macs"] == []
    assert [v["vsi_id"] for v in harness.call("GET", "/v1/vms")[1]] == [VSI_A]
    assert harness.call("GET", "/v1/vms?tenant=red")[1] == []


def test_registered_vms_in_pages_with_their_associations(harness):
    extra = [f"a1b2c3d4-0000-0000-0001-{n:012x}" for n in range(4)]
    for vsi_id in [VSI_A, *extra]:
        harness.call("PUT", f"/v1/vms/{vsi_id}", {"type_id": 5, "type_version": 4})
    harness.call("PUT", f"/v1/vms/{VSI_B}", {"type_id": 6, "type_version": 1})
    seen, path = [], "/v1/vms?limit=2&tenant=blue"
    while path:
        response = harness.response("GET", path)
        assert response.status_code == 200 and len(response.json) <= 2
        seen += response.json
        link = response.headers.get("Link")
        path = link[1 : link.index(">")] if link else None
    assert [v["vsi_id"] for v in seen] == sorted([VSI_A, *extra])
    assert seen[0]["association"]["state"] == "associated"  # VSI A is held
    assert all(v["association"] is None for v in seen[1:])
    assert harness.call("GET", "/v1/vms?after=nope")[0] == 400


def test_deregistering_an_associated_vm_deassociates_it(harness):
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 5, "type_version": 4})
    status, body = harness.call("DELETE", f"/v1/vms/{VSI_A}")
    assert status == 200 and body == {"deregistered": VSI_A, "deassociated": True}
    assert harness.service.deassociated == [(VSI_A, "deregistered by the VM manager")]
    assert harness.call("GET", f"/v1/vms/{VSI_A}")[0] == 404


def test_deregistering_a_vm_the_bridge_does_not_hold(harness):
    harness.call("PUT", f"/v1/vms/{VM_NEW}", {"type_id": 5, "type_version": 4})
    assert harness.call("DELETE", f"/v1/vms/{VM_NEW}")[1]["deassociated"] is False


def test_deregistering_an_unknown_vm_is_a_clear_404(harness):
    status, body = harness.call("DELETE", f"/v1/vms/{VM_NEW}")
    assert status == 404 and body["field"] == "vsi_id"
    assert f"VM {VM_NEW} is not registered" in body["error"]
    assert harness.service.deassociated == []


@pytest.mark.parametrize(
    "body, field, status, words",
    [
        ({"type_id": 5}, "type_version", 400, "missing"),
        ({"type_id": 5, "type_version": 4, "macs": ["52:00:00:00:00"]}, "macs[0]", 400, "MAC"),
        (
            {"type_id": 5, "type_version": 4, "macs": ["01:00:5e:00:00:01"]},
            "macs[0]",
            400,
            "multicast",
        ),
        ({"type_id": 5, "type_version": 4, "macs": [MAC_A, MAC_A]}, "macs[1]", 400, "twice"),
        ({"type_id": 5, "type_version": 4, "macs": MAC_A}, "macs", 400, "array"),
        ({"type_id": 5, "type_version": 4, "name": ""}, "name", 400, "non-empty"),
        ({"type_id": 5, "type_version": 4, "name": 7}, "name", 400, "text"),
        ({"type_id": 5, "type_version": 4, "ram": 4}, "ram", 400, "unknown field"),
        ({"type_id": 5, "type_version": 256}, "type_version", 400, "0-255"),
        ({"type_id": 5, "type_version": 4, "vsi_id": VSI_B}, "vsi_id", 400, "differs"),
        ({"type_id": 99, "type_version": 1}, "type_id", 409, "not in the VSI type database"),
        ({"type_id": 5, "type_version": 4, "tenant": "red"}, "tenant", 409, "belongs to"),
    ],
)
def test_bad_vm_registrations(harness, body, field, status, words):
    answer = harness.call("PUT", f"/v1/vms/{VSI_A}", body)
    assert answer[0] == status and answer[1]["field"] == field, answer
    assert words in answer[1]["error"]
    assert harness.registry.vm(VSI_A) is None and harness.store.vms() == []


def test_a_bad_vsi_id_in_the_url(harness):
    status, body = harness.call("PUT", "/v1/vms/not-a-uuid", {"type_id": 5, "type_version": 4})
    assert status == 400 and body["field"] == "vsi_id" and "UUID" in body["error"]
    assert harness.call("GET", "/v1/vms/not-a-uuid")[0] == 400


def test_a_mac_belongs_to_one_vm(harness):
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 5, "type_version": 4, "macs": [MAC_A]})
    status, body = harness.call(
        "PUT", f"/v1/vms/{VM_NEW}", {"type_id": 7, "type_version": 1, "macs": [MAC_A]}
    )
    assert status == 409 and body["field"] == "macs[0]" and VSI_A in body["error"]


def test_a_profile_in_use_cannot_be_deleted_or_given_away(harness):
    harness.call("PUT", "/v1/profiles/9/1", profile())
    harness.call("PUT", f"/v1/vms/{VM_NEW}", {"type_id": 9, "type_version": 1})
    status, body = harness.call("DELETE", "/v1/profiles/9/1")
    assert status == 409 and VM_NEW in body["error"]
    status, body = harness.call("PUT", "/v1/profiles/9/1", profile(tenant="green"))
    assert status == 409 and body["field"] == "tenant"
    assert harness.registry.database().get(9, 1).tenant == "blue"


# group registration -----------------------------------------------------------------------
def group(**extra):
    return {
        "group": "web-tier",
        "profiles": [profile(9, 1, vlans=[110, 111])],
        "vms": [
            {"vsi_id": VM_NEW, "macs": ["52:00:00:00:01:01"]},
            {"vsi_id": VSI_A, "macs": [MAC_A], "name": "web-1"},
        ],
        **extra,
    }


def test_a_group_registers_profiles_and_vms_together(harness):
    status, body = harness.call("POST", "/v1/groups", group())
    assert status == 200, body
    assert body["created"] == {"profiles": ["9/1"], "vms": [VM_NEW, VSI_A]}
    assert [(v["type_id"], v["group"], v["tenant"]) for v in body["vms"]] == [
        (9, "web-tier", "blue")
    ] * 2
    assert len(harness.service.applied) == 1
    assert [v["vsi_id"] for v in harness.call("GET", "/v1/vms?group=web-tier")[1]] == [
        VSI_A,
        VM_NEW,
    ]


def test_a_group_with_one_bad_vm_changes_nothing(harness):
    bad = group()
    bad["vms"].append({"vsi_id": VSI_B, "macs": ["ff:ff:ff:ff:ff:ff"]})
    status, body = harness.call("POST", "/v1/groups", bad)
    assert status == 400 and body["field"] == "vms[2].macs[0]"
    assert harness.registry.database().get(9, 1) is None
    assert harness.registry.state.vms == {}
    assert harness.store.profiles() == [] and harness.store.vms() == []
    assert harness.service.applied == []
    assert harness.call("GET", "/v1/events?kind=vm.")[1] == []


def test_a_group_with_a_conflict_changes_nothing(harness):
    bad = group()
    bad["profiles"].append(profile(10, 1, tenant="red", vlans=[111]))
    bad["vms"][0].update(type_id=9, type_version=1)
    bad["vms"][1].update(type_id=9, type_version=1)
    status, body = harness.call("POST", "/v1/groups", bad)
    assert status == 409 and body["field"] == "profiles[1].vlans"
    assert harness.registry.state.vms == {} and harness.store.profiles() == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "profiles"),
        ({"profiles": [], "vms": []}, "profiles"),
        ({"profiles": {}}, "profiles"),
        ({"members": []}, "members"),
        ({"group": "", "vms": [{"vsi_id": VM_NEW, "type_id": 5, "type_version": 4}]}, "group"),
        ({"profiles": [profile(), profile()]}, "profiles[1].type_id"),
        ({"vms": [{"vsi_id": VM_NEW, "type_id": 5, "type_version": 4}] * 2}, "vms[1].vsi_id"),
        ({"vms": [{"type_id": 5, "type_version": 4}]}, "vms[0].vsi_id"),
        (
            {"profiles": [profile(9), profile(10, vlans=[112])], "vms": [{"vsi_id": VM_NEW}]},
            "vms[0].type_id",
        ),
        ({"profiles": [profile(vlans=[5000])]}, "profiles[0].vlans[0]"),
    ],
)
def test_bad_groups_name_the_field(harness, body, field):
    status, answer = harness.call("POST", "/v1/groups", body)
    assert status == 400 and answer["field"] == field, answer
    assert harness.store.profiles() == [] and harness.store.vms() == []


def test_a_group_of_vms_only(harness):
    status, body = harness.call(
        "POST",
        "/v1/groups",
        {
            "vms": [
                {"vsi_id": VM_NEW, "type_id": 5, "type_version": 4},
                {"vsi_id": VSI_B, "type_id": 6, "type_version": 1},
            ]
        },
    )
    assert status == 200 and body["applied"] is None
    assert [v["tenant"] for v in body["vms"]] == ["blue", "red"]


def test_a_group_body_over_the_limit_is_refused(harness):
    vms = [{"vsi_id": VM_NEW, "type_id": 5, "type_version": 4, "name": "x" * 60}] * 20000
    status, body = harness.call("POST", "/v1/groups", {"vms": vms})
    assert status == 413 and str(MAX_BODY) in body["error"]


# tenants ----------------------------------------------------------------------------------
def test_a_tenant_sees_only_its_profiles_and_vms(harness):
    harness.call("PUT", f"/v1/vms/{VSI_A}", {"type_id": 5, "type_version": 4})
    harness.call("PUT", f"/v1/vms/{VSI_B}", {"type_id": 6, "type_version": 1})
    assert keys(harness.call("GET", "/v1/profiles", token=BLUE_TOKEN)[1]) == [(5, 4), (7, 1)]
    assert [v["vsi_id"] for v in harness.call("GET", "/v1/vms", token=RED_TOKEN)[1]] == [VSI_B]
    for path in ("/v1/profiles?tenant=red", "/v1/vms?tenant=red"):
        status, body = harness.call("GET", path, token=BLUE_TOKEN)
        assert status == 403 and "tenant blue" in body["error"], path
    # Another tenant's profile or VM answers as one that does not exist: no existence oracle.
    for path, missing in (("/v1/profiles/6/1", "/v1/profiles/6/9"), (f"/v1/vms/{VSI_B}", None)):
        status, body = harness.call("GET", path, token=BLUE_TOKEN)
        assert status == 404, path
        if missing:
            assert body == {
                **harness.call("GET", missing, token=BLUE_TOKEN)[1],
                "error": body["error"],
            }


def test_a_tenant_changes_only_its_own(harness):
    harness.call("PUT", f"/v1/vms/{VSI_B}", {"type_id": 6, "type_version": 1})
    attempts = [
        # for another tenant: 403, the body names a tenant that is not the token's
        ("PUT", "/v1/profiles/9/1", profile(tenant="red"), 403, "tenant"),
        (
            "PUT",
            f"/v1/vms/{VM_NEW}",
            {"type_id": 6, "type_version": 1, "tenant": "red"},
            403,
            "tenant",
        ),
        # red's objects: 404, as if they did not exist
        ("PUT", "/v1/profiles/6/1", profile(6, 1, vlans=[120]), 404, "type_id"),  # red's key
        ("DELETE", "/v1/profiles/6/1", None, 404, None),
        ("PUT", f"/v1/vms/{VSI_B}", {"type_id": 5, "type_version": 4}, 404, "vsi_id"),
        ("DELETE", f"/v1/vms/{VSI_B}", None, 404, "vsi_id"),
        (
            "POST",
            "/v1/groups",
            {"profiles": [profile(tenant="blue")], "vms": [{"vsi_id": VSI_B}]},
            404,
            "vms[0].vsi_id",
        ),
    ]
    for method, path, body, code, field in attempts:
        status, answer = harness.call(method, path, body, token=BLUE_TOKEN)
        assert status == code and answer["field"] == field, (method, path, answer)
    assert harness.registry.vm(VSI_B).tenant == "red"
    assert harness.registry.database().get(9, 1) is None
    assert harness.service.deassociated == [] and harness.service.applied == []


def test_a_tenant_does_not_learn_other_tenants_names_from_conflicts(harness):
    status, body = harness.call(
        "PUT", "/v1/profiles/9/1", profile(tenant="red", vlans=[100]), token=RED_TOKEN
    )
    assert status == 409 and "another tenant" in body["error"] and "blue" not in body["error"]


def test_a_tenant_pushes_and_registers_its_own(harness):
    status, _ = harness.call("POST", "/v1/groups", group(), token=BLUE_TOKEN)
    assert status == 200
    assert harness.call("DELETE", f"/v1/vms/{VM_NEW}", token=BLUE_TOKEN)[0] == 200
