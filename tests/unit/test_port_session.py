"""PortSession: replays of vdp22.pcap with the session in place of lldpad's bridge (its frames must
equal lldpad's byte for byte where the protocol fixes them), built frames, and arbitrary
interleavings of frames that must never raise."""

import json
from dataclasses import replace
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.codec.ethernet import NEAREST_CUSTOMER_BRIDGE, VlanTag
from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat, encode_evb_tlv
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame, decode_evb_frame
from app.codec.lldp import ChassisId, LldpPdu, PortId
from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpOrgTlv,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiTlv,
    encode_vdpdu,
    make_deassociate,
    make_response,
)
from app.fabric.ports import PortRef
from app.session.evb_negotiation import BridgeEvbConfig, bridge_tlv_unsolicited
from app.session.port_session import MAX_VDPDU_LENGTH, PortSession, pack_vdpdus
from app.vdp.describe import vsi_id_text
from tests.unit.conftest import capture, evb_frames, evb_tlvs, manager_ids, vdpdus, vsi_tlvs

PORT = PortRef(0x1, 3)
BRIDGE_MAC = "02:00:00:00:b0:01"
STATION_MAC = "02:00:00:00:51:01"
RTE14 = 0.16384
STATION_TLV = EvbTlv(
    mode=EvbMode.STATION, rrreq=True, rrstat=RrStat.UNKNOWN, r=3, rte=14, rwd=20, rka=20
)
MANAGER = ManagerIdTlv.from_name("blabla")


def session(bridge_mac: str = BRIDGE_MAC, **config) -> PortSession:
    return PortSession(PORT, "edge1-s1", bridge_mac, BridgeEvbConfig(**config))


def lldp(evb: EvbTlv | None = STATION_TLV, ttl: int = 120, src: str = STATION_MAC) -> LldpFrame:
    tlvs = (evb,) if evb else ()
    return LldpFrame(src, LldpPdu(ChassisId.from_mac(src), PortId.from_mac(src), ttl, tlvs))


def vsi(n: int = 1) -> VsiTlv:
    mac = f"52:00:00:00:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
    return VsiTlv(
        VdpTlvType.ASSOCIATE,
        0,
        5,
        4,
        VsiId.from_uuid(f"a1b2c3d4-0000-0000-0000-{n:012x}"),
        FilterFormat.MAC_VID,
        (FilterEntry(vid=100, mac=mac),),
    )


def vdp(sequence: int, *tlvs, src: str = STATION_MAC) -> VdpFrame:
    return VdpFrame(src, sequence, Vdpdu((MANAGER, *tlvs)))


def decoded(frames: list[bytes]) -> list:
    return [decode_evb_frame(raw) for raw in frames]


def evb_infos(frames: list[bytes]) -> list[str]:
    """The EVB TLV information octets of the LLDPDUs among ``frames``."""
    return [
        encode_evb_tlv(f.lldpdu.evb)[-5:].hex() for f in decoded(frames) if isinstance(f, LldpFrame)
    ]


def kinds(events) -> list[str]:
    return [kind for kind, _ in events]


# Replays of vdp22.pcap


def _replay_station(station: str, bridge: str):
    """Feed ``station``'s captured frames to a session standing in for lldpad's bridge ``bridge``,
    answering every request with make_response at once. Returns the session, lldpad's ECP
    requests as (frame number, frame), the session's LLDP frames, its ECP requests, its events
    and the last request per VSI."""
    raws = capture("vdp22.pcap")
    s = session(bridge)
    lldps, requests, events, last_request = [], [], [], {}
    for number, frame in enumerate(decoded(raws), 1):
        if frame.src != station:
            continue
        out = s.on_frame(frame, float(number))
        events += out.events
        lldps += [f for f in out.frames if isinstance(decode_evb_frame(f), LldpFrame)]
        if isinstance(frame, VdpFrame):
            ack = decode_evb_frame(out.frames[0])
            assert isinstance(ack, EcpAckFrame) and (ack.sequence, ack.src, ack.dst) == (
                frame.sequence,
                bridge,
                NEAREST_CUSTOMER_BRIDGE,
            )
            assert out.vdp == list(frame.vdpdu.vsis_with_manager())
            last_request.update({tlv.vsi_id: (manager, tlv) for manager, tlv in out.vdp})
            requests += s.send_vdp(
                [(m, make_response(v)) for m, v in out.vdp], float(number)
            ).frames
        if isinstance(frame, EcpAckFrame):
            assert s.snapshot()["ecp"]["outstanding"] is None
    captured = [
        (number, raw)
        for number, (raw, frame) in enumerate(zip(raws, decoded(raws), strict=True), 1)
        if frame.src == bridge and isinstance(frame, VdpFrame)
    ]
    return s, captured, lldps, requests, events, last_request


