"""`evb-nms`: run the EVB network management controller."""

import argparse
import faulthandler
import logging
import os
import signal
import socket
import sys

from app.config import ConfigError, Settings, build_settings, load_file
from app.policy.errors import PolicyError
from app.policy.loader import load_policies
from app.registry.errors import RegistryError
from app.session.evb_negotiation import bridge_keepalive_timeout, evb_duration
from app.store.sqlite_store import StoreError

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
        help=f"OpenFlow listen address (default {defaults.of_listen_host})",
    )
    parser.add_argument(
        "--rest-listen",
        metavar="HOST:PORT",
        help=f"REST API listen address (default {defaults.rest_listen})",
    )
    parser.add_argument(
        "--policies-dir",
        metavar="DIR",
        help=f"directory of VSI type / policy YAML files (default {defaults.policies_dir})",
    )
    parser.add_argument(
        "--db-path",
        metavar="FILE",
        help=f"SQLite database (default {defaults.db_path}, relative to the working directory)",
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
    return parser.parse_args(argv)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms" if seconds < 1 else f"{seconds:.1f} s"


def settings_from_args(args) -> Settings:
    file_values = load_file(args.config) if args.config else {}
    flags = {k: v for k, v in vars(args).items() if k != "config"}
    if flags.get("trunk_ports"):
        flags["trunk_ports"] = tuple(flags["trunk_ports"])
    return build_settings(file_values, flags)


def _stop_on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _check_listen(host: str, port: int, what: str) -> None:
    """Fails early and clearly: os-ken would only log a bind error from a background thread."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            raise ConfigError(f"{what}: cannot listen on {host}:{port}: {err.strerror}") from None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = settings_from_args(args)
        _check_listen(settings.of_listen_host, settings.of_port, "of_port")
        _check_listen(*settings.rest_address, "rest_listen")
        policies = load_policies(settings.policies_dir)
    except (ConfigError, PolicyError) as err:
        print(f"evb-nms: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s"
    )

    # os-ken reads its listen options from oslo.config; import it only now so --help stays fast.
    from os_ken import cfg
    from os_ken.base.app_manager import AppManager
    from os_ken.lib import hub

    # os-ken 4.2's run_apps calls thread.kill() on shutdown, which its native HubThread lacks.
    if not hasattr(hub.HubThread, "kill"):
        hub.HubThread.kill = hub.kill

    from app.controller.evb_app import EvbApp

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_tcp_listen_port", settings.of_port)
    cfg.CONF.set_override("ofp_listen_host", settings.of_listen_host)
    EvbApp.settings = settings
    EvbApp.policies = policies
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # `kill -USR1 PID`: where is it stuck?
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
