"""GET /metrics: what the control plane counts as it happens and what a scrape reads from what
the controller holds, parsed back with Prometheus's own text parser."""

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from app.codec.vdp import VdpTlvType
from app.metrics import TENANT_LABELS, Metrics
from tests.unit.test_control_plane import EDGE1, UUID_A, UUID_B, VM_A, VM_B, Bed
from tests.unit.test_rest_harness import BLUE_TOKEN, Harness


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return samples(body.decode())


def test_vdp_requests_responses_latency_and_refusals_are_counted_as_they_happen():
    metrics = Metrics()
    bed = Bed(observer=metrics)
    bed.station_hello(EDGE1, 1)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_A, VM_A)
    bed.request(EDGE1, 1, VdpTlvType.ASSOCIATE, UUID_B, VM_B, type_id=99)  # no such type
    got = scrape(metrics)
    assert got[("evb_nms_vdp_requests_total", (("mode", "associate"),))] == 2
    assert got[("evb_nms_vdp_responses_total", (("mode", "associate"), ("status", "success")))] == 1
    refused = [k for k in got if k[0] == "evb_nms_vsi_refusals_total"]
    assert len(refused) == 1 and got[refused[0]] == 1
    # Both responses timed from their request; the association's after its flows' barrier.
    assert got[("evb_nms_vdp_response_seconds_count", (("mode", "associate"),))] == 2


def test_a_scrape_reads_what_is_held_with_tenants_bounded():
    metrics = Metrics()
    tenants = {f"t{n:03d}": n + 1 for n in range(TENANT_LABELS + 10)}
    metrics.watch(
        switches=lambda: [
            {"name": "edge1", "state": "ready", "punts": {"edge1-s1": {"malformed": 3}}},
            {"name": "edge2", "state": "syncing", "punts": {"edge2-s1": {"gave_up": 1}}},
        ],
        vsi_counts=lambda: {"by_switch": {"edge1": 4}, "by_tenant": tenants},
        alarms=lambda: [{"kind": "port.down"}, {"kind": "port.down"}],
        webhooks=lambda: {"vm_manager": {"sent": 5, "failed": 1, "queued": 2}},
        port_stats=lambda: [
            {
                "switch": "edge1",
                "port": "edge1-s1",
                "packets_in": 10,
                "bytes_in": 1000,
                "packets_out": 8,
                "bytes_out": 640,
                "acl_drops": 3,
                "meter_drops": 2,
            }
        ],
        stats_dropped=lambda: {"malformed": 2, "unknown": 0},
    )
    got = scrape(metrics)
    assert got[("evb_nms_stats_entries_dropped_total", (("reason", "malformed"),))] == 2
    port = (("port", "edge1-s1"), ("switch", "edge1"))
    assert got[("evb_nms_port_vm_packets", (("direction", "in"), *port))] == 10
    assert got[("evb_nms_port_vm_bytes", (("direction", "out"), *port))] == 640
    assert got[("evb_nms_port_vm_drops", (*port[:1], ("reason", "acl"), *port[1:]))] == 3
    assert got[("evb_nms_port_vm_drops", (*port[:1], ("reason", "meter"), *port[1:]))] == 2
    assert got[("evb_nms_switches", (("state", "ready"),))] == 1
    assert got[("evb_nms_switches", (("state", "syncing"),))] == 1
    key = (
        "evb_nms_port_frames_total",
        (("kind", "malformed"), ("port", "edge1-s1"), ("switch", "edge1")),
    )
    assert got[key] == 3
    assert got[("evb_nms_ecp_give_ups_total", (("port", "edge2-s1"), ("switch", "edge2")))] == 1
    assert got[("evb_nms_vsis", (("switch", "edge1"),))] == 4
    by_tenant = {k[1][0][1]: v for k, v in got.items() if k[0] == "evb_nms_vsis_by_tenant"}
    assert len(by_tenant) == TENANT_LABELS + 1  # the largest, and the rest as "other"
    assert by_tenant["other"] == sum(range(1, 11))
    assert got[("evb_nms_alarms_active", (("kind", "port.down"),))] == 2
    sent = ("evb_nms_webhook_deliveries_total", (("destination", "vm_manager"), ("result", "sent")))
    assert got[sent] == 5
    assert not [k for k in got if ("result", "queued") in k[1]]


def test_metrics_need_an_admin_token_and_count_the_api_by_route_template(tmp_path):
    harness = Harness(str(tmp_path / "db"))
    try:
        assert harness.call("GET", "/metrics", token=BLUE_TOKEN)[0] == 403
        assert harness.call("GET", "/metrics", token=None)[0] == 401
        harness.call("GET", "/v1/associations/a1b2c3d4-0000-0000-0000-00000000ffff")
        harness.call("BREW", "/v1/switches")  # a method of the client's own: one label, "other"
        status, text = harness.call("GET", "/metrics")
        assert status == 200
        got = samples(text)
        route = (("method", "GET"), ("route", "/v1/associations/{vsi_id}"), ("status", "404"))
        assert got[("evb_nms_rest_requests_total", route)] == 1
        other = (("method", "other"), ("route", "unmatched"), ("status", "405"))
        assert got[("evb_nms_rest_requests_total", other)] == 1
        assert got[("evb_nms_vsis", (("switch", "edge1"),))] >= 1  # the fake's held VSIs
    finally:
        harness.close()


def test_the_grafana_dashboard_and_the_docs_name_only_metrics_the_controller_serves():
    metrics = Metrics()
    metrics.watch(
        switches=lambda: [{"name": "e", "state": "ready", "punts": {"p": {"retransmits": 1}}}],
        vsi_counts=lambda: {"by_switch": {}, "by_tenant": {}},
        alarms=list,
        webhooks=dict,
    )
    metrics.watch_ha(lambda: {"role": "follower", "leader": None})
    served = {
        family.name for family in text_string_to_metric_families(metrics.exposition()[0].decode())
    }
    docs = Path(__file__).resolve().parents[2] / "docs"
    dashboard = json.loads((docs / "grafana-evb-nms.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    named = set(re.findall(r"evb_nms_[a-z_]+", exprs + (docs / "metrics.md").read_text()))
    # A histogram is used through its _bucket/_count series, a counter through _total.
    assert {re.sub(r"_(bucket|count|sum|total)$", "", name) for name in named} <= served
