"""Which tenants may associate VMs on which server ports (the setting ``port_tenants``).

Pure. A rule names switches and ports by shell-style patterns (fnmatch, on the names the
switches report) and the tenants allowed there. A port that no rule matches admits every tenant;
a port that rules match admits only the tenants of those rules. A check costs the rules, never
the VMs held.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from app.fabric.ports import PortRef


@dataclass(frozen=True)
class PortTenantRule:
    switch: str  # pattern on the switch name
    port: str  # pattern on the port name
    tenants: frozenset[str]

    def matches(self, switch: str, port: str) -> bool:
        return fnmatchcase(switch, self.switch) and fnmatchcase(port, self.port)


class PortTenants:
    def __init__(
        self,
        rules: Sequence[PortTenantRule],
        names: Callable[[PortRef], tuple[str, str]],
    ) -> None:
        """``names``: the (switch, port) names of a port, as operators write them."""
        self._rules = tuple(rules)
        self._names = names

    def refusal(self, port: PortRef, tenant: str) -> str | None:
        """Why ``tenant`` may not associate at ``port``, None if it may."""
        if not self._rules:
            return None
        switch, port_name = self._names(port)
        matching = [rule for rule in self._rules if rule.matches(switch, port_name)]
        if not matching or any(tenant in rule.tenants for rule in matching):
            return None
        return f"tenant {tenant} may not associate VMs at {switch}/{port_name} (port_tenants)"
