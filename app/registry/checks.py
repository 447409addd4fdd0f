"""Contradictions between profiles and VMs that no single object can see. Each check looks only
at conflicts involving what a change touched, so a conflict already in the policy files does not
block unrelated changes."""

from collections.abc import Iterable, Mapping

from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey
from app.registry.errors import Conflict, NotFound, RegistryError, join
from app.registry.vm_table import VmTable
from app.registry.vms import VmRecord, unknown_type
from app.service import NmsService


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
    old: VmTable,
    new: VmTable,
    touched_vms: Mapping[str, str],
    touched_types: Mapping[VsiTypeKey, str],
    actor: str | None,
) -> None:
    """Every VM's type exists and belongs to the VM's tenant; no MAC is registered twice.
    ``old`` and ``new`` are the registrations before and after the change; ``touched_*`` map
    the changed VMs and profiles to their field in the request. Costs the touched VMs, their
    MACs and the VMs of the touched types, found through the indexes: never the VMs held."""
    concerned = set(touched_vms)
    for key in touched_types:
        concerned.update(new.of_type(key))
    for vsi_id in sorted(concerned):  # the first conflict by VSI ID, whatever the request order
        vm = new.get(vsi_id)
        if vm is None:
            continue
        vm_field = touched_vms.get(vsi_id)
        type_field = touched_types.get(vm.type_key)
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
    _check_macs(old, new, touched_vms, actor)


def _check_macs(
    old: VmTable, new: VmTable, touched_vms: Mapping[str, str], actor: str | None
) -> None:
    """A MAC of a touched VM is no untouched VM's (held before and kept) and no other touched
    VM's in the same request."""
    claimed: dict[str, str] = {}  # MAC -> the touched VM that took it first
    for vsi_id, field in touched_vms.items():
        vm = new.get(vsi_id)
        for index, mac in enumerate(vm.macs if vm else ()):
            holder = old.by_mac(mac)
            if holder is not None and holder.vsi_id not in touched_vms and holder.vsi_id in new:
                other = holder.vsi_id
            else:
                other = claimed.setdefault(mac, vsi_id)
            if other != vsi_id:
                whose = "another VM" if actor else f"VM {other}"
                raise Conflict(
                    f"{mac} is registered for {whose} already", join(field, f"macs[{index}]")
                )


def check_visible(actor: str | None, tenant: str, error: RegistryError) -> None:
    """To a tenant, another tenant's profile or VM is as if it did not exist: ``error`` is the
    one raised for a missing object (a 404), so no answer tells a tenant what others hold."""
    if actor is not None and tenant != actor:
        raise error


def check_held(
    service: NmsService,
    registered: Mapping[str, VmRecord],
    touched_vms: Mapping[str, VmRecord],
    actor: str | None,
) -> None:
    """A tenant registers no VSI ID and no MAC that the bridge holds (associated or
    pre-associated) for another tenant: registering them would make the running VM the
    tenant's to read, move and de-associate. A VSI's tenant is its registration's, else that
    of the types it is attached with. ``touched_vms`` maps the field in the request to the
    VM. Costs the touched VMs and their MACs (one bridge look-up each), an admin nothing."""
    if actor is None:
        return
    for where, vm in touched_vms.items():
        if vm.vsi_id not in registered:
            held = service.association(vm.vsi_id)
            if held is not None and _held_by_other(held["attachments"], actor):
                raise NotFound(
                    f"VSI ID {vm.vsi_id} cannot be registered by tenant {actor}",
                    join(where, "vsi_id"),
                )
        for index, mac in enumerate(vm.macs):
            found = service.lookup(mac)
            if found is None or not found["current"] or found["vsi_id"] == vm.vsi_id:
                continue
            owner = registered.get(found["vsi_id"])
            if owner.tenant != actor if owner else _held_by_other(found["current"], actor):
                raise Conflict(f"{mac} is in use by another VM", join(where, f"macs[{index}]"))


def _held_by_other(attachments: list[dict], actor: str) -> bool:
    return any(a.get("tenant") != actor for a in attachments)


def unmatched_held(service: NmsService, written: Iterable[VmRecord]) -> list[str]:
    """The written VMs that the bridge holds in a way their registration does not admit (type
    and version, tenant, MACs: as the authorizer checks them, app/vdp/admission.py): they are
    de-associated, as a deregistered VM is, since keep-alives are not authorized again; their
    stations may ask again. Costs one bridge look-up per written VM."""
    unmatched = []
    for vm in written:
        held = service.association(vm.vsi_id)
        if held is not None and not all(_admits(vm, a) for a in held["attachments"]):
            unmatched.append(vm.vsi_id)
    return unmatched


def _admits(vm: VmRecord, attachment: dict) -> bool:
    return (
        (attachment.get("type_id"), attachment.get("type_version")) == (vm.type_id, vm.type_version)
        and attachment.get("tenant") == vm.tenant
        and (not vm.macs or all(e["mac"] in vm.macs for e in attachment.get("entries", ())))
    )