def test_replay_answers_like_lldpads_bridge():
    s, captured, lldps, requests, events, last_request = _replay_station(STATION_MAC, BRIDGE_MAC)
    # Our EVB TLVs are lldpad's (#4, #8): answered at once, again when the station's TLV changed.
    assert evb_infos(lldps) == ["03076e7434", "03056e7434"]
    # Each response is lldpad's frame, byte for byte: same sequence numbers 1..10, no padding.
    assert len(requests) == 10 and requests == [raw for _, raw in captured[:10]]
    assert kinds(events) == ["station.seen", "evb.negotiated"]
    # The keep-alive timeouts' unsolicited De-Associates (#90, #92, #98), sequence 11..13.
    deassociates = [(m, make_deassociate(v)) for m, v in last_request.values()]
    sent = []
    for item, (number, raw) in zip(deassociates, captured[10:], strict=True):
        sent += s.send_vdp([item], float(number)).frames
        s.on_frame(EcpAckFrame(STATION_MAC, decode_evb_frame(raw).sequence), float(number))
    assert sent == [raw for _, raw in captured[10:]]
    assert s.counters["ecp_req_tx"] == 13 and s.counters["gave_up"] == 0


def test_replay_station_shutdown_then_unacknowledged_deassociate_gives_up_like_lldpad():
    bridge = "02:00:00:00:b0:02"
    s, captured, _, requests, events, last_request = _replay_station("02:00:00:00:52:02", bridge)
    assert requests == [raw for _, raw in captured[:4]]
    assert kinds(events)[-1] == "station.shutdown"  # #89: TTL 0
    assert s.agreement is None
    # lldpad's bridge then de-associates both VSIs; the station is gone, so each PDU is sent
    # four times 163.84 ms apart (#94-#97, #100-#103) and given up.
    retransmitted = [raw for _, raw in captured[4:]]
    sent, gave_up, times, now = [], [], [], 55.0
    for manager, request in last_request.values():
        sent += s.send_vdp([(manager, make_deassociate(request))], now).frames
        times.append([now])
        while len(gave_up) < len(times):  # ticks also send the periodic LLDPDUs
            now = s.next_deadline()
            out = s.tick(now)
            vdp_frames = [f for f in out.frames if isinstance(decode_evb_frame(f), VdpFrame)]
            sent += vdp_frames
            times[-1] += [now] * (len(vdp_frames) + ("ecp.gave_up" in kinds(out.events)))
            gave_up += [fields for kind, fields in out.events if kind == "ecp.gave_up"]
    assert sent == retransmitted
    for pdu_times in times:
        assert [b - a for a, b in pairwise(pdu_times)] == pytest.approx([RTE14] * 4)
    assert [(g["sequence"], g["vsis"]) for g in gave_up] == [
        (5, ["b1b2c3d4-0000-0000-0000-000000003344"]),
        (6, ["e1b2c3d4-0000-0000-0000-000000009900"]),
    ]
    assert (s.counters["retransmits"], s.counters["gave_up"]) == (6, 2)


# LLDP and EVB


def test_station_lldp_is_answered_at_once_then_fast_then_every_interval():
    s = session()
    out = s.on_frame(lldp(), 100.0)
    assert kinds(out.events) == ["station.seen", "evb.negotiated"]
    (frame,) = decoded(out.frames)
    assert (frame.dst, frame.src, frame.vlan) == (NEAREST_CUSTOMER_BRIDGE, BRIDGE_MAC, None)
    pdu = frame.lldpdu
    assert (pdu.chassis_id.mac, pdu.port_id, pdu.ttl) == (
        BRIDGE_MAC,
        PortId.from_name("edge1-s1"),
        120,
    )
    assert pdu.evb == s.agreement.bridge_tlv and len(out.frames[0]) == 60
    times = [100.0]
    while len(times) < 6:
        times.append(s.next_deadline())
        assert len(s.tick(times[-1]).frames) == 1
    assert [b - a for a, b in pairwise(times)] == pytest.approx([1, 1, 1, 30, 30])
    # An unchanged station TLV is not answered; the timer stays.
    assert s.on_frame(lldp(), times[-1] + 1).frames == [] and s.next_deadline() == times[-1] + 30


