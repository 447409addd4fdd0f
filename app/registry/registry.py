"""The registry of pushed profiles and VM registrations: what the VM manager told the controller.

It is the one owner of the VSI type database (``database()``: the policy files' profiles with the
pushed ones on top): the authorizer reads it here at every request, nobody keeps a copy.

Every change is checked whole (input, tenant rights, contradictions with what is held), stored in
one transaction, swapped in as a new immutable state (new requests are authorized against it from
then on), and only then handed to the controller: ``service.apply_profiles(database)`` when
profiles changed, so the VMs already associated follow, ``service.deassociate`` for a
deregistered VM. A refused change leaves nothing behind.

Reads take no lock (the state is replaced whole), so the controller may read the registry while
holding its own locks. The VMs are a persistent table (app/registry/vm_table.py) with indexes by
MAC and by VSI type: a change builds the next state in the time of what it changes, never of the
VMs held (docs/scale.md), and a reader's snapshot stays as it was.

Changes are serialized by the registry's lock, held while the controller applies them, so that
two changes reach the controller in the order they were stored; the controller must therefore
never call a changing method while holding its own lock.

The registry also holds the tenants' VLAN pools (app/registry/pools.py; only an admin changes
them) and applies them and the profile quota to every profile it holds, checked at start for
the policy files too, and to each profile the VM manager answers a lookup with
(``refusal_of_looked_up``; app/registry/tenancy.py).

``actor`` is the tenant a request acts for, None for an admin.
"""

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.policy.database import VsiTypeDatabase
from app.policy.profile import TYPE_ID_MAX, VERSION_MAX, VsiTypeKey, VsiTypeProfile
from app.registry.checks import (
    check_held,
    check_visible,
    check_vlans,
    check_vms,
    unmatched_held,
)
from app.registry.documents import parse_profile, profile_document, vlan_ranges
from app.registry.errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError, join
from app.registry.fields import array, integer, mapping, text
from app.registry.inventory import HOST, Inventory, Item, parse_item
from app.registry.pools import SETTINGS, VlanPools, parse_pool
from app.registry.profiles import FILE, ProfileSet
from app.registry.tenancy import check_pools, check_quota, check_whole, refusal_of_looked_up
from app.registry.vm_table import VmTable
from app.registry.vms import VmRecord, parse_vm, parse_vsi_id
from app.service import NmsService
from app.store.base import RegistryWrite, Store

LOG = logging.getLogger("evb_nms.registry")
DEREGISTERED = "deregistered by the VM manager"
UNMATCHED = "its registration by the VM manager does not admit it"
GROUP_KEYS = ("group", "profiles", "vms")
T = TypeVar("T")
NO_POOLS = VlanPools()  # no pool set: every tenant takes any VLAN no other tenant uses
NO_INVENTORY = Inventory()


@dataclass(frozen=True)
class RegistryState:
    profiles: ProfileSet
    vms: VmTable
    pools: VlanPools = NO_POOLS
    inventory: Inventory = NO_INVENTORY


@dataclass(frozen=True)
class ChangeResult:
    profiles: tuple[VsiTypeProfile, ...] = ()  # written, in request order
    vms: tuple[VmRecord, ...] = ()
    created: frozenset = frozenset()  # keys and VSI IDs that were new
    removed_profiles: tuple[VsiTypeKey, ...] = ()
    removed_vms: tuple[str, ...] = ()
    applied: dict | None = None  # service.apply_profiles' answer
    deassociated: tuple[str, ...] = ()  # deregistered VMs the bridge had held


