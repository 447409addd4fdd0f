"""Controller settings: defaults, an optional YAML file, then command-line flags, in that order."""

import dataclasses
import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import yaml

from app.fabric.connections import ECHO_INTERVAL, ECHO_TIMEOUT
from app.fabric.ports import DEFAULT_TRUNK_PATTERNS
from app.policy.errors import PolicyError
from app.policy.profile import parse_vlans
from app.session.cdcp import HIGHEST_SVID, LOWEST_SVID, MAX_CHANNELS, CdcpConfig
from app.session.evb_negotiation import BridgeEvbConfig
from app.session.evb_settings import RR_POLICIES, EvbPortRule, EvbPortSettings, parse_evb_ports
from app.vcenter.credentials import Credential, CredentialError
from app.vcenter.destinations import DestinationRefused, parse_allow_entry, parse_target
from app.vcenter.managers import ManagerSpec, parse_vm_managers
from app.vdp.admission import (
    ADMISSION_MODES,
    MAX_PER_PORT,
    MAX_PER_SWITCH,
    TYPE_ONLY,
    AdmissionPolicy,
)
from app.vdp.port_tenants import PortTenantRule

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
    # The most a station may raise each one to (the bridge's own value if that is higher).
    "evb_max_r": ("max_r", 0, 7, "most ECP retries a station may ask for"),
    "evb_max_rte": ("max_rte", 0, 31, "highest ECP retransmission exponent a station may ask for"),
    "evb_max_rwd": ("max_rwd", 0, 31, "highest resource wait delay exponent a station may ask for"),
    "evb_max_rka": ("max_rka", 0, 31, "highest keep-alive exponent a station may ask for"),
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
    # Whoever reaches the OpenFlow port can claim to be a switch: loopback unless switches
    # elsewhere must connect (then with TLS and an allow-list, docs/security.md).
    of_listen_host: str = "127.0.0.1"
    # TLS on the OpenFlow port: the controller's key and certificate, and the CA that signs the
    # switches' certificates (a switch without one is refused). All three or none.
    of_tls_privkey: str = ""
    of_tls_cert: str = ""
    of_tls_ca_certs: str = ""
    # The dpids that may connect; empty: any.
    of_allowed_dpids: tuple[int, ...] = ()
    rest_listen: str = "127.0.0.1:8080"
    policies_dir: str = "policies"
    db_path: str = "var/evb-nms.db"
    log_level: str = "INFO"
    trunk_ports: tuple[str, ...] = DEFAULT_TRUNK_PATTERNS
    canary_interval: float = 5.0
    # OpenFlow liveness (app/fabric/connections.py): a switch connection quiet this long is
    # sent an echo request; one that then says nothing within the timeout is hung (alarmed,
    # its connection reset). A hung switch is found within their sum. Interval 0: no checks.
    of_echo_interval: float = ECHO_INTERVAL
    of_echo_timeout: float = ECHO_TIMEOUT
    # A switch the store remembers that has not connected this many seconds after the start
    # (or after this controller was elected) raises switch.down; 0: never.
    expected_switch_timeout: float = 30.0
    # How often each ready switch is asked for its VM flows' and meters' counters (one flow
    # stats and one meter stats request per switch); 0: never (no stats, no VM report).
    # Off by default: at 20,000 VMs on 33 switches, polls every 10 s made a burst of Associates'
    # p99 16 times worse (bench.scale, docs/scale.md); on for the demo data center.
    stats_interval: float = 10.0
    # The intent audit (app/fabric/audit.py): multipart requests a second spent reading the
    # switches back, one piece (a switch's meters, one table's flows) each; 0: no audit. At
    # 10/s a switch of 5 tables takes 0.6 s, the scale bench's 65 switches about 40 s a pass.
    audit_rate: float = 10.0
    # Data-plane probes (app/fabric/probes.py): the VLANs probed (none by default), and the
    # seconds between two rounds (one probe from each member edge of each VLAN).
    probe_vlans: tuple[int, ...] = ()
    probe_interval: float = 2.0
    # VLAN pools (docs/security.md): tenant -> the VLANs its profiles may use; pools assigned
    # over the API replace these per tenant. A tenant without a pool takes only VLANs in no
    # pool, or none with vlan_pools_required. And how many VSI types a tenant may hold.
    vlan_pools: Mapping[str, frozenset[int]] = dataclasses.field(default_factory=dict)
    vlan_pools_required: bool = False
    max_profiles_per_tenant: int = 256
    # VDP admission (docs/security.md, ownership): "type-only" admits a VM by its VSI type (a
    # registered VM must still match its registration), "registered-only" only the VMs the VM
    # manager registered, with their type and MACs; per tenant: tenant -> mode.
    vdp_admission: str = TYPE_ONLY
    vdp_admission_by_tenant: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # VSIs (Pre-Associates included) per server port and per switch, of every type.
    max_vsis_per_port: int = MAX_PER_PORT
    max_vsis_per_switch: int = MAX_PER_SWITCH
    # Which tenants may associate VMs on which server ports: rules {switch, port, tenants}
    # with shell patterns on the names; a port no rule matches admits every tenant.
    port_tenants: tuple[PortTenantRule, ...] = ()
    # No tokens: the REST API is open to whoever reaches rest_listen (127.0.0.1 by default).
    # More tokens come from api_tokens_file and the environment (app/rest/tokens.py); SIGHUP
    # re-reads both files.
    api_tokens: tuple[ApiToken, ...] = ()
    api_tokens_file: str = ""
    # Without it, a rest_listen address other than loopback with no token refuses to start.
    insecure_open_api: bool = False
    # TLS on the REST API: the server's certificate (chain) and key, both PEM; both or none.
    rest_tls_cert: str = ""
    rest_tls_key: str = ""
    # The REST server's bounds (app/rest/server.py): requests answered at once, open
    # connections, seconds for a whole request to arrive and for the answer.
    rest_workers: int = 8
    rest_max_connections: int = 1024
    rest_read_timeout: float = 10.0
    rest_handler_timeout: float = 30.0
    # The VM manager: asked about unknown VSI types, told of associations. "" = none.
    vcenter_url: str = ""
    vcenter_timeout: float = 1.0
    vcenter_ttl: float = 60.0
    # Credentials toward the VM manager, as files read at each use (rewrite to rotate); unset,
    # the environment variables VCENTER_TOKEN_ENV / VCENTER_SECRET_ENV. The token goes as
    # "Authorization: Bearer" on the lookups; the secret signs the notifications.
    vcenter_token_file: str = ""
    vcenter_secret_file: str = ""
    # More VM managers, each for the VSI Manager IDs it lists (app/vcenter/managers.py,
    # docs/vcenter.md): its own URL, timeouts, cache, credentials, webhook and tenants. The
    # vcenter_url manager answers for the IDs no entry lists.
    vm_managers: tuple[ManagerSpec, ...] = ()
    # Fault subscriptions (webhooks): where they may go (app/vcenter/destinations.py: "public",
    # networks, addresses, host names), how many each tenant holds, the shared delivery pool.
    webhook_allow: tuple[str, ...] = ("public",)
    subscription_quota: int = 20
    webhook_workers: int = 4
    webhook_queue: int = 10000
    # The bridge's EVB timers. Each station and the bridge agree on the larger of their values,
    # so the bridge decides how often a station refreshes its VSIs: lldpad sends one VSI per ECP
    # PDU, one PDU per 10us*2^RTE (164 ms), so at RKA 20 (10.5 s) a station keeps at most ~64
    # VSIs alive. 23 (84 s) lets it keep up to ~512 (docs/evb-timers.md).
    evb_r: int = BridgeEvbConfig.r
    evb_rte: int = BridgeEvbConfig.rte
    evb_rwd: int = BridgeEvbConfig.rwd
    evb_rka: int = 23
    # Station-chosen timers are clamped to these (docs/evb-timers.md): at most a keep-alive
    # timeout of about 8.5 minutes, whatever a station asks for.
    evb_max_r: int = BridgeEvbConfig.max_r
    evb_max_rte: int = BridgeEvbConfig.max_rte
    evb_max_rwd: int = BridgeEvbConfig.max_rwd
    evb_max_rka: int = BridgeEvbConfig.max_rka
    # Group IDs (EVB TLV BGID): stations that set SGID may send GroupID filter formats.
    evb_bgid: bool = BridgeEvbConfig.bgid
    # VDPDUs waiting for a station's ACKs per port; beyond, dropped and counted (ecp.overflow).
    ecp_queue_limit: int = BridgeEvbConfig.ecp_queue_limit
    # Reflective relay: "grant" a station's request for it, or "deny" it (RRCAP clear).
    evb_rr: str = "grant"
    # The EVB settings of the ports that name patterns match, over the ones above
    # (app/session/evb_settings.py, docs/evb-timers.md): [{switch, port, rka: 24, ...}].
    evb_ports: tuple[EvbPortRule, ...] = ()
    # CDCP (docs/cdcp.md): S-channels per server port, the default one included (0: CDCP off),
    # and the S-VIDs (first, last) they get, per port. OpenFlow sees one tag whatever its TPID:
    # keep the range clear of the tenants' VLANs.
    cdcp_max_channels: int = CdcpConfig.max_channels
    cdcp_svids: tuple[int, int] = CdcpConfig.svids
    # The events table: events older than this many days, and beyond this many rows, are deleted.
    event_retention_days: float = 30.0
    event_retention_rows: int = 500_000
    # Where what the controller accepts is kept: "sqlite" (db_path) or "etcd" (docs/ha.md): the
    # cluster's client URLs (any member answers; the next is tried when one does not), the
    # prefix of this fabric's keys, and how long a call may try the endpoints.
    store: str = "sqlite"
    etcd_endpoints: tuple[str, ...] = ("http://127.0.0.1:2379",)
    etcd_prefix: str = "/evb-nms/default"
    etcd_timeout: float = 5.0
    # Several controllers on one etcd prefix elect one leader (docs/ha.md): this one's name
    # (empty: HOST:REST_PORT), the REST URL the others forward to (empty: from rest_listen), and
    # the leader's lease: a leader cut off from etcd this long is replaced.
    controller_id: str = ""
    advertise_url: str = ""
    leader_lease_ttl: int = 2

    @property
    def evb_config(self) -> BridgeEvbConfig:
        """The bridge's side of the EVB TLV (the LLDP timing stays at its defaults)."""
        return BridgeEvbConfig(
            **{field: getattr(self, name) for name, (field, *_) in EVB_TIMERS.items()},
            bgid=self.evb_bgid,
            ecp_queue_limit=self.ecp_queue_limit,
            rrcap=RR_POLICIES[self.evb_rr],
        )

    @property
    def evb_port_settings(self) -> EvbPortSettings:
        """The bridge's EVB settings of each server port: evb_ports over evb_config."""
        return EvbPortSettings(self.evb_config, self.evb_ports)

    @property
    def cdcp_config(self) -> CdcpConfig:
        return CdcpConfig(self.cdcp_max_channels, self.cdcp_svids)

    @property
    def admission(self) -> AdmissionPolicy:
        return AdmissionPolicy(
            self.vdp_admission,
            dict(self.vdp_admission_by_tenant),
            self.max_vsis_per_port,
            self.max_vsis_per_switch,
        )

    @property
    def rest_address(self) -> tuple[str, int]:
        host, _, port = self.rest_listen.rpartition(":")
        return host.strip("[]"), int(port)

    @property
    def ha_identity(self) -> tuple[str, str]:
        """This controller's name and REST URL in the leader election (docs/ha.md)."""
        host, port = self.rest_address
        if host in ("0.0.0.0", "::"):  # the others need an address that reaches us
            host = socket.getfqdn()
        scheme = "https" if self.rest_tls_cert else "http"
        shown = f"[{host}]" if ":" in host else host
        return (
            self.controller_id or f"{socket.gethostname()}:{port}",
            self.advertise_url.rstrip("/") or f"{scheme}://{shown}:{port}",
        )

    def validated(self) -> "Settings":
        _check_port("of_port", self.of_port)
        _check_host("of_listen_host", self.of_listen_host)
        _check_of_tls(self)
        _check_dpids(self.of_allowed_dpids)
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
        interval = self.stats_interval
        if (
            isinstance(interval, bool)
            or not isinstance(interval, (int, float))
            or not (interval == 0 or 1 <= interval <= 3600)
        ):
            raise ConfigError(
                f"stats_interval: expected 0 (off) or 1 to 3600 seconds, got {interval}"
            )
        _check_seconds("of_echo_interval", self.of_echo_interval, 0.05, 3600, off=True)
        _check_seconds("of_echo_timeout", self.of_echo_timeout, 0.05, 3600)
        _check_seconds("expected_switch_timeout", self.expected_switch_timeout, 1, 86400, off=True)
        _check_audit_and_probes(self)
        check_tokens(self.api_tokens)
        _check_rest(self)
        _check_tenancy(self)
        _check_admission(self)
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
        _check_webhooks(self)
        for name, (_, low, high, what) in EVB_TIMERS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(
                    f"{name}: expected an integer {low}-{high} ({what}), got {value!r}"
                )
        if not isinstance(self.evb_bgid, bool):
            raise ConfigError(f"evb_bgid: expected true or false, got {self.evb_bgid!r}")
        _check_bounds(self)
        _check_evb_ports(self)
        _check_cdcp(self)
        _check_store(self)
        return self


