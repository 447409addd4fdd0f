"""What a tenant may hold: profiles whose VLANs its VLAN pool allows (app/registry/pools.py),
at most ``max_profiles`` of them (the setting max_profiles_per_tenant; None: no quota).

Every source of profiles is held to it: a pushed change for the profiles it touches, the whole
database at start (policy files, stored profiles, stored pools, settings) and when a pool
changes, and each profile the VM manager answers a lookup with (``refusal_of_looked_up``).
"""

from collections.abc import Mapping

from app.policy.profile import VsiTypeKey, VsiTypeProfile
from app.registry.checks import check_vlans
from app.registry.errors import Conflict, join
from app.registry.pools import VlanPools
from app.registry.profiles import ProfileSet


def check_pools(
    profiles: ProfileSet, pools: VlanPools, touched: Mapping[VsiTypeKey, str], actor: str | None
) -> None:
    """The touched profiles take their VLANs from their tenant's pool. ``touched`` maps them
    to their field in the request."""
    for key, where in touched.items():
        profile = profiles.database.get(key.type_id, key.version)
        if profile is not None:
            refusal = pools.refusal(profile.tenant, profile.vlans, hide_others=actor is not None)
            if refusal is not None:
                raise Conflict(refusal, join(where, "vlans"))


def check_quota(
    profiles: ProfileSet, touched: Mapping[VsiTypeKey, str], max_profiles: int | None
) -> None:
    """No tenant of a touched profile holds more than ``max_profiles``. The database held no
    more before the change (check_whole), so only tenants that gained profiles can be over; the
    error names the tenant's last touched profile (in a group, the one that went over)."""
    if max_profiles is None:
        return
    last: dict[str, str] = {}
    for key, where in touched.items():
        profile = profiles.database.get(key.type_id, key.version)
        if profile is not None:
            last[profile.tenant] = where
    for tenant, where in last.items():
        if profiles.tenant_counts[tenant] > max_profiles:
            raise Conflict(
                f"tenant {tenant} may hold at most {max_profiles} VSI types "
                f"(max_profiles_per_tenant); delete one first",
                join(where, "type_id"),
            )


def check_whole(profiles: ProfileSet, pools: VlanPools, max_profiles: int | None) -> None:
    """The whole database against the pools and the quota, naming each problem's source (a
    policy file and line, or api): at start, and when an admin changes a pool."""
    for tenant in pools.pools:
        overlap = pools.overlap(tenant)
        if overlap is not None:
            raise Conflict(
                f"VLAN {overlap[0]} is in the VLAN pools of tenants {tenant} and {overlap[1]}",
                "vlans",
            )
    where = {profile.key: f"{profile.key} ({profile.source})" for profile in profiles.database}
    try:
        check_vlans(profiles.database, where, None)
        check_pools(profiles, pools, where, None)
    except Conflict as err:  # located by the profile, not by a request field
        raise Conflict(str(err)) from None
    for tenant, held in profiles.tenant_counts.items():
        if max_profiles is not None and held > max_profiles:
            raise Conflict(
                f"tenant {tenant} holds {held} VSI types, more than max_profiles_per_tenant "
                f"({max_profiles})"
            )


def refusal_of_looked_up(
    profiles: ProfileSet, pools: VlanPools, max_profiles: int | None, profile: VsiTypeProfile
) -> str | None:
    """Why a profile the VM manager answered a lookup with may not be used now, None if it may:
    the same rules as a pushed one, with no other tenant named (the reason reaches events).
    It counts as one more profile of its tenant. Costs the profile's VLANs, not the database."""
    refusal = pools.refusal(profile.tenant, profile.vlans, hide_others=True)
    if refusal is not None:
        return refusal
    for vid in sorted(profile.vlans):
        if profiles.vlan_tenants.get(vid, frozenset()) - {profile.tenant}:
            return (
                f"VLAN {vid} belongs to another tenant: tenants are kept apart by VLAN, "
                f"so two tenants cannot share one"
            )
    held = profiles.tenant_counts[profile.tenant]
    if max_profiles is not None and held >= max_profiles:
        return (
            f"tenant {profile.tenant} holds {held} VSI types already, its quota "
            f"(max_profiles_per_tenant)"
        )
    return None
