"""The draft's model over REST (draft-fw-nvo3-server2vcenter 3.5, 4.2, 5.3, 5.4, 6): data
centers, clusters and hosts (bound to ports by registration and by their station's LLDP), VMs
with IPs, virtual network and host, lists filtered by them; group sync as a full replace and
group delete; server lookup with the host's name and addresses."""

from tests.unit.test_rest_harness import BLUE_TOKEN, MAC_A, RED_TOKEN, VSI_A, VSI_B, profile

STATION_MAC = "a6:00:00:00:00:01"  # the fake's station on edge1/edge1-s1


def vm(n: int, **extra) -> dict:
    return {
        "vsi_id": f"a1b2c3d4-0000-0000-0000-0000000001{n:02d}",
        "type_id": 5,
        "type_version": 4,
        "macs": [f"52:00:00:00:01:{n:02x}"],
        **extra,
    }


def inventory(harness) -> None:
    """east: cluster c1 (host srv11, by LLDP) and host srv22 (registered at edge2/edge2-s2)."""
    assert harness.call("PUT", "/v1/datacenters/east", {"description": "Building A"})[0] == 201
    assert harness.call("PUT", "/v1/clusters/c1", {"datacenter": "east"})[0] == 201
    status, body = harness.call(
        "PUT",
        "/v1/hosts/srv11",
        {"cluster": "c1", "addresses": ["192.0.2.11", "FD00::11"], "macs": [STATION_MAC.upper()]},
    )
    assert status == 201, body
    status, body = harness.call(
        "PUT", "/v1/hosts/srv22", {"datacenter": "east", "switch": "edge2", "port": "edge2-s2"}
    )
    assert status == 201, body


def test_hosts_are_bound_by_lldp_and_by_registration_and_listed_by_place(harness):
    inventory(harness)
    status, host = harness.call("GET", "/v1/hosts/srv11")
    assert status == 200
    assert (host["datacenter"], host["cluster"], host["addresses"]) == (
        "east",
        "c1",
        ["192.0.2.11", "fd00::11"],
    )
    assert host["ports"] == [{"switch": "edge1", "port": "edge1-s1", "by": "lldp"}]
    hosts = harness.call("GET", "/v1/hosts?datacenter=east")[1]
    assert [h["name"] for h in hosts] == ["srv11", "srv22"]
    srv22 = hosts[1]
    assert srv22["ports"] == [{"switch": "edge2", "port": "edge2-s2", "by": "registration"}]
    assert [h["name"] for h in harness.call("GET", "/v1/hosts?cluster=c1")[1]] == ["srv11"]
    assert [c["name"] for c in harness.call("GET", "/v1/clusters?datacenter=east")[1]] == ["c1"]
    assert harness.call("GET", "/v1/datacenters")[1] == [
        {"kind": "datacenter", "name": "east", "description": "Building A"}
    ]
    harness.reopen()  # kept in the store
    assert harness.call("GET", "/v1/hosts/srv11")[1] == host


def test_the_inventory_refuses_what_contradicts_it_naming_the_field(harness):
    inventory(harness)
    for path, body, status, field in (
        ("/v1/hosts/h9", {"cluster": "c9"}, 409, "cluster"),
        ("/v1/hosts/h9", {"cluster": "c1", "datacenter": "west"}, 409, "datacenter"),
        ("/v1/hosts/h9", {"macs": [STATION_MAC]}, 409, "macs[0]"),
        ("/v1/hosts/h9", {"switch": "edge2", "port": "edge2-s2"}, 409, "port"),
        ("/v1/hosts/h9", {"switch": "edge2"}, 400, "port"),
        ("/v1/hosts/h9", {"addresses": ["10.0.0.300"]}, 400, "addresses[0]"),
        ("/v1/hosts/h9", {"rack": 4}, 400, "rack"),
        ("/v1/clusters/c9", {}, 400, "datacenter"),
    ):
        answer = harness.call("PUT", path, body)
        assert (answer[0], answer[1]["field"]) == (status, field), (path, body, answer)
    status, body = harness.call("DELETE", "/v1/clusters/c1")
    assert status == 409 and "host srv11" in body["error"]
    assert harness.call("DELETE", "/v1/hosts/nope")[0] == 404
    assert harness.call("GET", "/v1/hosts", token=BLUE_TOKEN)[0] == 403
    assert harness.call("PUT", "/v1/datacenters/x", {}, token=BLUE_TOKEN)[0] == 403


