"""Faults as alarms (OPNFV Doctor's inspector role): which events are faults, which VMs each one
affects, and when it is over.

Pure: ``on_event`` takes an event, the VMs forwarding at that moment and the servers in
maintenance, and returns the alarm changes (raised or cleared) for the subscribers.

| event                                   | alarm            | severity | cleared by           |
|-----------------------------------------|------------------|----------|----------------------|
| switch.disconnected, switch.hung (no    | switch.down      | critical | switch.ready         |
|   answer in time: connection reset),    |                  |          |                      |
|   switch.absent (not back after start)  |                  |          |                      |
| switch.duplicate (a second connection   | switch.duplicate | major    | switch.ready (the    |
|   claimed a connected switch's dpid)    |                  |          | next clean connect)  |
| port.* of a server port, not up / gone  | port.down        | critical | port.* up            |
|   or down when its switch is ready      |                  |          | or ready with it up  |
| link.down                               | link.down        | major    | link.up (same ports) |
| vsi.expired (no keep-alive in time)     | vm.lost          | critical | vsi.associated       |
| probe.lost (a VLAN's data-plane probes  | path.down        | major    | probe.restored       |
|   from one edge to another lost)        |                  |          |   (same VLAN, edges) |

A follower's own SLAVE connection found hung (role "slave") raises nothing: whether the switch
is down is the leader's to say.

Affected VMs: those forwarding on the switch, on the server port, on either switch of the
link or of the probed path (their traffic to other edges crosses it), or the VM itself. An
alarm on a server in maintenance (port.down, vm.lost) is expected: it is kept and listed,
flagged ``maintenance``, but not notified.

Bounded, and kept across a restart: the latest RECENT_CLEARED cleared alarms, and at most
ACTIVE_VM_LOST vm.lost alarms (a VM that never comes back would otherwise hold one forever: the
oldest is retired, i.e. moved to the cleared ones flagged ``retired``, without a notice, since the
VM did not come back). ``take_changes`` hands the owner what to write (app/faults/monitor.py);
``AlarmBook(saved)`` takes it back.
"""

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from app.events import Event

SEVERITY = {
    "switch.down": "critical",
    "switch.duplicate": "major",
    "port.down": "critical",
    "link.down": "major",
    "vm.lost": "critical",
    "path.down": "major",
}
KINDS = frozenset(SEVERITY)
# The events that raise switch.down, and what each says of the switch.
_SWITCH_DOWN = {
    "switch.disconnected": lambda detail: "lost its OpenFlow connection",
    "switch.hung": lambda detail: (
        f"stopped answering (nothing heard for {detail.get('silent_s')} s, no answer to an "
        f"echo request within {detail.get('timeout')} s): its connection was reset"
    ),
    "switch.absent": lambda detail: (
        f"has not connected within {detail.get('timeout')} s of the controller's start"
    ),
}
RECENT_CLEARED = 200  # cleared alarms kept for GET /v1/alarms
ACTIVE_VM_LOST = 10_000  # vm.lost alarms kept active at most


@dataclass(frozen=True)
class VmPlace:
    """A VM forwarding at a server port."""

    vsi_id: str
    tenant: str
    switch: str
    port: str
    macs: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "vsi_id": self.vsi_id,
            "tenant": self.tenant,
            "switch": self.switch,
            "port": self.port,
            "macs": list(self.macs),
        }


