"""Where each VSI forwarded before (server lookup, draft 5.4), bounded.

Pure. Fed with the bindings that changed (app/vdp/outcome.py), so its cost is the change's, not
the fabric's. Keeps the latest `per_vsi` places of at most `vsis` VSIs (the least recently moved
are forgotten first): a VM that moves forever, or a million short-lived VMs, cannot grow it.
"""

from collections import OrderedDict, deque

from app.codec.vdp import VsiId
from app.fabric.ports import PortRef
from app.vdp.outcome import BindingChanges

PER_VSI = 16
VSIS = 200_000


class LocationHistory:
    def __init__(self, per_vsi: int = PER_VSI, vsis: int = VSIS) -> None:
        self._per_vsi = per_vsi
        self._vsis = vsis
        self._places: OrderedDict[VsiId, deque[tuple[PortRef, float]]] = OrderedDict()

    def record(self, changes: BindingChanges, now: float) -> None:
        """A binding that stopped forwarding at its port (gone, prepared again, or replaced by
        one elsewhere) leaves that port in its VSI's history, until `now`."""
        for before, after in changes.values():
            if before is None or not before.forwarding:
                continue
            if after is not None and after.forwarding and after.port == before.port:
                continue
            places = self._places.pop(before.vsi_id, None) or deque(maxlen=self._per_vsi)
            places.append((before.port, now))
            self._places[before.vsi_id] = places
            while len(self._places) > self._vsis:
                self._places.popitem(last=False)

    def of(self, vsi_id: VsiId) -> list[tuple[PortRef, float]]:
        return list(self._places.get(vsi_id, ()))

    def __contains__(self, vsi_id: VsiId) -> bool:
        return vsi_id in self._places