AUDIT_RATE_MAX = 1000.0
PROBE_VLANS_MAX = 64  # each probed VLAN costs a probe per member edge and round


def _check_audit_and_probes(settings: "Settings") -> None:
    rate = settings.audit_rate
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate <= 1000:
        raise ConfigError(
            f"audit_rate: expected 0 (off) to {AUDIT_RATE_MAX:g} requests a second, got {rate!r}"
        )
    vlans = settings.probe_vlans
    if (
        not isinstance(vlans, tuple)
        or len(vlans) > PROBE_VLANS_MAX
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 4094 for v in vlans)
    ):
        raise ConfigError(
            f"probe_vlans: expected at most {PROBE_VLANS_MAX} VLAN IDs 1-4094, got {vlans!r}"
        )
    interval = settings.probe_interval
    if (
        isinstance(interval, bool)
        or not isinstance(interval, (int, float))
        or not 0.5 <= interval <= 3600
    ):
        raise ConfigError(f"probe_interval: expected 0.5 to 3600 seconds, got {interval!r}")


OF_TLS = ("of_tls_privkey", "of_tls_cert", "of_tls_ca_certs")
DPID_MAX = 2**64 - 1


def _check_of_tls(settings: "Settings") -> None:
    values = [getattr(settings, name) for name in OF_TLS]
    for name, value in zip(OF_TLS, values, strict=True):
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a file path or nothing, got {value!r}")
    if any(values) and not all(values):
        raise ConfigError(
            "of_tls_privkey, of_tls_cert, of_tls_ca_certs: give all three or none "
            "(without the CA certificates the switches' certificates would not be checked)"
        )


