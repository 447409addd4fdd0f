"""Controller settings: defaults, an optional YAML file, then command-line flags, in that order."""

import dataclasses
import ipaddress
from dataclasses import dataclass

import yaml

from app.fabric.ports import DEFAULT_TRUNK_PATTERNS
from app.session.evb_negotiation import BridgeEvbConfig

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
ADMIN = "*"  # the tenant of an API token that sees and changes everything
TENANT_MAX = 64  # as VsiTypeProfile.tenant
# The bridge's EVB timers (IEEE 802.1Qbg EVB TLV): setting -> (BridgeEvbConfig field, lowest,
# highest, what it is). The ranges are the TLV's field widths, as BridgeEvbConfig checks them.
EVB_TIMERS = {
    "evb_r": ("r", 0, 7, "ECP retries"),
    "evb_rte": ("rte", 0, 31, "ECP retransmission exponent, 10 us * 2^n"),
    "evb_rwd": ("rwd", 0, 31, "VDP resource wait delay exponent, 10 us * 2^n"),
    "evb_rka": ("rka", 0, 31, "VDP keep-alive exponent, 10 us * 2^n"),
}


class ConfigError(ValueError):
    """A setting is wrong; the message names the setting and, for files, the file."""


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of the REST API and the tenant it acts for (ADMIN: every tenant).
    The token stays out of repr() so that logged settings do not leak it."""

    token: str = dataclasses.field(repr=False)
    tenant: str

    @property
    def admin(self) -> bool:
        return self.tenant == ADMIN


@dataclass(frozen=True)
class Settings:
    of_port: int = 6653
    of_listen_host: str = "0.0.0.0"
    rest_listen: str = "127.0.0.1:8080"
    policies_dir: str = "policies"
    db_path: str = "var/evb-nms.db"
    log_level: str = "INFO"
    trunk_ports: tuple[str, ...] = DEFAULT_TRUNK_PATTERNS
    canary_interval: float = 5.0
    # No tokens: the REST API is open to whoever reaches rest_listen (127.0.0.1 by default).
    api_tokens: tuple[ApiToken, ...] = ()
    # The VM manager: asked about unknown VSI types, told of associations. "" = none.
    vcenter_url: str = ""
    vcenter_timeout: float = 1.0
    vcenter_ttl: float = 60.0
    # The bridge's EVB timers. Each station and the bridge agree on the larger of their values,
    # so the bridge decides how often a station refreshes its VSIs: lldpad sends one VSI per ECP
    # PDU, one PDU per 10us*2^RTE (164 ms), so at RKA 20 (10.5 s) a station keeps at most ~64
    # VSIs alive. 23 (84 s) lets it keep up to ~512 (docs/evb-timers.md).
    evb_r: int = BridgeEvbConfig.r
    evb_rte: int = BridgeEvbConfig.rte
    evb_rwd: int = BridgeEvbConfig.rwd
    evb_rka: int = 23

    @property
    def evb_config(self) -> BridgeEvbConfig:
        """The bridge's side of the EVB TLV (the LLDP timing stays at its defaults)."""
        return BridgeEvbConfig(
            **{field: getattr(self, name) for name, (field, *_) in EVB_TIMERS.items()}
        )

    @property
    def rest_address(self) -> tuple[str, int]:
        host, _, port = self.rest_listen.rpartition(":")
        return host.strip("[]"), int(port)

    def validated(self) -> "Settings":
        _check_port("of_port", self.of_port)
        _check_host("of_listen_host", self.of_listen_host)
        host, sep, port = self.rest_listen.rpartition(":")
        if not sep or not port.isdigit():
            raise ConfigError(f"rest_listen: expected HOST:PORT, got {self.rest_listen!r}")
        _check_host("rest_listen", host.strip("[]"))
        _check_port("rest_listen", int(port))
        if not isinstance(self.log_level, str) or self.log_level.upper() not in LOG_LEVELS:
            raise ConfigError(
                f"log_level: expected one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}"
            )
        for name in ("policies_dir", "db_path"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name}: expected a path")
        if not self.trunk_ports or not all(isinstance(p, str) and p for p in self.trunk_ports):
            raise ConfigError("trunk_ports: expected a non-empty list of port-name patterns")
        interval = self.canary_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not 0.5 <= interval <= 3600
        ):
            raise ConfigError(
                f"canary_interval: expected 0.5 to 3600 seconds, got {self.canary_interval}"
            )
        _check_tokens(self.api_tokens)
        if not isinstance(self.vcenter_url, str) or (
            self.vcenter_url and not self.vcenter_url.startswith(("http://", "https://"))
        ):
            raise ConfigError(
                f"vcenter_url: expected an http(s) URL or nothing, got {self.vcenter_url!r}"
            )
        for name, low, high in (("vcenter_timeout", 0.05, 10), ("vcenter_ttl", 1, 86400)):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or not low <= value <= high
            ):
                raise ConfigError(f"{name}: expected {low} to {high} seconds, got {value!r}")
        for name, (_, low, high, what) in EVB_TIMERS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"{name}: expected an integer {low}-{high} ({what}), got {value!r}"
                )
        return self