class Registry:
    def __init__(
        self,
        files: VsiTypeDatabase,
        store: Store,
        service: NmsService,
        emit: Callable[..., object] | None = None,
        clock: Callable[[], float] = time.time,
        *,
        pools: VlanPools = NO_POOLS,
        max_profiles: int | None = None,
    ) -> None:
        """``files``: the database of the policy files; the store holds the rest. ``emit`` is
        EventLog.emit: the registry's changes become events. ``pools``: the VLAN pools of the
        settings (the store holds those assigned over the API); ``max_profiles``: the profile
        quota per tenant (app/registry/tenancy.py). A start whose files, stored profiles and
        pools contradict the pools or the quota is refused (RegistryError)."""
        self._store = store
        self._service = service
        self._emit = emit or (lambda *args, **kwargs: None)
        self._clock = clock
        self._max_profiles = max_profiles
        self._lock = threading.Lock()
        pushed = {}
        for document in store.profiles():
            try:
                profile = parse_profile(document)
            except RegistryError as err:
                key = f"{document.get('type_id')}/{document.get('version')}"
                raise RegistryError(f"stored profile {key} is not valid any more: {err}") from None
            pushed[profile.key] = profile
        vms = VmTable.of(VmRecord.from_document(document) for document in store.vms())
        assigned = {}
        for document in store.vlan_pools():
            try:
                assigned[document["tenant"]] = parse_pool(document, document["tenant"])
            except RegistryError as err:
                raise RegistryError(
                    f"stored VLAN pool of tenant {document['tenant']} is not valid: {err}"
                ) from None
        pools = VlanPools(pools.configured, assigned, pools.required)
        inventory = Inventory.of(Item.from_document(document) for document in store.inventory())
        self._state = RegistryState(ProfileSet(files, pushed), vms, pools, inventory)
        try:
            check_whole(self._state.profiles, pools, max_profiles)
        except Conflict as err:
            raise RegistryError(
                f"the VSI types break the VLAN pools or the profile quota: {err}; fix the "
                f"policy files or the settings (vlan_pools, max_profiles_per_tenant)"
            ) from None
        unpooled = sorted(set(self._state.profiles.tenant_counts) - set(pools.pools))
        if unpooled:
            LOG.warning(
                "tenants without a VLAN pool may take any VLAN no pool holds: %s "
                "(docs/security.md: VLAN pools)",
                ", ".join(unpooled),
            )

    # reads ------------------------------------------------------------------------------------
    @property
    def state(self) -> RegistryState:
        return self._state

    def database(self) -> VsiTypeDatabase:
        """The VSI type database: file profiles with the pushed ones on top."""
        return self._state.profiles.database

    def vm(self, vsi_id: str) -> VmRecord | None:
        return self._state.vms.get(vsi_id)

    def vm_by_mac(self, mac: str) -> VmRecord | None:
        return self._state.vms.by_mac(mac)

    def refusal_of_looked_up(self, profile: VsiTypeProfile) -> str | None:
        """Why a profile the VM manager answered a lookup with may not be used (its tenant's
        VLAN pool, another tenant's VLANs, the quota), None if it may."""
        state = self._state
        return refusal_of_looked_up(state.profiles, state.pools, self._max_profiles, profile)

    # VLAN pools (admins only) -------------------------------------------------------------
    def put_pool(self, tenant: str, body, actor: str | None) -> bool:
        """Assigns ``tenant``'s VLAN pool; True if the tenant had no assigned pool before."""
        _check_admin(actor)
        tenant = text(tenant, "tenant")
        vids = parse_pool(body, tenant)
        with self._lock:
            old = self._state.pools
            self._change_pools(old.assign(tenant, vids), tenant)
            return tenant not in old.assigned

    def delete_pool(self, tenant: str, actor: str | None) -> None:
        """Removes the pool assigned over the API; the settings' pool, if any, applies again."""
        _check_admin(actor)
        tenant = text(tenant, "tenant")
        with self._lock:
            pools = self._state.pools
            if pools.source(tenant) == SETTINGS:
                raise Conflict(
                    f"the VLAN pool of tenant {tenant} comes from the settings (vlan_pools): "
                    f"change it there",
                    "tenant",
                )
            if tenant not in pools.assigned:
                raise NotFound(f"tenant {tenant} has no VLAN pool", "tenant")
            self._change_pools(pools.unassign(tenant), tenant)

    def _change_pools(self, pools: VlanPools, tenant: str) -> None:
        """Called with the lock held: checks the whole database against ``pools`` (a pool
        cannot be taken from under profiles that use it), stores, swaps, announces."""
        try:
            check_whole(self._state.profiles, pools, self._max_profiles)
        except Conflict as err:
            raise Conflict(err.message, "vlans") from None
        assigned = pools.assigned.get(tenant)
        self._store.write_registry(
            RegistryWrite(
                pools=({"tenant": tenant, "vlans": vlan_ranges(assigned)},)
                if assigned is not None
                else (),
                removed_pools=() if assigned is not None else (tenant,),
            )
        )
        self._state = dataclasses.replace(self._state, pools=pools)
        if assigned is not None:
            self._emit("vlan_pool.assigned", tenant=tenant, vlans=vlan_ranges(assigned))
        else:
            self._emit("vlan_pool.removed", tenant=tenant, source=pools.source(tenant))

    # the inventory (admins only) ----------------------------------------------------------
    def put_item(self, kind: str, name: str, body, actor: str | None) -> tuple[Item, bool]:
        """Registers or replaces a data center, cluster or host; True if it is new."""
        _check_admin(actor, "the inventory")
        item = parse_item(kind, name, body)
        with self._lock:
            inventory = self._state.inventory
            item = inventory.resolved(item)
            created = inventory.get(kind, item.name) is None
            self._store.write_registry(RegistryWrite(inventory=(item.document(),)))
            self._state = dataclasses.replace(self._state, inventory=inventory.put(item))
        self._emit(f"{kind}.registered", name=item.name, created=created)
        return item, created

    def delete_item(self, kind: str, name: str, actor: str | None) -> None:
        """Removes an item that holds nothing (no cluster or host in it, no VM on a host)."""
        _check_admin(actor, "the inventory")
        name = text(name, "name")
        with self._lock:
            inventory = self._state.inventory
            inventory.check_removable(kind, name)
            if kind == HOST and self._state.vms.listed("host", name):
                raise Conflict(f"VMs are registered on host {name}: move or deregister them")
            self._store.write_registry(RegistryWrite(removed_inventory=((kind, name),)))
            self._state = dataclasses.replace(self._state, inventory=inventory.removed(kind, name))
        self._emit(f"{kind}.removed", name=name)

    # changes from JSON bodies -----------------------------------------------------------------
    def put_profile(self, type_id: int, version: int, body, actor: str | None) -> ChangeResult:
        """Creates or replaces one pushed profile; the URL's key fills or must equal the body's."""
        key = _key(type_id, version)
        if isinstance(body, dict):
            for name, value, high in (
                ("type_id", key.type_id, TYPE_ID_MAX),
                ("version", key.version, VERSION_MAX),
            ):
                if body.get(name) is not None and integer(body[name], name, 0, high) != value:
                    raise InvalidInput(f"{body[name]} differs from the URL's {value}", name)
            body = {**body, "type_id": key.type_id, "version": key.version}
        profile = parse_profile(body)
        with self._lock:
            return self._change(profiles={"": profile}, actor=actor)

    def delete_profile(self, type_id: int, version: int, actor: str | None) -> ChangeResult:
        key = _key(type_id, version)
        with self._lock:
            profiles = self._state.profiles
            current = profiles.database.get(key.type_id, key.version)
            missing = NotFound(f"{key} is not in the VSI type database")
            if current is None:
                raise missing
            check_visible(actor, current.tenant, missing)
            if profiles.source(key) == FILE:
                raise Conflict(
                    f"{key} comes from {current.source}: profiles of the policy "
                    f"files cannot be deleted over the API, edit the file"
                )
            return self._change(removed_profiles=(key,), actor=actor)

    def put_vm(self, vsi_id: str, body, actor: str | None) -> ChangeResult:
        """Registers a VM or updates its registration (draft 5.1)."""
        vsi_id = parse_vsi_id(vsi_id)
        with self._lock:
            vm = parse_vm(body, "", self._tenant_of(self._state.profiles.database), vsi_id=vsi_id)
            return self._change(vms={"": vm}, actor=actor)

    def delete_vm(self, vsi_id: str, actor: str | None) -> ChangeResult:
        """Deregisters a VM (draft 5.2); the bridge de-associates it if it holds it."""
        vsi_id = parse_vsi_id(vsi_id)
        with self._lock:
            vm = self._state.vms.get(vsi_id)
            missing = NotFound(
                f"VM {vsi_id} is not registered: the VM manager never registered "
                f"it or has deregistered it already",
                "vsi_id",
            )
            if vm is None:
                raise missing
            check_visible(actor, vm.tenant, missing)
            return self._change(removed_vms=(vsi_id,), actor=actor)

    def register_group(self, body, actor: str | None) -> ChangeResult:
        """Group registration (draft 5.3): ``{"group", "profiles": [...], "vms": [...]}``, all
        or nothing. VMs may leave out their type when the group pushes exactly one profile, and
        their group (the request's ``group``)."""
        fields = mapping(body, "", GROUP_KEYS)
        if not fields.get("profiles") and not fields.get("vms"):
            raise InvalidInput("nothing to register: give profiles, vms or both", "profiles")
        group = text(fields["group"], "group") if "group" in fields else None
        with self._lock:
            profiles, vms = self._group_items(fields, group)
            return self._change(profiles=profiles, vms=vms, actor=actor)

    def replace_group(self, group: str, body, actor: str | None) -> ChangeResult:
        """Group synchronization (draft 5.3) as a full replace: the group's VMs become those of
        the body (``{"profiles": [...], "vms": [...]}``), its registered VMs the body leaves
        out are deregistered (de-associated if the bridge holds them), in one change. A tenant
        replaces only its own VMs of the group. Profiles are pushed, never removed: others may
        use them. Costs the group and the body, not the VMs held."""
        group = text(group, "group")
        fields = mapping(body, "", GROUP_KEYS)
        if "group" in fields and text(fields["group"], "group") != group:
            raise InvalidInput(f"{fields['group']} differs from the URL's group {group}", "group")
        with self._lock:
            profiles, vms = self._group_items(fields, group)
            for where, vm in vms.items():
                if vm.group != group:
                    raise InvalidInput(f"the group is {group}", join(where, "group"))
            kept = {vm.vsi_id for vm in vms.values()}
            return self._change(
                profiles=profiles,
                vms=vms,
                removed_vms=[v for v in self._group_members(group, actor) if v not in kept],
                actor=actor,
            )

    def delete_group(self, group: str, actor: str | None) -> ChangeResult:
        """Deregisters every VM of the group (a tenant: its own); NotFound if there is none."""
        group = text(group, "group")
        with self._lock:
            members = self._group_members(group, actor)
            if not members:
                raise NotFound(f"no VM is registered in group {group}", "group")
            return self._change(removed_vms=members, actor=actor)

    def group_members(self, group: str, actor: str | None) -> list[VmRecord]:
        """The VMs of ``group`` the actor sees, by VSI ID (costs the group)."""
        vms = self._state.vms
        return [vms[v] for v in sorted(self._group_members(text(group, "group"), actor, vms))]

    def _group_members(
        self, group: str, actor: str | None, vms: VmTable | None = None
    ) -> list[str]:
        vms = self._state.vms if vms is None else vms
        return [v for v in vms.listed("group", group) if actor is None or vms[v].tenant == actor]

    def _group_items(
        self, fields: dict, group: str | None
    ) -> tuple[dict[str, VsiTypeProfile], dict[str, VmRecord]]:
        """A group body's profiles and VMs by field, with the lock held. VMs may leave out
        their type when the group pushes exactly one profile, and their group (``group``)."""
        profile_bodies = array(fields.get("profiles", []), "profiles")
        vm_bodies = array(fields.get("vms", []), "vms")
        defaults: dict[str, object] = {} if group is None else {"group": group}
        profiles: dict[str, VsiTypeProfile] = _unique(
            (
                (f"profiles[{index}]", parse_profile(document, f"profiles[{index}]"))
                for index, document in enumerate(profile_bodies)
            ),
            lambda p: p.key,
            "type_id",
        )
        if len(profiles) == 1:
            (key,) = (profile.key for profile in profiles.values())
            defaults.update(type_id=key.type_id, type_version=key.version)
        tenant_of = self._tenant_of(self._state.profiles.with_pushed(profiles.values()).database)
        vms: dict[str, VmRecord] = _unique(
            (
                (
                    f"vms[{index}]",
                    parse_vm(document, f"vms[{index}]", tenant_of, defaults=defaults),
                )
                for index, document in enumerate(vm_bodies)
            ),
            lambda v: v.vsi_id,
            "vsi_id",
        )
        return profiles, vms

    # the one way state changes --------------------------------------------------------------
    def _change(
        self,
        *,
        profiles: Mapping[str, VsiTypeProfile] | None = None,
        vms: Mapping[str, VmRecord] | None = None,
        removed_profiles: Sequence[VsiTypeKey] = (),
        removed_vms: Sequence[str] = (),
        actor: str | None,
    ) -> ChangeResult:
        """Called with the lock held. ``profiles``/``vms`` map each item to its field in the
        request, for errors."""
        profiles, vms = profiles or {}, vms or {}
        old = self._state
        now = self._clock()
        for where, profile in profiles.items():
            _check_owner(
                actor,
                profile.tenant,
                f"a {actor} token pushes only profiles of tenant {actor}",
                join(where, "tenant"),
            )
            current = old.profiles.database.get(profile.key.type_id, profile.key.version)
            if current is not None:
                check_visible(
                    actor,
                    current.tenant,
                    NotFound(
                        f"{profile.key} cannot be pushed by tenant {actor}", join(where, "type_id")
                    ),
                )
        stamped = {}
        for where, vm in vms.items():
            _check_owner(
                actor,
                vm.tenant,
                f"a {actor} token registers only VMs of tenant {actor}",
                join(where, "tenant"),
            )
            current_vm = old.vms.get(vm.vsi_id)
            if current_vm is not None:
                check_visible(
                    actor,
                    current_vm.tenant,
                    NotFound(
                        f"VSI ID {vm.vsi_id} cannot be registered by tenant {actor}",
                        join(where, "vsi_id"),
                    ),
                )
            if vm.host is not None and old.inventory.get(HOST, vm.host) is None:
                raise Conflict(
                    f"host {vm.host} is not in the inventory: register it first (PUT "
                    f"/v1/hosts/{vm.host})",
                    join(where, "host"),
                )
            stamped[where] = dataclasses.replace(
                vm, registered=current_vm.registered if current_vm else now, updated=now
            )
        # The next state, checked before it is swapped in: a refused change leaves ``old``.
        new = RegistryState(
            old.profiles.with_pushed(profiles.values()).without_pushed(removed_profiles)
            if profiles or removed_profiles
            else old.profiles,  # keeps its database, built once per profile change
            old.vms.changed(stamped.values(), removed_vms),
            old.pools,
            old.inventory,
        )
        touched_types = {
            **{p.key: where for where, p in profiles.items()},
            **{key: "" for key in removed_profiles},
        }
        if touched_types:  # these cost the profiles held
            check_pools(new.profiles, new.pools, touched_types, actor)
            check_vlans(new.profiles.database, touched_types, actor)
            check_quota(new.profiles, touched_types, self._max_profiles)
        check_vms(
            new.profiles.database,
            old.vms,
            new.vms,
            {vm.vsi_id: where for where, vm in stamped.items()},
            touched_types,
            actor,
        )
        check_held(self._service, old.vms, stamped, actor)
        self._store.write_registry(
            RegistryWrite(
                profiles=tuple(profile_document(p) for p in profiles.values()),
                removed_profiles=tuple((k.type_id, k.version) for k in removed_profiles),
                vms=tuple(vm.document() for vm in stamped.values()),
                removed_vms=tuple(removed_vms),
            )
        )
        self._state = new
        created = frozenset(
            [
                p.key
                for p in profiles.values()
                if old.profiles.database.get(p.key.type_id, p.key.version) is None
            ]
            + [vm.vsi_id for vm in stamped.values() if vm.vsi_id not in old.vms]
        )
        self._announce(
            old, new, profiles.values(), stamped.values(), removed_profiles, removed_vms, created
        )
        applied, deassociated = self._push(
            new, bool(profiles or removed_profiles), stamped.values(), removed_vms
        )
        return ChangeResult(
            tuple(profiles.values()),
            tuple(stamped.values()),
            created,
            tuple(removed_profiles),
            tuple(removed_vms),
            applied,
            deassociated,
        )

    def _push(
        self,
        new: RegistryState,
        profiles_changed: bool,
        written: Iterable[VmRecord],
        removed_vms: Iterable[str],
    ) -> tuple[dict | None, tuple[str, ...]]:
        """Hands a change swapped in to the controller (with the lock held): the new database
        when profiles changed, so the VMs associated follow; the de-association of the VMs
        deregistered and of those held in a way their new registration does not admit."""
        applied = self._service.apply_profiles(new.profiles.database) if profiles_changed else None
        deassociated = tuple(
            vsi_id for vsi_id in removed_vms if self._service.deassociate(vsi_id, DEREGISTERED)
        ) + tuple(
            vsi_id
            for vsi_id in unmatched_held(self._service, written)
            if self._service.deassociate(vsi_id, UNMATCHED)
        )
        return applied, deassociated

    # what other controllers stored -------------------------------------------------------------
    def follow(self, write: RegistryWrite, *, whole: bool = False) -> int:
        """A change another controller stored (app/controller/store_following.py), made here
        as if it were this controller's but for the store's write and the events (that
        controller made both): swapped in, then handed to the controller. Not checked again:
        the store holds what its writer checked, and every controller follows it. What is held
        already is left alone (an echo, a change seen twice). ``whole``: ``write`` is everything
        stored, what it lacks goes. A stored document that is not valid is logged and left
        out: returns how many were."""
        with self._lock:
            old = self._state
            dropped = 0
            profiles: dict[VsiTypeKey, VsiTypeProfile] = {}
            for document in write.profiles:
                profile = _stored("profile", document, parse_profile)
                dropped += profile is None
                if profile is not None:
                    profiles[profile.key] = profile
            vms: dict[str, VmRecord] = {}
            for document in write.vms:
                vm = _stored("VM registration", document, VmRecord.from_document)
                dropped += vm is None
                if vm is not None:
                    vms[vm.vsi_id] = vm
            assigned: dict[str, frozenset[int]] = {}
            for document in write.pools:
                vids = _stored("VLAN pool", document, lambda d: parse_pool(d, d["tenant"]))
                dropped += vids is None
                if vids is not None:
                    assigned[document["tenant"]] = vids
            items = {}
            for document in write.inventory:
                item = _stored("inventory item", document, Item.from_document)
                dropped += item is None
                if item is not None:
                    items[(item.kind, item.name)] = item
            gone_profiles = {VsiTypeKey(*key) for key in write.removed_profiles}
            gone_vms, gone_pools = set(write.removed_vms), set(write.removed_pools)
            gone_items = set(write.removed_inventory)
            if whole:  # costs what is held: only after a compaction the watch could not follow
                gone_profiles |= old.profiles.pushed.keys() - profiles.keys()
                gone_vms |= old.vms.keys() - vms.keys()
                gone_pools |= old.pools.assigned.keys() - assigned.keys()
                gone_items |= {key for key in old.inventory.items if key not in items}
            pushed = [p for key, p in profiles.items() if old.profiles.pushed.get(key) != p]
            removed_profiles = [key for key in gone_profiles if key in old.profiles.pushed]
            written = [vm for vsi_id, vm in vms.items() if old.vms.get(vsi_id) != vm]
            removed_vms = [vsi_id for vsi_id in gone_vms if vsi_id in old.vms]
            pools = old.pools
            for tenant, vids in assigned.items():
                if pools.assigned.get(tenant) != vids:
                    pools = pools.assign(tenant, vids)
            for tenant in gone_pools & pools.assigned.keys():
                pools = pools.unassign(tenant)
            inventory = old.inventory
            for key in gone_items:
                if key in inventory.items:
                    inventory = inventory.removed(*key)
            for key, item in items.items():
                if inventory.get(*key) != item:
                    inventory = inventory.put(item)
            if not (pushed or removed_profiles or written or removed_vms or pools is not old.pools):
                self._state = dataclasses.replace(old, inventory=inventory)
                return dropped
            profiles_changed = bool(pushed or removed_profiles)
            self._state = new = RegistryState(
                old.profiles.with_pushed(pushed).without_pushed(removed_profiles)
                if profiles_changed
                else old.profiles,
                old.vms.changed(written, removed_vms),
                pools,
                inventory,
            )
            self._push(new, profiles_changed, written, removed_vms)
            return dropped

    def _announce(
        self,
        old: RegistryState,
        new: RegistryState,
        profiles,
        vms,
        removed_profiles,
        removed_vms,
        created,
    ) -> None:
        for profile in profiles:
            self._emit(
                "profile.pushed",
                type_id=profile.key.type_id,
                version=profile.key.version,
                name=profile.name,
                tenant=profile.tenant,
                created=profile.key in created,
                overrides_file=profile.key in new.profiles.files,
            )
        for key in removed_profiles:
            self._emit(
                "profile.deleted",
                type_id=key.type_id,
                version=key.version,
                tenant=old.profiles.pushed[key].tenant,
                file_profile_back=key in new.profiles.files,
            )
        for vm in vms:
            self._emit(
                "vm.registered",
                vsi_id=vm.vsi_id,
                tenant=vm.tenant,
                type_id=vm.type_id,
                type_version=vm.type_version,
                macs=list(vm.macs),
                group=vm.group,
                created=vm.vsi_id in created,
            )
        for vsi_id in removed_vms:
            self._emit("vm.deregistered", vsi_id=vsi_id, tenant=old.vms[vsi_id].tenant)

    @staticmethod
    def _tenant_of(database: VsiTypeDatabase) -> Callable[[VsiTypeKey], str | None]:
        def tenant_of(key: VsiTypeKey) -> str | None:
            profile = database.get(key.type_id, key.version)
            return profile.tenant if profile else None

        return tenant_of


