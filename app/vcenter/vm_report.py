"""The periodic VM report to the VM manager (draft 5.7): each VM's state and traffic counters,
and what the controller sees of each server's load (its port: VMs held, their traffic summed).

A report lists whole server ports, in order, up to `max_vms` attachments (a port with more
still goes whole: max_vsis_per_port bounds it); the next report continues after its last port
and the pages wrap around, so every VM is reported once per round of ceil(VMs / max_vms)
intervals. Building one costs the ports held (sorted) and the page, never all the VMs.
"""

import bisect
from collections.abc import Callable

from app.fabric.ports import PortRef

KIND = "vm.report"
MAX_VMS = 500


class ReportCursor:
    """Where the next report starts."""

    def __init__(self, max_vms: int = MAX_VMS) -> None:
        self.max_vms = max_vms
        self._after: PortRef | None = None

    def page(self, ports: list[PortRef], count: Callable[[PortRef], int]) -> list[PortRef]:
        """The ports of the next report from `ports` (sorted) and `count(port)`, the VMs held
        at each; the cursor moves past them, back to the start after the last port."""
        start = bisect.bisect_right(ports, self._after) if self._after is not None else 0
        if start >= len(ports):
            start = 0
        page: list[PortRef] = []
        total = 0
        for port in ports[start:]:
            held = count(port)
            if page and total + held > self.max_vms:
                break
            page.append(port)
            total += held
        self._after = page[-1] if page and page[-1] != ports[-1] else None
        return page