def test_changed_station_tlv_is_answered_and_renegotiated():
    s = session()
    s.on_frame(lldp(), 0.0)
    echoed = s.on_frame(
        lldp(replace(STATION_TLV, rrstat=RrStat.ENABLED, rol_rwd=True, rol_rka=True)), 1.0
    )
    # Only the echo changed.
    assert kinds(echoed.events) == [] and evb_infos(echoed.frames) == ["03056e7434"]
    changed = s.on_frame(lldp(replace(STATION_TLV, r=5, rte=16)), 2.0)
    assert kinds(changed.events) == ["evb.negotiated"] and changed.events[0][1]["r"] == 5
    assert s.snapshot()["ecp"] == {
        "r": 5,
        "rte": 16,
        "outstanding": None,
        "queued": 0,
        "queue_limit": 1000,
        "last_received": None,
    }


def test_lldp_without_evb_is_counted_not_answered():
    s = session()
    out = s.on_frame(lldp(None), 0.0)
    assert (out.frames, out.events, s.agreement, s.next_deadline()) == ([], [], None, None)
    assert s.tick(1000.0).frames == []
    assert s.counters["lldp"] == 1 and s.counters["lldp_evb"] == 0


def test_evb_tlv_not_in_station_mode_is_ignored_and_reported_once():
    s = session()
    bridge_tlv = replace(STATION_TLV, mode=EvbMode.BRIDGE)
    first, second = s.on_frame(lldp(bridge_tlv), 0.0), s.on_frame(lldp(bridge_tlv), 1.0)
    assert kinds(first.events) == ["evb.ignored"] and first.events[0][1]["mode"] == 1
    assert (first.frames, second.frames, second.events, s.agreement) == ([], [], [], None)
    assert s.counters["lldp_evb_ignored"] == 2


def test_shutdown_drops_the_agreement_and_resets_ecp_reception():
    s = session()
    s.on_frame(lldp(), 0.0)
    assert s.on_frame(vdp(1, vsi()), 1.0).vdp
    # Not the station.
    assert s.on_frame(lldp(None, ttl=0, src="02:00:00:00:99:99"), 2.0).events == []
    out = s.on_frame(lldp(None, ttl=0), 2.0)
    assert kinds(out.events) == ["station.shutdown"] and s.agreement is None
    # The restarted station counts from 1 again: not a duplicate.
    assert s.on_frame(vdp(1, vsi()), 3.0).vdp
    # Until it speaks again the bridge advertises its own TLV.
    periodic = s.tick(s.next_deadline())
    assert decoded(periodic.frames)[0].lldpdu.evb == bridge_tlv_unsolicited(s.config)
    assert s.on_frame(lldp(), 40.0).frames  # back: answered at once
    # Back before our next LLDPDU: answered at once too, though our TLV is the same as before.
    s.on_frame(lldp(None, ttl=0), 41.0)
    assert s.on_frame(lldp(), 42.0).frames


def test_another_station_on_the_port_is_seen_with_its_own_sequence_numbers():
    s = session()
    s.on_frame(lldp(), 0.0)
    s.on_frame(vdp(1, vsi()), 1.0)
    out = s.on_frame(lldp(src="02:00:00:00:99:99"), 2.0)
    assert kinds(out.events) == ["station.seen"] and out.events[0][1]["mac"] == "02:00:00:00:99:99"
    assert s.on_frame(vdp(1, vsi(), src="02:00:00:00:99:99"), 3.0).vdp


def test_tagged_frames_are_not_this_channel():
    s = session()
    out = s.on_frame(replace(lldp(), vlan=VlanTag(10)), 0.0)
    assert (out.frames, out.events, s.agreement, s.counters["tagged"]) == ([], [], None, 1)


def test_keepalive_timeout_follows_the_agreement():
    s = session()
    assert s.keepalive_timeout == pytest.approx(17.44896)
    s.on_frame(lldp(replace(STATION_TLV, rka=22)), 0.0)
    assert s.keepalive_timeout == pytest.approx((7 * RTE14 + 41.94304) * 1.5)


# VDP over ECP


def test_duplicate_request_is_acked_again_not_delivered():
    s = session()
    first, again = s.on_frame(vdp(9, vsi()), 0.0), s.on_frame(vdp(9, vsi()), 0.2)
    assert [f.sequence for f in decoded(first.frames + again.frames)] == [9, 9]
    assert first.vdp == [(MANAGER, vsi())] and again.vdp == []
    assert kinds(again.events) == ["ecp.duplicate"] and s.counters["duplicates"] == 1


def test_requests_are_delivered_with_their_manager_in_order():
    s = session()
    other = ManagerIdTlv.from_name("other")
    frame = VdpFrame(STATION_MAC, 1, Vdpdu((MANAGER, vsi(1), vsi(2), other, vsi(3))))
    out = s.on_frame(frame, 0.0)
    assert out.vdp == [(MANAGER, vsi(1)), (MANAGER, vsi(2)), (other, vsi(3))]
    assert s.counters["vdp_tlvs"] == 3 and s.counters["ecp_req"] == 1


