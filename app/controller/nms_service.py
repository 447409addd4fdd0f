"""app/service.py's NmsService on the running controller: each call takes the control plane's
lock, asks the pure logic, and sends what it returned through the app (EvbApp._react)."""
import math
import time
from typing import Any

from app.policy.database import VsiTypeDatabase
from app.vdp.describe import vsi_id_text


class ControllerService:
    def __init__(self, app):
        self._app = app

    # views ---------------------------------------------------------------------------------
    def switches(self) -> list[dict[str, Any]]:
        return self._app.switches_snapshot()

    def links(self) -> list[dict[str, Any]]:
        with self._app.plane_lock:
            return self._app.control.links_snapshot()

    def stations(self) -> list[dict[str, Any]]:
        with self._app.plane_lock:
            return self._app.control.sessions_snapshot()

    def associations(self) -> list[dict[str, Any]]:
        with self._app.plane_lock:
            names = self._app.control.switches.port_names()
            return [vsi_view(v, names) for v in self._app.bridge.vsis()]

    def lookup(self, query: str) -> dict[str, Any] | None:
        with self._app.plane_lock:
            vsi_id = self._app.control.find_vsi(query)
            found = self._app.control.lookup(vsi_id) if vsi_id is not None else None
            if found is None:
                return None
            offset = time.time() - time.monotonic()  # the control plane's clock is monotonic
            for previous in found["previous"]:
                previous["until"] = round(previous["until"] + offset, 3)
            info = self._app.bridge.vsi(vsi_id)
            current = vsi_view(info, self._app.control.switches.port_names())["attachments"] if info else []
            return {"vsi_id": vsi_id_text(vsi_id), "current": current, "previous": found["previous"]}

    # changes -------------------------------------------------------------------------------
    def deassociate(self, vsi_id: str, reason: str) -> bool:
        with self._app.plane_lock:
            found = self._app.control.find_vsi(vsi_id)
            if found is None or self._app.bridge.vsi(found) is None:
                return False
            self._app.react(self._app.control.deassociate(found, reason, time.monotonic()))
            return True

    def relocate(self, vsi_id: str, switch: str, port: str, *, replicate: bool = False
                 ) -> dict[str, Any]:
        with self._app.plane_lock:
            found = self._app.control.find_vsi(vsi_id)
            if found is None:
                raise KeyError(f"no VSI {vsi_id}")
            target = self._app.control.switches.port_ref(switch, port)
            self._app.react(self._app.control.prepare(found, target, time.monotonic(),
                                                      replicate=replicate))
            return {"vsi_id": vsi_id_text(found), "prepared_at": {"switch": switch, "port": port},
                    "replicate": replicate}

    def apply_profiles(self, database: VsiTypeDatabase) -> dict[str, Any]:
        with self._app.plane_lock:
            self._app.policies = database
            reaction, result = self._app.control.apply_profiles(database, time.monotonic())
            self._app.react(reaction)
            return result


def vsi_view(info, names) -> dict:
    """A VSI as JSON: where it is attached, in which state, with which profile and MAC/VID."""
    def where(port):
        switch, port_name = names.get(port, (f"{port.dpid:016x}", str(port.port_no)))
        return {"switch": switch, "port": port_name, "port_no": port.port_no}

    return {
        "vsi_id": info.name,
        "state": info.state.value,
        "migrating": info.migrating,
        "attachments": [{
            **where(a.port), "state": a.state.value,
            "binding": a.binding.value if a.binding else None, "handle": a.handle,
            "manager_id": a.manager_id, "type_id": a.type_id, "type_version": a.type_version,
            "profile": a.profile, "tenant": a.tenant,
            "entries": [{"mac": e.mac, "vid": e.vid} for e in a.entries],
            # The bridge's clock is time.monotonic(); a replicated copy is held until removed.
            "expires_in": None if math.isinf(a.expires) else round(a.expires - time.monotonic(), 1),
        } for a in info.attachments],
    }
