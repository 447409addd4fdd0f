"""What the bridge holds per VSI, where a VM is (draft 5.4 lookup) and moving it (5.5/5.6).

A VSI's tenant is that of its registration, else that of the types it is attached with; a tenant
token sees and moves only its own VSIs.
"""

from webob import Request

from app.registry import Registry
from app.registry.errors import InvalidInput
from app.registry.fields import boolean, mapping, text
from app.registry.inventory import HOST, Inventory
from app.registry.vms import canonical_vsi_id, parse_mac, parse_vsi_id
from app.rest.auth import Principal
from app.rest.fabric import find_switch
from app.rest.http import (
    PAGE_DEFAULT,
    PAGE_MAX,
    SCAN,
    ApiError,
    Query,
    json_response,
    next_link,
    read_json,
)
from app.rest.inventory_views import host_ports, selected_hosts
from app.rest.router import Route
from app.service import NmsService
from app.vdp.bridge import VsiState
from app.vdp.describe import vsi_id_from_text

STATES = tuple(state.value for state in VsiState)
RELOCATE_KEYS = ("switch", "port", "replicate")


class AssociationViews:
    def __init__(self, service: NmsService, registry: Registry) -> None:
        self._service = service
        self._registry = registry

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/associations", self.associations),
            Route("GET", "/v1/associations/{vsi_id}", self.association),
            Route("GET", "/v1/lookup", self.lookup),
            Route("POST", "/v1/vms/{vsi_id}/relocate", self.relocate),
            Route("GET", "/v1/vms/{vsi_id}/stats", self.stats),
        ]

    def associations(self, request: Request, principal: Principal):
        """Every VSI held, or with ``limit`` or ``after`` one page in VSI ID order from after
        ``after``, whose next page a ``Link: <...>; rel="next"`` header names."""
        query = Query(
            request,
            ("tenant", "switch", "state", "host", "cluster", "datacenter", "limit", "after"),
        )
        tenant, switch, state = query.text("tenant"), query.text("switch"), query.text("state")
        if tenant is not None:
            principal.require(tenant, f"tenant {tenant}'s associations")
        if state is not None and state not in STATES:
            raise InvalidInput(f"expected one of {', '.join(STATES)}, got {state!r}", "state")
        names = _switch_names(self._service.switches(), switch) if switch is not None else None
        inventory = self._registry.state.inventory
        hosts = selected_hosts(inventory, query)
        ports = host_ports(self._service, inventory, hosts) if hosts is not None else None

        def keep(vsi: dict) -> bool:
            attachments = vsi.get("attachments", [])
            return (
                principal.may_see(self._owner(vsi["vsi_id"], vsi))
                and (tenant is None or any(a.get("tenant") == tenant for a in attachments))
                and (names is None or any(str(a.get("switch")) in names for a in attachments))
                and (ports is None or any((a["switch"], a["port"]) in ports for a in attachments))
                and (
                    state is None
                    or vsi.get("state") == state
                    or any(a.get("state") == state for a in attachments)
                )
            )

        if query.text("limit") is None and query.text("after") is None:
            return json_response([vsi for vsi in self._service.associations() if keep(vsi)])
        limit = query.integer("limit", PAGE_DEFAULT, 1, PAGE_MAX)
        after = query.text("after")
        if after is not None:
            after = canonical_vsi_id(after)
            if vsi_id_from_text(after) is None:
                raise InvalidInput(f"not a VSI ID: {after!r}", "after")
        page, last = self._service.associations_after(after, limit, keep, SCAN * limit)
        response = json_response(page)
        if last is not None:
            response.headers["Link"] = next_link(request, last)
        return response

    def association(self, request: Request, principal: Principal, vsi_id: str):
        vsi_id, vsi, _ = self._visible(request, principal, vsi_id)
        return json_response({**vsi, "stats": self._service.vm_stats(vsi_id) or []})

    def stats(self, request: Request, principal: Principal, vsi_id: str):
        """The VM's traffic counters per attachment, from its switch's last poll."""
        vsi_id, _, missing = self._visible(request, principal, vsi_id)
        stats = self._service.vm_stats(vsi_id)
        if stats is None:  # de-associated between the two calls
            raise missing
        return json_response({"vsi_id": vsi_id, "attachments": stats})

    def _visible(self, request: Request, principal: Principal, vsi_id: str):
        """(VSI ID text, the VSI, its 404) of a VSI the principal may see; else that 404."""
        Query(request)
        vsi_id = canonical_vsi_id(vsi_id)
        vsi = self._service.association(vsi_id)
        missing = ApiError(404, f"the bridge holds no VSI {vsi_id}", "vsi_id")
        if vsi is None:
            raise missing
        principal.check_visible(self._owner(vsi_id, vsi), missing)
        return vsi_id, vsi, missing

    def lookup(self, request: Request, principal: Principal):
        """By VSI ID or MAC: where the VM is, where it was, and its registration."""
        query = Query(request, ("vsi_id", "mac"))
        vsi_id, mac = query.text("vsi_id"), query.text("mac")
        if (vsi_id is None) == (mac is None):
            raise InvalidInput("give exactly one of vsi_id and mac", "vsi_id")
        if vsi_id is not None:
            key = parse_vsi_id(vsi_id)
            found = self._service.lookup(key)
            vm = self._registry.vm(key)
        else:
            key = parse_mac(mac, "mac")
            found = self._service.lookup(key)
            vm = self._registry.vm_by_mac(key)
            if vm is None and found is not None:
                vm = self._registry.vm(found.get("vsi_id", ""))
        missing = ApiError(
            404,
            f"no VM with {'VSI ID' if vsi_id else 'MAC'} {key} was ever seen or registered",
            "vsi_id" if vsi_id else "mac",
        )
        if found is None and vm is None:
            raise missing
        found = found or {"vsi_id": vm.vsi_id, "current": [], "previous": []}
        principal.check_visible(vm.tenant if vm else _tenant_of(found["current"]), missing)
        inventory = self._registry.state.inventory
        places = {
            when: [{**place, "host": _host(inventory, place.get("host"))} for place in found[when]]
            for when in ("current", "previous")
        }
        return json_response({**found, **places, "vm": vm.document() if vm else None})

    def relocate(self, request: Request, principal: Principal, vsi_id: str):
        """Prepares the VM's network at another port before it moves (or, with replicate, is
        copied) there."""
        vsi_id = parse_vsi_id(vsi_id)
        fields = mapping(read_json(request), "", RELOCATE_KEYS, ("switch", "port"))
        switch = text(fields["switch"], "switch")
        port = fields["port"]
        if isinstance(port, bool) or not isinstance(port, (str, int)) or port == "":
            raise InvalidInput(f"expected a port name or number, got {port!r}", "port")
        replicate = boolean(fields.get("replicate", False), "replicate")
        owner = self._owner(vsi_id, self._service.association(vsi_id))
        missing = ApiError(404, f"the bridge holds no VSI {vsi_id}", "vsi_id")
        if owner is None and not principal.admin:
            raise missing
        principal.check_visible(owner, missing)
        try:
            result = self._service.relocate(vsi_id, switch, port, replicate=replicate)
        except KeyError as err:
            raise ApiError(404, _reason(err), "vsi_id") from None
        except ValueError as err:
            raise ApiError(409, _reason(err)) from None
        return json_response(result)

    def _owner(self, vsi_id: str, vsi: dict | None) -> str | None:
        vm = self._registry.vm(vsi_id)
        if vm is not None:
            return vm.tenant
        return _tenant_of(vsi.get("attachments", [])) if vsi else None


def _tenant_of(attachments: list[dict]) -> str | None:
    return next((a["tenant"] for a in attachments if a.get("tenant")), None)


def _switch_names(switches: list[dict], switch: str) -> set[str]:
    """The names an attachment may use for ``switch``: as given, its name and its dpid."""
    found = find_switch(switches, switch)
    return {switch} | ({found.get("name"), found.get("dpid")} if found else set())


def _reason(err: Exception) -> str:
    # KeyError's str() is the repr of its argument: show the text itself.
    return str(err.args[0]) if err.args else type(err).__name__


def _host(inventory: Inventory, name: str | None) -> dict | None:
    """The host (vServer) of a place as the draft's lookup answers it: its name and addresses,
    and where it is in the inventory now (a host removed since: its name alone)."""
    if name is None:
        return None
    item = inventory.get(HOST, name)
    if item is None:
        return {"name": name, "addresses": [], "cluster": None, "datacenter": None}
    return {
        "name": name,
        "addresses": list(item.addresses),
        "cluster": item.cluster,
        "datacenter": inventory.datacenter_of(item),
    }
