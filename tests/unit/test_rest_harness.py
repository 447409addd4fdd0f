"""What the REST, registry and evbctl tests run against: a fake controller implementing the
NmsService protocol (app/service.py) over plain data and recording what it was asked to do, and
a harness wiring it to a real store, registry and RestApi as the controller does."""

import inspect
import json
import uuid
from pathlib import Path

from webob import Request

from app.config import ApiToken
from app.events import EventLog
from app.faults.alarms import places_of
from app.faults.monitor import FaultMonitor
from app.faults.subscriptions import Subscribers
from app.metrics import Metrics
from app.policy.database import VsiTypeDatabase
from app.policy.loader import load_policies
from app.registry import Registry
from app.rest.api import RestApi
from app.service import NmsService
from app.store.sqlite_store import SqliteStore
from app.vcenter.destinations import DestinationPolicy

POLICIES = Path(__file__).resolve().parents[2] / "policies"
ADMIN_TOKEN, BLUE_TOKEN, RED_TOKEN = "admin-secret", "blue-secret", "red-secret"
TOKENS = (ApiToken(ADMIN_TOKEN, "*"), ApiToken(BLUE_TOKEN, "blue"), ApiToken(RED_TOKEN, "red"))

VSI_A = "a1b2c3d4-0000-0000-0000-000000000001"  # blue, associated on edge1
VSI_B = "a1b2c3d4-0000-0000-0000-000000000002"  # red, pre-associated on edge2
MAC_A, MAC_B = "52:00:00:00:00:0a", "52:00:00:00:00:0b"


def attachment(
    switch: str,
    port: str,
    port_no: int,
    state: str,
    tenant: str,
    type_id: int,
    type_version: int,
    mac: str,
    vid: int,
) -> dict:
    return {
        "switch": switch,
        "port_no": port_no,
        "port": port,
        "state": state,
        "manager_id": "mgr1",
        "type_id": type_id,
        "type_version": type_version,
        "profile": "web",
        "tenant": tenant,
        "entries": [{"mac": mac, "vid": vid}],
    }


def migration(number: int, vsi_id: str, tenant: str, outcome: str = "in-progress") -> dict:
    """A record as app/vdp/migrations.document writes it (only what the views read)."""
    return {
        "id": number,
        "vsi_id": vsi_id,
        "tenant": tenant,
        "source": {"switch": "edge1", "port": "edge1-s1"},
        "destination": {"switch": "edge2", "port": "edge2-s2"},
        "outcome": outcome,
        "order": "prepared, source_released, confirmed" if outcome == "completed" else "prepared",
        "order_name": "libvirt" if outcome == "completed" else None,
        "started": "2026-11-27T00:00:01.000Z",
        "ms": 1000.0 if outcome == "completed" else None,
    }


