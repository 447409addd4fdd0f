"""The inventory (draft 4.2, 6): data centers, clusters and hosts. Admins only: hosts are the
fabric's servers, shared by every tenant. The registry checks, stores and announces
(app/registry/inventory.py); this module maps HTTP onto it and adds where each host is plugged
in: its registered port and the ports whose station's LLDP comes from one of its MACs."""

from collections import defaultdict

from webob import Request

from app.registry import Registry
from app.registry.inventory import CLUSTER, DATACENTER, HOST, Inventory, Item
from app.rest.auth import Principal
from app.rest.http import ApiError, Query, check_text, json_response, read_json
from app.rest.router import Access, Route
from app.service import NmsService

PATHS = {DATACENTER: "datacenters", CLUSTER: "clusters", HOST: "hosts"}
FILTERS = {DATACENTER: (), CLUSTER: ("datacenter",), HOST: ("datacenter", "cluster")}


class InventoryViews:
    def __init__(self, service: NmsService, registry: Registry) -> None:
        self._service = service
        self._registry = registry

    def routes(self) -> list[Route]:
        routes = []
        for kind, path in PATHS.items():
            one = f"/v1/{path}/{{name}}"
            routes += [
                Route("GET", f"/v1/{path}", self._lister(kind), Access.ADMIN),
                Route("GET", one, self._getter(kind), Access.ADMIN),
                Route("PUT", one, self._putter(kind), Access.ADMIN),
                Route("DELETE", one, self._deleter(kind), Access.ADMIN),
            ]
        return routes

    def _lister(self, kind: str):
        def listed(request: Request, principal: Principal):
            query = Query(request, FILTERS[kind])
            inventory = self._registry.state.inventory
            wanted = {name: query.text(name) for name in FILTERS[kind]}
            items = inventory.of_kind(kind)
            if wanted.get("cluster") is not None:
                items = [i for i in items if i.cluster == wanted["cluster"]]
            if wanted.get("datacenter") is not None:
                items = [i for i in items if inventory.datacenter_of(i) == wanted["datacenter"]]
            ports = lldp_ports(self._service) if kind == HOST else {}
            return json_response([self._view(item, ports) for item in items])

        return listed

    def _getter(self, kind: str):
        def one(request: Request, principal: Principal, name: str):
            Query(request)
            item = self._registry.state.inventory.get(kind, check_text(name, "name"))
            if item is None:
                raise ApiError(404, f"{kind} {name} is not in the inventory", "name")
            ports = lldp_ports(self._service) if kind == HOST else {}
            return json_response(self._view(item, ports))

        return one

    def _putter(self, kind: str):
        def put(request: Request, principal: Principal, name: str):
            Query(request)
            item, created = self._registry.put_item(
                kind, check_text(name, "name"), read_json(request), principal.tenant
            )
            ports = lldp_ports(self._service) if kind == HOST else {}
            return json_response(
                {kind: self._view(item, ports), "created": created}, 201 if created else 200
            )

        return put

    def _deleter(self, kind: str):
        def delete(request: Request, principal: Principal, name: str):
            Query(request)
            self._registry.delete_item(kind, check_text(name, "name"), principal.tenant)
            return json_response({"deleted": {"kind": kind, "name": name}})

        return delete

    def _view(self, item: Item, lldp_ports: dict[str, list[dict]]) -> dict:
        state = self._registry.state
        view = state.inventory.view(item)
        if item.kind == HOST:
            registered = (
                [{"switch": item.switch, "port": item.port, "by": "registration"}]
                if item.switch is not None
                else []
            )
            seen = [p for mac in item.macs for p in lldp_ports.get(mac, ())]
            view["ports"] = registered + [{**p, "by": "lldp"} for p in seen]
            view["vms"] = len(state.vms.listed("host", item.name))
        return view


def lldp_ports(service: NmsService) -> dict[str, list[dict]]:
    """The server ports by the MAC their station's LLDP comes from (one pass over the switches
    and the stations, per request)."""
    names = {switch["dpid"]: switch["name"] for switch in service.switches()}
    ports: dict[str, list[dict]] = defaultdict(list)
    for station in service.stations():
        if station.get("station"):
            switch = names.get(station["switch"], station["switch"])
            ports[station["station"]["mac"]].append({"switch": switch, "port": station["port"]})
    return ports


def selected_hosts(inventory: Inventory, query: Query) -> set[str] | None:
    """The hosts the query's ``host``, ``cluster`` and ``datacenter`` filters leave (all of
    them apply), None without such a filter. Costs the hosts named."""
    selected = None
    for kind in (HOST, CLUSTER, DATACENTER):
        name = query.text(kind)
        if name is None:
            continue
        hosts = {name} if kind == HOST else set(inventory.hosts_in(kind, name))
        selected = hosts if selected is None else selected & hosts
    return selected


def host_ports(service: NmsService, inventory: Inventory, hosts: set[str]) -> set[tuple]:
    """The (switch, port) names the hosts are plugged into: registered or by LLDP."""
    lldp = lldp_ports(service)
    ports = set()
    for name in hosts:
        item = inventory.get(HOST, name)
        if item is None:
            continue
        if item.switch is not None:
            ports.add((item.switch, item.port))
        ports.update((p["switch"], p["port"]) for mac in item.macs for p in lldp.get(mac, ()))
    return ports
