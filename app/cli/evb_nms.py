"""`evb-nms`: run the EVB network management controller."""

import argparse
import logging
import os
import signal
import socket
import ssl
import sys

from app import stack_dump
from app.config import (
    VCENTER_SECRET_ENV,
    VCENTER_TOKEN_ENV,
    ConfigError,
    Settings,
    build_settings,
    load_file,
    parse_dpid,
    parse_endpoints,
    parse_svid_range,
)
from app.logfmt import OneLineFormatter
from app.policy.errors import PolicyError
from app.policy.loader import load_policies
from app.registry.errors import RegistryError
from app.rest.listener import check_exposure, tls_context
from app.rest.tokens import TokenSource, gather_tokens
from app.session.evb_negotiation import bridge_keepalive_timeout, evb_duration
from app.store.base import StoreError

APPS = ["app.controller.evb_app", "os_ken.controller.ofp_handler"]


def parse_args(argv):
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="evb-nms",
        description="IEEE 802.1Qbg EVB network management controller: answers VDP on OpenFlow "
        "1.3 edge switches and programs per-VM flows. Settings come from the "
        "defaults, then --config, then the flags below.",
    )
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML file with any of the settings below (keys as the long flag "
        "names, dashes or underscores)",
    )
    parser.add_argument(
        "--of-port",
        type=int,
        metavar="PORT",
        help=f"OpenFlow listen port (default {defaults.of_port})",
    )
    parser.add_argument(
        "--of-listen-host",
        metavar="ADDR",
        help=f"OpenFlow listen address (default {defaults.of_listen_host}); whoever reaches "
        f"it can claim to be a switch: listen elsewhere only with TLS and --of-allow-dpid",
    )
    parser.add_argument(
        "--of-tls-privkey",
        metavar="FILE",
        help="the controller's private key (PEM): with --of-tls-cert and --of-tls-ca-certs, "
        "the OpenFlow port speaks TLS only (switches: ssl:HOST:PORT)",
    )
    parser.add_argument("--of-tls-cert", metavar="FILE", help="the controller's certificate (PEM)")
    parser.add_argument(
        "--of-tls-ca-certs",
        metavar="FILE",
        help="CA certificates (PEM) a switch's certificate must be signed by; others are "
        "refused (scripts/of-pki.sh issues them)",
    )
    parser.add_argument(
        "--of-allow-dpid",
        action="append",
        dest="of_allowed_dpids",
        type=_dpid,
        metavar="DPID",
        help="a dpid that may connect (16 hex digits, or with colons or 0x); repeat for "
        "several; default: any",
    )
    parser.add_argument(
        "--rest-listen",
        metavar="HOST:PORT",
        help=f"REST API listen address (default {defaults.rest_listen}); beyond loopback it "
        f"needs an API token (or --insecure-open-api)",
    )
    parser.add_argument(
        "--insecure-open-api",
        action="store_true",
        default=None,
        help="serve the REST API without tokens on an address other hosts reach: every "
        "caller there is admin",
    )
    parser.add_argument(
        "--api-tokens-file",
        metavar="FILE",
        help="YAML list of {token, tenant} (tenant '*': admin), not readable by other "
        "users; added to api_tokens and $EVB_NMS_API_TOKENS (TENANT:TOKEN ...); SIGHUP "
        "re-reads it and the config file's api_tokens",
    )
    parser.add_argument(
        "--rest-tls-cert", metavar="FILE", help="serve the REST API over TLS: certificate (PEM)"
    )
    parser.add_argument("--rest-tls-key", metavar="FILE", help="... and its private key (PEM)")
    parser.add_argument(
        "--policies-dir",
        metavar="DIR",
        help=f"directory of VSI type / policy YAML files (default {defaults.policies_dir})",
    )
    parser.add_argument(
        "--store",
        choices=("sqlite", "etcd"),
        help=f"where what the controller accepts is kept: sqlite (--db-path) or etcd "
        f"(--etcd-endpoints; docs/ha.md) (default {defaults.store})",
    )
    parser.add_argument(
        "--db-path",
        metavar="FILE",
        help=f"SQLite database (default {defaults.db_path}, relative to the working directory)",
    )
    parser.add_argument(
        "--etcd-endpoints",
        type=parse_endpoints,
        metavar="URL,...",
        help=f"with --store etcd: the cluster's client URLs, comma-separated (default "
        f"{','.join(defaults.etcd_endpoints)}); scripts/etcd-cluster.sh starts one",
    )
    parser.add_argument(
        "--etcd-prefix",
        metavar="PREFIX",
        help="with --store etcd: the prefix of this fabric's keys "
        f"(default {defaults.etcd_prefix})",
    )
    parser.add_argument(
        "--etcd-timeout",
        type=float,
        metavar="SECONDS",
        help=f"with --store etcd: how long one call may try the endpoints before it fails "
        f"(default {defaults.etcd_timeout:g})",
    )
    parser.add_argument(
        "--controller-id",
        metavar="ID",
        help="with --store etcd: this controller's name in the leader election "
        "(default HOST:REST_PORT)",
    )
    parser.add_argument(
        "--advertise-url",
        metavar="URL",
        help="with --store etcd: the REST URL the other controllers forward requests to while "
        "this one leads (default from --rest-listen)",
    )
    parser.add_argument(
        "--leader-lease-ttl",
        type=int,
        metavar="SECONDS",
        help="with --store etcd: a leader that cannot renew its lease this long is replaced "
        f"(default {defaults.leader_lease_ttl}; etcd's minimum is 2 s unless its election "
        "timeout is below 1 s)",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        metavar="LEVEL",
        help=f"DEBUG, INFO, WARNING or ERROR (default {defaults.log_level})",
    )
    parser.add_argument(
        "--trunk-port",
        action="append",
        dest="trunk_ports",
        metavar="GLOB",
        help="port-name pattern of switch-to-switch ports; repeat for several "
        f"(default {' '.join(defaults.trunk_ports)}); all other ports face "
        f"servers and are closed until a VM on them is associated",
    )
    parser.add_argument(
        "--canary-interval",
        type=float,
        metavar="SECONDS",
        help=f"how often each switch is checked for lost flows "
        f"(default {defaults.canary_interval})",
    )
    parser.add_argument(
        "--of-echo-interval",
        type=float,
        metavar="SECONDS",
        help=f"a switch connection quiet this long is sent an echo request; 0: never "
        f"(default {defaults.of_echo_interval:g})",
    )
    parser.add_argument(
        "--of-echo-timeout",
        type=float,
        metavar="SECONDS",
        help=f"a switch that then says nothing this long is hung: alarm, connection reset "
        f"(default {defaults.of_echo_timeout:g})",
    )
    parser.add_argument(
        "--expected-switch-timeout",
        type=float,
        metavar="SECONDS",
        help=f"a switch seen before that has not connected this long after the start raises "
        f"switch.down; 0: never (default {defaults.expected_switch_timeout:g})",
    )
    parser.add_argument(
        "--stats-interval",
        type=float,
        metavar="SECONDS",
        help="how often each switch is asked for its VMs' packet, byte and drop counters, "
        f"and the VM manager sent a VM report; 0: never (default {defaults.stats_interval})",
    )
    parser.add_argument(
        "--audit-rate",
        type=float,
        metavar="PER_SECOND",
        help="multipart requests a second the intent audit spends reading the switches' flows "
        f"and meters back, a table at a time; 0: no audit (default {defaults.audit_rate:g})",
    )
    parser.add_argument(
        "--probe-vlan",
        action="append",
        type=int,
        dest="probe_vlans",
        metavar="VID",
        help="probe this VLAN's paths between its edges with data-plane probes; repeat for "
        "several (default: none)",
    )
    parser.add_argument(
        "--probe-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between two rounds of data-plane probes "
        f"(default {defaults.probe_interval:g})",
    )
    parser.add_argument(
        "--vcenter-url",
        metavar="URL",
        help="the VM manager's REST API: asked about VSI types the controller "
        "does not know, told of associations (webhooks to URL/v1/"
        "notifications); default: none",
    )
    parser.add_argument(
        "--vcenter-timeout",
        type=float,
        metavar="SECONDS",
        help=f"longest wait for one answer of the VM manager (default {defaults.vcenter_timeout})",
    )
    parser.add_argument(
        "--vcenter-ttl",
        type=float,
        metavar="SECONDS",
        help=f"how long the VM manager's answers are cached (default {defaults.vcenter_ttl})",
    )
    parser.add_argument(
        "--vcenter-token-file",
        metavar="FILE",
        help="bearer token sent on every lookup to the VM manager, read at each use (default: "
        f"the environment variable {VCENTER_TOKEN_ENV}, else none)",
    )
    parser.add_argument(
        "--vcenter-secret-file",
        metavar="FILE",
        help="secret that signs the notifications to the VM manager (X-EVB-Signature), read at "
        f"each use (default: the environment variable {VCENTER_SECRET_ENV}, else unsigned)",
    )
    parser.add_argument(
        "--webhook-allow",
        action="append",
        dest="webhook_allow",
        metavar="ENTRY",
        help="where fault subscriptions may POST: 'public' (any globally routable address), "
        "a network or address (10.1.0.0/16), a host name (doctor.example.com, *.example.com); "
        f"repeat for several (default {' '.join(defaults.webhook_allow)}); loopback, "
        "link-local and private addresses only when listed",
    )
    parser.add_argument(
        "--subscription-quota",
        type=int,
        metavar="N",
        help=f"fault subscriptions per tenant (default {defaults.subscription_quota})",
    )
    parser.add_argument(
        "--vlan-pools-required",
        action="store_true",
        default=None,
        help="a tenant without a VLAN pool (vlan_pools in --config, or assigned over the API) "
        "gets no VLAN; default: it takes VLANs that are in no pool (docs/security.md)",
    )
    parser.add_argument(
        "--max-profiles-per-tenant",
        type=int,
        metavar="N",
        help=f"VSI types a tenant may hold, from every source (default "
        f"{defaults.max_profiles_per_tenant})",
    )
    parser.add_argument(
        "--vdp-admission",
        choices=("type-only", "registered-only"),
        help="type-only: a VM is admitted by its VSI type (a registered VM must match its "
        "registration); registered-only: only VMs the VM manager registered, with their type "
        f"and MACs (default {defaults.vdp_admission}; per tenant: vdp_admission_by_tenant "
        "in --config; docs/security.md)",
    )
    parser.add_argument(
        "--max-vsis-per-port",
        type=int,
        metavar="N",
        help=f"VSIs of every type, Pre-Associates included, per server port (default "
        f"{defaults.max_vsis_per_port})",
    )
    parser.add_argument(
        "--max-vsis-per-switch",
        type=int,
        metavar="N",
        help=f"VSIs of every type, Pre-Associates included, per switch (default "
        f"{defaults.max_vsis_per_switch})",
    )
    evb = parser.add_argument_group(
        "EVB timers",
        "the bridge's values in the EVB TLV; each station agrees on the larger of "
        "its own and these (docs/evb-timers.md). Exponents: 10 us * 2^N",
    )
    evb.add_argument(
        "--evb-r", type=int, metavar="N", help=f"ECP retries, 0-7 (default {defaults.evb_r})"
    )
    evb.add_argument(
        "--evb-rte",
        type=int,
        metavar="N",
        help=f"ECP retransmission exponent, 0-31 (default {defaults.evb_rte}: "
        f"{_duration(evb_duration(defaults.evb_rte))})",
    )
    evb.add_argument(
        "--evb-rwd",
        type=int,
        metavar="N",
        help=f"VDP resource wait delay exponent, 0-31 (default {defaults.evb_rwd}: "
        f"{_duration(evb_duration(defaults.evb_rwd))})",
    )
    timeout = bridge_keepalive_timeout(defaults.evb_r, defaults.evb_rte, defaults.evb_rka)
    evb.add_argument(
        "--evb-rka",
        type=int,
        metavar="N",
        help=f"VDP keep-alive exponent, 0-31: how often stations refresh each VSI "
        f"(default {defaults.evb_rka}: "
        f"{_duration(evb_duration(defaults.evb_rka))}"
        f"; a VSI not refreshed is removed after {_duration(timeout)}). One "
        f"lldpad station keeps at most 2^N * 10 us / 164 ms VSIs alive",
    )
    for timer in ("r", "rte", "rwd", "rka"):
        default = getattr(defaults, f"evb_max_{timer}")
        evb.add_argument(
            f"--evb-max-{timer}",
            type=int,
            metavar="N",
            help=f"the most a station may raise {timer.upper()} to; higher requests are "
            f"clamped (default {default})",
        )
    evb.add_argument(
        "--evb-rr",
        choices=("grant", "deny"),
        help=f"reflective relay: grant a station's request for it, or deny it (default "
        f"{defaults.evb_rr}); per port: evb_ports in the config file",
    )
    evb.add_argument(
        "--evb-bgid",
        action="store_true",
        default=None,
        help="advertise group ID support (EVB TLV BGID): stations that set SGID may use the "
        "GroupID/VID and GroupID/MAC/VID filter formats (docs/vsi-types.md, groups)",
    )
    evb.add_argument(
        "--ecp-queue-limit",
        type=int,
        metavar="PDUS",
        help=f"VDPDUs queued per port for a station's ACKs; beyond, dropped and counted "
        f"(default {defaults.ecp_queue_limit})",
    )
    cdcp = parser.add_argument_group("CDCP", "S-channels of the server ports (docs/cdcp.md)")
    cdcp.add_argument(
        "--cdcp-max-channels",
        type=int,
        metavar="N",
        help=f"S-channels per server port, the default one included; 0: CDCP off (default "
        f"{defaults.cdcp_max_channels})",
    )
    cdcp.add_argument(
        "--cdcp-svids",
        type=_svids,
        metavar="FIRST-LAST",
        help="the S-VIDs given to each port's S-channels, clear of the tenants' VLANs (default "
        "{}-{})".format(*defaults.cdcp_svids),
    )
    parser.add_argument(
        "--event-retention-days",
        type=float,
        metavar="DAYS",
        help=f"events older than this are deleted (default {defaults.event_retention_days:g})",
    )
    parser.add_argument(
        "--event-retention-rows",
        type=int,
        metavar="ROWS",
        help=f"events kept at most; the oldest go first (default {defaults.event_retention_rows})",
    )
    return parser.parse_args(argv)


