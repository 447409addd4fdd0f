"""REST: the migration log, GET /v1/migrations (newest first, filters, tenants), and the view
the controller serves it from (app/controller/nms_service.py)."""

import datetime
import threading
from types import SimpleNamespace

import pytest

from app.controller.nms_service import ControllerService
from app.fabric.ports import PortRef
from app.fabric.switch_directory import SwitchDirectory
from app.vdp.migrations import MigrationLog
from tests.unit.test_rest_harness import BLUE_TOKEN, RED_TOKEN, VSI_A, VSI_B


def ids(records):
    return [(r["id"], r["vsi_id"]) for r in records]


@pytest.mark.parametrize(
    "query, expected",
    [
        ("", [(2, VSI_B), (1, VSI_A)]),
        ("?limit=1", [(2, VSI_B)]),
        (f"?vsi={VSI_A.upper()}", [(1, VSI_A)]),
        ("?vsi=a1b2c3d4-0000-0000-0000-0000000000ff", []),
    ],
)
def test_migrations_newest_first_and_filtered(harness, query, expected):
    status, body = harness.call("GET", "/v1/migrations" + query)
    assert status == 200 and ids(body) == expected


@pytest.mark.parametrize(
    "query, field, words",
    [
        ("?vsi=not-a-vsi", "vsi", "expected a VSI ID"),
        ("?vsi=", "vsi", "empty"),
        ("?limit=0", "limit", "1-1000"),
        ("?limit=1001", "limit", "1-1000"),
        ("?limit=ten", "limit", "1-1000"),
        ("?tenant=blue", "tenant", "unknown query parameter"),
    ],
)
def test_bad_migration_queries_are_400(harness, query, field, words):
    status, body = harness.call("GET", "/v1/migrations" + query)
    assert status == 400 and body["field"] == field and words in body["error"]


def test_a_tenant_sees_only_its_migrations(harness):
    assert ids(harness.call("GET", "/v1/migrations", token=BLUE_TOKEN)[1]) == [(1, VSI_A)]
    assert ids(harness.call("GET", "/v1/migrations", token=RED_TOKEN)[1]) == [(2, VSI_B)]
    assert harness.call("GET", f"/v1/migrations?vsi={VSI_B}", token=BLUE_TOKEN)[1] == []
    assert harness.call("GET", "/v1/migrations", token=None)[0] == 401


def test_the_controller_serves_the_log_by_names_and_wall_clock():
    """What ControllerService.migrations makes of the control plane's log."""
    log = MigrationLog()
    directory = SwitchDirectory()
    log.observe(
        "vsi.associated",
        {"vsi": VSI_A, "at": PortRef(2, 7), "moved_from": PortRef(1, 3), "tenant": "blue"},
        100.0,
    )
    log.observe(
        "vsi.preassociated",
        {"vsi": VSI_B, "at": PortRef(2, 7), "standby_for": PortRef(1, 4)},
        101.0,
    )
    control = SimpleNamespace(migrations=log, switches=directory)
    fabric = SimpleNamespace(control=control)
    service = ControllerService(fabric, None, threading.Lock(), lambda out: None)  # type: ignore[arg-type]
    records = service.migrations(None, None, 10)
    assert ids(records) == [(2, VSI_B), (1, VSI_A)]
    assert records[1]["source"] == {"switch": "0000000000000001", "port": "3"}
    assert records[1]["order"] == "confirmed" and records[1]["outcome"] == "in-progress"
    started = datetime.datetime.fromisoformat(records[0]["started"].replace("Z", "+00:00"))
    assert started.tzinfo == datetime.UTC
    assert ids(service.migrations(VSI_A, "blue", 10)) == [(1, VSI_A)]
    assert service.migrations(VSI_A, "red", 10) == []