def _stored(what: str, document, parse: Callable[[dict], T]) -> T | None:
    """A stored document parsed; None, logged, if it is not valid."""
    try:
        return parse(document)
    except (RegistryError, LookupError, TypeError, ValueError, AttributeError) as err:
        LOG.warning("a stored %s is not valid, left out: %s (%.200r)", what, err, document)
        return None


def _key(type_id, version) -> VsiTypeKey:
    return VsiTypeKey(
        integer(type_id, "type_id", 0, TYPE_ID_MAX), integer(version, "version", 0, VERSION_MAX)
    )


def _check_admin(actor: str | None, what: str = "VLAN pools") -> None:
    if actor is not None:
        raise Forbidden(f"only an admin changes {what}")


def _check_owner(actor: str | None, tenant: str, message: str, field: str | None = None) -> None:
    if actor is not None and tenant != actor:
        raise Forbidden(message, field)


def _unique(
    items: Iterable[tuple[str, T]], key_of: Callable[[T], object], key_field: str
) -> dict[str, T]:
    """``(field, item)`` pairs as a dict, refusing two items with the same key: one dict
    lookup per item, so a group of 19,000 VMs costs 19,000 lookups, not 180 million
    comparisons under the registry's lock."""
    items_by_field: dict[str, T] = {}
    field_of_key: dict[object, str] = {}
    for where, item in items:
        other = field_of_key.setdefault(key_of(item), where)
        if other != where:
            raise InvalidInput(f"given twice: also at {other}", f"{where}.{key_field}")
        items_by_field[where] = item
    return items_by_field
