"""The switches a controller expects back after it starts: those the store remembers (every
switch whose ports were ever learnt, app/store), and which of them have not connected in time.

Pure. The clock starts when the controller takes the fabric (at its start, or when it is
elected: docs/ha.md); a remembered switch not connected `timeout` seconds later is reported
once (switch.absent, which raises switch.down). At most MAX_EXPECTED are expected, the most
recently seen first: the table is as large as the dpids that ever connected.
"""

from collections.abc import Collection, Iterable

MAX_EXPECTED = 4096


class ExpectedSwitches:
    def __init__(self, timeout: float) -> None:
        """`timeout` 0: none is ever reported."""
        self.timeout = timeout
        self._missing: dict[int, str] = {}
        self._deadline: float | None = None

    def expect(
        self,
        remembered: Iterable[tuple[int, str, float]],
        connected: Collection[int],
        now: float,
    ) -> None:
        """The clock starts: each remembered (dpid, name, last seen) not connected now is
        missing until it connects."""
        newest = sorted(remembered, key=lambda switch: switch[2], reverse=True)[:MAX_EXPECTED]
        self._missing = {dpid: name for dpid, name, _ in newest if dpid not in connected}
        self._deadline = now + self.timeout if self.timeout else None

    def arrived(self, dpid: int) -> None:
        self._missing.pop(dpid, None)

    def due(self, now: float) -> list[tuple[int, str]]:
        """(dpid, name) of each switch still missing at the deadline, once."""
        if self._deadline is None or now < self._deadline:
            return []
        self._deadline = None
        missing, self._missing = sorted(self._missing.items()), {}
        return missing
