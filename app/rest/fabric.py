"""The fabric as the controller sees it: health, switches (with their ports), links, stations,
the data-plane probes' paths.
Infrastructure is shared by all tenants, so only admins see it (health is open)."""

from webob import Request

from app.registry import Registry
from app.rest.http import ApiError, Query, json_response
from app.rest.router import Access, Route
from app.service import NmsService


class FabricViews:
    def __init__(self, service: NmsService, registry: Registry) -> None:
        self._service = service
        self._registry = registry

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/v1/health", self.health, Access.OPEN),
            Route("GET", "/v1/switches", self.switches, Access.ADMIN),
            Route("GET", "/v1/switches/{switch}", self.switch, Access.ADMIN),
            Route("GET", "/v1/links", self.links, Access.ADMIN),
            Route("GET", "/v1/stations", self.stations, Access.ADMIN),
            Route("GET", "/v1/probes", self.probes, Access.ADMIN),
        ]

    def health(self, request: Request, principal):
        Query(request)
        switches = self._service.switches()
        return json_response(
            {
                "status": "ok",
                "switches": len(switches),
                "switches_ready": sum(s["state"] == "ready" for s in switches),
                "vsi_types": len(self._registry.database()),
            }
        )

    def switches(self, request: Request, principal):
        Query(request)
        return json_response(self._service.switches())

    def switch(self, request: Request, principal, switch: str):
        Query(request)
        found = find_switch(self._service.switches(), switch)
        if found is None:
            raise ApiError(404, f"no switch named {switch!r} (give its name or dpid)", "switch")
        return json_response(found)

    def links(self, request: Request, principal):
        Query(request)
        return json_response(self._service.links())

    def stations(self, request: Request, principal):
        Query(request)
        return json_response(self._service.stations())

    def probes(self, request: Request, principal):
        Query(request)
        return json_response(self._service.probes())


def find_switch(switches: list[dict], name_or_dpid: str) -> dict | None:
    """The switch with that name or dpid (16 hex digits, leading zeros optional)."""
    for switch in switches:
        if switch.get("name") == name_or_dpid:
            return switch
    try:
        dpid = int(name_or_dpid, 16)
    except ValueError:
        return None
    return next((s for s in switches if int(s.get("dpid", "-1"), 16) == dpid), None)