def parse_dpid(text) -> int:
    """A dpid as an integer, or as hex text: 16 digits (as events name switches), with colons,
    or 0x-prefixed."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    if isinstance(text, str):
        digits = text.strip().lower().replace(":", "").removeprefix("0x")
        if digits and len(digits) <= 16 and all(c in "0123456789abcdef" for c in digits):
            return int(digits, 16)
    raise ConfigError(
        f"of_allowed_dpids: expected a dpid (an integer or up to 16 hex digits), got {text!r}"
    )


def _check_dpids(dpids) -> None:
    if not isinstance(dpids, tuple) or not all(
        isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= DPID_MAX for d in dpids
    ):
        raise ConfigError(f"of_allowed_dpids: expected a list of 64-bit dpids, got {dpids!r}")


VCENTER_TOKEN_ENV = "EVB_NMS_VCENTER_TOKEN"
VCENTER_SECRET_ENV = "EVB_NMS_VCENTER_SECRET"
WEBHOOK_LIMITS = {
    "subscription_quota": (1, 10000, "subscriptions per tenant"),
    "webhook_workers": (1, 64, "delivery threads"),
    "webhook_queue": (10, 1_000_000, "notifications queued"),
}


def _check_webhooks(settings: "Settings") -> None:
    if not isinstance(settings.webhook_allow, tuple) or not settings.webhook_allow:
        raise ConfigError("webhook_allow: expected a non-empty list (public, networks, hosts)")
    for index, entry in enumerate(settings.webhook_allow):
        try:
            parse_allow_entry(entry)
        except ValueError as err:
            raise ConfigError(f"webhook_allow[{index}]: {err}") from None
    if isinstance(settings.vcenter_url, str) and settings.vcenter_url:
        try:
            parse_target(settings.vcenter_url)
        except DestinationRefused as err:
            raise ConfigError(f"vcenter_url: {err}") from None
    for name, (low, high, what) in WEBHOOK_LIMITS.items():
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(f"{name}: expected {low} to {high} {what}, got {value!r}")
    credentials = [
        (name, getattr(settings, name)) for name in ("vcenter_token_file", "vcenter_secret_file")
    ]
    if not isinstance(settings.vm_managers, tuple) or not all(
        isinstance(spec, ManagerSpec) for spec in settings.vm_managers
    ):
        raise ConfigError("vm_managers: expected a list of {manager_ids, url, ...}")
    for index, spec in enumerate(settings.vm_managers):
        credentials += [
            (f"vm_managers[{index}].{name}", getattr(spec, name))
            for name in ("token_file", "secret_file")
        ]
    for name, path in credentials:
        if not isinstance(path, str):
            raise ConfigError(f"{name}: expected a file path or nothing, got {path!r}")
        try:
            Credential(path).get()
        except CredentialError as err:
            raise ConfigError(f"{name}: {err}") from None


def _check_admission(settings: "Settings") -> None:
    modes = f"one of {', '.join(ADMISSION_MODES)}"
    if settings.vdp_admission not in ADMISSION_MODES:
        raise ConfigError(f"vdp_admission: expected {modes}, got {settings.vdp_admission!r}")
    if not isinstance(settings.vdp_admission_by_tenant, Mapping):
        raise ConfigError("vdp_admission_by_tenant: expected a mapping of tenant -> mode")
    for tenant, mode in settings.vdp_admission_by_tenant.items():
        if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > TENANT_MAX:
            raise ConfigError(
                f"vdp_admission_by_tenant: expected tenant names of 1-{TENANT_MAX} characters"
            )
        if mode not in ADMISSION_MODES:
            raise ConfigError(f"vdp_admission_by_tenant.{tenant}: expected {modes}, got {mode!r}")
    for name in ("max_vsis_per_port", "max_vsis_per_switch"):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1_000_000:
            raise ConfigError(f"{name}: expected 1 to 1000000 VSIs, got {value!r}")
    for index, rule in enumerate(settings.port_tenants):
        if not isinstance(rule, PortTenantRule):
            raise ConfigError(
                f"port_tenants[{index}]: expected {{switch: PATTERN, port: PATTERN, "
                f"tenants: [NAME, ...]}}"
            )


def _port_tenants(path: str, value) -> tuple[PortTenantRule, ...]:
    """port_tenants as the file writes it: a list of {switch, port, tenants} mappings."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: port_tenants: expected a list of {{switch, port, tenants}}")
    rules = []
    for index, item in enumerate(value):
        where = f"{path}: port_tenants[{index}]"
        if not isinstance(item, dict) or set(item) != {"switch", "port", "tenants"}:
            raise ConfigError(f"{where}: expected exactly the keys switch, port and tenants")
        if not all(isinstance(item[key], str) and item[key] for key in ("switch", "port")):
            raise ConfigError(f"{where}: switch and port: expected name patterns like edge1-s*")
        tenants = item["tenants"]
        if not isinstance(tenants, list) or not all(
            isinstance(t, str) and t.strip() and len(t) <= TENANT_MAX for t in tenants
        ):
            raise ConfigError(f"{where}.tenants: expected a list of tenant names")
        rules.append(PortTenantRule(item["switch"], item["port"], frozenset(tenants)))
    return tuple(rules)


