"""VLAN pools: the VLANs an admin gives each tenant. The flows keep tenants apart only by VLAN,
so whoever holds a VLAN can lock the others out of it; pools decide who may hold which.

A tenant's pool comes from the settings (``vlan_pools``) or is assigned over the REST API
(stored, and taking precedence over the settings' pool of that tenant, as a pushed profile does
over a file profile). Pools of two tenants never overlap. A tenant with a pool takes its VLANs
from it; a tenant without one takes none (``required``) or only VLANs that are in no pool.
Pure: the registry checks and stores, this module only answers.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from app.policy.errors import PolicyError
from app.policy.profile import parse_vlans
from app.policy.schema import ITEMS_MAX
from app.registry.documents import vlan_ranges
from app.registry.errors import InvalidInput
from app.registry.fields import mapping

SETTINGS, API = "settings", "api"  # where a pool comes from
POOL_KEYS = ("tenant", "vlans")


def parse_pool(body, tenant: str) -> frozenset[int]:
    """The VLANs of a pool document ``{"vlans": [100, "110-119"]}`` for ``tenant`` (the URL's;
    the body may repeat it). An empty list is a pool of no VLANs."""
    fields = mapping(body, "", POOL_KEYS, ("vlans",))
    if fields.get("tenant", tenant) != tenant:
        raise InvalidInput(f"{fields['tenant']!r} differs from the tenant of the URL", "tenant")
    vlans = fields["vlans"]
    if isinstance(vlans, list) and len(vlans) > ITEMS_MAX["vlans"]:
        raise InvalidInput(f"at most {ITEMS_MAX['vlans']} items, got {len(vlans)}", "vlans")
    try:
        return parse_vlans(vlans)
    except PolicyError as err:
        raise InvalidInput(err.message, "vlans" + (err.field or "")) from None


def vlan_text(vids) -> str:
    """``100, 110-119`` for messages."""
    return ", ".join(str(item) for item in vlan_ranges(vids)) or "none"


@dataclass(frozen=True)
class VlanPools:
    configured: Mapping[str, frozenset[int]] = field(default_factory=dict)  # the settings'
    assigned: Mapping[str, frozenset[int]] = field(default_factory=dict)  # over the API
    required: bool = False  # a tenant without a pool gets no VLAN

    @cached_property
    def pools(self) -> dict[str, frozenset[int]]:
        """Tenant -> its VLANs, by tenant."""
        return dict(sorted({**self.configured, **self.assigned}.items()))

    @cached_property
    def _owners(self) -> dict[int, str]:
        """VLAN -> the tenant whose pool holds it (the first one, were two to overlap)."""
        owners: dict[int, str] = {}
        for tenant, vids in self.pools.items():
            for vid in vids:
                owners.setdefault(vid, tenant)
        return owners

    def source(self, tenant: str) -> str | None:
        if tenant in self.assigned:
            return API
        return SETTINGS if tenant in self.configured else None

    def document(self, tenant: str) -> dict:
        return {
            "tenant": tenant,
            "vlans": vlan_ranges(self.pools[tenant]),
            "source": self.source(tenant),
        }

    def assign(self, tenant: str, vids: frozenset[int]) -> "VlanPools":
        return VlanPools(self.configured, {**self.assigned, tenant: vids}, self.required)

    def unassign(self, tenant: str) -> "VlanPools":
        assigned = {name: vids for name, vids in self.assigned.items() if name != tenant}
        return VlanPools(self.configured, assigned, self.required)

    def overlap(self, tenant: str) -> tuple[int, str] | None:
        """The first VLAN of ``tenant``'s pool that another tenant's pool holds, and that
        tenant; None if there is none."""
        for vid in sorted(self.pools.get(tenant, ())):
            owner = self._owners[vid]
            if owner != tenant:
                return vid, owner
        return None

    def refusal(self, tenant: str, vids: frozenset[int], hide_others: bool) -> str | None:
        """Why a profile of ``tenant`` may not use ``vids``, None if it may. With
        ``hide_others`` the answer names no other tenant."""
        pool = self.pools.get(tenant)
        if pool is not None:
            outside = vids - pool
            if outside:
                return (
                    f"VLAN {vlan_text(outside)} not in the VLAN pool of tenant {tenant} "
                    f"({vlan_text(pool)}); an admin assigns pools"
                )
            return None
        if self.required:
            return (
                f"tenant {tenant} has no VLAN pool, and vlan_pools_required is set: an admin "
                f"assigns one (PUT /v1/vlan-pools/{tenant})"
            )
        for vid in sorted(vids):
            owner = self._owners.get(vid)
            if owner is not None:
                whose = "another tenant" if hide_others else f"tenant {owner}"
                return f"VLAN {vid} is in the VLAN pool of {whose}"
        return None
