"""Punt meters on real OVS (userspace datapath): every server port has its own, in front of the
switch-wide one, so a station that floods control frames exhausts its port's share and the
other stations on the switch still reach the controller (issue 10)."""

import re
import subprocess
import sys
import time

from app.flows.tables import (
    PORT_PUNT_BURST_PKTS,
    PORT_PUNT_RATE_PPS,
    Meter,
    Priority,
    Table,
    port_punt_meter_id,
)
from tests.integration.bed import MARKS, dump_flows, wait_until

pytestmark = MARKS

# LLDP to the nearest-customer-bridge address without an EVB TLV: punted, counted, not answered.
FLOOD = """
import socket, sys, time
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
frame = bytes.fromhex(
    "0180c200000002000000f10088cc02070402000000f10004070302000000f100060200780000"
).ljust(60, b"\\0")
end, sent = time.monotonic() + float(sys.argv[2]), 0
while time.monotonic() < end:
    for _ in range(100):
        s.send(frame)
    sent += 100
print(sent)
"""


def _ofctl(*args):
    return subprocess.run(
        ["ovs-ofctl", "-O", "OpenFlow13", *args], capture_output=True, text=True, check=True
    ).stdout


def _meter_ids(bridge):
    return {int(m) for m in re.findall(r"meter=(\d+)", _ofctl("dump-meters", bridge))}


def _band_drops(bridge, meter_id):
    """Packets the meter's drop band dropped."""
    out = _ofctl("meter-stats", bridge, f"meter={meter_id}")
    return int(re.search(r"0: packet_count:(\d+)", out).group(1))


def _punts(controller, switch, port):
    switch = next(s for s in controller.rest("/v1/switches") if s["name"] == switch)
    return switch["punts"].get(port, {})


def test_server_ports_punt_through_their_own_meter_then_the_switch_one(bed, controller):
    for edge in bed.spec.edges:
        ports = next(s for s in controller.rest("/v1/switches") if s["name"] == edge.name)["ports"]
        servers = {p["number"] for p in ports if p["role"] == "server"}
        wanted = {port_punt_meter_id(n) for n in servers}
        assert _meter_ids(edge.name) >= {Meter.PUNT, *wanted}
        flows = dump_flows(edge.name)
        port_punts = [f for f in flows if f["priority"] == Priority.PORT_PUNT]
        assert {int(f["in_port"]) for f in port_punts} == servers
        for f in port_punts:
            meter_id = port_punt_meter_id(int(f["in_port"]))
            assert f["actions"] == f"meter:{meter_id},goto_table:{int(Table.PUNT)}", f
        (punt,) = [f for f in flows if f["table"] == Table.PUNT and f["priority"] != 0]
        assert "meter:1" in punt["actions"] and "CONTROLLER" in punt["actions"]


def test_a_flooding_station_does_not_starve_its_neighbour(bed, controller):
    """srv11 floods LLDP at full speed; lldpad started on srv12, behind the same edge, during the
    flood is heard and answered (VDP ready), and the switch-wide meter is not what stops the
    flood."""
    flood_meter, quiet_meter = port_punt_meter_id(1), port_punt_meter_id(2)
    assert bed.spec.server("srv11").edge_port_no == 1 and bed.spec.server("srv12").edge_port_no == 2
    before = {m: _band_drops("edge1", m) for m in (flood_meter, quiet_meter, Meter.PUNT)}
    received_before = _punts(controller, "edge1", "edge1-s1").get("lldp", 0)
    flood = bed.server("srv11").popen(
        [sys.executable, "-c", FLOOD, "srv11-eth0", "8"], stdout=subprocess.PIPE
    )
    try:
        time.sleep(1)
        station = bed.add_station("srv12")
        assert station.wait_vdp_ready(6), station.log()[-2000:]
        assert flood.poll() is None, "the flood ended before the station was ready"
    finally:
        out, _ = flood.communicate(timeout=30)
    sent = int(out.decode().strip() or 0)
    # The userspace datapath itself loses part of a flood this fast; of what it forwards, srv11's
    # meter drops all but its rate, and the switch-wide meter hardly has anything to do.
    dropped = _band_drops("edge1", flood_meter) - before[flood_meter]
    assert sent > 100_000 and dropped > 10_000, (sent, dropped)
    assert _band_drops("edge1", quiet_meter) == before[quiet_meter]
    assert _band_drops("edge1", Meter.PUNT) - before[Meter.PUNT] < dropped / 100
    # What passed srv11's meter reached the controller: its share (8 s at its rate), no more.
    received = _punts(controller, "edge1", "edge1-s1").get("lldp", 0) - received_before
    assert 0 < received <= 8 * PORT_PUNT_RATE_PPS * 1.25 + PORT_PUNT_BURST_PKTS, received


def test_a_new_server_port_gets_its_meter_and_loses_it_when_it_goes(bed):
    meter_id = port_punt_meter_id(9)
    add = ["ovs-vsctl", "add-port", "edge1", "edge1-s9", "--", "set", "interface", "edge1-s9"]
    subprocess.run([*add, "type=internal", "ofport_request=9"], check=True)
    try:
        wait_until(lambda: meter_id in _meter_ids("edge1"), timeout=5, message="no port meter")
    finally:
        subprocess.run(["ovs-vsctl", "del-port", "edge1", "edge1-s9"], check=True)
    wait_until(lambda: meter_id not in _meter_ids("edge1"), timeout=5, message="meter kept")
    assert not [f for f in dump_flows("edge1") if f.get("in_port") == "9"]