class FakeService:
    def __init__(self) -> None:
        self.held = [
            {
                "vsi_id": VSI_A,
                "state": "associated",
                "migrating": False,
                "attachments": [
                    attachment("edge1", "edge1-s1", 1, "associated", "blue", 5, 4, MAC_A, 100)
                ],
            },
            {
                "vsi_id": VSI_B,
                "state": "pre-associated",
                "migrating": False,
                "attachments": [
                    attachment("edge2", "edge2-s2", 2, "pre-associated", "red", 6, 1, MAC_B, 200)
                ],
            },
        ]
        self.previous_host: str | None = None  # lookup's previous place's host
        self.applied: list[VsiTypeDatabase] = []
        self.deassociated: list[tuple[str, str]] = []
        self.relocated: list[tuple] = []
        self.moved = [migration(1, VSI_A, "blue", "completed"), migration(2, VSI_B, "red")]
        self.counters = {
            "packets_in": 10,
            "bytes_in": 1000,
            "packets_out": 8,
            "bytes_out": 800,
            "acl_drops": 2,
            "meter_drops": 1,
        }

    def switches(self):
        return [
            {
                "dpid": "0000000000000001",
                "name": "edge1",
                "state": "ready",
                "ports": [
                    {
                        "number": 1,
                        "name": "edge1-s1",
                        "role": "server",
                        "up": True,
                        "channels": [{"scid": 2, "svid": 4000}],
                    },
                    {"number": 101, "name": "edge1-up1", "role": "trunk", "up": True},
                ],
                "punts": {"edge1-s1": {"malformed": 2, "retransmits": 1, "rx_requests": 7}},
            },
            {
                "dpid": "0000000000000002",
                "name": "edge2",
                "state": "syncing",
                "ports": [{"number": 2, "name": "edge2-s2", "role": "server", "up": False}],
                "punts": {},
            },
        ]

    def links(self):
        return [{"a": "edge1/edge1-up1", "b": "agg1/agg1-dn1"}]

    def probes(self):
        return [{"vlan": 100, "from": "edge1", "to": "edge2", "sent": 3, "received": 3}]

    def stations(self):
        return [
            {
                "switch": "0000000000000001",
                "port_no": 1,
                "port": "edge1-s1",
                "svid": 0,
                "station": {"mac": "a6:00:00:00:00:01"},
                "agreement": {"rka": 20},
                "ecp": {"outstanding": None},
                "counters": {"vdp": 3},
                "channels": [{"scid": 2, "svid": 4000}],
            },
            {
                "switch": "0000000000000001",
                "port_no": 1,
                "port": "edge1-s1",
                "svid": 4000,
                "station": {"mac": "a6:00:00:00:00:02"},
                "agreement": {"rka": 23},
                "ecp": {"outstanding": None},
                "counters": {"vdp": 1},
            },
        ]

    def vsi_counts(self):
        by_switch: dict[str, int] = {}
        by_tenant: dict[str, int] = {}
        for vsi in self.held:
            for a in vsi["attachments"]:
                by_switch[a["switch"]] = by_switch.get(a["switch"], 0) + 1
                by_tenant[a["tenant"]] = by_tenant.get(a["tenant"], 0) + 1
        return {"by_switch": by_switch, "by_tenant": by_tenant}

    def associations(self):
        return [dict(vsi) for vsi in self.held]

    def associations_after(self, after, limit, keep, scan):
        page, looked = (
            [],
            sorted(
                (dict(v) for v in self.held if after is None or v["vsi_id"] > after),
                key=lambda v: v["vsi_id"],
            ),
        )
        for n, vsi in enumerate(looked, 1):
            if keep(vsi):
                page.append(vsi)
            if len(page) == limit or n == scan:
                return page, vsi["vsi_id"]
        return page, None

    def associations_of(self, vsi_ids):
        return {v["vsi_id"]: dict(v) for v in self.held if v["vsi_id"] in vsi_ids}

    def association(self, vsi_id):
        # By key, as the protocol says: it costs that VSI, not all of them.
        found = {v["vsi_id"]: v for v in self.held}.get(vsi_id)
        return dict(found) if found is not None else None

    def vm_stats(self, vsi_id):
        vsi = self.association(vsi_id)
        if vsi is None:
            return None
        return [
            {"switch": a["switch"], "port": a["port"], **self.counters, "polled_at": 1700000000.5}
            for a in vsi["attachments"]
        ]

    def port_stats(self):
        return [{"switch": "edge1", "port": "edge1-s1", **self.counters}]

    def lookup(self, query):
        for vsi in self.held:
            macs = {e["mac"] for a in vsi["attachments"] for e in a["entries"]}
            if query == vsi["vsi_id"] or query in macs:
                return {
                    "vsi_id": vsi["vsi_id"],
                    "current": vsi["attachments"],
                    "previous": [
                        {
                            "switch": "edge2",
                            "port": "edge2-s1",
                            "until": 12.5,
                            "host": self.previous_host,
                        }
                    ],
                }
        return None

    def migrations(self, vsi_id, tenant, limit):
        found = [
            m
            for m in reversed(self.moved)
            if vsi_id in (None, m["vsi_id"]) and tenant in (None, m["tenant"])
        ]
        return found[:limit]

    def deassociate(self, vsi_id, reason):
        self.deassociated.append((vsi_id, reason))
        before = len(self.held)
        self.held = [vsi for vsi in self.held if vsi["vsi_id"] != vsi_id]
        return len(self.held) < before

    def relocate(self, vsi_id, switch, port, *, replicate=False):
        if vsi_id not in {vsi["vsi_id"] for vsi in self.held}:
            raise KeyError(f"unknown VSI {vsi_id}")
        if switch not in ("edge1", "edge2"):
            raise KeyError(f"unknown switch {switch}")
        if port == "edge2-full":
            raise ValueError("limit of VSI type 5 version 4 reached on edge2")
        self.relocated.append((vsi_id, switch, port, replicate))
        return {
            "vsi_id": vsi_id,
            "prepared": {"switch": switch, "port": port},
            "replicate": replicate,
        }

    def apply_profiles(self, database):
        self.applied.append(database)
        return {"updated": 0, "deassociated": []}