def _check_tenancy(settings: "Settings") -> None:
    """vlan_pools as load_file gives it (tenant -> VLAN IDs), no VLAN in two pools."""
    owners: dict[int, str] = {}
    if not isinstance(settings.vlan_pools, Mapping):
        raise ConfigError("vlan_pools: expected a mapping of tenant -> VLAN list")
    for tenant, vids in settings.vlan_pools.items():
        if not isinstance(tenant, str) or not tenant.strip() or len(tenant) > TENANT_MAX:
            raise ConfigError(f"vlan_pools: expected tenant names of 1-{TENANT_MAX} characters")
        if not isinstance(vids, frozenset) or not all(
            isinstance(vid, int) and not isinstance(vid, bool) and 1 <= vid <= 4094 for vid in vids
        ):
            raise ConfigError(f"vlan_pools.{tenant}: expected VLAN IDs 1-4094")
        for vid in sorted(vids):
            other = owners.setdefault(vid, tenant)
            if other != tenant:
                raise ConfigError(
                    f"vlan_pools.{tenant}: VLAN {vid} is in the pool of {other} too; "
                    f"a VLAN belongs to one tenant"
                )
    if not isinstance(settings.vlan_pools_required, bool):
        raise ConfigError(
            f"vlan_pools_required: expected true or false, got {settings.vlan_pools_required!r}"
        )
    quota = settings.max_profiles_per_tenant
    if isinstance(quota, bool) or not isinstance(quota, int) or not 1 <= quota <= 100_000:
        raise ConfigError(f"max_profiles_per_tenant: expected 1 to 100000, got {quota!r}")


