"""Benchmark: how soon a fault subscriber hears of a fault and of its repair (OPNFV Doctor asks
for under a second).

A VM runs on srv11; a webhook subscriber listens on 127.0.0.1. Each round takes the server's
uplink down and up again (``ip link``: a cable pull as the edge switch sees it), then drops the
edge switch's OpenFlow connection and restores it (``ovs-vsctl del-controller``/``set-controller``:
the switch stays fail-secure, its flows keep forwarding). Latency: from the command's start to
the notification's arrival at the subscriber, alarm and clear separately.

Then the hung switch: edge2 (a VM behind it on srv21) connects through a TCP proxy
(topologies/freezable_proxy.py); each round freezes the proxy (the connection stays open,
nothing passes: a hung switch) until the subscriber hears switch.down for edge2, then thaws it
until the alarm clears (the controller reset the connection: the switch reconnects, after
Open vSwitch's back-off, set to 1 s for edge2 here; the VM's association is refreshed before
each round, since its keep-alives cross edge2).
switch_hung: from the freeze to the notification, which names the VMs behind the switch
(goal: 1 s at the default echo interval and timeout). Prints JSON.

    .venv/bin/python -m bench.faults [--rounds 20]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.config import Settings
from bench.scale import machine
from bench.stats import summary
from topologies.controller_process import ControllerProcess, free_port
from topologies.datacenter import datacenter
from topologies.freezable_proxy import FreezableProxy
from topologies.migration import start_vm
from topologies.webhook import WebhookSink

TIMEOUT = 10.0


def timed(sink: WebhookSink, action, alarm_id: str, current: str) -> float:
    """ms from the start of ``action()`` (the command's own time included) to the notification
    of ``alarm_id`` going ``current``."""
    start = time.monotonic()
    action()
    at, _ = sink.wait_for(
        lambda b: (b["alarm_id"], b["current"]) == (alarm_id, current), TIMEOUT, after=start
    )
    return 1000 * (at - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    latency: dict[str, list[float]] = {
        kind: [] for kind in ("port_down", "port_up", "switch_down", "switch_up", "switch_hung")
    }
    latency["switch_hung_back"] = []
    hung_vms = []
    with (
        ControllerProcess(
            work,
            of_port=free_port(),
            rest_port=free_port(),
            extra_args=["--webhook-allow", "127.0.0.0/8"],  # the sink is on loopback
        ) as ctl,
        datacenter(controller_port=ctl.of_port) as dc,
        WebhookSink() as sink,
        FreezableProxy(ctl.of_port) as proxy,
    ):
        stations = {name: dc.add_station(name) for name in ("srv11", "srv21")}
        if not all(s.wait_vdp_ready(15) for s in stations.values()):
            sys.exit("a station never enabled VDP")
        start_vm(
            dc,
            stations,
            "vm",
            "srv11",
            "52:54:00:00:0c:01",
            "10.0.0.221/24",
            "b0b0b0b0-0000-0000-0000-000000000221",
        )
        vm2 = start_vm(
            dc,
            stations,
            "vm2",
            "srv21",
            "52:54:00:00:0c:02",
            "10.0.0.222/24",
            "b0b0b0b0-0000-0000-0000-000000000222",
        )
        ctl.call("POST", "/v1/subscriptions", {"url": sink.url})
        server, uplink = dc.server("srv11"), dc.spec.server("srv11").uplink
        controller = f"tcp:127.0.0.1:{ctl.of_port}"

        def ovs(*command):
            subprocess.run(["ovs-vsctl", *command], check=True)

        for _ in range(args.rounds):
            latency["port_down"].append(
                timed(
                    sink,
                    lambda: server.cmd("ip link set", uplink, "down"),
                    "port.down:edge1/edge1-s1",
                    "alarm",
                )
            )
            latency["port_up"].append(
                timed(
                    sink,
                    lambda: server.cmd("ip link set", uplink, "up"),
                    "port.down:edge1/edge1-s1",
                    "ok",
                )
            )
            latency["switch_down"].append(
                timed(sink, lambda: ovs("del-controller", "edge2"), "switch.down:edge2", "alarm")
            )
            latency["switch_up"].append(
                timed(
                    sink,
                    lambda: ovs("set-controller", "edge2", controller),
                    "switch.down:edge2",
                    "ok",
                )
            )
        via_proxy = f"tcp:127.0.0.1:{proxy.port}"
        timed(sink, lambda: ovs("set-controller", "edge2", via_proxy), "switch.down:edge2", "ok")
        # A switch reset again and again backs off to 8 s before it reconnects: 1 s instead.
        ovs("set", "controller", "edge2", "max_backoff=1000")
        for _ in range(args.rounds):
            # Its keep-alives cross edge2: one lost in an outage must not expire the VM.
            if not vm2.request(stations["srv21"], "assoc").ok:
                sys.exit("vm2 lost its association")
            start = time.monotonic()
            proxy.freeze()
            at, body = sink.wait_for(
                lambda b: (b["alarm_id"], b["current"]) == ("switch.down:edge2", "alarm"),
                TIMEOUT,
                after=start,
            )
            latency["switch_hung"].append(1000 * (at - start))
            hung_vms.append(len(body["reason_data"]["affected_vms"]))
            latency["switch_hung_back"].append(timed(sink, proxy.thaw, "switch.down:edge2", "ok"))
        hung_events = ctl.rest(f"/v1/events?kind=switch.hung&limit={args.rounds}")
        delivery = ctl.rest("/v1/subscriptions")[0]["delivery"]
    print(
        json.dumps(
            {
                "benchmark": "fault_notification_latency",
                "machine": machine(),
                "rounds": args.rounds,
                "latency_ms": {kind: summary(values) for kind, values in latency.items()},
                "hung_switch": {
                    "echo_interval_s": Settings.of_echo_interval,
                    "echo_timeout_s": Settings.of_echo_timeout,
                    "detected": len(hung_events),
                    "silent_s": summary([e["detail"]["silent_s"] for e in hung_events]),
                    "vms_named": sorted(set(hung_vms)),
                },
                "notifications": delivery,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
