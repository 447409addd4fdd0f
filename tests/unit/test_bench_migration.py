"""The migration bench's pure parts: QEMU's announcement frames and schedule, and how the bench
reads its marks, the controller's events and the captures of the server ports."""

import json

from app.codec.vdp import VdpTlvType
from bench.migration import (
    controller_record,
    dump,
    rarp_to_activated_ms,
    steps_ms,
    trace_medians,
)
from bench.vdp_trace import VdpOnWire, request_timing
from topologies.announce import ETH_ZLEN, announce_offsets, rarp_frame

MAC = "52:54:00:00:0b:02"
VSI = "b0b0b0b0-0000-0000-0000-000000000202"


def test_the_rarp_frame_is_qemus_announce_self_create():
    frame = rarp_frame(MAC)
    hw = bytes.fromhex("525400000b02")
    assert len(frame) == ETH_ZLEN
    assert frame[:6] == b"\xff" * 6 and frame[6:12] == hw
    assert frame[12:14] == b"\x80\x35"
    # htype 1, ptype IPv4, hlen 6, plen 4, op 3 (request reverse)
    assert frame[14:22] == bytes.fromhex("0001080006040003")
    assert frame[22:28] == hw and frame[28:32] == bytes(4)
    assert frame[32:38] == hw and frame[38:42] == bytes(4)
    assert frame[42:] == bytes(18)


def test_rounds_are_spaced_as_qemu_announce_timer_step_spaces_them():
    # initial 50 ms, then 100 ms longer each round: intervals 50, 150, 250, 350 ms
    assert announce_offsets() == [0.0, 0.05, 0.2, 0.45, 0.8]
    assert announce_offsets(rounds=4, initial=100, step=300, maximum=200) == [0, 0.1, 0.3, 0.5]


def test_steps_are_ms_since_the_previous_step_in_time_order():
    marks = {"start": 10.0, "assoc": 10.3, "preassoc": 10.1}
    assert steps_ms(marks) == {"preassoc": 100.0, "assoc": 200.0}


def test_activation_is_timed_from_the_first_rarp_to_the_vsis_event():
    events = [
        {"kind": "vsi.associated", "ts": 100.01, "detail": {"vsi": VSI}},
        {"kind": "vsi.activated", "ts": 100.5, "detail": {"vsi": "other"}},
        {"kind": "vsi.activated", "ts": 100.025, "detail": {"vsi": VSI}},
    ]
    assert rarp_to_activated_ms(events, VSI, 100.0) == 25.0
    assert rarp_to_activated_ms(events[:2], VSI, 100.0) is None


def test_the_report_is_json_with_one_line_per_move():
    report = {"gap_ms": {"median": 1.0}, "moves": [{"n": 1}, {"n": 2}]}
    text = dump(report)
    assert json.loads(text) == report
    assert sum(line.strip().startswith('{"n"') for line in text.splitlines()) == 2


def _request(ts, mode=VdpTlvType.ASSOCIATE):
    return VdpOnWire(ts, True, mode, VSI, False)


def _response(ts, mode=VdpTlvType.ASSOCIATE):
    return VdpOnWire(ts, False, mode, VSI, True)


def test_a_request_made_within_the_ecp_slot_of_the_previous_pdu_shows_its_wait():
    wire = [
        _request(0.0, VdpTlvType.PRE_ASSOCIATE),
        _response(0.006, VdpTlvType.PRE_ASSOCIATE),
        _request(0.16384),  # called at 0.1: held until the Pre-Associate's ACK timer expired
        _response(0.170),
    ]
    timing = request_timing(wire, VSI, "assoc", called_at=0.1, returned_at=0.175)
    assert timing == {
        "to_wire": 63.8,
        "bridge": 6.2,
        "back": 5.0,
        "after_previous_pdu": 163.8,
        "sent": 1,
    }


def test_retransmissions_before_the_response_are_counted():
    wire = [_request(1.0), _request(1.164), _request(1.328), _response(1.33)]
    timing = request_timing(wire, VSI, "assoc", called_at=0.99, returned_at=1.34)
    assert timing["sent"] == 3 and timing["bridge"] == 330.0
    assert request_timing(wire, VSI, "deassoc", called_at=0.99, returned_at=1.34) is None


def test_trace_medians_leave_the_moves_as_they_are():
    timing = {"to_wire": 5.0, "bridge": None, "back": None, "after_previous_pdu": None, "sent": 2}
    moves = [{"trace_ms": {"assoc": dict(timing), "rarps": 5}}]
    assert trace_medians(moves) == {"assoc": {"to_wire": 5.0}, "station_retransmissions": 1}
    assert moves[0]["trace_ms"]["assoc"] == timing


def test_each_move_gets_the_controllers_record_of_the_migration_it_started():
    record = {
        "outcome": "completed",
        "order_name": "libvirt",
        "started": "2026-11-27T00:28:35.476Z",
        "steps": [{"step": "prepared", "ms": None}, {"step": "confirmed", "ms": 12.2}],
        "activation": None,
    }
    started = 1795739315.476  # 2026-11-27T00:28:35.476Z
    assert controller_record([record], started - 0.1, started + 1) == {
        "outcome": "completed",
        "order": "libvirt",
        "steps_ms": {"prepared": None, "confirmed": 12.2},
        "activation": None,
    }
    assert controller_record([record], started + 0.1, started + 1) is None