def test_organizationally_defined_tlvs_are_ignored_and_counted():
    s = session()
    org = VdpOrgTlv(0x00000C, b"\x01cisco-specific")
    out = s.on_frame(VdpFrame(STATION_MAC, 1, Vdpdu((MANAGER, vsi(1), org, org))), 0.0)
    assert out.vdp == [(MANAGER, vsi(1))]  # the VSI TLV is answered as usual
    assert s.counters["vdp_org_tlvs_ignored"] == 2 and s.counters["vdp_tlvs"] == 1


def test_responses_from_a_station_are_acked_and_reported_not_delivered():
    s = session()
    out = s.on_frame(vdp(1, make_response(vsi())), 0.0)
    assert isinstance(decoded(out.frames)[0], EcpAckFrame) and out.vdp == []
    assert kinds(out.events) == ["vdp.response_ignored"] and out.events[0][1]["status"] == "0x40"
    assert s.counters["vdp_responses"] == 1


def test_send_vdp_queues_behind_the_outstanding_pdu_and_acks_release_the_next():
    s = session()
    first = s.send_vdp([(MANAGER, make_response(vsi(1)))], 0.0)
    second = s.send_vdp([(MANAGER, make_response(vsi(2)))], 0.0)
    assert [f.sequence for f in decoded(first.frames)] == [1] and second.frames == []
    released = s.on_frame(EcpAckFrame(STATION_MAC, 1), 0.01)
    (frame,) = decoded(released.frames)
    assert (frame.sequence, frame.vdpdu.tlvs) == (2, (MANAGER, make_response(vsi(2))))
    assert (frame.dst, frame.src) == (NEAREST_CUSTOMER_BRIDGE, BRIDGE_MAC)


def test_ecp_uses_the_negotiated_retransmission_interval():
    s = session(r=1, lldp_fast_tx_count=1)  # no LLDPDU due before 30 s
    s.on_frame(lldp(replace(STATION_TLV, r=1, rte=16)), 0.0)
    s.send_vdp([(MANAGER, make_response(vsi()))], 5.0)
    assert s.next_deadline() == pytest.approx(5.0 + 0.65536)
    s.tick(s.next_deadline())
    out = s.tick(s.next_deadline())
    assert kinds(out.events) == ["ecp.gave_up"] and out.events[0][1]["retries"] == 1


def test_a_greedy_stations_timers_are_clamped_in_the_answer_and_an_event():
    """Issue 10: R=7, RTE=31, RKA=31 kept a silent station's VSIs for 6 days."""
    s = session()
    out = s.on_frame(lldp(replace(STATION_TLV, r=7, rte=31, rka=31)), 0.0)
    assert kinds(out.events) == ["station.seen", "evb.negotiated", "evb.clamped"]
    clamped = out.events[2][1]
    assert (clamped["asked"], clamped["agreed"]) == ({"rte": 31, "rka": 31}, {"rte": 16, "rka": 25})
    (answer,) = evb_infos(out.frames)
    answered = decode_evb_frame(out.frames[0]).lldpdu.evb
    assert (answered.r, answered.rte, answered.rka, answered.rol_rka) == (7, 16, 25, False)
    assert answer == encode_evb_tlv(answered)[-5:].hex()
    assert s.keepalive_timeout < 9 * 60
    assert s.snapshot()["agreement"]["clamped"] == {"rte": 31, "rka": 31}


def test_the_ecp_queue_is_bounded_and_overflow_is_counted_once_per_episode():
    """Issue 10: a station that never acknowledges had 19,999 PDUs queued."""
    s = session(ecp_queue_limit=4)
    events = []
    for n in range(1, 20):  # one outstanding, 4 queued, the rest dropped
        events += s.send_vdp([(MANAGER, make_response(vsi(n)))], n * 0.001).events
    assert s.snapshot()["ecp"]["queued"] == 4
    assert s.counters["ecp_overflow"] == 14
    assert kinds(events) == ["ecp.overflow"]
    assert events[0][1]["vsis"] == [vsi_id_text(vsi(6).vsi_id)] and events[0][1]["limit"] == 4
    # Drained to half by ACKs: a new overflow is a new episode, reported again.
    for sequence in (1, 2, 3):
        s.on_frame(EcpAckFrame(STATION_MAC, sequence), 1.0)
    assert s.snapshot()["ecp"]["queued"] == 1
    more = []
    for n in range(20, 26):
        more += s.send_vdp([(MANAGER, make_response(vsi(n)))], 2.0).events
    assert kinds(more) == ["ecp.overflow"] and s.counters["ecp_overflow"] == 17


