"""The entry of punted frames: every frame is decoded and counted; garbage is a counted drop."""
from pathlib import Path

from app.events import EventLog
from app.fabric.ports import Port, PortRole
from app.session.control_plane import ControlPlane
from tests.pcap_reader import read_pcap

DATA = Path(__file__).parent.parent / "data"
PORT = Port(1, "edge1-s1", "00:00:00:00:01:01", PortRole.SERVER)


def _plane():
    log = EventLog()
    return ControlPlane(log), log


def test_captured_frames_are_counted_by_kind_and_station_seen_once():
    plane, log = _plane()
    frames = read_pcap(DATA / "vdp22.pcap")
    for i, data in enumerate(frames):
        plane.handle_frame(1, "edge1", PORT, data, now=float(i))
    counts = plane.counters_for(1)["edge1-s1"]
    assert counts["lldp_evb"] > 0 and counts["ecp_req"] > 0 and counts["ecp_ack"] > 0
    assert sum(counts.values()) == len(frames)
    assert len(log.recent("station.seen")) == 1


def test_malformed_frames_are_counted_and_reported_at_a_bounded_rate():
    plane, log = _plane()
    good = read_pcap(DATA / "vdp22.pcap")[0]
    for i in range(50):
        assert plane.handle_frame(1, "edge1", PORT, good[:20], now=i * 0.1) == []
    assert plane.counters_for(1)["edge1-s1"]["malformed"] == 50
    dropped = log.recent("frame.dropped")
    assert len(dropped) == 1 and dropped[0].detail["field"]
    plane.handle_frame(1, "edge1", PORT, good, now=6.0)
    counts = plane.counters_for(1)["edge1-s1"]
    assert sum(counts.values()) == 51 and counts["malformed"] == 50
