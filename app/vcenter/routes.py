"""VSI Manager IDs as routes to VM managers: a station's request is looked up at the manager its
Manager ID names, and what becomes of a VSI is told to that manager only.

``vm_managers`` (app/vcenter/managers.py) maps Manager IDs to managers, each with its own
client (timeout, cache, token; app/vcenter/client.py) and webhook (secret; notifier.py). The
``vcenter_url`` manager is the default: it answers for every Manager ID the table does not name
and hears of every event that names no routed manager (server maintenance, say). Without a
default, a type the database lacks with an unrouted Manager ID is refused as "unable to contact
the VSI manager", hard (UnknownVsiManager): nobody could answer it.

A manager hears exactly what concerns it: the VSI events whose Manager ID routes to it (and,
when it lists tenants, of those tenants), and its own VMs of each VM report, with each server's
sums taken over them alone. A manager that lists tenants answers lookups for them alone: a
profile of another tenant is refused to the station (OTHER_FAILURE, hard).
"""

from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from app.config import VCENTER_SECRET_ENV, VCENTER_TOKEN_ENV, Settings
from app.events import Event
from app.flows.vm_stats import COUNTERS
from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey, VsiTypeProfile
from app.vcenter.client import VcenterClient
from app.vcenter.credentials import Credential
from app.vcenter.managers import NOTIFICATIONS, ManagerSpec
from app.vcenter.notifier import Notifier
from app.vdp.authorizer import UnknownVsiManager

DEFAULT = "vm_manager"  # the default manager's name in stats and metrics
T = TypeVar("T")


class ManagerRoutes:
    """The authorizer's ProfileLookup over every manager (app/vdp/authorizer.py)."""

    def __init__(
        self,
        default: VcenterClient | None,
        routed: Sequence[tuple[ManagerSpec, VcenterClient]] = (),
    ) -> None:
        self._default = default
        self._by_id = {key: client for spec, client in routed for key in spec.manager_ids}
        self._named = _named(default, routed)

    def client_for(self, manager_id: str) -> VcenterClient | None:
        return self._by_id.get(manager_id, self._default)

    def profile_lookup(
        self, database: VsiTypeDatabase, manager_id: str, key: VsiTypeKey
    ) -> VsiTypeProfile | None:
        profile = database.get(key.type_id, key.version)
        if profile is not None:
            return profile
        client = self.client_for(manager_id)
        if client is None:
            raise UnknownVsiManager(
                f"no VM manager is configured for Manager ID {manager_id!r} (vm_managers)"
            )
        return client.profile_lookup(database, manager_id, key)

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: client.stats() for name, client in self._named}

    def close(self) -> None:
        for _, client in self._named:
            client.close()


class ManagerNotifiers:
    """An EventLog sink: each event to the manager it concerns (module docstring)."""

    def __init__(
        self,
        default: Notifier | None,
        routed: Sequence[tuple[ManagerSpec, Notifier]] = (),
    ) -> None:
        self._default = default
        self._by_id = {key: (spec, hook) for spec, hook in routed for key in spec.manager_ids}
        self._named = _named(default, routed)

    def __call__(self, event: Event) -> None:
        hook = self._recipient(event.detail.get("manager"), event.detail.get("tenant"))
        if hook is not None:
            hook(event)

    def _recipient(self, manager_id, tenant) -> Notifier | None:
        routed = self._by_id.get(manager_id) if manager_id is not None else None
        if routed is None:
            return self._default
        spec, hook = routed
        return hook if tenant is None or spec.refusal(tenant) is None else None

    def report(self, body: dict[str, Any]) -> None:
        """A VM report (app/vcenter/vm_report.py): each manager its own VMs of the page."""
        if len(self._named) == 1 and self._default is not None:
            self._default.notify(body)  # one manager: the whole page, as measured
            return
        detail = body["detail"]
        vms_of: dict[Notifier, list[dict]] = defaultdict(list)
        for vm in detail["vms"]:
            hook = self._recipient(vm.get("manager"), vm.get("tenant"))
            if hook is not None:
                vms_of[hook].append(vm)
        for hook, vms in vms_of.items():
            hook.notify({**body, "detail": {**detail, "servers": _servers(vms), "vms": vms}})

    def stats(self) -> dict[str, dict[str, int]]:
        return {name: hook.stats() for name, hook in self._named}

    def flush(self, timeout: float) -> None:
        for _, hook in self._named:
            hook.flush(timeout)

    def close(self) -> None:
        for _, hook in self._named:
            hook.close()


def _named(default: T | None, routed: Sequence[tuple[ManagerSpec, T]]) -> list[tuple[str, T]]:
    """Each manager's client or webhook under its name in stats and metrics."""
    named = [(DEFAULT, default)] if default is not None else []
    return named + [(f"{DEFAULT}:{spec.name}", value) for spec, value in routed]


def _servers(vms: list[dict]) -> list[dict]:
    """Each server port of ``vms`` with their number and their counters summed (null when none
    of them was counted yet)."""
    ports: dict[tuple[str, str], dict] = {}
    for vm in vms:
        port = ports.setdefault(
            (vm["switch"], vm["port"]),
            {"switch": vm["switch"], "port": vm["port"], "vms": 0, **dict.fromkeys(COUNTERS)},
        )
        port["vms"] += 1
        for name in COUNTERS:
            if vm.get(name) is not None:
                port[name] = (port[name] or 0) + vm[name]
    return list(ports.values())


def build(
    settings: Settings,
    on_done: Callable[[Any, Any], None],
    vet: Callable[[VsiTypeProfile], str | None],
) -> tuple[ManagerRoutes, ManagerNotifiers] | None:
    """The clients and webhooks of the default manager (``vcenter_url``) and of
    ``vm_managers``; None when there is no manager at all. ``on_done`` and ``vet`` as
    VcenterClient's (vet: the registry's tenant rules)."""
    if not settings.vcenter_url and not settings.vm_managers:
        return None
    clients, hooks = [], []
    for spec in settings.vm_managers:

        def vet_routed(profile: VsiTypeProfile, spec: ManagerSpec = spec) -> str | None:
            return spec.refusal(profile.tenant) or vet(profile)

        clients.append(
            (
                spec,
                VcenterClient(
                    spec.url,
                    timeout=spec.timeout,
                    ttl=spec.ttl,
                    negative_ttl=spec.negative_ttl,
                    max_cached=spec.cache,
                    on_done=on_done,
                    token=Credential(spec.token_file).get,
                    vet=vet_routed,
                ),
            )
        )
        secret = Credential(spec.secret_file).get
        hooks.append((spec, Notifier(spec.notifications_url, spec.timeout, secret=secret)))
    default_client = default_hook = None
    if settings.vcenter_url:
        url, timeout = settings.vcenter_url, settings.vcenter_timeout
        default_client = VcenterClient(
            url,
            timeout=timeout,
            ttl=settings.vcenter_ttl,
            token=Credential(settings.vcenter_token_file, VCENTER_TOKEN_ENV).get,
            on_done=on_done,
            vet=vet,
        )
        secret = Credential(settings.vcenter_secret_file, VCENTER_SECRET_ENV).get
        default_hook = Notifier(url.rstrip("/") + NOTIFICATIONS, timeout, secret=secret)
    return ManagerRoutes(default_client, clients), ManagerNotifiers(default_hook, hooks)
