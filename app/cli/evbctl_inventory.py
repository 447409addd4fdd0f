"""evbctl's commands for the draft's model: the inventory (data centers, clusters, hosts) and
group sync (draft 5.3: a group replaced whole, or deleted). app/cli/evbctl.py adds them with
``add_commands``; each takes (client, args) and returns (the API's answer, its human form)."""

import yaml

from app.cli.evbctl import fields, table
from app.policy.errors import PolicyError

PLURAL = {"datacenter": "datacenters", "cluster": "clusters", "host": "hosts"}


def item_list(client, args):
    query = {name: getattr(args, name, None) for name in ("datacenter", "cluster")}
    items = client.call("GET", f"/v1/{PLURAL[args.kind]}", query=query)
    if args.kind == "host":
        return items, table(
            ["name", "datacenter", "cluster", "addresses", "ports", "vms"],
            [
                [
                    h["name"],
                    h.get("datacenter"),
                    h.get("cluster"),
                    h.get("addresses"),
                    [f"{p['switch']}/{p['port']}" for p in h.get("ports", [])],
                    h.get("vms"),
                ]
                for h in items
            ],
        )
    return items, table(
        ["name", "datacenter", "description"],
        [[i["name"], i.get("datacenter"), i.get("description")] for i in items],
    )


def item_show(client, args):
    item = client.call("GET", f"/v1/{PLURAL[args.kind]}/{args.name}")
    pairs = [(key, item.get(key)) for key in item if key not in ("kind", "ports")]
    ports = [f"{p['switch']}/{p['port']} ({p['by']})" for p in item.get("ports", [])]
    return item, fields(pairs + ([("ports", ports)] if args.kind == "host" else []))


def item_register(client, args):
    body = {
        key: value
        for key, value in (
            ("description", args.description),
            ("datacenter", getattr(args, "datacenter", None)),
            ("cluster", getattr(args, "cluster", None)),
            ("addresses", getattr(args, "addresses", None)),
            ("macs", getattr(args, "macs", None)),
            ("switch", getattr(args, "switch", None)),
            ("port", getattr(args, "port", None)),
        )
        if value is not None
    }
    answer = client.call("PUT", f"/v1/{PLURAL[args.kind]}/{args.name}", body)
    verb = "registered" if answer.get("created") else "replaced"
    return answer, f"{args.kind} {args.name} {verb}"


def item_delete(client, args):
    answer = client.call("DELETE", f"/v1/{PLURAL[args.kind]}/{args.name}")
    return answer, f"{args.kind} {args.name} removed"


def group_show(client, args):
    group = client.call("GET", f"/v1/groups/{args.group}")
    return group, table(
        ["vsi id", "name", "tenant", "type", "host", "ips", "state"],
        [
            [
                vm["vsi_id"],
                vm.get("name"),
                vm["tenant"],
                f"{vm['type_id']}/{vm['type_version']}",
                vm.get("host"),
                vm.get("ips"),
                (vm.get("association") or {}).get("state"),
            ]
            for vm in group["vms"]
        ],
    )


def group_sync(client, args):
    """The group becomes the file's ``profiles`` and ``vms`` (YAML or JSON) exactly."""
    try:
        with open(args.file, encoding="utf-8") as handle:
            body = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as err:  # a usage error (exit 2), as a bad profile file
        raise PolicyError(f"cannot read the group: {err}", file=args.file) from None
    answer = client.call("PUT", f"/v1/groups/{args.group}", body)
    return answer, fields(
        [
            ("group", args.group),
            ("vms", len(answer["vms"])),
            ("created", answer["created"]["vms"]),
            ("removed", answer["removed"]),
            ("deassociated", answer["deassociated"]),
        ]
    )


def group_delete(client, args):
    answer = client.call("DELETE", f"/v1/groups/{args.group}")
    return answer, fields(
        [
            ("group", args.group),
            ("removed", answer["removed"]),
            ("deassociated", answer["deassociated"]),
        ]
    )


def add_commands(verbs, command) -> None:
    """The nouns datacenter, cluster, host and group (evbctl's build_parser helpers)."""
    for kind, help_text in (
        ("datacenter", "the inventory's data centers"),
        ("cluster", "the inventory's clusters (in a data center)"),
        ("host", "the inventory's hosts (servers): where they are plugged in, their VMs"),
    ):
        noun = verbs(kind, help_text)
        sub = command(noun, "list", item_list, f"list the {PLURAL[kind]}")
        sub.set_defaults(kind=kind)
        if kind != "datacenter":
            sub.add_argument("--datacenter")
        if kind == "host":
            sub.add_argument("--cluster")
        for name, function, what in (
            ("show", item_show, "one"),
            ("delete", item_delete, "remove one that holds nothing"),
        ):
            sub = command(noun, name, function, f"{what} {kind}")
            sub.set_defaults(kind=kind)
            sub.add_argument("name", metavar="NAME")
        sub = command(noun, "register", item_register, f"register or replace a {kind}")
        sub.set_defaults(kind=kind)
        sub.add_argument("name", metavar="NAME")
        sub.add_argument("--description")
        if kind != "datacenter":
            sub.add_argument("--datacenter", required=kind == "cluster")
        if kind == "host":
            sub.add_argument("--cluster")
            sub.add_argument("--address", dest="addresses", action="append", help="repeat")
            sub.add_argument(
                "--mac", dest="macs", action="append", help="a MAC its LLDP comes from; repeat"
            )
            sub.add_argument("--switch", help="the switch of its registered port")
            sub.add_argument("--port", help="its registered port")
    group = verbs("group", "VM groups (draft 5.3)")
    command(group, "show", group_show, "the group's VMs").add_argument("group", metavar="GROUP")
    sub = command(group, "sync", group_sync, "make the group exactly the file's VMs")
    sub.add_argument("group", metavar="GROUP")
    sub.add_argument("file", metavar="FILE", help="YAML or JSON: {profiles: [...], vms: [...]}")
    command(group, "delete", group_delete, "deregister every VM of the group").add_argument(
        "group", metavar="GROUP"
    )
