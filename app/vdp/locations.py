"""Where each VSI forwarded before (server lookup, draft 5.4), bounded and kept across restarts:
the port and the host (vServer) it led to then (``host_of``, the inventory's answer at the time,
so a host recabled since does not rewrite the past).

Pure apart from ``save``, the writer it is given (app/store/sqlite_store.py save_locations, which
queues). Fed with the bindings that changed (app/vdp/outcome.py), so its cost is the change's,
not the fabric's. Keeps the latest `per_vsi` places of at most `vsis` VSIs (the least recently
moved are forgotten first): a VM that moves forever, or a million short-lived VMs, cannot grow
it, nor its rows in the store. A restarted controller takes back what was saved (``saved``).
"""

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.ports import PortRef
from app.store.base import vsi_key
from app.vdp.outcome import BindingChanges

PER_VSI = 16
VSIS = 200_000

# What the store keeps of one VSI: (VSI key, when it last moved,
# [[dpid, port_no, until, host], ...]); rows saved before hosts were kept have no host.
SavedHistory = tuple[str, float, list]
Place = tuple[PortRef, float, str | None]  # the port, until when, its host then


def _key(vsi_id: VsiId) -> str:
    return vsi_key(int(vsi_id.format), vsi_id.value.hex())


def _vsi_id(key: str) -> VsiId:
    vsi_format, _, value = key.partition(":")
    return VsiId(VsiIdFormat(int(vsi_format)), bytes.fromhex(value))


class LocationHistory:
    def __init__(
        self,
        per_vsi: int = PER_VSI,
        vsis: int = VSIS,
        *,
        saved: Iterable[SavedHistory] = (),
        save: Callable[[list[SavedHistory], list[str]], None] = lambda saved, removed: None,
        host_of: Callable[[PortRef], str | None] = lambda port: None,
    ) -> None:
        """``saved``: what ``save`` wrote before, the least recently moved first; ``save``
        gets the histories that changed and the keys of the VSIs forgotten, after each change;
        ``host_of``: the name of the host a port leads to now, None if none is known."""
        self._per_vsi = per_vsi
        self._vsis = vsis
        self._save = save
        self.host_of = host_of
        self._places: OrderedDict[VsiId, deque[Place]] = OrderedDict()
        for key, _, places in saved:
            self._places[_vsi_id(key)] = deque(
                [
                    (PortRef(row[0], row[1]), row[2], row[3] if len(row) > 3 else None)
                    for row in places
                ],
                maxlen=per_vsi,
            )
        removed = self._trim()
        if removed:
            save([], removed)

    def record(self, changes: BindingChanges, now: float) -> None:
        """A binding that stopped forwarding at its port (gone, prepared again, or replaced by
        one elsewhere) leaves that port in its VSI's history, until `now`."""
        moved = []
        for before, after in changes.values():
            if before is None or not before.forwarding:
                continue
            if after is not None and after.forwarding and after.port == before.port:
                continue
            places = self._places.pop(before.vsi_id, None) or deque(maxlen=self._per_vsi)
            places.append((before.port, now, self.host_of(before.port)))
            self._places[before.vsi_id] = places
            moved.append(before.vsi_id)
        if not moved:
            return
        removed = self._trim()
        self._save(
            [
                (_key(v), now, [[p.dpid, p.port_no, t, h] for p, t, h in self._places[v]])
                for v in moved
                if v in self._places
            ],
            removed,
        )

    def _trim(self) -> list[str]:
        """Forgets the least recently moved VSIs beyond the bound; their keys."""
        removed = []
        while len(self._places) > self._vsis:
            removed.append(_key(self._places.popitem(last=False)[0]))
        return removed

    def of(self, vsi_id: VsiId) -> list[Place]:
        return list(self._places.get(vsi_id, ()))

    def __contains__(self, vsi_id: VsiId) -> bool:
        return vsi_id in self._places
