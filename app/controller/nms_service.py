"""app/service.py's NmsService on the running controller: each call takes the controller's
lock, asks the pure logic (app/fabric_control.py) and sends what it returned."""

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from app.control_plane import Reaction
from app.fabric.ports import PortRef
from app.fabric_control import FabricControl, Out
from app.flows.vm_stats import COUNTERS, Counters
from app.policy.database import VsiTypeDatabase
from app.vcenter.vm_report import KIND, ReportCursor
from app.vdp.bridge import VdpBridge
from app.vdp.describe import vsi_id_from_text, vsi_id_text
from app.vdp.migrations import document


class ControllerService:
    def __init__(
        self,
        fabric: FabricControl,
        bridge: VdpBridge,
        lock: AbstractContextManager,
        send: Callable[[Out], None],
    ):
        """`lock` serializes every call on `fabric`; `send` puts its messages on the wire (it
        is called with the lock held)."""
        self._fabric = fabric
        self._control = fabric.control
        self._bridge = bridge
        self._lock = lock
        self._send = send

    # views ---------------------------------------------------------------------------------
    def switches(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._fabric.switches_snapshot()

    def links(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._control.links_snapshot()

    def probes(self) -> list[dict[str, Any]]:
        with self._lock:
            name = self._control.switches.name
            return [
                {"vlan": vid, "from": name(src), "to": name(dst), **stats}
                for (vid, src, dst), stats in self._fabric.probes.snapshot()
            ]

    def stations(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._control.sessions_snapshot()

    def vsi_counts(self) -> dict[str, dict[str, int]]:
        with self._lock:
            by_dpid, by_tenant = self._bridge.attachment_counts()
            names = {dpid: self._control.switches.name(dpid) for dpid in by_dpid}
        return {
            "by_switch": {names[dpid]: count for dpid, count in by_dpid.items()},
            "by_tenant": by_tenant,
        }

    def associations(self) -> list[dict[str, Any]]:
        with self._lock:
            names = self._control.switches.port_names()
            return [vsi_view(v, names) for v in self._bridge.vsis()]

    def associations_after(
        self, after: str | None, limit: int, keep: Callable[[dict[str, Any]], bool], scan: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        start = vsi_id_from_text(after.lower()) if after is not None else None
        page: list[dict[str, Any]] = []
        with self._lock:
            names = self._control.switches.port_names()
            last = None
            for looked, info in enumerate(self._bridge.vsis_after(start), 1):
                view = vsi_view(info, names)
                last = view["vsi_id"]
                if keep(view):
                    page.append(view)
                if len(page) == limit or looked == scan:
                    return page, last
        return page, None

    def associations_of(self, vsi_ids: list[str]) -> dict[str, dict[str, Any]]:
        parsed = [(text, vsi_id_from_text(text.lower())) for text in vsi_ids]
        with self._lock:
            found = [
                (text, info)
                for text, key in parsed
                if key is not None and (info := self._bridge.vsi(key)) is not None
            ]
            return {text: vsi_view(info, self._names(info)) for text, info in found}

    def association(self, vsi_id: str) -> dict[str, Any] | None:
        parsed = vsi_id_from_text(vsi_id.lower())
        with self._lock:
            info = self._bridge.vsi(parsed) if parsed is not None else None
            return vsi_view(info, self._names(info)) if info is not None else None

    def vm_stats(self, vsi_id: str) -> list[dict[str, Any]] | None:
        parsed = vsi_id_from_text(vsi_id.lower())
        with self._lock:
            info = self._bridge.vsi(parsed) if parsed is not None else None
            if info is None:
                return None
            offset = time.time() - time.monotonic()  # the control plane's clock is monotonic
            names = self._control.switches.names
            return [
                _attachment_stats(
                    names(a.port), self._fabric.stats.vm(a.port.dpid, a.handle), offset
                )
                for a in info.attachments
            ]

    def port_stats(self) -> list[dict[str, Any]]:
        with self._lock:
            names = self._control.switches.names
            return [
                {**_switch_port(names(PortRef(dpid, port_no))), **counters.as_dict()}
                for dpid, port_no, counters in self._fabric.stats.ports()
            ]

    def vm_report(self, cursor: ReportCursor) -> dict[str, Any] | None:
        """The next VM report (app/vcenter/vm_report.py) as a notification body: the servers'
        ports of the page with their VMs summed, and each VM attached there with its state and
        counters; None while no VM is held. Not in NmsService: the shim sends it, no API asks."""
        with self._lock:
            ports = self._bridge.ports_held()
            page = cursor.page(ports, lambda port: len(self._bridge.held_at(port)))
            if not page:
                return None
            offset = time.time() - time.monotonic()
            names = self._control.switches.names
            servers, vms = [], []
            for port in page:
                held = self._bridge.held_at(port)
                totals = self._fabric.stats.port(port.dpid, port.port_no)
                servers.append(
                    {
                        **_switch_port(names(port)),
                        "vms": len(held),
                        **(totals.as_dict() if totals is not None else dict.fromkeys(COUNTERS)),
                    }
                )
                for vsi_id in held:
                    info = self._bridge.vsi(vsi_id)
                    here = [a for a in info.attachments if a.port == port] if info else []
                    if info is None or not here:
                        continue
                    att = here[-1]  # a suspended record, listed first, is not the attachment
                    counted = self._fabric.stats.vm(port.dpid, att.handle)
                    vms.append(
                        {
                            "vsi_id": info.name,
                            "state": att.state.value,
                            "tenant": att.tenant,
                            "manager": att.manager_id,
                            **_attachment_stats(names(port), counted, offset),
                        }
                    )
        return {
            "kind": KIND,
            "ts": round(time.time(), 3),
            "switch": None,
            "port": None,
            "detail": {
                "servers": servers,
                "vms": vms,
                "ports_held": len(ports),
                "round_complete": page[-1] == ports[-1],
            },
        }

    def _names(self, info) -> dict:
        """(switch, port) names of the VSI's ports only."""
        return {a.port: self._control.switches.names(a.port) for a in info.attachments}

    def lookup(self, query: str) -> dict[str, Any] | None:
        with self._lock:
            vsi_id = self._control.find_vsi(query)
            found = self._control.lookup(vsi_id) if vsi_id is not None else None
            if found is None:
                return None
            offset = time.time() - time.monotonic()  # the control plane's clock is monotonic
            for previous in found["previous"]:
                previous["until"] = round(previous["until"] + offset, 3)
            info = self._bridge.vsi(vsi_id)
            current = vsi_view(info, self._names(info))["attachments"] if info else []
            host_of = self._control.locations.host_of
            for attachment, where in zip(current, info.attachments if info else (), strict=True):
                attachment["host"] = host_of(where.port)
            return {
                "vsi_id": vsi_id_text(vsi_id),
                "current": current,
                "previous": found["previous"],
            }

    def migrations(
        self, vsi_id: str | None, tenant: str | None, limit: int
    ) -> list[dict[str, Any]]:
        with self._lock:
            offset = time.time() - time.monotonic()  # once, so that the records agree
            records = self._control.migrations.records(vsi_id, tenant, limit)
            return [document(r, self._control.switches.names, offset) for r in records]

    # changes -------------------------------------------------------------------------------
    def deassociate(self, vsi_id: str, reason: str) -> bool:
        with self._lock:
            found = self._control.find_vsi(vsi_id)
            if found is None or self._bridge.vsi(found) is None:
                return False
            now = time.monotonic()
            self._react(self._control.deassociate(found, reason, now), now)
            return True

    def relocate(
        self, vsi_id: str, switch: str, port: str, *, replicate: bool = False
    ) -> dict[str, Any]:
        with self._lock:
            found = self._control.find_vsi(vsi_id)
            if found is None:
                raise KeyError(f"no VSI {vsi_id}")
            target = self._control.switches.port_ref(switch, port)
            now = time.monotonic()
            self._react(self._control.prepare(found, target, now, replicate=replicate), now)
            return {
                "vsi_id": vsi_id_text(found),
                "prepared_at": {"switch": switch, "port": port},
                "replicate": replicate,
            }

    def apply_profiles(self, database: VsiTypeDatabase) -> dict[str, Any]:
        """The registry's new database (it owns it: the authorizer reads it there)."""
        with self._lock:
            now = time.monotonic()
            reaction, result = self._control.apply_profiles(database, now)
            self._react(reaction, now)
            return result

    def _react(self, reaction: Reaction, now: float) -> None:
        self._send(self._fabric.react(reaction, now))


def _switch_port(names: tuple[str, str]) -> dict[str, str]:
    return {"switch": names[0], "port": names[1]}


def _attachment_stats(
    names: tuple[str, str], counted: tuple[Counters, float] | None, offset: float
) -> dict[str, Any]:
    if counted is None:
        return {**_switch_port(names), **dict.fromkeys(COUNTERS), "polled_at": None}
    counters, polled_at = counted
    return {**_switch_port(names), **counters.as_dict(), "polled_at": round(polled_at + offset, 3)}


def vsi_view(info, names) -> dict:
    """A VSI as JSON: where it is attached, in which state, with which profile and MAC/VID."""

    def where(port):
        switch, port_name = names.get(port.physical, (f"{port.dpid:016x}", str(port.port_no)))
        return {"switch": switch, "port": port_name, "port_no": port.port_no, "svid": port.svid}

    return {
        "vsi_id": info.name,
        "state": info.state.value,
        "migrating": info.migrating,
        "attachments": [
            {
                **where(a.port),
                "state": a.state.value,
                "binding": a.binding.value if a.binding else None,
                "handle": a.handle,
                "manager_id": a.manager_id,
                "type_id": a.type_id,
                "type_version": a.type_version,
                "profile": a.profile,
                "tenant": a.tenant,
                "filter_format": a.filter_format.name.lower().replace("_", "-"),
                "entries": [
                    {
                        "mac": e.mac,
                        "vid": e.vid,
                        "group_id": f.group_id,
                        "pcp": f.pcp if f.ps else None,
                    }
                    for e, f in zip(a.entries, a.filters, strict=True)
                ],
                # The bridge's clock is time.monotonic(); a replicated copy is held until removed.
                "expires_in": None
                if math.isinf(a.expires)
                else round(a.expires - time.monotonic(), 1),
            }
            for a in info.attachments
        ],
    }
