"""What the VM manager pushes: VSI type profiles, VM registrations (draft 5.1/5.2) and group
registrations (5.3). The registry (app/registry) checks, stores and applies; this module maps
HTTP onto it."""

import heapq
from collections.abc import Iterable

from webob import Request

from app.registry import Registry, VmRecord
from app.registry.errors import InvalidInput
from app.registry.profiles import API, FILE
from app.registry.vms import parse_ip, parse_vsi_id
from app.rest.auth import Principal
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
from app.rest.inventory_views import selected_hosts
from app.rest.router import Route
from app.service import NmsService


class RegistryViews:
    def __init__(self, service: NmsService, registry: Registry) -> None:
        self._service = service
        self._registry = registry

    def routes(self) -> list[Route]:
        profile = "/v1/profiles/{type_id}/{version}"
        return [
            Route("GET", "/v1/profiles", self.profiles),
            Route("GET", profile, self.profile),
            Route("PUT", profile, self.put_profile),
            Route("DELETE", profile, self.delete_profile),
            Route("POST", "/v1/groups", self.register_group),
            Route("GET", "/v1/groups/{group}", self.group),
            Route("PUT", "/v1/groups/{group}", self.replace_group),
            Route("DELETE", "/v1/groups/{group}", self.delete_group),
            Route("GET", "/v1/vms", self.vms),
            Route("GET", "/v1/vms/{vsi_id}", self.vm),
            Route("PUT", "/v1/vms/{vsi_id}", self.put_vm),
            Route("DELETE", "/v1/vms/{vsi_id}", self.delete_vm),
        ]

    # profiles ---------------------------------------------------------------------------------
    def profiles(self, request: Request, principal: Principal):
        query = Query(request, ("tenant", "source"))
        tenant, source = query.text("tenant"), query.text("source")
        if tenant is not None:
            principal.require(tenant, f"tenant {tenant}'s profiles")
        if source not in (None, API, FILE):
            raise InvalidInput(f"expected {API} or {FILE}, got {source!r}", "source")
        profiles = self._registry.state.profiles
        return json_response(
            [
                profiles.view(p)
                for p in profiles.database
                if principal.may_see(p.tenant)
                and tenant in (None, p.tenant)
                and source in (None, profiles.source(p.key))
            ]
        )

    def profile(self, request: Request, principal: Principal, type_id: str, version: str):
        Query(request)
        profiles = self._registry.state.profiles
        key = (_number(type_id, "type_id"), _number(version, "version"))
        profile = profiles.database.get(*key)
        missing = ApiError(
            404, f"VSI type {key[0]} version {key[1]} is not in the database", "type_id"
        )
        if profile is None:
            raise missing
        principal.check_visible(profile.tenant, missing)
        return json_response(profiles.view(profile))

    def put_profile(self, request: Request, principal: Principal, type_id: str, version: str):
        result = self._registry.put_profile(
            _number(type_id, "type_id"),
            _number(version, "version"),
            read_json(request),
            principal.tenant,
        )
        (profile,) = result.profiles
        return json_response(
            {
                "profile": self._registry.state.profiles.view(profile),
                "created": profile.key in result.created,
                "applied": result.applied,
            },
            201 if profile.key in result.created else 200,
        )

    def delete_profile(self, request: Request, principal: Principal, type_id: str, version: str):
        Query(request)
        result = self._registry.delete_profile(
            _number(type_id, "type_id"), _number(version, "version"), principal.tenant
        )
        (key,) = result.removed_profiles
        back = self._registry.state.profiles.files.get(key.type_id, key.version)
        return json_response(
            {
                "deleted": {"type_id": key.type_id, "version": key.version},
                "file_profile_back": back.source if back else None,
                "applied": result.applied,
            }
        )

    def register_group(self, request: Request, principal: Principal):
        Query(request)
        body = read_json(request)
        result = self._registry.register_group(body, principal.tenant)
        return json_response(self._group_result(body.get("group"), result))

    def group(self, request: Request, principal: Principal, group: str):
        """The group's registered VMs (a tenant: its own), with their associations."""
        Query(request)
        members = self._registry.group_members(group, principal.tenant)
        if not members:
            raise ApiError(404, f"no VM is registered in group {group}", "group")
        held = self._service.associations_of([vm.vsi_id for vm in members])
        return json_response(
            {
                "group": group,
                "vms": [{**vm.document(), "association": held.get(vm.vsi_id)} for vm in members],
            }
        )

    def replace_group(self, request: Request, principal: Principal, group: str):
        """Group synchronization (draft 5.3): the group becomes the body's VMs exactly."""
        Query(request)
        result = self._registry.replace_group(group, read_json(request), principal.tenant)
        return json_response(self._group_result(group, result))

    def delete_group(self, request: Request, principal: Principal, group: str):
        Query(request)
        result = self._registry.delete_group(group, principal.tenant)
        return json_response(
            {
                "group": group,
                "removed": sorted(result.removed_vms),
                "deassociated": list(result.deassociated),
            }
        )

    def _group_result(self, group, result) -> dict:
        profiles = self._registry.state.profiles
        return {
            "group": group,
            "profiles": [profiles.view(p) for p in result.profiles],
            "vms": [self._vm_view(vm) for vm in result.vms],
            "created": {
                "profiles": [
                    f"{p.key.type_id}/{p.key.version}"
                    for p in result.profiles
                    if p.key in result.created
                ],
                "vms": [vm.vsi_id for vm in result.vms if vm.vsi_id in result.created],
            },
            "removed": sorted(result.removed_vms),
            "deassociated": list(result.deassociated),
            "applied": result.applied,
        }

    # VMs ----------------------------------------------------------------------------------------
    def vms(self, request: Request, principal: Principal):
        """Every registered VM with its association, or with ``limit`` one page in VSI ID
        order from after ``after``, whose next page a ``Link`` header names."""
        query = Query(request, ("tenant", *INDEXED, "cluster", "datacenter", "limit", "after"))
        tenant = query.text("tenant")
        if tenant is not None:
            principal.require(tenant, f"tenant {tenant}'s VMs")
        paged = query.text("limit") is not None or query.text("after") is not None
        limit = query.integer("limit", PAGE_DEFAULT, 1, PAGE_MAX)
        after = parse_vsi_id(query.text("after")) if query.text("after") is not None else None
        state = self._registry.state  # a snapshot: changes swap in a new table
        vms = state.vms
        # The table keeps no order: a page takes the smallest IDs after `after`, no full sort.
        ids = (k for k in _candidates(state, query) if after is None or k > after)
        looked = heapq.nsmallest(SCAN * limit, ids) if paged else sorted(ids)
        page = [
            vm
            for vm in (vms[vsi_id] for vsi_id in looked)
            if principal.may_see(vm.tenant) and tenant in (None, vm.tenant)
        ]
        if paged:
            page = page[:limit]
        held = self._service.associations_of([vm.vsi_id for vm in page])
        response = json_response(
            [{**vm.document(), "association": held.get(vm.vsi_id)} for vm in page]
        )
        if paged and looked:
            last = page[-1].vsi_id if len(page) == limit else looked[-1]
            if len(page) == limit or len(looked) == SCAN * limit:
                response.headers["Link"] = next_link(request, last)
        return response

    def vm(self, request: Request, principal: Principal, vsi_id: str):
        Query(request)
        vsi_id = parse_vsi_id(vsi_id)
        vm = self._registry.vm(vsi_id)
        missing = ApiError(404, f"VM {vsi_id} is not registered", "vsi_id")
        if vm is None:
            raise missing
        principal.check_visible(vm.tenant, missing)
        return json_response(self._vm_view(vm))

    def put_vm(self, request: Request, principal: Principal, vsi_id: str):
        Query(request)
        result = self._registry.put_vm(vsi_id, read_json(request), principal.tenant)
        (vm,) = result.vms
        created = vm.vsi_id in result.created
        return json_response({"vm": self._vm_view(vm), "created": created}, 201 if created else 200)

    def delete_vm(self, request: Request, principal: Principal, vsi_id: str):
        Query(request)
        result = self._registry.delete_vm(vsi_id, principal.tenant)
        (vsi_id,) = result.removed_vms
        return json_response(
            {"deregistered": vsi_id, "deassociated": vsi_id in result.deassociated}
        )

    def _vm_view(self, vm: VmRecord) -> dict:
        """The registration and what the bridge holds of the VM now (null: nothing)."""
        return {**vm.document(), "association": self._service.association(vm.vsi_id)}


# Filters of GET /v1/vms the VM table indexes (app/registry/vm_table.py).
INDEXED = ("group", "host", "network", "ip")


def _candidates(state, query: Query) -> Iterable[str]:
    """The VSI IDs every filter of the query leaves (the indexes': costs the VMs they name,
    not all of them; cluster and datacenter: the VMs registered on their hosts); without a
    filter, every VM."""
    vms = state.vms
    sets = []
    for index in INDEXED:
        key = query.text(index)
        if key is not None:
            sets.append(vms.listed(index, parse_ip(key, "ip") if index == "ip" else key))
    if query.text("cluster") is not None or query.text("datacenter") is not None:
        hosts = selected_hosts(state.inventory, query) or set()
        sets.append({v for host in hosts for v in vms.listed("host", host)})
    if not sets:
        return vms
    sets.sort(key=len)
    return [v for v in sets[0] if all(v in other for other in sets[1:])]


def _number(value: str, field: str) -> int:
    if not (value.isascii() and value.isdigit()):
        raise InvalidInput(f"expected a decimal number, got {value!r}", field)
    return int(value)
