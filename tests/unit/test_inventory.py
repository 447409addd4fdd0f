"""The inventory's pure model (app/registry/inventory.py) and the VM table's indexes: what a
change costs is what it changes, which host a port leads to, and what refers to what."""

import pytest

from app.registry.errors import Conflict, InvalidInput, NotFound
from app.registry.inventory import CLUSTER, DATACENTER, HOST, Inventory, Item, parse_item
from app.registry.vm_table import VmTable
from app.registry.vms import VmRecord


def _inventory() -> Inventory:
    return Inventory.of(
        [
            Item(DATACENTER, "east"),
            Item(DATACENTER, "west"),
            Item(CLUSTER, "c1", datacenter="east"),
            Item(HOST, "h1", cluster="c1", macs=("02:00:00:00:00:01",)),
            Item(HOST, "h2", datacenter="east", switch="edge1", port="edge1-s2"),
            Item(HOST, "h3", datacenter="west"),
        ]
    )


def test_hosts_in_a_datacenter_include_those_of_its_clusters():
    inventory = _inventory()
    assert inventory.hosts_in(DATACENTER, "east") == ["h1", "h2"]
    assert inventory.hosts_in(CLUSTER, "c1") == ["h1"]
    assert inventory.hosts_in(DATACENTER, "nowhere") == []
    assert inventory.datacenter_of(inventory.get(HOST, "h1")) == "east"


def test_a_port_leads_to_its_registered_host_before_the_one_its_lldp_names():
    inventory = _inventory()
    assert inventory.host_at("edge1", "edge1-s1", "02:00:00:00:00:01").name == "h1"
    assert inventory.host_at("edge1", "edge1-s2", "02:00:00:00:00:01").name == "h2"
    assert inventory.host_at("edge1", "edge1-s3", None) is None


def test_replacing_a_host_moves_its_indexes_and_removing_frees_them():
    inventory = _inventory().put(Item(HOST, "h1", datacenter="west", macs=("02:00:00:00:00:09",)))
    assert inventory.host_at("x", "y", "02:00:00:00:00:01") is None
    assert inventory.host_at("x", "y", "02:00:00:00:00:09").name == "h1"
    assert inventory.hosts_in(CLUSTER, "c1") == []
    assert inventory.hosts_in(DATACENTER, "west") == ["h1", "h3"]
    inventory = inventory.removed(HOST, "h2")
    assert inventory.host_at("edge1", "edge1-s2", None) is None


def test_what_an_item_refers_to_must_exist_and_agree():
    inventory = _inventory()
    with pytest.raises(Conflict, match="cluster c9 is not in the inventory"):
        inventory.resolved(Item(HOST, "h9", cluster="c9"))
    with pytest.raises(Conflict, match="cluster c1 is in data center east"):
        inventory.resolved(Item(HOST, "h9", cluster="c1", datacenter="west"))
    with pytest.raises(Conflict, match="is a MAC of host h1"):
        inventory.resolved(Item(HOST, "h9", macs=("02:00:00:00:00:01",)))
    # A clustered host follows its cluster's data center.
    assert inventory.resolved(Item(HOST, "h9", cluster="c1", datacenter="east")).datacenter is None
    with pytest.raises(Conflict, match="holds cluster c1, host h2"):
        inventory.check_removable(DATACENTER, "east")
    with pytest.raises(NotFound):
        inventory.check_removable(HOST, "h9")


def test_bodies_are_parsed_strictly():
    item = parse_item(HOST, "h1", {"addresses": ["FD00::1"], "macs": ["02:00:00:00:00:0A"]})
    assert (item.addresses, item.macs) == (("fd00::1",), ("02:00:00:00:00:0a",))
    for body, field in (
        ({"addresses": ["fd00::1", "FD00::1"]}, "addresses[1]"),
        ({"macs": ["01:00:5e:00:00:01"]}, "macs[0]"),
        ({"port": "p"}, "port"),
        ({"name": "x", "kind": "host", "ports": [], "vms": 3, "rack": 1}, "rack"),
    ):
        with pytest.raises(InvalidInput) as raised:
            parse_item(HOST, "h1", body)
        assert raised.value.field == field
    with pytest.raises(InvalidInput):
        parse_item(DATACENTER, "dc", {"datacenter": "east"})


def _vm(n, **fields):
    return VmRecord(f"v{n}", "blue", 5, 4, macs=(f"52:00:00:00:00:{n:02x}",), **fields)


def test_the_vm_table_indexes_group_host_network_and_ips_through_changes():
    table = VmTable.of(
        [
            _vm(1, group="g", host="h1", network="n", ips=("10.0.0.1", "fd00::1")),
            _vm(2, group="g", network="n", ips=("10.0.0.1",)),
        ]
    )
    assert table.listed("group", "g") == {"v1", "v2"}
    assert table.listed("ip", "10.0.0.1") == {"v1", "v2"}
    assert table.listed("host", "h1") == {"v1"}
    moved = table.changed([_vm(1, group="h", ips=("10.0.0.9",))], ["v2"])
    assert moved.listed("group", "g") == set() and moved.listed("group", "h") == {"v1"}
    assert moved.listed("ip", "10.0.0.1") == set() and moved.listed("ip", "10.0.0.9") == {"v1"}
    assert moved.listed("host", "h1") == set() and list(moved.keys_of("network")) == []
    assert table.listed("group", "g") == {"v1", "v2"}  # the old table is as it was
    assert moved.of_type(_vm(1).type_key) == {"v1"}