class Harness:
    """The controller's wiring around a FakeService: store, event log, registry, REST API.
    The files' database is policies/default.yaml: web 5/4 and batch 7/1 of tenant blue (VLANs
    100, 101, 102), db 6/1 of tenant red (VLAN 200)."""

    def __init__(self, db_path: str, tokens=TOKENS, subscribers=None, **registry_options) -> None:
        """``subscribers``: makes the fault subscribers (default: webhooks may go to loopback,
        where the tests' receivers listen). ``registry_options``: Registry's keyword arguments
        (pools, max_profiles)."""
        self.db_path = db_path
        self.tokens = tokens
        self.registry_options = registry_options
        self.subscribers = subscribers or (
            lambda: Subscribers(destinations=DestinationPolicy(["127.0.0.0/8"]))
        )
        self.service = FakeService()
        self.open()

    def open(self) -> None:
        self.store = SqliteStore(self.db_path)
        self.events = EventLog()
        self.events.add_sink(self.store.append_event)
        self.metrics = Metrics()
        self.events.add_sink(self.metrics.on_event)
        self.registry = Registry(
            load_policies(POLICIES),
            self.store,
            self.service,
            emit=self.events.emit,
            **self.registry_options,
        )
        self.monitor = FaultMonitor(
            self.events, self.store, self._places, subscribers=self.subscribers()
        )
        self.events.add_sink(self.monitor)
        self.metrics.watch(
            switches=self.service.switches,
            vsi_counts=self.service.vsi_counts,
            alarms=lambda: self.monitor.alarms(None, active_only=True),
            webhooks=dict,
            port_stats=self.service.port_stats,
        )
        self.api = RestApi(
            self.service, self.registry, self.store, self.monitor, self.tokens, metrics=self.metrics
        )

    def _places(self, where) -> list:
        """The fault monitor's question, answered from the fake service's associations."""
        return [
            vm
            for vm in places_of(self.service.associations())
            if (vm.switch, vm.port) in where or (vm.switch, None) in where
        ]

    def close(self) -> None:
        self.monitor.close()
        self.store.close()

    def reopen(self) -> None:
        """A controller restart: everything but the database is new."""
        self.close()
        self.service = FakeService()
        self.open()

    def call(self, method: str, path: str, body=None, token: str | None = ADMIN_TOKEN):
        """(status, decoded JSON answer); ``body`` bytes are sent as they are."""
        response = self.response(method, path, body, token)
        if response.content_type == "application/json":
            return response.status_code, json.loads(response.body)
        return response.status_code, response.text

    def response(self, method: str, path: str, body=None, token: str | None = ADMIN_TOKEN):
        """The whole webob response (headers too)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        kwargs = {}
        if body is not None:
            kwargs["body"] = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        return Request.blank(path, method=method, headers=headers, **kwargs).get_response(
            self.api.wsgi
        )


def profile(type_id: int = 9, version: int = 1, tenant: str = "blue", vlans=(110,), **extra):
    """A valid profile document."""
    return {
        "type_id": type_id,
        "version": version,
        "name": f"app{type_id}",
        "tenant": tenant,
        "vlans": list(vlans),
        "manager_ids": ["mgr1"],
        **extra,
    }


def test_the_fake_implements_every_method_of_the_service_protocol():
    for name, member in vars(NmsService).items():
        if callable(member) and not name.startswith("_"):

            def shape(function):
                return [(p.name, p.kind) for p in inspect.signature(function).parameters.values()]

            assert shape(getattr(FakeService, name)) == shape(member), name


def test_the_fake_vsi_ids_are_uuids_as_the_bridge_writes_them():
    assert str(uuid.UUID(VSI_A)) == VSI_A and str(uuid.UUID(VSI_B)) == VSI_B