def test_pack_one_manager_per_vdpdu_and_within_the_size_limit():
    other = ManagerIdTlv.from_name("other")
    items = [(MANAGER, vsi(n)) for n in range(100)] + [(other, vsi(100)), (MANAGER, vsi(101))]
    vdpdus = pack_vdpdus(items)
    assert all(len(encode_vdpdu(p)) <= MAX_VDPDU_LENGTH for p in vdpdus)
    assert all(
        sum(isinstance(t, ManagerIdTlv) for t in p.tlvs) == 1
        and isinstance(p.tlvs[0], ManagerIdTlv)
        for p in vdpdus
    )
    assert [pair for p in vdpdus for pair in p.vsis_with_manager()] == items
    # 35-octet VSI TLVs: 42 fit behind the Manager ID in 1494 octets.
    assert [len(p.tlvs) - 1 for p in vdpdus] == [42, 42, 16, 1, 1]
    assert pack_vdpdus([]) == []


def test_send_vdp_of_many_items_goes_out_one_vdpdu_at_a_time():
    s = session()
    items = [(MANAGER, make_response(vsi(n))) for n in range(50)]
    frames = s.send_vdp(items, 0.0).frames
    for sequence in (1, 2):
        (frame,) = decoded(frames)
        assert frame.sequence == sequence and len(frames[0]) <= 14 + 4 + MAX_VDPDU_LENGTH
        frames = s.on_frame(EcpAckFrame(STATION_MAC, sequence), 0.1).frames
    assert frames == [] and s.snapshot()["ecp"]["outstanding"] is None


def test_snapshot_is_plain():
    s = session()
    s.on_frame(lldp(), 0.0)
    s.on_frame(vdp(4, vsi()), 0.5)
    snap = s.snapshot()
    json.dumps(snap)
    assert (snap["switch"], snap["port_no"], snap["port"]) == ("0000000000000001", 3, "edge1-s1")
    assert snap["station"]["evb"]["raw"] == "00076e9414"
    assert snap["bridge_tlv"]["raw"] == "03076e7434"
    assert snap["agreement"]["rr_granted"] is True and snap["ecp"]["last_received"] == 4
    assert snap["counters"]["lldp_tx"] == 1 and snap["counters"]["ecp_ack_tx"] == 1


# Arbitrary interleavings


untagged_frames = evb_frames.map(lambda f: replace(f, vlan=None))
# The station's own frames, with few sequence numbers so that duplicates and matching ACKs occur.
station_frames = st.one_of(
    st.builds(
        lambda tlv, ttl: lldp(replace(tlv, mode=EvbMode.STATION), ttl),
        evb_tlvs,
        st.sampled_from([0, 120]),
    ),
    st.builds(VdpFrame, st.just(STATION_MAC), st.integers(0, 3), vdpdus),
    st.builds(EcpAckFrame, st.just(STATION_MAC), st.integers(0, 5)),
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("frame"), st.one_of(untagged_frames, evb_frames, station_frames)),
        st.tuples(st.just("send"), st.lists(st.tuples(manager_ids, vsi_tlvs), max_size=5)),
        st.tuples(st.just("tick"), st.floats(0, 40)),
    ),
    max_size=25,
)


@settings(max_examples=150)
@given(actions)
def test_any_interleaving_never_raises_and_frames_are_well_formed(steps):
    s = session()
    now = 0.0
    for action, value in steps:
        if action == "frame":
            out = s.on_frame(value, now)
            if isinstance(value, VdpFrame) and value.vlan is None:
                ack = decode_evb_frame(out.frames[0])
                assert isinstance(ack, EcpAckFrame) and ack.sequence == value.sequence
            assert not any(tlv.is_response for _, tlv in out.vdp)
        elif action == "send":
            out = s.send_vdp(value, now)
        else:
            now += value
            out = s.tick(now)
        for frame in decoded(out.frames):
            assert (frame.dst, frame.src, frame.vlan) == (NEAREST_CUSTOMER_BRIDGE, BRIDGE_MAC, None)
            if isinstance(frame, VdpFrame):
                assert frame.sequence == s.snapshot()["ecp"]["outstanding"]
        deadline = s.next_deadline()
        assert deadline is None or deadline > now
        assert all(
            isinstance(kind, str) and isinstance(fields, dict) for kind, fields in out.events
        )
    json.dumps(s.snapshot())
