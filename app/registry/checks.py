"""Contradictions between profiles and VMs that no single object can see. Each check looks only
at conflicts involving what a change touched, so a conflict already in the policy files does not
block unrelated changes."""

from collections.abc import Mapping

from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey
from app.registry.errors import Conflict, join
from app.registry.vms import VmRecord, unknown_type


def check_vlans(
    database: VsiTypeDatabase, touched: Mapping[VsiTypeKey, str], actor: str | None
) -> None:
    """A VLAN belongs to one tenant: the flows separate tenants only by VLAN. ``touched`` maps
    the changed profiles to their field in the request. Tenants see no other tenant's name."""
    owners: dict[int, dict[str, VsiTypeKey]] = {}  # VLAN -> tenant -> a type of it
    for profile in database:
        if profile.key not in touched:
            for vid in profile.vlans:
                owners.setdefault(vid, {}).setdefault(profile.tenant, profile.key)
    for key, field in touched.items():
        profile = database.get(key.type_id, key.version)
        if profile is None:
            continue
        for vid in sorted(profile.vlans):
            tenants = owners.setdefault(vid, {})
            other = next((t for t in sorted(tenants) if t != profile.tenant), None)
            if other is not None:
                whose = "another tenant" if actor else f"tenant {other} ({tenants[other]})"
                raise Conflict(
                    f"VLAN {vid} belongs to {whose}: tenants are kept apart by "
                    f"VLAN, so two tenants cannot share one",
                    join(field, "vlans"),
                )
            tenants.setdefault(profile.tenant, key)


def check_vms(
    database: VsiTypeDatabase,
    vms: Mapping[str, VmRecord],
    touched_vms: Mapping[str, str],
    touched_types: Mapping[VsiTypeKey, str],
    actor: str | None,
) -> None:
    """Every VM's type exists and belongs to the VM's tenant; no MAC is registered twice.
    ``touched_*`` map the changed VMs and profiles to their field in the request."""
    for vm in vms.values():
        vm_field = touched_vms.get(vm.vsi_id)
        type_field = touched_types.get(vm.type_key)
        if vm_field is None and type_field is None:
            continue
        profile = database.get(vm.type_id, vm.type_version)
        if profile is None:
            if vm_field is not None:
                raise unknown_type(vm.type_key, join(vm_field, "type_id"))
            raise Conflict(
                f"VM {vm.vsi_id} is registered with this type; deregister it first", type_field
            )
        if profile.tenant != vm.tenant:
            whose = "another tenant" if actor else f"tenant {profile.tenant}"
            message = (
                f"VM {vm.vsi_id} of tenant {vm.tenant} has type {vm.type_key}, which "
                f"belongs to {whose}"
            )
            raise Conflict(
                message,
                join(vm_field, "tenant") if vm_field is not None else join(type_field, "tenant"),
            )
    _check_macs(vms, touched_vms, actor)


def _check_macs(
    vms: Mapping[str, VmRecord], touched_vms: Mapping[str, str], actor: str | None
) -> None:
    owner: dict[str, str] = {}
    for vm in vms.values():
        if vm.vsi_id not in touched_vms:
            for mac in vm.macs:
                owner[mac] = vm.vsi_id
    for vsi_id, field in touched_vms.items():
        vm = vms.get(vsi_id)
        for index, mac in enumerate(vm.macs if vm else ()):
            other = owner.setdefault(mac, vsi_id)
            if other != vsi_id:
                whose = "another VM" if actor else f"VM {other}"
                raise Conflict(
                    f"{mac} is registered for {whose} already", join(field, f"macs[{index}]")
                )