def test_vms_carry_ips_network_and_host_and_are_listed_by_them(harness):
    inventory(harness)
    status, body = harness.call("PUT", f"/v1/vms/{vm(1)['vsi_id']}", vm(1, host="srv99"))
    assert (status, body["field"]) == (409, "host")
    for n, extra in (
        (1, {"host": "srv11", "network": "vn-a", "ips": ["10.0.0.1", "fd00::1"]}),
        (2, {"host": "srv22", "network": "vn-a", "ips": ["10.0.0.2"]}),
        (3, {"network": "vn-b", "ips": ["10.0.0.1"]}),
    ):
        status, body = harness.call("PUT", f"/v1/vms/{vm(n)['vsi_id']}", vm(n, **extra))
        assert status == 201, body
    assert body["vm"]["ips"] == ["10.0.0.1"] and body["vm"]["network"] == "vn-b"

    def listed(query, token=None):
        kwargs = {"token": token} if token else {}
        status, vms = harness.call("GET", f"/v1/vms?{query}", **kwargs)
        assert status == 200, vms
        return [int(v["vsi_id"][-2:]) for v in vms]

    assert listed("host=srv11") == [1]
    assert listed("cluster=c1") == [1]
    assert listed("datacenter=east") == [1, 2]
    assert listed("network=vn-a") == [1, 2]
    assert listed("ip=10.0.0.1") == [1, 3]
    assert listed("ip=FD00:0::1") == [1]
    assert listed("ip=10.0.0.1&network=vn-b") == [3]
    assert listed("network=vn-a", token=RED_TOKEN) == []  # blue's VMs
    assert harness.call("GET", "/v1/vms?ip=ten")[1]["field"] == "ip"
    status, body = harness.call("DELETE", "/v1/hosts/srv11")
    assert status == 409 and "VMs are registered on host srv11" in body["error"]


def test_associations_are_filtered_by_the_hosts_ports(harness):
    inventory(harness)

    def held(query):
        return [v["vsi_id"] for v in harness.call("GET", f"/v1/associations?{query}")[1]]

    assert held("host=srv11") == [VSI_A]  # its station's LLDP comes from srv11's MAC
    assert held("host=srv22") == [VSI_B]  # registered at edge2/edge2-s2
    assert held("datacenter=east") == [VSI_A, VSI_B]
    assert held("cluster=c1&limit=10") == [VSI_A]


def test_group_sync_replaces_the_group_whole_and_delete_removes_it(harness):
    status, body = harness.call(
        "POST",
        "/v1/groups",
        {"group": "web", "profiles": [profile(9)], "vms": [vm(1), vm(2)]},
    )
    assert status == 200, body
    status, body = harness.call(
        "PUT", "/v1/groups/web", {"profiles": [profile(9)], "vms": [vm(2), vm(3)]}
    )
    assert status == 200, body
    assert body["removed"] == [vm(1)["vsi_id"]] and body["created"]["vms"] == [vm(3)["vsi_id"]]
    assert harness.call("GET", f"/v1/vms/{vm(1)['vsi_id']}")[0] == 404
    members = harness.call("GET", "/v1/groups/web")[1]["vms"]
    assert [m["vsi_id"] for m in members] == [vm(2)["vsi_id"], vm(3)["vsi_id"]]
    assert {m["group"] for m in members} == {"web"}
    assert harness.call("GET", "/v1/groups/web", token=RED_TOKEN)[0] == 404
    status, body = harness.call("PUT", "/v1/groups/web", {"vms": [vm(4, group="other")]})
    assert (status, body["field"]) == (400, "vms[0].group")
    status, body = harness.call("PUT", "/v1/groups/web", {"group": "db", "vms": []})
    assert (status, body["field"]) == (400, "group")
    status, body = harness.call("DELETE", "/v1/groups/web")
    assert status == 200 and body["removed"] == [vm(2)["vsi_id"], vm(3)["vsi_id"]]
    assert harness.call("DELETE", "/v1/groups/web")[0] == 404


def test_a_vm_the_sync_leaves_out_is_deassociated_if_the_bridge_holds_it(harness):
    held = {**vm(1), "vsi_id": VSI_A, "macs": [MAC_A]}
    assert harness.call("POST", "/v1/groups", {"group": "web", "vms": [held, vm(2)]})[0] == 200
    status, body = harness.call("PUT", "/v1/groups/web", {"vms": [vm(2)]})
    assert status == 200 and body["removed"] == [VSI_A] and body["deassociated"] == [VSI_A]
    assert [vsi for vsi, _ in harness.service.deassociated] == [VSI_A]


def test_a_tenant_syncs_only_its_own_vms_of_a_group(harness):
    red = {"type_id": 6, "type_version": 1}
    for n, token, extra in ((1, BLUE_TOKEN, {}), (2, RED_TOKEN, red)):
        status, body = harness.call(
            "POST", "/v1/groups", {"group": "shared", "vms": [vm(n, **extra)]}, token=token
        )
        assert status == 200, body
    status, body = harness.call("PUT", "/v1/groups/shared", {"vms": []}, token=RED_TOKEN)
    assert status == 200 and body["removed"] == [vm(2)["vsi_id"]]
    members = harness.call("GET", "/v1/groups/shared", token=BLUE_TOKEN)[1]["vms"]
    assert [m["vsi_id"] for m in members] == [vm(1)["vsi_id"]]


def test_lookup_answers_with_the_hosts_name_and_addresses(harness):
    inventory(harness)
    harness.service.previous_host = "srv11"
    status, body = harness.call("GET", f"/v1/lookup?vsi_id={VSI_A}")
    assert status == 200
    (previous,) = body["previous"]
    assert previous["host"] == {
        "name": "srv11",
        "addresses": ["192.0.2.11", "fd00::11"],
        "cluster": "c1",
        "datacenter": "east",
    }
    assert body["current"][0]["host"] is None  # the fake names no host there
