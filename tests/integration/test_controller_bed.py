"""The controller on the real bed: switches connect and get the base pipeline, stations' EVB
frames reach the controller, and VMs without an association are dropped at the edge."""

import re

import pytest

from app.flows.tables import COOKIE_APP, COOKIE_MASK_APP, Priority, Table
from tests.integration.bed import MARKS, dump_flows, wait_until

pytestmark = MARKS


def _ours(flows):
    return [f for f in flows if f["cookie"] & COOKIE_MASK_APP == COOKIE_APP]


def _switch(controller, name):
    return next(s for s in controller.rest("/v1/switches") if s["name"] == name)


def test_every_switch_gets_the_base_pipeline(bed, controller):
    for name in [bed.spec.agg, *(edge.name for edge in bed.spec.edges)]:
        flows = _ours(dump_flows(name))
        punts = [
            f
            for f in flows
            if f["priority"] == Priority.CONTROL_PUNT and f["table"] == Table.CLASSIFY
        ]
        assert len(punts) == 4 and all(
            "meter:1" in f["actions"] and "CONTROLLER" in f["actions"] for f in punts
        ), punts
        assert sum(f["priority"] == Priority.CANARY for f in flows) == 1
        misses = {f["table"] for f in flows if f["priority"] == Priority.TABLE_MISS}
        assert misses >= {int(t) for t in Table}
        roles = {
            int(f["in_port"]): f["actions"]
            for f in flows
            if f["priority"] == Priority.PORT_ROLE and f["table"] == Table.CLASSIFY
        }
        ports = _switch(controller, name)["ports"]
        assert set(roles) == {p["number"] for p in ports}
        for port in ports:
            expected = "goto_table" if port["role"] == "trunk" else "drop"
            assert expected in roles[port["number"]], (name, port, roles)


def test_station_frames_arrive_as_packet_ins(bed, controller):
    bed.add_station("srv11")
    bed.add_station("srv21")

    def evb_lldp_seen():
        return all(
            _switch(controller, edge)["punts"].get(port, {}).get("lldp_evb", 0) > 0
            for edge, port in (("edge1", "edge1-s1"), ("edge2", "edge2-s1"))
        )

    wait_until(evb_lldp_seen, timeout=10, message="no station LLDP reached the controller")
    seen = controller.rest("/v1/events?kind=station.seen")
    assert {(e["switch"], e["port"]) for e in seen} >= {
        ("edge1", "edge1-s1"),
        ("edge2", "edge2-s1"),
    }


def test_the_bridge_keepalive_exponent_wins_over_lldpads(bed, controller):
    """lldpad asks for RKA 20 (10.5 s); the controller's default 23 is larger, so both agree on
    it and the station refreshes each VSI every 84 s (docs/evb-timers.md)."""
    station = bed.add_station("srv12")
    assert station.wait_vdp_ready(10), station.log()[-2000:]
    (session,) = [s for s in controller.rest("/v1/stations") if s["port"] == "edge1-s2"]
    assert session["agreement"]["rka"] == 23
    assert session["agreement"]["keepalive_interval"] == pytest.approx(83.886, abs=0.001)
    assert re.search(r" data_from_evb:srv12-eth0 .*\brka:23\b", station.log()), station.log()[
        -2000:
    ]


def test_vm_traffic_without_association_is_dropped_at_the_edge(bed):
    def server_port_drops():
        return next(
            f["n_packets"]
            for f in _ours(dump_flows("edge1"))
            if f["priority"] == Priority.PORT_ROLE and f.get("in_port") == "1"
        )

    before = server_port_drops()
    vm1 = bed.add_vm("vm1", "srv11", "02:00:00:00:00:01", "10.0.0.1/24")
    vm2 = bed.add_vm("vm2", "srv21", "02:00:00:00:00:02", "10.0.0.2/24")
    assert vm1.ping(vm2.address, count=3, wait=0.5) == (3, 0)
    # vm1's ARP requests died at edge1-s1's default-deny flow (OVS updates its counters lazily).
    wait_until(lambda: server_port_drops() > before, timeout=3, message="drop counter unchanged")
