"""`evbctl`: the operator's command line for the evb-nms REST API, in the style of OpenNebula's
onevm/onehost/onevnet: `evbctl NOUN VERB [ARGS]`, human tables by default, `--json` for scripts.

Exit codes: 0 done, 1 the API refused or failed (its message is printed), 2 usage error (or an
invalid profile file), 3 the controller cannot be reached.
"""

import argparse
import json
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

from app.faults.alarms import KINDS
from app.policy.errors import PolicyError
from app.policy.loader import load_file
from app.registry.documents import READ_ONLY_KEYS, profile_document

EXIT_OK, EXIT_API, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
DEFAULT_URL = "http://127.0.0.1:8080"
TIMEOUT = 30.0  # a profile push waits for the switches to confirm the new flows
VM_FILTERS = ("tenant", "group", "network", "ip", "host", "cluster", "datacenter")
_MAC = re.compile(r"[0-9A-Fa-f]{2}([:-][0-9A-Fa-f]{2}){5}")


class ApiFailure(Exception):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field


class Unreachable(Exception):
    pass


class Client:
    """JSON over HTTP with urllib; raises ApiFailure (4xx/5xx) or Unreachable."""

    def __init__(
        self, url: str, token: str | None, timeout: float = TIMEOUT, ca_file: str | None = None
    ) -> None:
        """``ca_file``: the CA (or self-signed) certificate an https API's is checked
        against, instead of the system's."""
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._tls = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def call(self, method: str, path: str, body=None, query: dict | None = None):
        query = {k: v for k, v in (query or {}).items() if v is not None}
        url = (
            self.url
            + urllib.parse.quote(path)
            + ("?" + urllib.parse.urlencode(query) if query else "")
        )
        request = urllib.request.Request(url, method=method, headers={"Accept": "application/json"})
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        if body is not None:
            request.data = json.dumps(body).encode()
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout, context=self._tls
            ) as response:
                return _decode(response.status, response.read())
        except urllib.error.HTTPError as err:
            answer = _decode(err.code, err.read(), failing=True)
            raise ApiFailure(
                err.code, answer.get("error") or err.reason, answer.get("field")
            ) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise Unreachable(f"cannot reach the controller at {self.url}: {reason}") from None


def _decode(status: int, raw: bytes, failing: bool = False):
    try:
        return json.loads(raw)
    except ValueError:
        if failing:
            return {"error": raw.decode(errors="replace").strip()[:200] or f"HTTP {status}"}
        raise ApiFailure(status, "the answer is not JSON: is the URL that of evb-nms?") from None


