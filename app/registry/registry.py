"""The registry of pushed profiles and VM registrations: what the VM manager told the controller.

It is the one owner of the VSI type database (``database()``: the policy files' profiles with the
pushed ones on top): the authorizer reads it here at every request, nobody keeps a copy.

Every change is checked whole (input, tenant rights, contradictions with what is held), stored in
one transaction, swapped in as a new immutable state (new requests are authorized against it from
then on), and only then handed to the controller: ``service.apply_profiles(database)`` when
profiles changed, so the VMs already associated follow, ``service.deassociate`` for a
deregistered VM. A refused change leaves nothing behind.

Reads take no lock (the state is replaced whole), so the controller may read the registry while
holding its own locks. Changes are serialized by the registry's lock, held while the controller
applies them, so that two changes reach the controller in the order they were stored; the
controller must therefore never call a changing method while holding its own lock.

``actor`` is the tenant a request acts for, None for an admin.
"""

import dataclasses
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from app.policy.database import VsiTypeDatabase
from app.policy.profile import TYPE_ID_MAX, VERSION_MAX, VsiTypeKey, VsiTypeProfile
from app.registry.checks import check_vlans, check_vms
from app.registry.documents import parse_profile, profile_document
from app.registry.errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError, join
from app.registry.fields import array, integer, mapping, text
from app.registry.profiles import FILE, ProfileSet
from app.registry.vms import VmRecord, parse_vm, parse_vsi_id
from app.service import NmsService
from app.store.base import RegistryWrite, Store

DEREGISTERED = "deregistered by the VM manager"
GROUP_KEYS = ("group", "profiles", "vms")


@dataclass(frozen=True)
class RegistryState:
    profiles: ProfileSet
    vms: Mapping[str, VmRecord]


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
    ) -> None:
        """``files``: the database of the policy files; the store holds the rest. ``emit`` is
        EventLog.emit: the registry's changes become events."""
        self._store = store
        self._service = service
        self._emit = emit or (lambda *args, **kwargs: None)
        self._clock = clock
        self._lock = threading.Lock()
        pushed = {}
        for document in store.profiles():
            try:
                profile = parse_profile(document)
            except RegistryError as err:
                key = f"{document.get('type_id')}/{document.get('version')}"
                raise RegistryError(f"stored profile {key} is not valid any more: {err}") from None
            pushed[profile.key] = profile
        vms = {document["vsi_id"]: VmRecord.from_document(document) for document in store.vms()}
        self._state = RegistryState(ProfileSet(files, pushed), vms)

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
        return next((vm for vm in self._state.vms.values() if mac in vm.macs), None)

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
            if current is None:
                raise NotFound(f"{key} is not in the VSI type database")
            _check_owner(actor, current.tenant, f"{key} belongs to another tenant")
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
            if vm is None:
                raise NotFound(
                    f"VM {vsi_id} is not registered: the VM manager never registered "
                    f"it or has deregistered it already",
                    "vsi_id",
                )
            _check_owner(actor, vm.tenant, f"VM {vsi_id} belongs to another tenant")
            return self._change(removed_vms=(vsi_id,), actor=actor)

    def register_group(self, body, actor: str | None) -> ChangeResult:
        """Group registration (draft 5.3): ``{"group", "profiles": [...], "vms": [...]}``, all
        or nothing. VMs may leave out their type when the group pushes exactly one profile, and
        their group (the request's ``group``)."""
        fields = mapping(body, "", GROUP_KEYS)
        profile_bodies = array(fields.get("profiles", []), "profiles")
        vm_bodies = array(fields.get("vms", []), "vms")
        if not profile_bodies and not vm_bodies:
            raise InvalidInput("nothing to register: give profiles, vms or both", "profiles")
        defaults = {"group": text(fields["group"], "group")} if "group" in fields else {}
        profiles: dict[str, VsiTypeProfile] = {}
        for index, document in enumerate(profile_bodies):
            profile = parse_profile(document, f"profiles[{index}]")
            _unique(profiles, f"profiles[{index}]", profile, lambda p: p.key, "type_id")
        if len(profiles) == 1:
            (key,) = (profile.key for profile in profiles.values())
            defaults.update(type_id=key.type_id, type_version=key.version)
        with self._lock:
            future = self._state.profiles.with_pushed(profiles.values()).database
            vms: dict[str, VmRecord] = {}
            for index, document in enumerate(vm_bodies):
                vm = parse_vm(document, f"vms[{index}]", self._tenant_of(future), defaults=defaults)
                _unique(vms, f"vms[{index}]", vm, lambda v: v.vsi_id, "vsi_id")
            return self._change(profiles=profiles, vms=vms, actor=actor)

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
                _check_owner(
                    actor,
                    current.tenant,
                    f"{profile.key} belongs to another tenant",
                    join(where, "type_id"),
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
                _check_owner(
                    actor,
                    current_vm.tenant,
                    f"VM {vm.vsi_id} belongs to another tenant",
                    join(where, "vsi_id"),
                )
            stamped[where] = dataclasses.replace(
                vm, registered=current_vm.registered if current_vm else now, updated=now
            )
        new_vms = {**old.vms, **{vm.vsi_id: vm for vm in stamped.values()}}
        for vsi_id in removed_vms:
            del new_vms[vsi_id]
        new = RegistryState(
            old.profiles.with_pushed(profiles.values()).without_pushed(removed_profiles),
            dict(sorted(new_vms.items())),
        )
        touched_types = {
            **{p.key: where for where, p in profiles.items()},
            **{key: "" for key in removed_profiles},
        }
        check_vlans(new.profiles.database, touched_types, actor)
        check_vms(
            new.profiles.database,
            new.vms,
            {vm.vsi_id: where for where, vm in stamped.items()},
            touched_types,
            actor,
        )
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
        applied = None
        if profiles or removed_profiles:
            applied = self._service.apply_profiles(new.profiles.database)
        deassociated = tuple(
            vsi_id for vsi_id in removed_vms if self._service.deassociate(vsi_id, DEREGISTERED)
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


def _key(type_id, version) -> VsiTypeKey:
    return VsiTypeKey(
        integer(type_id, "type_id", 0, TYPE_ID_MAX), integer(version, "version", 0, VERSION_MAX)
    )


def _check_owner(actor: str | None, tenant: str, message: str, field: str | None = None) -> None:
    if actor is not None and tenant != actor:
        raise Forbidden(message, field)


def _unique(seen: dict, where: str, item, key_of, key_field: str) -> None:
    for other_where, other in seen.items():
        if key_of(other) == key_of(item):
            raise InvalidInput(f"given twice: also at {other_where}", f"{where}.{key_field}")
    seen[where] = item
