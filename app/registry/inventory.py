"""The VM manager's inventory (draft-fw-nvo3-server2vcenter 4.2, 6): data centers, clusters in
them, and hosts (vServers: a name, addresses, MACs) in a cluster or a data center.

A host is bound to the switch ports it is plugged into two ways: by registration (``switch`` and
``port``) and by the LLDP it sends: its station's source MAC, which the port session learns, is
one of the host's ``macs``. ``host_at`` answers which host a port leads to, registration first.

Pure and immutable, as the VM table (app/registry/vm_table.py): a change builds the next
inventory in the time of what it changes (persistent maps, indexes by MAC and by port), so
readers keep their snapshot without a lock. Parsing, checks and errors name the field; who may
change it and what refers to it (VMs on a host) is the registry's to check.
"""

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyrsistent import PMap, pmap

from app.registry.errors import Conflict, InvalidInput, NotFound
from app.registry.fields import mapping, text
from app.registry.vms import parse_ip, parse_list, parse_mac

DATACENTER, CLUSTER, HOST = "datacenter", "cluster", "host"
KINDS = (DATACENTER, CLUSTER, HOST)
DESCRIPTION_MAX = 256
MAX_ADDRESSES = 16
READ_ONLY = ("kind", "name", "ports", "vms")  # in what the API returns

EMPTY: PMap = pmap()


@dataclass(frozen=True)
class Item:
    """A data center, cluster or host as stored; ``document`` is its JSON form."""

    kind: str
    name: str
    description: str | None = None
    datacenter: str | None = None  # clusters and hosts
    cluster: str | None = None  # hosts
    addresses: tuple[str, ...] = ()  # hosts: IPv4/IPv6, compressed
    macs: tuple[str, ...] = ()  # hosts: the MACs its LLDP comes from
    switch: str | None = None  # hosts: the registered port
    port: str | None = None

    def document(self) -> dict:
        fields = {"kind": self.kind, "name": self.name, "description": self.description}
        if self.kind != DATACENTER:
            fields["datacenter"] = self.datacenter
        if self.kind == HOST:
            fields.update(
                cluster=self.cluster,
                addresses=list(self.addresses),
                macs=list(self.macs),
                switch=self.switch,
                port=self.port,
            )
        return fields

    @classmethod
    def from_document(cls, document: dict) -> "Item":
        return cls(
            **{
                **document,
                "addresses": tuple(document.get("addresses", ())),
                "macs": tuple(document.get("macs", ())),
            }
        )


KEYS = {
    DATACENTER: ("description",),
    CLUSTER: ("description", "datacenter"),
    HOST: ("description", "datacenter", "cluster", "addresses", "macs", "switch", "port"),
}


def parse_item(kind: str, name, body) -> Item:
    """An item from its JSON body; ``name`` is the URL's."""
    name = text(name, "name")
    fields = mapping(body, "", KEYS[kind], ignored=READ_ONLY)
    if kind == CLUSTER and "datacenter" not in fields:
        raise InvalidInput("required field is missing", "datacenter")
    values: dict = {"kind": kind, "name": name}
    if "description" in fields:
        values["description"] = text(fields["description"], "description", DESCRIPTION_MAX)
    for key in ("datacenter", "cluster", "switch", "port"):
        if key in fields:
            values[key] = text(fields[key], key)
    if kind == HOST:
        if ("switch" in values) != ("port" in values):
            raise InvalidInput("give both switch and port, or neither", "port")
        for key, parse in (("addresses", parse_ip), ("macs", parse_mac)):
            values[key] = parse_list(fields.get(key, []), key, parse, MAX_ADDRESSES)
    return Item(**values)