# output -------------------------------------------------------------------------------------
def table(headers: list[str], rows: list[list]) -> str:
    """Left-aligned columns under upper-case headers, as onevm list prints them."""
    cells = [[str(h).upper() for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def fields(pairs: list[tuple[str, object]]) -> str:
    """``KEY : value`` lines, as onevm show prints them."""
    width = max(len(key) for key, _ in pairs)
    return "\n".join(f"{key.upper():<{width}} : {_cell(value)}" for key, value in pairs)


def _cell(value) -> str:
    if value is None or value == [] or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value)


def _when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


# commands: each takes (client, args) and returns (the API's answer, its human form) ----------
def switch_list(client, args):
    switches = client.call("GET", "/v1/switches")
    return switches, table(
        ["name", "dpid", "state", "ports"],
        [[s["name"], s["dpid"], s["state"], len(s.get("ports", []))] for s in switches],
    )


def switch_show(client, args):
    switch = client.call("GET", f"/v1/switches/{args.name}")
    return switch, fields(
        [("name", switch["name"]), ("dpid", switch["dpid"]), ("state", switch["state"])]
    ) + "\n\n" + _ports([switch])


def port_list(client, args):
    if args.switch:
        switches = [client.call("GET", f"/v1/switches/{args.switch}")]
    else:
        switches = client.call("GET", "/v1/switches")
    ports = [{"switch": s["name"], **p} for s in switches for p in s.get("ports", [])]
    return ports, _ports(switches)


def _ports(switches: list[dict]) -> str:
    return table(
        ["switch", "no", "port", "role", "up", "s-channels"],
        [
            [s["name"], p["number"], p["name"], p["role"], p["up"], _channels(p)]
            for s in switches
            for p in s.get("ports", [])
        ],
    )


def _channels(port: dict) -> str:
    """A port's S-channels as SCID:S-VID pairs."""
    return " ".join(f"{c['scid']}:{c['svid']}" for c in port.get("channels") or ())


def station_list(client, args):
    stations = client.call("GET", "/v1/stations")
    return stations, table(
        ["switch", "port", "s-vid", "station", "evb", "vdp frames"],
        [
            [
                s.get("switch"),
                s.get("port"),
                s.get("svid") or "",
                (s.get("station") or {}).get("mac"),
                "agreed" if s.get("agreement") else "none",
                (s.get("counters") or {}).get("vdp"),
            ]
            for s in stations
        ],
    )


def vm_list(client, args):
    vms = client.call("GET", "/v1/vms", query={name: getattr(args, name) for name in VM_FILTERS})
    return vms, table(
        ["vsi id", "name", "tenant", "type", "macs", "ips", "host", "group", "state"],
        [
            [
                vm["vsi_id"],
                vm.get("name"),
                vm["tenant"],
                f"{vm['type_id']}/{vm['type_version']}",
                vm.get("macs"),
                vm.get("ips"),
                vm.get("host"),
                vm.get("group"),
                (vm.get("association") or {}).get("state"),
            ]
            for vm in vms
        ],
    )


def vm_show(client, args):
    vm = client.call("GET", f"/v1/vms/{args.vsi_id}")
    association = vm.get("association") or {}
    text = fields(
        [
            ("vsi id", vm["vsi_id"]),
            ("name", vm.get("name")),
            ("tenant", vm["tenant"]),
            ("type", f"{vm['type_id']}/{vm['type_version']}"),
            ("macs", vm.get("macs")),
            ("ips", vm.get("ips")),
            ("network", vm.get("network")),
            ("host", vm.get("host")),
            ("group", vm.get("group")),
            ("registered", _when(vm.get("registered"))),
            ("updated", _when(vm.get("updated"))),
            ("state", association.get("state") or "not held by the bridge"),
        ]
    )
    if association:
        text += "\n\n" + _attachments([association])
    return vm, text


def vm_deregister(client, args):
    answer = client.call("DELETE", f"/v1/vms/{args.vsi_id}")
    note = " and de-associated" if answer.get("deassociated") else ""
    return answer, f"VM {answer['deregistered']} deregistered{note}"


def vm_relocate(client, args):
    port = int(args.port) if args.port.isdigit() else args.port
    answer = client.call(
        "POST",
        f"/v1/vms/{args.vsi_id}/relocate",
        {"switch": args.switch, "port": port, "replicate": args.replicate},
    )
    verb = "replication" if args.replicate else "relocation"
    return answer, f"{verb} of {args.vsi_id} to {args.switch} port {args.port} prepared"


def vm_stats(client, args):
    stats = client.call("GET", f"/v1/vms/{args.vsi_id}/stats")
    return stats, table(
        [
            "switch",
            "port",
            "pkts in",
            "bytes in",
            "pkts out",
            "bytes out",
            "acl drops",
            "meter drops",
            "polled",
        ],
        [
            [
                a["switch"],
                a["port"],
                a["packets_in"],
                a["bytes_in"],
                a["packets_out"],
                a["bytes_out"],
                a["acl_drops"],
                a["meter_drops"],
                _when(a["polled_at"]),
            ]
            for a in stats["attachments"]
        ],
    )


def association_list(client, args):
    vsis = client.call(
        "GET",
        "/v1/associations",
        query={
            name: getattr(args, name)
            for name in ("tenant", "switch", "state", "host", "cluster", "datacenter")
        },
    )
    return vsis, _attachments(vsis)


def _attachments(vsis: list[dict]) -> str:
    return table(
        ["vsi id", "state", "tenant", "switch", "port", "type", "mac/vid"],
        [
            [
                v["vsi_id"],
                a.get("state"),
                a.get("tenant"),
                a.get("switch"),
                a.get("port"),
                f"{a.get('type_id')}/{a.get('type_version')}",
                [f"{e.get('mac') or '*'}/{e.get('vid')}" for e in a.get("entries", [])],
            ]
            for v in vsis
            for a in v.get("attachments", [])
        ],
    )


def migration_list(client, args):
    migrations = client.call(
        "GET", "/v1/migrations", query={"vsi": args.vsi_id, "limit": args.limit}
    )
    return migrations, table(
        ["id", "started", "vsi id", "from", "to", "outcome", "order", "ms"],
        [
            [
                m["id"],
                m.get("started"),
                m["vsi_id"],
                _place(m.get("source")),
                _place(m.get("destination")),
                m.get("outcome"),
                m.get("order_name") or m.get("order"),
                m.get("ms"),
            ]
            for m in migrations
        ],
    )


def _place(where: dict | None) -> str | None:
    return f"{where['switch']}/{where['port']}" if where else None


def profile_list(client, args):
    profiles = client.call(
        "GET", "/v1/profiles", query={"tenant": args.tenant, "source": args.source}
    )
    return profiles, table(
        ["type", "ver", "name", "tenant", "vlans", "source"],
        [
            [p["type_id"], p["version"], p["name"], p["tenant"], p["vlans"], p["source"]]
            for p in profiles
        ],
    )


def profile_show(client, args):
    """As a policy file: what `profile register` takes back."""
    profile = client.call("GET", f"/v1/profiles/{args.type_id}/{args.version}")
    document = {k: v for k, v in profile.items() if k not in READ_ONLY_KEYS}
    origin = profile.get("origin")
    if profile.get("replaces"):
        origin += f", replaces {profile['replaces']}"
    text = (
        f"# source: {profile.get('source')} ({origin})\n"
        + yaml.safe_dump(
            {"vsi_types": [document]}, sort_keys=False, default_flow_style=None
        ).rstrip()
    )
    return profile, text


def profile_register(client, args):
    """Every profile of a policy file, in one group registration: all or nothing."""
    profiles = load_file(args.file)
    if not profiles:
        raise PolicyError("no profile in the file", file=args.file)
    answer = client.call(
        "POST", "/v1/groups", {"profiles": [profile_document(p) for p in profiles]}
    )
    created = set(answer["created"]["profiles"])
    lines = []
    for profile in answer["profiles"]:
        key = f"{profile['type_id']}/{profile['version']}"
        lines.append(
            f"profile {key} {profile['name']} {'created' if key in created else 'replaced'}"
        )
    return answer, "\n".join(lines + _applied(answer.get("applied")))


def profile_delete(client, args):
    answer = client.call("DELETE", f"/v1/profiles/{args.type_id}/{args.version}")
    lines = [f"profile {args.type_id}/{args.version} deleted"]
    if answer.get("file_profile_back"):
        lines.append(f"the file profile at {answer['file_profile_back']} applies again")
    return answer, "\n".join(lines + _applied(answer.get("applied")))


def _applied(applied: dict | None) -> list[str]:
    if not applied:
        return []
    lines = [f"associated VMs updated: {applied.get('updated', 0)}"]
    if applied.get("deassociated"):
        lines.append(f"de-associated: {', '.join(applied['deassociated'])}")
    return lines


def event_list(client, args):
    events = client.call(
        "GET",
        "/v1/events",
        query={
            "kind": args.kind,
            "after": args.after,
            "limit": args.limit,
            "switch": args.switch,
            "tenant": args.tenant,
            "vsi": args.vsi,
            "latest": None if args.after is not None else 1,
        },
    )
    return events, table(
        ["id", "time", "kind", "switch", "port", "detail"],
        [
            [
                e["id"],
                _when(e["ts"]),
                e["kind"],
                e.get("switch"),
                e.get("port"),
                " ".join(f"{k}={v}" for k, v in (e.get("detail") or {}).items()),
            ]
            for e in events
        ],
    )


def ha_status(client, args):
    status = client.call("GET", "/v1/ha")
    leader = status.get("leader") or {}
    return status, fields(
        [
            ("this controller", f"{status.get('id', '-')} ({status.get('url', '-')})"),
            ("role", status.get("role")),
            ("store", status.get("store")),
            (
                "leader",
                f"{leader['id']} ({leader['url']}), generation {leader['generation']}"
                if leader
                else "none known",
            ),
            ("switches programmed", status.get("switches", "-")),
        ]
    )


def lookup(client, args):
    key = "mac" if _MAC.fullmatch(args.query) else "vsi_id"
    found = client.call("GET", "/v1/lookup", query={key: args.query})
    vm = found.get("vm") or {}
    text = fields(
        [
            ("vsi id", found.get("vsi_id")),
            (
                "registered",
                f"{vm['tenant']}, type {vm['type_id']}/{vm['type_version']}" if vm else "no",
            ),
        ]
    )
    current = found.get("current", [])
    text += "\n\nNOW\n" + (
        _attachments([{"vsi_id": found.get("vsi_id"), "attachments": current}])
        if current
        else "not attached"
    )
    hosts = [_host(p.get("host")) for p in current if p.get("host")]
    if hosts:
        text += "\n\nON HOST " + ", ".join(hosts)
    if found.get("previous"):
        text += "\n\nBEFORE\n" + table(
            ["switch", "port", "host", "until"],
            [
                [p.get("switch"), p.get("port"), _host(p.get("host")), _when(p.get("until"))]
                for p in found["previous"]
            ],
        )
    return found, text


def _host(host: dict | None) -> str | None:
    """A lookup's host: its name and addresses."""
    if not host:
        return None
    addresses = ",".join(host.get("addresses") or [])
    return f"{host['name']} ({addresses})" if addresses else host["name"]


def server_list(client, args):
    servers = client.call("GET", "/v1/servers")
    return servers, table(
        ["switch", "port", "up", "station", "vms", "maintenance", "reason"],
        [
            [
                s["switch"],
                s["port"],
                s["up"],
                s.get("station"),
                len(s.get("vms", [])),
                _maintenance_state(s.get("maintenance")),
                (s.get("maintenance") or {}).get("reason"),
            ]
            for s in servers
        ],
    )


def _maintenance_state(record: dict | None) -> str | None:
    if not record:
        return None
    return "drained" if record.get("drained") else "draining"


def server_maintenance(client, args):
    answer = client.call(
        "PUT", f"/v1/servers/{args.switch}/{args.port}/maintenance", {"reason": args.reason}
    )
    lines = [
        f"server {answer['switch']}/{answer['port']} in maintenance since "
        f"{_when(answer.get('since'))}: {answer['reason']}"
    ]
    if answer.get("vms"):
        lines.append(f"VMs to move away (the VM manager is told): {', '.join(answer['vms'])}")
    if answer.get("drained"):
        lines.append("no VM left there: the work may start")
    return answer, "\n".join(lines)


def server_resume(client, args):
    answer = client.call("DELETE", f"/v1/servers/{args.switch}/{args.port}/maintenance")
    return answer, (f"server {answer['switch']}/{answer['port']} resumed: it takes new VMs again")


def alarm_list(client, args):
    alarms = client.call("GET", "/v1/alarms", query={"state": "all" if args.all else None})
    # A CLEARED column only with --all: active alarms alone would leave it empty.
    headers = [
        "id",
        "severity",
        "state",
        "maint",
        "raised",
        *(["cleared"] if args.all else []),
        "vms",
        "reason",
    ]
    return alarms, table(
        headers,
        [
            [
                a["id"],
                a["severity"],
                a["state"],
                a.get("maintenance"),
                _when(a.get("raised")),
                *([_when(a.get("cleared"))] if args.all else []),
                len(a.get("affected_vms", [])),
                a.get("reason"),
            ]
            for a in alarms
        ],
    )


def subscription_list(client, args):
    subscriptions = client.call("GET", "/v1/subscriptions")
    return subscriptions, table(
        ["id", "tenant", "kinds", "sent", "failed", "dropped", "queued", "url"],
        [
            [
                s["id"],
                s.get("tenant") or "*",
                _kinds(s.get("kinds", [])),
                *[
                    (s.get("delivery") or {}).get(k)
                    for k in ("sent", "failed", "dropped", "queued")
                ],
                s["url"],
            ]
            for s in subscriptions
        ],
    )


def _kinds(kinds: list[str]) -> str | list[str]:
    return "all" if set(kinds) == KINDS else kinds


def subscription_add(client, args):
    body = {"url": args.webhook, **({"kinds": args.kinds} if args.kinds else {})}
    answer = client.call("POST", "/v1/subscriptions", body)
    return answer, (
        f"subscription {answer['id']} added: {answer['url']} gets "
        f"{_cell(_kinds(answer['kinds']))} alarms\n"
        f"signing secret (shown this once, docs/faults.md): {answer['secret']}"
    )


def subscription_delete(client, args):
    answer = client.call("DELETE", f"/v1/subscriptions/{args.sub_id}")
    return answer, f"subscription {answer['deleted']} deleted"


# the command line ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evbctl",
        description="Operate the evb-nms controller through its REST API.",
        epilog="Exit codes: 0 ok, 1 API error, 2 usage error, 3 controller unreachable.",
    )
    parser.add_argument(
        "--url",
        default=os.environ.get("EVBCTL_URL", DEFAULT_URL),
        help=f"the controller's REST API (env EVBCTL_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("EVBCTL_TOKEN"),
        help="API token (env EVBCTL_TOKEN, which keeps it out of the process list)",
    )
    parser.add_argument(
        "--ca-file",
        default=os.environ.get("EVBCTL_CA_FILE"),
        metavar="PEM",
        help="for an https URL: the certificate(s) to trust, e.g. the API's self-signed one "
        "(env EVBCTL_CA_FILE; default: the system's CAs)",
    )
    parser.add_argument("--json", action="store_true", help="print the API's JSON answer")
    nouns = parser.add_subparsers(dest="noun", required=True, metavar="NOUN")
    # --json after the command too (evbctl vm list --json); SUPPRESS keeps an earlier --json.
    output = argparse.ArgumentParser(add_help=False)
    output.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON answer"
    )

    def verbs(noun: str, help_text: str):
        return nouns.add_parser(noun, help=help_text).add_subparsers(
            dest="verb", required=True, metavar="VERB"
        )

    def command(group, name: str, function, help_text: str):
        sub = group.add_parser(name, help=help_text, parents=[output])
        sub.set_defaults(function=function)
        return sub

    switch = verbs("switch", "connected switches")
    command(switch, "list", switch_list, "list the switches")
    command(switch, "show", switch_show, "one switch and its ports").add_argument(
        "name", help="switch name or dpid"
    )
    port = verbs("port", "switch ports")
    command(port, "list", port_list, "list the ports").add_argument(
        "switch", nargs="?", help="only this switch"
    )
    station = verbs("station", "servers (EVB stations) on switch ports")
    command(station, "list", station_list, "list the stations")

    vm = verbs("vm", "registered VMs")
    sub = command(vm, "list", vm_list, "list the registered VMs")
    for name in VM_FILTERS:
        sub.add_argument(f"--{name}")
    command(vm, "show", vm_show, "one VM and what the bridge holds of it").add_argument(
        "vsi_id", metavar="VSI"
    )
    command(vm, "deregister", vm_deregister, "deregister a VM (de-associates it)").add_argument(
        "vsi_id", metavar="VSI"
    )
    command(vm, "stats", vm_stats, "a VM's traffic counters per attachment").add_argument(
        "vsi_id", metavar="VSI"
    )
    sub = command(vm, "relocate", vm_relocate, "prepare a VM's network at another port")
    sub.add_argument("vsi_id", metavar="VSI")
    sub.add_argument("switch", metavar="SWITCH")
    sub.add_argument("port", metavar="PORT", help="port name or number")
    sub.add_argument(
        "--replicate", action="store_true", help="copy: keep the VM where it is as well"
    )

    association = verbs("association", "what the bridge holds per VSI")
    sub = command(association, "list", association_list, "list the VSIs")
    sub.add_argument("--tenant")
    sub.add_argument("--switch")
    sub.add_argument("--state", help="pre-associated, pre-associated-rr, associated, suspended")
    for name in ("host", "cluster", "datacenter"):
        sub.add_argument(f"--{name}", help=f"attached at the ports of this {name}'s hosts")

    migration = verbs("migration", "where VMs moved: each migration's steps and outcome")
    sub = command(migration, "list", migration_list, "list the migrations, newest first")
    sub.add_argument("--vsi", dest="vsi_id", metavar="VSI", help="only this VSI's")
    sub.add_argument("--limit", type=int, help="at most this many (1-1000, default 100)")

    profile = verbs("profile", "VSI type profiles")
    sub = command(profile, "list", profile_list, "list the VSI type database")
    sub.add_argument("--tenant")
    sub.add_argument("--source", choices=("api", "file"))
    for name, function, help_text in (
        ("show", profile_show, "one profile, as a policy file"),
        ("delete", profile_delete, "delete a pushed profile"),
    ):
        sub = command(profile, name, function, help_text)
        sub.add_argument("type_id", metavar="ID", type=int)
        sub.add_argument("version", metavar="VER", type=int)
    command(
        profile,
        "register",
        profile_register,
        "push every profile of a policy YAML file, all or nothing",
    ).add_argument("file", metavar="FILE.yaml")

    event = verbs("event", "the event history")
    sub = command(
        event,
        "list",
        event_list,
        "list the latest events (or, with --after, the ones after an id) in id order",
    )
    sub.add_argument("--kind", help="kind prefix, e.g. vsi. or vm.registered")
    sub.add_argument("--after", type=int, help="only events after this id (paging)")
    sub.add_argument("--limit", type=int, help="at most this many (1-1000, default 100)")
    sub.add_argument("--switch")
    sub.add_argument("--tenant")
    sub.add_argument("--vsi", help="only the events of this VSI (VM)")

    server = verbs("server", "servers (server ports) and their maintenance")
    command(server, "list", server_list, "list the servers, their VMs and maintenance")
    sub = command(
        server,
        "maintenance",
        server_maintenance,
        "put a server in maintenance: no new VMs; lists the VMs to move away",
    )
    sub.add_argument("switch", metavar="SWITCH", help="switch name or dpid")
    sub.add_argument("port", metavar="PORT", help="server port name or number")
    sub.add_argument("--reason", required=True, help="the work announced (at most 200 chars)")
    sub = command(server, "resume", server_resume, "end a server's maintenance")
    sub.add_argument("switch", metavar="SWITCH", help="switch name or dpid")
    sub.add_argument("port", metavar="PORT", help="server port name or number")

    alarm = verbs("alarm", "faults: switches, server ports, links, VMs lost")
    command(alarm, "list", alarm_list, "list the active alarms, newest first").add_argument(
        "--all", action="store_true", help="also the latest cleared alarms"
    )

    subscription = verbs("subscription", "webhooks that get the alarms")
    command(
        subscription,
        "list",
        subscription_list,
        "list the subscriptions and their delivery counters",
    )
    sub = command(subscription, "add", subscription_add, "subscribe a webhook to alarms")
    # Not dest "url": that is --url, the controller's.
    sub.add_argument("webhook", metavar="URL", help="http://HOST:PORT/PATH that gets the POSTs")
    sub.add_argument(
        "--kind",
        dest="kinds",
        action="append",
        choices=sorted(KINDS),
        help="only alarms of this kind (repeat for more; default all)",
    )
    command(subscription, "delete", subscription_delete, "unsubscribe").add_argument(
        "sub_id", metavar="ID"
    )

    from app.cli import evbctl_inventory  # its commands use this module's output helpers

    evbctl_inventory.add_commands(verbs, command)

    ha = verbs("ha", "several controllers: which one leads (docs/ha.md)")
    command(ha, "status", ha_status, "this controller's role and the leader it knows")

    sub = nouns.add_parser(
        "lookup", help="where a VM is and was (by VSI ID or MAC)", parents=[output]
    )
    sub.add_argument("query", metavar="VSI|MAC")
    sub.set_defaults(function=lookup)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except SystemExit as done:  # --help (0) or a usage error (2, message printed)
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    url = urllib.parse.urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.netloc:
        print(f"evbctl: --url: expected http://HOST:PORT, got {args.url!r}", file=sys.stderr)
        return EXIT_USAGE
    client = Client(args.url, args.token, ca_file=args.ca_file)
    try:
        answer, text = args.function(client, args)
    except PolicyError as err:
        print(f"evbctl: {err}", file=sys.stderr)
        return EXIT_USAGE
    except ApiFailure as err:
        where = f" ({err.field})" if err.field else ""
        print(f"evbctl: error {err.status}{where}: {err.message}", file=sys.stderr)
        return EXIT_API
    except Unreachable as err:
        print(f"evbctl: {err}", file=sys.stderr)
        return EXIT_UNREACHABLE
    print(json.dumps(answer, indent=1) if args.json else text)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
