"""The draft's model on the real bed (docs/inventory.md): hosts registered with their uplinks'
MACs are bound to their switch ports by the LLDP lldpad sends; VMs are listed by cluster and
host; a VM that migrates from srv11 to srv21 is looked up (draft 5.4) with the host it left, by
name and address, and still is after the controller restarts."""

from tests.integration.bed import MARKS, wait_until
from tests.integration.conftest import wait_fabric_ready

pytestmark = MARKS
MAC, UUID = "52:54:00:00:10:01", "a1b2c3d4-0000-0000-0000-000000001001"
HOSTS = {"srv11": ("c1", "192.0.2.11", "edge1-s1"), "srv21": ("c2", "192.0.2.21", "edge2-s1")}


def _register_inventory(bed, controller):
    controller.call("PUT", "/v1/datacenters/east", {"description": "the bed"})
    for name, (cluster, address, _) in HOSTS.items():
        controller.call("PUT", f"/v1/clusters/{cluster}", {"datacenter": "east"})
        uplink = bed.server(name).defaultIntf().MAC()
        controller.call(
            "PUT",
            f"/v1/hosts/{name}",
            {"cluster": cluster, "addresses": [address], "macs": [uplink]},
        )


def test_hosts_are_bound_by_lldp_and_the_lookup_names_the_host_across_a_restart(
    bed, stations, controller
):
    _register_inventory(bed, controller)
    for name, (_, _, port) in HOSTS.items():
        switch = port.split("-")[0]

        def bound(name=name):
            return controller.rest(f"/v1/hosts/{name}")["ports"]

        ports = wait_until(bound, timeout=35, message=f"{name} not bound by its LLDP")
        assert ports == [{"switch": switch, "port": port, "by": "lldp"}]
    assert [h["name"] for h in controller.rest("/v1/hosts?datacenter=east")] == list(HOSTS)

    bed.add_vm("vm1", "srv11", MAC, "10.0.16.1/24")
    assert stations["srv11"].vdp("assoc", "mgr1", 5, 4, UUID, filters=[f"0-{MAC}"]).ok
    controller.call(
        "PUT",
        f"/v1/vms/{UUID}",
        {
            "type_id": 5,
            "type_version": 4,
            "macs": [MAC],
            "host": "srv11",
            "ips": ["10.0.16.1"],
            "network": "vn-blue",
        },
    )
    assert [v["vsi_id"] for v in controller.rest("/v1/vms?cluster=c1&network=vn-blue")] == [UUID]
    assert [v["vsi_id"] for v in controller.rest("/v1/associations?host=srv11")] == [UUID]

    # The VM moves to srv21 (its station associates it with the migrate-to hint).
    moved = stations["srv21"].vdp("assoc", "mgr1", 5, 4, UUID, hints="to", filters=[f"0-{MAC}"])
    assert moved.ok, moved.raw
    assert [v["vsi_id"] for v in controller.rest("/v1/associations?cluster=c2")] == [UUID]

    def looked_up():
        found = controller.rest(f"/v1/lookup?vsi_id={UUID}")
        return found if found["previous"] else None

    found = wait_until(looked_up, timeout=10, message="no previous place")
    assert [p["host"]["name"] for p in found["current"]] == ["srv21"]
    (left,) = found["previous"]
    assert (left["port"], left["host"]["name"], left["host"]["addresses"]) == (
        "edge1-s1",
        "srv11",
        ["192.0.2.11"],
    )
    controller.stop()
    controller.start()
    wait_fabric_ready(controller, bed)  # the switches name their ports again
    again = controller.rest(f"/v1/lookup?vsi_id={UUID}")
    # The history, hosts and all, from the store ("until" is converted at each answer).
    assert [(p["port"], p["host"]) for p in again["previous"]] == [
        (p["port"], p["host"]) for p in found["previous"]
    ]