def _dpid(text: str) -> int:
    return parse_dpid(text)


def _svids(text: str) -> tuple[int, int]:
    try:
        return parse_svid_range(text)
    except ConfigError as err:  # argparse would print only "invalid value"
        raise argparse.ArgumentTypeError(str(err)) from None


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.1f} s"


def settings_from_args(args) -> Settings:
    file_values = load_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k != "config"}
    for name in ("trunk_ports", "webhook_allow", "of_allowed_dpids", "probe_vlans"):
        if flags.get(name):
            flags[name] = tuple(flags[name])
    return build_settings(file_values, flags)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _api_tokens(args, started: Settings):
    """The REST API's tokens, read again from the config file, the tokens file and the
    environment (at start and on SIGHUP); refused if they would leave an API open beyond
    loopback (the listen address is the one started with)."""
    tokens = gather_tokens(settings_from_args(args), os.environ)
    check_exposure(started, tokens)
    return tokens


def _check_listen(host: str, port: int, what: str) -> None:
    """Fails early and clearly: os-ken would only log a bind error from a background thread."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"{what}: cannot listen on {host}:{port}: {err.strerror}") from None


def _check_of_tls(settings: Settings) -> None:
    """Loads the key, certificate and CA certificates as os-ken will: a bad file fails the
    start here, not in os-ken's listener thread."""
    if not settings.of_tls_privkey:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(settings.of_tls_cert, settings.of_tls_privkey)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"of_tls_cert, of_tls_privkey: cannot load: {err}") from None
    try:
        context.load_verify_locations(settings.of_tls_ca_certs)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"of_tls_ca_certs: cannot load: {err}") from None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
        _check_listen(settings.of_listen_host, settings.of_port, "of_port")
        _check_of_tls(settings)
        _check_listen(*settings.rest_address, "rest_listen")
        tokens = TokenSource(lambda: _api_tokens(args, settings))
        tls_context(settings)  # a bad certificate or key fails here
        policies = load_policies(settings.policies_dir)
    except (ConfigError, PolicyError) as err:
        print(f"evb-nms: {err}", file=sys.stderr)
        return 2
    # One record, one line: names and reasons in messages cannot forge others (app/logfmt.py).
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=settings.log_level.upper(), handlers=[handler])

    # os-ken reads its listen options from oslo.config; import it only now so --help stays fast.
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.lib import hub

    # os-ken 4.2's run_apps calls thread.kill() on shutdown, which its native HubThread lacks.
    if not hasattr(hub.HubThread, "kill"):
        hub.HubThread.kill = hub.kill

    from app.controller import of_listener
    from app.controller.evb_app import EvbApp

    of_listener.install()  # a deadline and a log line for the TLS handshake
    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_tcp_listen_port", settings.of_port)
    cfg.CONF.set_override("ofp_listen_host", settings.of_listen_host)
    if settings.of_tls_privkey:
        # os-ken then listens with TLS only, on its SSL port; with ca_certs it requires and
        # verifies the switch's certificate (CERT_REQUIRED), which Settings insists on.
        cfg.CONF.set_override("ofp_ssl_listen_port", settings.of_port)
        cfg.CONF.set_override("ctl_privkey", settings.of_tls_privkey)
        cfg.CONF.set_override("ctl_cert", settings.of_tls_cert)
        cfg.CONF.set_override("ca_certs", settings.of_tls_ca_certs)
    EvbApp.settings = settings
    EvbApp.policies = policies
    EvbApp.tokens = tokens
    signal.signal(signal.SIGHUP, lambda signum, frame: tokens.reload())
    stack_dump.install(signal.SIGUSR1)  # `kill -USR1 PID`: where is it stuck?
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    # Even when started with SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    status = 0
    try:
        AppManager.run_apps(APPS)
    except KeyboardInterrupt:
        pass
    except OSError as err:
        print(f"evb-nms: {err}", file=sys.stderr)
        status = 1
    except (RegistryError, StoreError) as err:  # the database holds what we cannot use
        print(f"evb-nms: {err}", file=sys.stderr)
        status = 2
    logging.shutdown()
    # The apps have stopped (run_apps closed them), but os-ken's native hub cannot end its
    # OpenFlow accept loop or datapath threads, which would keep the process alive.
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