@dataclass(frozen=True)
class Inventory:
    items: PMap = EMPTY  # (kind, name) -> Item
    by_mac: PMap = EMPTY  # MAC -> host name
    by_port: PMap = EMPTY  # (switch, port) -> host name
    members: PMap = field(default=EMPTY)  # (kind, name) -> PMap of (kind, name) in it

    @classmethod
    def of(cls, items: Iterable[Item]) -> "Inventory":
        inventory = cls()
        for item in items:
            inventory = inventory.put(item)
        return inventory

    def get(self, kind: str, name: str) -> Item | None:
        return self.items.get((kind, name))

    def of_kind(self, kind: str) -> list[Item]:
        """Every item of ``kind``, by name (the inventory's size: a listing's cost)."""
        return sorted((i for (k, _), i in self.items.items() if k == kind), key=lambda i: i.name)

    def hosts_in(self, kind: str, name: str) -> list[str]:
        """The hosts of a data center (with those of its clusters) or of a cluster."""
        direct = self.members.get((kind, name), EMPTY)
        hosts = [n for (k, n) in direct if k == HOST]
        for k, n in direct:
            if k == CLUSTER:
                hosts += self.hosts_in(CLUSTER, n)
        return sorted(hosts)

    def host_at(self, switch: str, port: str, station_mac: str | None) -> Item | None:
        """The host a port leads to: registered there, else the one whose MAC its station's
        LLDP comes from."""
        name = self.by_port.get((switch, port))
        if name is None and station_mac is not None:
            name = self.by_mac.get(station_mac)
        return self.items.get((HOST, name)) if name is not None else None

    def resolved(self, item: Item) -> Item:
        """``item`` checked against the inventory: what it refers to exists and agrees, its MACs
        and port are no other host's. A host in a cluster is in the cluster's data center: its
        own is dropped (it follows the cluster)."""
        self._check(item)
        if item.kind == HOST and item.cluster is not None:
            return dataclasses.replace(item, datacenter=None)
        return item

    def datacenter_of(self, item: Item) -> str | None:
        if item.kind == HOST and item.cluster is not None:
            cluster = self.items.get((CLUSTER, item.cluster))
            return cluster.datacenter if cluster is not None else None
        return item.datacenter

    def view(self, item: Item) -> dict:
        """The item's JSON form with its data center as it is now."""
        return {
            **item.document(),
            **({"datacenter": self.datacenter_of(item)} if item.kind != DATACENTER else {}),
        }

    def _check(self, item: Item) -> None:
        if item.datacenter is not None and (DATACENTER, item.datacenter) not in self.items:
            raise Conflict(f"data center {item.datacenter} is not in the inventory", "datacenter")
        if item.cluster is not None:
            cluster = self.items.get((CLUSTER, item.cluster))
            if cluster is None:
                raise Conflict(f"cluster {item.cluster} is not in the inventory", "cluster")
            if item.datacenter is not None and item.datacenter != cluster.datacenter:
                raise Conflict(
                    f"cluster {item.cluster} is in data center {cluster.datacenter}", "datacenter"
                )
        for index, mac in enumerate(item.macs):
            other = self.by_mac.get(mac)
            if other is not None and other != item.name:
                raise Conflict(f"{mac} is a MAC of host {other}", f"macs[{index}]")
        if item.switch is not None:
            other = self.by_port.get((item.switch, item.port))
            if other is not None and other != item.name:
                raise Conflict(f"{item.switch}/{item.port} is the port of host {other}", "port")

    def put(self, item: Item) -> "Inventory":
        """The inventory with ``item`` in (replacing the one of that kind and name)."""
        base = self.removed(item.kind, item.name) if (item.kind, item.name) in self.items else self
        key = (item.kind, item.name)
        members = base.members
        parent = _parent(item)
        if parent is not None:
            members = members.set(parent, members.get(parent, EMPTY).set(key, True))
        by_mac, by_port = base.by_mac, base.by_port
        if item.kind == HOST:
            by_mac = by_mac.update({mac: item.name for mac in item.macs})
            if item.switch is not None:
                by_port = by_port.set((item.switch, item.port), item.name)
        return Inventory(base.items.set(key, item), by_mac, by_port, members)

    def removed(self, kind: str, name: str) -> "Inventory":
        item = self.items[(kind, name)]
        members = self.members
        parent = _parent(item)
        if parent is not None:
            left = members[parent].remove((kind, name))
            members = members.set(parent, left) if left else members.remove(parent)
        by_mac, by_port = self.by_mac, self.by_port
        for mac in item.macs:
            by_mac = by_mac.remove(mac)
        if item.switch is not None:
            by_port = by_port.remove((item.switch, item.port))
        return Inventory(self.items.remove((kind, name)), by_mac, by_port, members)

    def check_removable(self, kind: str, name: str) -> None:
        if (kind, name) not in self.items:
            raise NotFound(f"{kind} {name} is not in the inventory", "name")
        inside = sorted(f"{k} {n}" for k, n in self.members.get((kind, name), EMPTY))
        if inside:
            raise Conflict(f"{kind} {name} holds {', '.join(inside[:5])}: remove them first")


def _parent(item: Item) -> tuple[str, str] | None:
    """Where an item is listed: a host in its cluster, else its data center."""
    if item.cluster is not None:
        return (CLUSTER, item.cluster)
    if item.datacenter is not None:
        return (DATACENTER, item.datacenter)
    return None
