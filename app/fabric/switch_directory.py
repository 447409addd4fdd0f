"""The connected switches by dpid: their names and ports, and the names operators use.

Pure. The control plane keeps it in step with what the switches report (SwitchSync); REST and
events ask it how to call a port, and which port an operator means by a name.
"""

from app.fabric.ports import Port, PortRef


class SwitchDirectory:
    def __init__(self) -> None:
        self._switches: dict[int, tuple[str, dict[int, Port]]] = {}
        self._by_name: dict[str, int] = {}
        # Names of switches not connected that a fault names (app/fabric/expected.py): so
        # that the VMs restored on them are found by the switch's name.
        self._remembered: dict[str, int] = {}

    def update(self, dpid: int, name: str, ports: dict[int, Port]) -> None:
        self.remove(dpid)
        self._switches[dpid] = (name, dict(ports))
        self._by_name[name] = dpid

    def remove(self, dpid: int) -> None:
        entry = self._switches.pop(dpid, None)
        if entry is not None and self._by_name.get(entry[0]) == dpid:
            del self._by_name[entry[0]]

    def remember(self, dpid: int, name: str) -> None:
        """The name of a switch that is not connected (as many as ExpectedSwitches expects)."""
        self._remembered[name] = dpid

    def dpid_of(self, name: str) -> int | None:
        return self._by_name.get(name, self._remembered.get(name))

    def port_no_of(self, dpid: int, name: str) -> int | None:
        return next((n for n, p in self.ports(dpid).items() if p.name == name), None)

    def __contains__(self, dpid: int) -> bool:
        return dpid in self._switches

    def dpids(self) -> list[int]:
        return list(self._switches)

    def ports(self, dpid: int) -> dict[int, Port]:
        entry = self._switches.get(dpid)
        return entry[1] if entry else {}

    def has_port(self, ref: PortRef) -> bool:
        return ref.port_no in self.ports(ref.dpid)

    def name(self, dpid: int) -> str:
        """The switch's name; its dpid in 16 hex digits while unknown."""
        entry = self._switches.get(dpid)
        return entry[0] if entry else f"{dpid:016x}"

    def port_name(self, ref: PortRef) -> str:
        """The port's name (the switch port's, for an S-channel); its number while unknown."""
        port = self.ports(ref.dpid).get(ref.port_no)
        return port.name if port else str(ref.port_no)

    def names(self, ref: PortRef) -> tuple[str, str]:
        return self.name(ref.dpid), self.port_name(ref)

    def text(self, ref: PortRef) -> str:
        """switch/port, and .S-VID for an S-channel (as a station names its channel interface)."""
        channel = f".{ref.svid}" if ref.svid else ""
        return f"{self.name(ref.dpid)}/{self.port_name(ref)}{channel}"

    def port_names(self) -> dict[PortRef, tuple[str, str]]:
        """(switch name, port name) of every known port."""
        return {
            PortRef(dpid, number): (name, port.name)
            for dpid, (name, ports) in self._switches.items()
            for number, port in ports.items()
        }

    def port_ref(self, switch: str, port: str) -> PortRef:
        """A port by switch name (or dpid) and port name (or number). KeyError if unknown."""
        for dpid, (name, ports) in self._switches.items():
            if switch in (name, f"{dpid:016x}", str(dpid)):
                for number, p in ports.items():
                    if port in (p.name, str(number)):
                        return PortRef(dpid, number)
                raise KeyError(f"switch {name} has no port {port}")
        raise KeyError(f"no connected switch {switch}")