def _vlan_pools(path: str, value) -> dict[str, frozenset[int]]:
    """vlan_pools as the file writes it: tenant: [100, "110-119"]."""
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: vlan_pools: expected a mapping of tenant: [VLANs]")
    pools = {}
    for tenant, items in value.items():
        try:
            pools[str(tenant)] = parse_vlans(items)
        except PolicyError as err:
            raise ConfigError(
                f"{path}: vlan_pools.{tenant}{err.field or ''}: {err.message}"
            ) from None
    return pools


def _check_evb_ports(settings: Settings) -> None:
    if not isinstance(settings.evb_rr, str) or settings.evb_rr not in RR_POLICIES:
        raise ConfigError(
            f"evb_rr: expected one of {', '.join(RR_POLICIES)}, got {settings.evb_rr!r}"
        )
    if not isinstance(settings.evb_ports, tuple) or not all(
        isinstance(rule, EvbPortRule) for rule in settings.evb_ports
    ):
        raise ConfigError("evb_ports: expected a list of {switch, port, SETTING: VALUE}")
    try:
        EvbPortSettings(settings.evb_config, settings.evb_ports)  # each rule over evb_*
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _check_seconds(name: str, value, low: float, high: float, off: bool = False) -> None:
    """A duration in seconds within [low, high]; `off`: 0 too (the feature off)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not (low <= value <= high or (off and value == 0))
    ):
        allowed = f"0 (off) or {low:g} to {high:g}" if off else f"{low:g} to {high:g}"
        raise ConfigError(f"{name}: expected {allowed} seconds, got {value!r}")


def _check_bounds(settings: Settings) -> None:
    for name, low, high, what in (
        ("ecp_queue_limit", 1, 1_000_000, "PDUs"),
        ("event_retention_days", 0.01, 3650, "days"),
        ("event_retention_rows", 1000, 100_000_000, "rows"),
    ):
        value = getattr(settings, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (float, int) if what == "days" else int)
            or not low <= value <= high
        ):
            raise ConfigError(f"{name}: expected {low} to {high} {what}, got {value!r}")


def parse_svid_range(text) -> tuple[int, int]:
    """cdcp_svids as a file or flag writes it: "FIRST-LAST" (or one S-VID)."""
    first, _, last = str(text).partition("-")
    try:
        return int(first), int(last or first)
    except ValueError:
        raise ConfigError(
            f"cdcp_svids: expected FIRST-LAST S-VIDs like 4000-4094, got {text!r}"
        ) from None


def _check_cdcp(settings: Settings) -> None:
    channels = settings.cdcp_max_channels
    if (
        isinstance(channels, bool)
        or not isinstance(channels, int)
        or not 0 <= channels <= MAX_CHANNELS
    ):
        raise ConfigError(
            f"cdcp_max_channels: expected 0 (CDCP off) to {MAX_CHANNELS} S-channels per port, "
            f"got {channels!r}"
        )
    svids = settings.cdcp_svids
    if not (
        isinstance(svids, tuple)
        and len(svids) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in svids)
        and LOWEST_SVID <= svids[0] <= svids[1] <= HIGHEST_SVID
    ):
        raise ConfigError(
            f"cdcp_svids: expected FIRST-LAST within {LOWEST_SVID}-{HIGHEST_SVID} (S-VID 1 is "
            f"the default S-channel's), got {svids!r}"
        )
    first, last = svids
    if last - first + 1 < channels - 1:
        raise ConfigError(
            f"cdcp_svids: {first}-{last} holds {last - first + 1} S-VIDs; cdcp_max_channels "
            f"{channels} needs {channels - 1} (one per S-channel besides the default)"
        )
    for tenant, vids in sorted(settings.vlan_pools.items()):
        clash = sorted(vid for vid in vids if first <= vid <= last)
        if clash:
            raise ConfigError(
                f"cdcp_svids: {first}-{last} holds VLAN {clash[0]} of the pool of tenant "
                f"{tenant}; OpenFlow tells an S-tag from a C-tag by nothing but its VID"
            )


STORES = ("sqlite", "etcd")
ETCD_PREFIX_MAX = 200


def _check_store(settings: Settings) -> None:
    if settings.store not in STORES:
        raise ConfigError(f"store: expected one of {', '.join(STORES)}, got {settings.store!r}")
    endpoints = settings.etcd_endpoints
    if not isinstance(endpoints, tuple) or not endpoints:
        raise ConfigError("etcd_endpoints: expected a list of URLs like http://127.0.0.1:2379")
    for index, url in enumerate(endpoints):
        parts = urlsplit(url) if isinstance(url, str) else None
        try:
            ok = bool(
                parts
                and parts.scheme in ("http", "https")
                and parts.hostname
                and parts.path in ("", "/")
                and not parts.query
                and (parts.port is None or 1 <= parts.port <= 65535)
            )
        except ValueError:  # a port that is not a number
            ok = False
        if not ok:
            raise ConfigError(f"etcd_endpoints[{index}]: expected http(s)://HOST:PORT, got {url!r}")
    prefix = settings.etcd_prefix
    if (
        not isinstance(prefix, str)
        or not prefix.startswith("/")
        or not prefix.strip("/")
        or len(prefix) > ETCD_PREFIX_MAX
        or not all("!" <= c <= "~" for c in prefix)
    ):
        raise ConfigError(
            f"etcd_prefix: expected a key prefix like /evb-nms/fabric1 (printable ASCII, no "
            f"spaces, at most {ETCD_PREFIX_MAX} characters), got {prefix!r}"
        )
    timeout = settings.etcd_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0.1 <= timeout <= 600
    ):
        raise ConfigError(f"etcd_timeout: expected 0.1 to 600 seconds, got {timeout!r}")
    ttl = settings.leader_lease_ttl
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= 60:
        raise ConfigError(f"leader_lease_ttl: expected 1 to 60 seconds, got {ttl!r}")
    if (
        not isinstance(settings.controller_id, str)
        or not all("!" <= c <= "~" for c in settings.controller_id)
        or len(settings.controller_id) > 100
    ):
        raise ConfigError(
            f"controller_id: expected printable ASCII without spaces, at most 100 characters, "
            f"got {settings.controller_id!r}"
        )
    url = settings.advertise_url
    if url:
        parts = urlsplit(url) if isinstance(url, str) else None
        try:
            ok = bool(parts and parts.scheme in ("http", "https") and parts.hostname and parts.port)
        except ValueError:
            ok = False
        if not ok or parts is None or parts.path not in ("", "/") or parts.query:
            raise ConfigError(f"advertise_url: expected http(s)://HOST:PORT, got {url!r}")


def _check_port(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
        raise ConfigError(f"{name}: expected a TCP port 1-65535, got {value!r}")


def _check_rest(settings: Settings) -> None:
    for name in ("api_tokens_file", "rest_tls_cert", "rest_tls_key"):
        if not isinstance(getattr(settings, name), str):
            raise ConfigError(f"{name}: expected a file path or nothing")
    if bool(settings.rest_tls_cert) != bool(settings.rest_tls_key):
        raise ConfigError("rest_tls_cert, rest_tls_key: give both or none")
    if not isinstance(settings.insecure_open_api, bool):
        raise ConfigError(
            f"insecure_open_api: expected true or false, got {settings.insecure_open_api!r}"
        )
    for name, low, high, what in (
        ("rest_workers", 1, 256, "threads"),
        ("rest_max_connections", 16, 60_000, "connections"),
        ("rest_read_timeout", 0.1, 300, "seconds"),
        ("rest_handler_timeout", 0.1, 3600, "seconds"),
    ):
        value = getattr(settings, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (float, int) if what == "seconds" else int)
            or not low <= value <= high
        ):
            raise ConfigError(f"{name}: expected {low} to {high} {what}, got {value!r}")


def check_tokens(tokens, name: str = "api_tokens") -> None:
    seen = set()
    for index, entry in enumerate(tokens):
        where = f"{name}[{index}]"
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


def parse_tokens(path: str, value) -> tuple[ApiToken, ...]:
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


def parse_endpoints(text: str) -> tuple[str, ...]:
    """etcd endpoints written as one text: URLs separated by commas."""
    return tuple(url.strip() for url in text.split(",") if url.strip())


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
            value = parse_tokens(path, value)
        elif name == "vlan_pools":
            value = _vlan_pools(path, value)
        elif name == "port_tenants":
            value = _port_tenants(path, value)
        elif name == "vm_managers":
            try:
                value = parse_vm_managers(value)
            except ValueError as err:
                raise ConfigError(f"{path}: {err}") from None
        elif name == "evb_ports":
            try:
                value = parse_evb_ports(value)
            except ValueError as err:
                raise ConfigError(f"{path}: {err}") from None
        elif name == "webhook_allow":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: webhook_allow: expected a list")
            value = tuple(value)
        elif name == "etcd_endpoints":
            value = parse_endpoints(value) if isinstance(value, str) else value
            if not isinstance(value, (list, tuple)):
                raise ConfigError(f"{path}: etcd_endpoints: expected a list of URLs")
            value = tuple(value)
        elif name == "cdcp_svids":
            value = parse_svid_range(value)
        elif name == "probe_vlans":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: probe_vlans: expected a list of VLAN IDs")
            value = tuple(value)
        elif name == "of_allowed_dpids":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: of_allowed_dpids: expected a list of dpids")
            value = tuple(parse_dpid(item) for item in value)
        values[name] = value
    return values


def build_settings(file_values: dict, flag_values: dict) -> Settings:
    merged = {**file_values, **{k: v for k, v in flag_values.items() if v is not None}}
    try:
        settings = Settings(**merged)
    except TypeError as err:
        raise ConfigError(str(err)) from None
    return settings.validated()