@dataclass(frozen=True)
class Alarm:
    id: str  # kind:resource, stable while the fault lasts
    kind: str
    severity: str
    switch: str | None
    port: str | None
    reason: str
    affected: tuple[VmPlace, ...]
    raised: float  # wall clock (the event's ts)
    cleared: float | None = None
    maintenance: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.cleared is None

    @property
    def key(self) -> str:
        """Unique among the alarms kept: the same fault may be raised and cleared again."""
        return f"{self.id}@{self.raised!r}"

    def document(self) -> dict[str, Any]:
        """Everything, JSON-able, for the store (``from_document`` reads it back)."""
        return {
            **{k: getattr(self, k) for k in ("id", "kind", "severity", "switch", "port")},
            **{k: getattr(self, k) for k in ("reason", "raised", "cleared", "maintenance")},
            "affected": [vm.as_dict() for vm in self.affected],
            "detail": self.detail,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Alarm":
        affected = tuple(
            VmPlace(vm["vsi_id"], vm["tenant"], vm["switch"], vm["port"], tuple(vm["macs"]))
            for vm in doc["affected"]
        )
        return cls(**{**doc, "affected": affected})

    def tenants(self) -> set[str]:
        return {vm.tenant for vm in self.affected}

    def as_dict(self, tenant: str | None = None) -> dict[str, Any]:
        """JSON; for a tenant only its own VMs are listed among the affected."""
        affected = [vm.as_dict() for vm in self.affected if tenant is None or vm.tenant == tenant]
        return {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity,
            "state": "alarm" if self.active else "ok",
            "switch": self.switch,
            "port": self.port,
            "reason": self.reason,
            "affected_vms": affected,
            "raised": self.raised,
            "cleared": self.cleared,
            "maintenance": self.maintenance,
            **({"detail": self.detail} if self.detail else {}),
        }


@dataclass(frozen=True)
class Notice:
    """An alarm that was raised (state "alarm") or cleared (state "ok")."""

    alarm: Alarm

    @property
    def state(self) -> str:
        return "alarm" if self.alarm.active else "ok"


class AlarmBook:
    def __init__(
        self,
        saved: Iterable[Alarm] = (),
        recent_cleared: int = RECENT_CLEARED,
        active_vm_lost: int = ACTIVE_VM_LOST,
    ) -> None:
        """``saved``: the alarms kept before a restart, in any order."""
        self._active: dict[str, Alarm] = {}
        self._cleared: deque[Alarm] = deque()
        self._recent_cleared = recent_cleared
        self._active_vm_lost = active_vm_lost
        self._lost: dict[str, None] = {}  # active vm.lost alarm ids, oldest first
        self._changed: list[Alarm] = []  # raised, cleared or retired since take_changes
        self._dropped: list[str] = []  # keys of the cleared alarms no longer kept
        for alarm in sorted(saved, key=lambda a: a.raised if a.active else a.cleared):
            if alarm.active:
                self._add_active(alarm)
            else:
                self._add_cleared(alarm)
        self.take_changes()

    def take_changes(self) -> tuple[list[Alarm], list[str]]:
        """The alarms to write (raised, cleared, retired) and the keys of those to delete,
        since the last call."""
        changes = (self._changed, self._dropped)
        self._changed, self._dropped = [], []
        return changes

    def on_event(
        self, event: Event, vms: Iterable[VmPlace], in_maintenance: set[tuple[str, str]]
    ) -> list[Notice]:
        """The alarm changes ``event`` makes. ``vms``: the VMs forwarding now; ``in_maintenance``:
        the (switch, port) of the servers in maintenance. Notices of alarms in maintenance are
        returned too (flagged): the caller decides whom to tell."""
        kind, detail = event.kind, event.detail
        if kind in _SWITCH_DOWN and detail.get("role") != "slave":
            return self._raise(
                "switch.down",
                event,
                event.switch,
                None,
                f"switch {event.switch} {_SWITCH_DOWN[kind](detail)}",
                [vm for vm in vms if vm.switch == event.switch],
                in_maintenance,
                cause=kind.removeprefix("switch.") if kind != "switch.disconnected" else None,
            )
        if kind == "switch.duplicate":
            return self._raise(
                "switch.duplicate",
                event,
                event.switch,
                None,
                f"a second OpenFlow connection from {detail.get('address')} claimed switch "
                f"{event.switch}",
                [vm for vm in vms if vm.switch == event.switch],
                in_maintenance,
            )
        if kind == "switch.ready":
            return [
                *self._clear(f"switch.down:{event.switch}", event),
                *self._clear(f"switch.duplicate:{event.switch}", event),
                *self._reconcile_ports(event, vms, in_maintenance),
            ]
        if kind.startswith("port.") and detail.get("role") == "server":
            if kind == "port.deleted" or detail.get("up") is False:
                what = "was removed" if kind == "port.deleted" else "is down"
                return self._port_down(event, event.port, what, vms, in_maintenance)
            return self._clear(f"port.down:{event.switch}/{event.port}", event)
        if kind in ("link.down", "link.up"):
            ends = sorted([f"{event.switch}/{event.port}", str(detail.get("peer"))])
            if kind == "link.up":
                return self._clear(f"link.down:{ends[0]}~{ends[1]}", event)
            switches = {end.split("/")[0] for end in ends}
            return self._raise(
                "link.down",
                event,
                event.switch,
                event.port,
                f"link {ends[0]} - {ends[1]} is down",
                [vm for vm in vms if vm.switch in switches],
                in_maintenance,
                resource=f"{ends[0]}~{ends[1]}",
                peer=detail.get("peer"),
            )
        if kind in ("probe.lost", "probe.restored"):
            resource = f"{detail.get('vlan')}/{event.switch}~{detail.get('peer')}"
            if kind == "probe.restored":
                return self._clear(f"path.down:{resource}", event)
            path = detail.get("path")
            return self._raise(
                "path.down",
                event,
                event.switch,
                None,
                f"VLAN {detail.get('vlan')}: probes from {event.switch} to {detail.get('peer')} "
                f"lost {detail.get('losses')} times in a row (path "
                f"{' > '.join(path) if path else 'unknown'} > {detail.get('peer')})",
                [vm for vm in vms if vm.switch in (event.switch, detail.get("peer"))],
                in_maintenance,
                resource=resource,
                peer=detail.get("peer"),
                vlan=detail.get("vlan"),
                path=path,
            )
        if kind == "vsi.expired":
            lost = VmPlace(
                str(detail.get("vsi")),
                str(detail.get("tenant")),
                event.switch or "",
                event.port or "",
                tuple(detail.get("macs", ())),
            )
            return self._raise(
                "vm.lost",
                event,
                event.switch,
                event.port,
                f"VM {lost.vsi_id} at {event.switch}/{event.port}: "
                f"{detail.get('reason', 'expired')}",
                [lost],
                in_maintenance,
                resource=lost.vsi_id,
            )
        if kind == "vsi.associated":
            return self._clear(f"vm.lost:{detail.get('vsi')}", event)
        return []

    def follow(self, stored: Mapping[str, Alarm | None], *, whole: bool = False) -> None:
        """Alarms another controller wrote, by key (None: it deleted them), kept as it keeps
        them and within the same bounds, with nothing to write back. ``whole``: ``stored`` is
        every alarm kept, the others go."""
        if whole:
            held = {a.key for a in self._active.values()} | {a.key for a in self._cleared}
            stored = {**dict.fromkeys(held - stored.keys()), **stored}
        for key, alarm in stored.items():
            if alarm is not None and self._active.get(alarm.id) == alarm:
                continue
            active = self._active.get(key.rpartition("@")[0])
            if active is not None and active.key == key:
                del self._active[active.id]
                self._lost.pop(active.id, None)
            for cleared in self._cleared:
                if cleared.key == key:
                    self._cleared.remove(cleared)
                    break
            if alarm is None:
                continue
            if not alarm.active:
                self._cleared.append(alarm)
                if len(self._cleared) > self._recent_cleared:
                    self._cleared.popleft()
                continue
            self._active[alarm.id] = alarm
            if alarm.kind == "vm.lost":
                self._lost[alarm.id] = None
                if len(self._lost) > self._active_vm_lost:  # its writer retires it too
                    oldest = next(iter(self._lost))
                    del self._lost[oldest]
                    self._active.pop(oldest, None)

    def active(self) -> list[Alarm]:
        return sorted(self._active.values(), key=lambda a: a.raised)

    def recent(self) -> list[Alarm]:
        """Active alarms, then the latest cleared ones, newest first."""
        return [*reversed(self.active()), *reversed(self._cleared)]

    def _port_down(
        self,
        event: Event,
        port: str,
        what: str,
        vms: Iterable[VmPlace],
        in_maintenance: set[tuple[str, str]],
    ) -> list[Notice]:
        return self._raise(
            "port.down",
            event,
            event.switch,
            port,
            f"server port {event.switch}/{port} {what}",
            [vm for vm in vms if (vm.switch, vm.port) == (event.switch, port)],
            in_maintenance,
        )

    def _reconcile_ports(
        self, event: Event, vms: Iterable[VmPlace], in_maintenance: set[tuple[str, str]]
    ) -> list[Notice]:
        """A switch (re)connected: its server ports down now are alarms, and port alarms of
        that switch for ports now up are over (their changes happened while it was away)."""
        down = set(event.detail.get("server_ports_down", ()))
        vms = list(vms)
        notices = [
            notice
            for port in sorted(down)
            for notice in self._port_down(event, port, "is down", vms, in_maintenance)
        ]
        for alarm in list(self._active.values()):
            if (
                alarm.kind == "port.down"
                and alarm.switch == event.switch
                and alarm.port not in down
            ):
                notices += self._clear(alarm.id, event)
        return notices

    def _raise(
        self,
        kind: str,
        event: Event,
        switch: str | None,
        port: str | None,
        reason: str,
        affected: list[VmPlace],
        in_maintenance: set[tuple[str, str]],
        *,
        resource: str | None = None,
        **detail,
    ) -> list[Notice]:
        alarm_id = f"{kind}:{resource or (f'{switch}/{port}' if port else switch)}"
        if alarm_id in self._active:
            return []  # the same fault again (a port flapping within one alarm)
        maintenance = kind in ("port.down", "vm.lost") and (switch, port) in in_maintenance
        alarm = Alarm(
            alarm_id,
            kind,
            SEVERITY[kind],
            switch,
            port,
            reason,
            tuple(sorted(affected, key=lambda vm: vm.vsi_id)),
            event.ts,
            maintenance=maintenance,
            detail={k: v for k, v in detail.items() if v is not None},
        )
        self._add_active(alarm)
        return [Notice(alarm)]

    def _clear(self, alarm_id: str, event: Event) -> list[Notice]:
        alarm = self._active.pop(alarm_id, None)
        if alarm is None:
            return []
        self._lost.pop(alarm_id, None)
        cleared = replace(alarm, cleared=event.ts)
        self._add_cleared(cleared)
        return [Notice(cleared)]

    def _add_active(self, alarm: Alarm) -> None:
        self._active[alarm.id] = alarm
        self._changed.append(alarm)
        if alarm.kind != "vm.lost":
            return
        self._lost[alarm.id] = None
        while len(self._lost) > self._active_vm_lost:
            oldest = self._active.pop(next(iter(self._lost)))
            del self._lost[oldest.id]
            detail = {**oldest.detail, "retired": f"more than {self._active_vm_lost} VMs lost"}
            self._add_cleared(replace(oldest, cleared=alarm.raised, detail=detail))

    def _add_cleared(self, alarm: Alarm) -> None:
        self._cleared.append(alarm)
        self._changed.append(alarm)
        while len(self._cleared) > self._recent_cleared:
            self._dropped.append(self._cleared.popleft().key)


def places_of(associations: Iterable[dict[str, Any]]) -> list[VmPlace]:
    """The VMs forwarding now, from the association views (app/service.py associations)."""
    return [
        VmPlace(
            vsi["vsi_id"],
            att["tenant"],
            att["switch"],
            att["port"],
            tuple(e["mac"] for e in att["entries"]),
        )
        for vsi in associations
        for att in vsi["attachments"]
        if att["state"] == "associated"
    ]