def _check_port(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ConfigError(f"{name}: expected a TCP port 1-65535, got {value!r}")


def _check_tokens(tokens) -> None:
    seen = set()
    for index, entry in enumerate(tokens):
        where = f"api_tokens[{index}]"
        if not isinstance(entry, ApiToken):
            raise ConfigError(f"{where}: expected {{token: TEXT, tenant: NAME or '{ADMIN}'}}")
        if (
            not isinstance(entry.token, str)
            or len(entry.token) < 8
            or entry.token != entry.token.strip()
        ):
            raise ConfigError(
                f"{where}.token: expected a text of at least 8 characters "
                f"without surrounding spaces"
            )
        if entry.token in seen:
            raise ConfigError(f"{where}.token: the same token is given twice")
        seen.add(entry.token)
        if (
            not isinstance(entry.tenant, str)
            or not entry.tenant.strip()
            or len(entry.tenant) > TENANT_MAX
        ):
            raise ConfigError(
                f"{where}.tenant: expected a tenant name of 1-{TENANT_MAX} "
                f"characters or '{ADMIN}' for an admin token"
            )


def _tokens(path: str, value) -> tuple[ApiToken, ...]:
    """api_tokens as the file writes it: a list of {token, tenant} mappings."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: api_tokens: expected a list of {{token, tenant}} mappings")
    tokens = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or set(item) != {"token", "tenant"}:
            raise ConfigError(
                f"{path}: api_tokens[{index}]: expected exactly the keys token "
                f"and tenant ('{ADMIN}' for an admin token)"
            )
        tokens.append(ApiToken(token=item["token"], tenant=item["tenant"]))
    return tuple(tokens)


def _check_host(name: str, value: str) -> None:
    if value == "localhost":
        return
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ConfigError(f"{name}: expected an IP address, got {value!r}") from None


FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(Settings)}


def load_file(path: str) -> dict:
    """Reads a YAML config file into a dict of known settings (dashes or underscores)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file: {err.strerror}") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else path
        raise ConfigError(f"{where}: not valid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    values = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in FIELD_TYPES:
            raise ConfigError(
                f"{path}: unknown setting {key!r} (known: {', '.join(sorted(FIELD_TYPES))})"
            )
        if name == "trunk_ports":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: trunk_ports: expected a list of patterns")
            value = tuple(value)
        elif name == "api_tokens":
            value = _tokens(path, value)
        values[name] = value
    return values


def build_settings(file_values: dict, flag_values: dict) -> Settings:
    merged = {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}
    try:
        settings = Settings(**merged)
    except TypeError as err:
        raise ConfigError(str(err)) from None
    return settings.validated()
