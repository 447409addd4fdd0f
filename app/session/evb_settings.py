"""The bridge's EVB settings per server port (the setting ``evb_ports``): R, RTE, RWD, RKA, their
maxima, the reflective-relay policy and BGID for the ports that switch/port name patterns match,
on top of the bridge-wide ``evb_*`` settings.

Pure. The first rule that matches a port (shell patterns, fnmatch, on the names the switches
report) gives that port's values; what the rule leaves out is the bridge-wide value, so a rule
written for RKA alone follows later changes of the others. A port no rule matches has the
bridge-wide values. ``for_port`` is asked once per station session, never per request.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from app.session.evb_negotiation import BridgeEvbConfig

# Reflective relay: grant a station's request (RRREQ) for it, or never (RRCAP clear).
RR_POLICIES = {"grant": True, "deny": False}
# A rule's keys -> the BridgeEvbConfig field each sets (rr is translated through RR_POLICIES).
RULE_FIELDS = {
    "r": "r",
    "rte": "rte",
    "rwd": "rwd",
    "rka": "rka",
    "max_r": "max_r",
    "max_rte": "max_rte",
    "max_rwd": "max_rwd",
    "max_rka": "max_rka",
    "rr": "rrcap",
    "bgid": "bgid",
}
PATTERN_KEYS = ("switch", "port")
MAX_RULES = 1000


@dataclass(frozen=True)
class EvbPortRule:
    switch: str  # pattern on the switch name
    port: str  # pattern on the port name
    values: Mapping[str, Any]  # BridgeEvbConfig field -> value, only those the rule sets

    def matches(self, switch: str, port: str) -> bool:
        return fnmatchcase(switch, self.switch) and fnmatchcase(port, self.port)


class EvbPortSettings:
    def __init__(
        self, default: BridgeEvbConfig = BridgeEvbConfig(), rules: Sequence[EvbPortRule] = ()
    ) -> None:
        """``default``: the bridge-wide settings (Settings.evb_config); ``rules`` in the order
        written. Every rule must make a valid BridgeEvbConfig over ``default`` (ValueError
        naming the rule and the field otherwise)."""
        self.default = default
        self._configs = []
        for index, rule in enumerate(rules):
            try:
                config = dataclasses.replace(default, **rule.values)
            except ValueError as err:
                raise ValueError(f"evb_ports[{index}].{err}") from None
            self._configs.append((rule, config))

    def for_port(self, switch: str, port: str) -> BridgeEvbConfig:
        """The bridge's EVB settings at the port named ``port`` of switch ``switch``."""
        for rule, config in self._configs:
            if rule.matches(switch, port):
                return config
        return self.default


def settings_view(config: BridgeEvbConfig) -> dict[str, Any]:
    """The bridge's settings at a port as evb_ports writes them (REST: GET /v1/stations)."""
    view = {key: getattr(config, field) for key, field in RULE_FIELDS.items()}
    view["rr"] = next(name for name, rrcap in RR_POLICIES.items() if rrcap == config.rrcap)
    return view


def parse_evb_ports(value) -> tuple[EvbPortRule, ...]:
    """``evb_ports`` as the config file writes it: a list of mappings with ``switch`` and/or
    ``port`` patterns (a missing one matches every name) and at least one setting. ValueError
    names the rule and the field; ranges are checked by EvbPortSettings (BridgeEvbConfig)."""
    if not isinstance(value, list) or len(value) > MAX_RULES:
        raise ValueError(f"expected a list of at most {MAX_RULES} {{switch, port, SETTING: VALUE}}")
    rules = []
    for index, item in enumerate(value):
        where = f"evb_ports[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected a mapping like {{port: 'edge1-s*', rka: 24}}")
        for key in item:
            if key not in PATTERN_KEYS and key not in RULE_FIELDS:
                raise ValueError(
                    f"{where}.{key}: unknown key (known: "
                    f"{', '.join((*PATTERN_KEYS, *RULE_FIELDS))})"
                )
        patterns = {key: item.get(key, "*") for key in PATTERN_KEYS}
        for key, pattern in patterns.items():
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"{where}.{key}: expected a name pattern like edge1-s*")
        if not any(key in item for key in PATTERN_KEYS):
            raise ValueError(f"{where}: give switch, port or both (name patterns)")
        values = {RULE_FIELDS[k]: v for k, v in item.items() if k in RULE_FIELDS}
        if not values:
            raise ValueError(f"{where}: no setting given (known: {', '.join(RULE_FIELDS)})")
        if "rrcap" in values:
            if not isinstance(values["rrcap"], str) or values["rrcap"] not in RR_POLICIES:
                raise ValueError(
                    f"{where}.rr: expected one of {', '.join(RR_POLICIES)}, got {values['rrcap']!r}"
                )
            values["rrcap"] = RR_POLICIES[values["rrcap"]]
        rules.append(EvbPortRule(patterns["switch"], patterns["port"], values))
    return tuple(rules)
