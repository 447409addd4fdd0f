"""The event history: the controller's decisions and changes, paged by id, filtered by kind
prefix, switch, tenant or VSI. A tenant sees the events that name its tenant (detail.tenant)
and no others."""

from webob import Request

from app.registry.vms import canonical_vsi_id
from app.rest.auth import Principal
from app.rest.http import Query, json_response
from app.rest.router import Route
from app.store.base import Store

PAGE_MAX = 1000


class EventViews:
    def __init__(self, store: Store) -> None:
        self._store = store

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/events", self.events)]

    def events(self, request: Request, principal: Principal):
        """``after``: the id of the last event already seen (0: from the start); the answer
        is in id order, so the next page starts after its last id."""
        query = Query(request, ("after", "limit", "kind", "switch", "tenant", "vsi", "latest"))
        tenant = query.text("tenant")
        if tenant is not None:
            principal.require(tenant, f"tenant {tenant}'s events")
        return json_response(
            self._store.events(
                query.text("kind") or "",
                query.integer("after", 0, 0, 2**63 - 1),
                query.integer("limit", 100, 1, PAGE_MAX),
                switch=query.text("switch"),
                tenant=tenant if principal.admin else principal.tenant,
                vsi=canonical_vsi_id(vsi) if (vsi := query.text("vsi")) is not None else None,
                latest=bool(query.integer("latest", 0, 0, 1)),
            )
        )
