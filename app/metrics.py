"""Prometheus metrics, served at GET /metrics (docs/metrics.md lists them); prometheus_client
writes the exposition format.

Nothing here costs a request what the controller holds:
* what happens is counted as it happens, one increment or observation each: the control
  plane's Observer calls (VDP requests and responses, refusals, flow batches, activations),
  every event (a sink of the event log) and every REST request;
* what the controller holds is read when Prometheus scrapes (`_StateCollector`), from the views
  the REST API shows: O(switches + ports + VSI types + subscriptions), never O(VMs).

Label values are bounded: modes, statuses, errors and event kinds come from the code; switch and
port names from the fabric; REST routes are templates, not paths; tenants beyond TENANT_LABELS
(the largest first) are summed as "other".
"""

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from app.events import Event
from app.observer import Observer

PREFIX = "evb_nms"
TENANT_LABELS = 50
# ECP counters of a port's session (app/session/ecp_machine.py) exported on their own.
_ECP = {"retransmits": "retransmits", "duplicates": "duplicates", "gave_up": "give_ups"}
# Seconds: a VDP response takes milliseconds (flows and barriers included); a lookup at the VM
# manager or a slow switch, up to seconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics(Observer):
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self._requests = Counter(
            f"{PREFIX}_vdp_requests", "VDP requests taken from stations", ["mode"], registry=r
        )
        self._responses = Counter(
            f"{PREFIX}_vdp_responses",
            "VDP responses and bridge-initiated De-Associates sent, by status",
            ["mode", "status"],
            registry=r,
        )
        self._response_seconds = Histogram(
            f"{PREFIX}_vdp_response_seconds",
            "From a VDP request reaching the controller to its response leaving it",
            ["mode"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._refusals = Counter(
            f"{PREFIX}_vsi_refusals", "VSI requests refused, by VDP error", ["error"], registry=r
        )
        self._batch_seconds = Histogram(
            f"{PREFIX}_flow_batch_seconds",
            "From a flow change sent to every switch's barrier reply",
            ["result"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._activation_seconds = Histogram(
            f"{PREFIX}_activation_seconds",
            "From a migrating VM's first frame at its destination to its flows confirmed",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._events = Counter(
            f"{PREFIX}_events", "Events logged, by kind (docs/rest.md)", ["kind"], registry=r
        )
        self._audit_requests = Counter(
            f"{PREFIX}_audit_requests",
            "Multipart requests of the intent audit (a switch's meters or one table's flows)",
            registry=r,
        )
        self._audit_differences = Counter(
            f"{PREFIX}_audit_differences",
            "Flows and meters the intent audit found wrong and repaired, by what was wrong",
            ["what"],
            registry=r,
        )
        self._audit_pass = Gauge(
            f"{PREFIX}_audit_pass_seconds",
            "How long the intent audit's last pass over every ready switch took",
            registry=r,
        )
        self._probes = Counter(
            f"{PREFIX}_probes",
            "Data-plane probes by VLAN and result (sent, received, lost, rejected)",
            ["vlan", "result"],
            registry=r,
        )
        self._probe_seconds = Histogram(
            f"{PREFIX}_probe_latency_seconds",
            "From a data-plane probe's packet-out to its packet-in at the other edge",
            ["vlan"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self._rest = Counter(
            f"{PREFIX}_rest_requests",
            "REST requests answered, by route template and status",
            ["method", "route", "status"],
            registry=r,
        )

    # what happens -----------------------------------------------------------------------------
    def vdp_request(self, mode: str) -> None:
        self._requests.labels(mode).inc()

    def vdp_response(self, mode: str, status: str, seconds: float | None) -> None:
        self._responses.labels(mode, status).inc()
        if seconds is not None:
            self._response_seconds.labels(mode).observe(seconds)

    def refusal(self, error: str) -> None:
        self._refusals.labels(error).inc()

    def flow_batch(self, seconds: float, failed: bool) -> None:
        self._batch_seconds.labels("failed" if failed else "confirmed").observe(seconds)

    def activation(self, seconds: float) -> None:
        self._activation_seconds.observe(seconds)

    def audit_request(self) -> None:
        self._audit_requests.inc()

    def audit_pass(self, seconds: float) -> None:
        self._audit_pass.set(seconds)

    def audit_repaired(self, found: dict[str, int]) -> None:
        for what, count in found.items():
            self._audit_differences.labels(what).inc(count)

    def probe(self, vid: int, result: str, seconds: float | None = None) -> None:
        self._probes.labels(str(vid), result).inc()
        if seconds is not None:
            self._probe_seconds.labels(str(vid)).observe(seconds)

    def on_event(self, event: Event) -> None:
        """An event-log sink."""
        self._events.labels(event.kind).inc()

    def rest_request(self, method: str, route: str, status: int) -> None:
        self._rest.labels(method, route, str(status)).inc()

    # what is held -----------------------------------------------------------------------------
    def watch(
        self,
        switches: Callable[[], list[dict[str, Any]]],
        vsi_counts: Callable[[], dict[str, dict[str, int]]],
        alarms: Callable[[], list[dict[str, Any]]],
        webhooks: Callable[[], dict[str, dict[str, int]]],
        port_stats: Callable[[], list[dict[str, Any]]] = list,
        stats_dropped: Callable[[], dict[str, int]] = dict,
    ) -> None:
        """Read at each scrape: the switches as GET /v1/switches shows them, the VSIs held
        ({"by_switch": {name: n}, "by_tenant": {tenant: n}}), the active alarms, the
        webhook delivery counters by destination ({"vm_manager": {...}, "subscribers": {...}}),
        the server ports' VM traffic (NmsService.port_stats) and the entries of stats replies
        dropped, by reason (app/flows/vm_stats.py: malformed, unknown)."""
        self.registry.register(
            _StateCollector(switches, vsi_counts, alarms, webhooks, port_stats, stats_dropped)
        )

    def watch_ha(self, status: Callable[[], dict[str, Any]]) -> None:
        """Several controllers (docs/ha.md): read at each scrape, this controller's role
        (`role`, `leader.generation`) and its counters (`forwarded`, `forward_failures`,
        `leases_revoked`)."""
        self.registry.register(_HaCollector(status))

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _StateCollector:
    def __init__(self, switches, vsi_counts, alarms, webhooks, port_stats, stats_dropped) -> None:
        self._switches = switches
        self._vsi_counts = vsi_counts
        self._alarms = alarms
        self._webhooks = webhooks
        self._port_stats = port_stats
        self._stats_dropped = stats_dropped

    def describe(self) -> list[Metric]:
        return []  # its families vary with what is held; nothing to check at registration

    def collect(self) -> Iterable[Metric]:
        switches = self._switches()
        states = GaugeMetricFamily(
            f"{PREFIX}_switches", "Switches connected, by state", labels=["state"]
        )
        by_state: dict[str, int] = {}
        for switch in switches:
            by_state[switch["state"]] = by_state.get(switch["state"], 0) + 1
        for state, count in sorted(by_state.items()):
            states.add_metric([state], count)
        yield states
        frames = CounterMetricFamily(
            f"{PREFIX}_port_frames",
            "Frames punted to the controller per server port, by what became of them",
            labels=["switch", "port", "kind"],
        )
        ecp = {
            name: CounterMetricFamily(
                f"{PREFIX}_ecp_{name}",
                f"ECP {name.replace('_', '-')} per server port",
                labels=["switch", "port"],
            )
            for name in _ECP.values()
        }
        for switch in switches:
            for port, counts in sorted(switch["punts"].items()):
                for kind, value in sorted(counts.items()):
                    if kind in _ECP:
                        ecp[_ECP[kind]].add_metric([switch["name"], port], value)
                    else:
                        frames.add_metric([switch["name"], port, kind], value)
        yield frames
        yield from ecp.values()
        counts = self._vsi_counts()
        per_switch = GaugeMetricFamily(
            f"{PREFIX}_vsis", "VSI attachments held, per switch", labels=["switch"]
        )
        for name, count in sorted(counts["by_switch"].items()):
            per_switch.add_metric([name], count)
        yield per_switch
        per_tenant = GaugeMetricFamily(
            f"{PREFIX}_vsis_by_tenant",
            f"VSI attachments held, per tenant (the {TENANT_LABELS} largest; the rest: other)",
            labels=["tenant"],
        )
        for tenant, count in _bounded(counts["by_tenant"], TENANT_LABELS):
            per_tenant.add_metric([tenant], count)
        yield per_tenant
        alarms = GaugeMetricFamily(
            f"{PREFIX}_alarms_active", "Alarms active, by kind", labels=["kind"]
        )
        by_kind: dict[str, int] = {}
        for alarm in self._alarms():
            by_kind[alarm["kind"]] = by_kind.get(alarm["kind"], 0) + 1
        for kind, count in sorted(by_kind.items()):
            alarms.add_metric([kind], count)
        yield alarms
        deliveries = CounterMetricFamily(
            f"{PREFIX}_webhook_deliveries",
            "Webhook notifications by destination and result",
            labels=["destination", "result"],
        )
        for destination, stats in sorted(self._webhooks().items()):
            for result, value in sorted(stats.items()):
                if result != "queued":
                    deliveries.add_metric([destination, result], value)
        yield deliveries
        yield from _port_traffic(self._port_stats())
        dropped = CounterMetricFamily(
            f"{PREFIX}_stats_entries_dropped",
            "Entries of the switches' flow and meter stats replies dropped, by reason",
            labels=["reason"],
        )
        for reason, count in sorted(self._stats_dropped().items()):
            dropped.add_metric([reason], count)
        yield dropped


def _port_traffic(ports: list[dict[str, Any]]) -> Iterable[Metric]:
    """Per server port, the sums of its VMs' counters at the last poll (never per VM: 100,000
    VMs would be as many series each; a VM's own are in GET /v1/vms/{vsi_id}/stats). Gauges: a
    VM leaving the port, or its flows replaced, lowers the sum."""
    labels = ["switch", "port", "direction"]
    packets = GaugeMetricFamily(
        f"{PREFIX}_port_vm_packets", "Packets of the port's VMs at the last poll", labels=labels
    )
    octets = GaugeMetricFamily(
        f"{PREFIX}_port_vm_bytes", "Bytes of the port's VMs at the last poll", labels=labels
    )
    drops = GaugeMetricFamily(
        f"{PREFIX}_port_vm_drops",
        "Packets of the port's VMs dropped by their ACLs or meters at the last poll",
        labels=["switch", "port", "reason"],
    )
    for port in ports:
        where = [port["switch"], port["port"]]
        for direction in ("in", "out"):
            packets.add_metric([*where, direction], port[f"packets_{direction}"])
            octets.add_metric([*where, direction], port[f"bytes_{direction}"])
        drops.add_metric([*where, "acl"], port["acl_drops"])
        drops.add_metric([*where, "meter"], port["meter_drops"])
    yield from (packets, octets, drops)


def _bounded(counts: dict[str, int], limit: int) -> list[tuple[str, int]]:
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    kept = ranked[:limit]
    rest = sum(count for _, count in ranked[limit:])
    return kept + ([("other", rest)] if rest else [])


class _HaCollector:
    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        status = self._status()
        yield GaugeMetricFamily(
            f"{PREFIX}_ha_leader",
            "1 while this controller leads the fabric",
            value=status["role"] == "leader",
        )
        leader = status.get("leader") or {}
        yield GaugeMetricFamily(
            f"{PREFIX}_ha_generation",
            "The leader's generation as this controller knows it (0: none known)",
            value=leader.get("generation", 0),
        )
        for name, what in (
            ("forwarded", "REST requests forwarded to the leader"),
            ("forward_failures", "REST requests the leader did not answer (503)"),
            ("leases_revoked", "leases of dead leaders revoked by this controller"),
            ("store_changes_applied", "changes of other controllers applied from the store"),
            ("store_changes_failed", "of those, changes a cache failed to apply (logged)"),
            ("store_reloads", "whole reloads of the caches after etcd compacted the watch"),
            ("store_values_dropped", "stored values left out by the caches as invalid"),
        ):
            yield CounterMetricFamily(f"{PREFIX}_ha_{name}", what, value=status.get(name, 0))
