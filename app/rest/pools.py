"""VLAN pools (docs/security.md): which VLANs each tenant's VSI types may use. Admins only: a
tenant that could set its own pool could take every VLAN. The registry checks, stores and
announces; this module maps HTTP onto it."""

from webob import Request

from app.registry import Registry
from app.rest.auth import Principal
from app.rest.http import ApiError, Query, check_text, json_response, read_json
from app.rest.router import Access, Route


class PoolViews:
    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def routes(self) -> list[Route]:
        pool = "/v1/vlan-pools/{tenant}"
        return [
            Route("GET", "/v1/vlan-pools", self.pools, Access.ADMIN),
            Route("GET", pool, self.pool, Access.ADMIN),
            Route("PUT", pool, self.put_pool, Access.ADMIN),
            Route("DELETE", pool, self.delete_pool, Access.ADMIN),
        ]

    def pools(self, request: Request, principal: Principal):
        Query(request)
        pools = self._registry.state.pools
        return json_response([pools.document(tenant) for tenant in pools.pools])

    def pool(self, request: Request, principal: Principal, tenant: str):
        Query(request)
        pools = self._registry.state.pools
        if check_text(tenant, "tenant") not in pools.pools:
            raise ApiError(404, f"tenant {tenant} has no VLAN pool", "tenant")
        return json_response(pools.document(tenant))

    def put_pool(self, request: Request, principal: Principal, tenant: str):
        Query(request)
        created = self._registry.put_pool(
            check_text(tenant, "tenant"), read_json(request), principal.tenant
        )
        document = self._registry.state.pools.document(tenant)
        return json_response({"pool": document, "created": created}, 201 if created else 200)

    def delete_pool(self, request: Request, principal: Principal, tenant: str):
        Query(request)
        self._registry.delete_pool(check_text(tenant, "tenant"), principal.tenant)
        pools = self._registry.state.pools
        back = pools.document(tenant) if tenant in pools.pools else None
        return json_response({"deleted": tenant, "pool": back})
