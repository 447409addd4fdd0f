"""Hostile frames through the whole punt path, as the shim drives it (tests/fakes/wire.py: the
ECP ACK taken from the raw frame, FabricControl.receive -> ControlPlane.receive, process, the
flows onto the fake switches, their barriers, the timers): captured lldpad frames, frames the
fake stations build, link probes and random valid frames, damaged as test_codec_fuzz.py damages
encodings, on server and trunk ports, over simulated seconds.

Whatever arrives, nothing raises (a decode error is a counted drop inside the control plane),
every frame that does not decode is counted, the flows each switch holds are the ones the
control plane plans for it, the saved intent can be restored, and a well-behaved station on a
port that took the garbage still gets its VM associated.

Time-boxed for CI: EVB_FUZZ_EXAMPLES (default 40) examples per test; raise it for a deeper run
(``EVB_FUZZ_EXAMPLES=5000 .venv/bin/pytest tests/unit/test_frame_fuzz.py``).
"""

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.codec.builders import build_ecp_ack
from app.codec.errors import CodecError
from app.codec.frame import decode_evb_frame, encode_evb_frame
from app.codec.vdp import VdpTlvType, VsiId
from app.control_plane import ControlPlane
from app.events import EventLog
from app.fabric.links import build_probe
from app.fabric.ports import PortRef
from app.flows.tables import CookieKind, cookie_kind
from app.policy.loader import load_policies
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from tests.fakes.demo_fabric import AGG, EDGE1, EDGE2, UPLINK
from tests.fakes.stations import Stations, station_mac, vdp_responses
from tests.unit.conftest import captured_frames, evb_frames
from tests.unit.test_codec_fuzz import damaged
from tests.unit.test_fabric_control import MACS, SERVER_PORTS, UUIDS, Bed

pytestmark = pytest.mark.fuzz
POLICIES = Path(__file__).resolve().parents[2] / "policies"
EXAMPLES = int(os.environ.get("EVB_FUZZ_EXAMPLES", "40"))
TRUNK_PORTS = [(EDGE1, UPLINK), (EDGE2, UPLINK), (AGG, 1), (AGG, 2)]
# The station that must still be served after the garbage: a MAC and VSI ID no few damaged
# octets of the seeds below can reach.
GOOD_UUID, GOOD_MAC = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", "06:ff:ee:dd:cc:bb"


def _decodes(frame: bytes) -> bool:
    try:
        decode_evb_frame(frame)
    except CodecError:
        return False
    return True


CAPTURED = [frame for _, _, frame in captured_frames()]  # lldpad's, and OVS's other traffic


def _seed_frames() -> list[bytes]:
    """Valid frames of every kind the punt path meets, to damage."""
    stations = Stations()
    seeds = [frame for frame in CAPTURED if _decodes(frame)]
    for dpid, port_no in SERVER_PORTS[:2]:
        seeds.append(stations.hello(dpid, port_no))
        for mode in (
            VdpTlvType.PRE_ASSOCIATE,
            VdpTlvType.PRE_ASSOCIATE_RR,
            VdpTlvType.ASSOCIATE,
            VdpTlvType.DE_ASSOCIATE,
        ):
            # Held here, held elsewhere, a VID outside the type, new.
            for n, vid in ((0, 0), (1, 100), (2, 4095), (3, 0)):
                seeds.append(stations.vdp(dpid, port_no, mode, UUIDS[n], MACS[n], vid))
        seeds.append(build_ecp_ack(station_mac(dpid, port_no), 1))
    seeds.append(build_probe(PortRef(EDGE1, UPLINK), "02:00:00:00:01:65"))
    seeds.append(build_probe(PortRef(AGG, 1), "02:00:00:00:ff:01"))
    return seeds


SEEDS = _seed_frames()
MODES = (
    VdpTlvType.PRE_ASSOCIATE,
    VdpTlvType.PRE_ASSOCIATE_RR,
    VdpTlvType.ASSOCIATE,
    VdpTlvType.DE_ASSOCIATE,
)
valid = st.sampled_from(SEEDS) | evb_frames.map(encode_evb_frame)
garbage = st.tuples(
    st.sampled_from(SERVER_PORTS * 3 + TRUNK_PORTS),
    st.one_of(valid, damaged(valid), st.sampled_from(CAPTURED), st.binary(max_size=160)),
)
# The stations' own requests in between (VM n of 4, a VID of its type or not), so that the
# garbage meets VSIs being associated, moved and removed.
requests = st.tuples(
    st.sampled_from(SERVER_PORTS),
    st.tuples(st.sampled_from(MODES), st.integers(0, 3), st.sampled_from([0, 100, 4095])),
)
# (where, what, seconds since the previous one): up to a few keep-alive timeouts in all.
steps = st.tuples(
    st.one_of(garbage, garbage, requests), st.sampled_from([0.0, 0.0, 0.01, 0.2, 1.0, 5.0])
)


def fuzz_bed() -> Bed:
    """The demo fabric with stations on every server port and two VMs associated."""
    bed = Bed()
    bed.associate(EDGE1, 1, 0)
    bed.associate(EDGE2, 1, 1)
    assert len(bed.bridge.bindings()) == 2
    return bed


def run(bed: Bed, sequence) -> tuple[list[bytes], float]:
    """Delivers the frames in batches as the shim takes them (frames with no time between
    them arrive together), the timers in between; the frames sent and the time at the end."""
    now, batch, sent = 1.0, [], []
    for ((dpid, port_no), what), gap in sequence:
        if gap and batch:
            bed.wire.frames(batch, now)
            batch = []
        if gap:
            now += gap
            bed.wire.deliver(bed.core.tick(now), now)
        if isinstance(what, tuple):
            mode, n, vid = what
            what = bed.stations.vdp(dpid, port_no, mode, UUIDS[n], MACS[n], vid)
        batch.append((dpid, port_no, what))
        sent.append(what)
    if batch:
        bed.wire.frames(batch, now)
    return sent, now


def check_not_corrupted(bed: Bed, sent: list[bytes], now: float) -> None:
    control = bed.core.control
    # Every frame that does not decode is counted as malformed at its port, none lost.
    malformed = sum(
        counts.get("malformed", 0)
        for dpid in bed.wire.fabric.switches
        for counts in control.counters_for(dpid).values()
    )
    assert malformed == sum(not _decodes(frame) for frame in sent)
    # The switches hold exactly the VM flows the control plane plans for them.
    for dpid, fake in bed.wire.fabric.switches.items():
        held = {
            (f.table_id, f.priority, f.cookie, tuple(sorted(f.match.items()))) for f in fake.flows
        }
        planned = {
            (f.table_id, f.priority, f.cookie, tuple(sorted(f.match)))
            for f in control.vm_flows(dpid)
        }
        assert planned <= held, dpid
        vsi_cookies = {f.cookie for f in fake.flows if cookie_kind(f.cookie) is CookieKind.VSI}
        assert vsi_cookies == {
            f.cookie for f in control.vm_flows(dpid) if cookie_kind(f.cookie) is CookieKind.VSI
        }, dpid
        assert not fake.errors, fake.errors
    # What would be saved can be taken back by a restarted controller.
    intent = json.loads(json.dumps(control.intent()))
    restarted = ControlPlane(EventLog(), VdpBridge(Authorizer(lambda: load_policies(POLICIES))))
    restarted.restore(intent, load_policies(POLICIES), now)
    assert len(restarted.bridge) == len(control.bridge)
    control.sessions_snapshot()
    bed.core.switches_snapshot()
    # A well-behaved station on a port that took the garbage is still served. Twice: the
    # garbage may have used the sequence number it starts with (then the first is a duplicate).
    dpid, port_no = EDGE1, 2
    sent = len(bed.wire.to_stations)
    bed.wire.frames([(dpid, port_no, bed.stations.hello(dpid, port_no))], now)
    for _ in range(2):
        frame = bed.stations.vdp(dpid, port_no, VdpTlvType.ASSOCIATE, GOOD_UUID, GOOD_MAC)
        bed.wire.frames([(dpid, port_no, frame)], now)
    answers = [
        tlv
        for tlv in vdp_responses(bed.wire.to_stations[sent:])
        if tlv.vsi_id == VsiId.from_uuid(GOOD_UUID)
    ]
    assert answers and answers[-1].status == 0x40, answers
    assert any(b.vsi_id == VsiId.from_uuid(GOOD_UUID) for b in bed.bridge.bindings())


NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ
@given(sequence=st.lists(steps, min_size=1, max_size=12))
def test_short_bursts_of_hostile_frames(sequence):
    bed = fuzz_bed()
    check_not_corrupted(bed, *run(bed, sequence))


# Not shrunk: shrinking hundreds of frames takes minutes; the short bursts shrink well.
@settings(FUZZ, max_examples=max(1, EXAMPLES // 6), phases=NO_SHRINK)
@given(sequence=st.lists(steps, min_size=50, max_size=250))
def test_long_streams_of_hostile_frames(sequence):
    """State accumulates: sessions, bindings, links and timers live through hundreds of
    frames."""
    bed = fuzz_bed()
    check_not_corrupted(bed, *run(bed, sequence))


def test_every_seed_is_a_valid_frame():
    """The seeds are what the damage starts from: they must decode, or the fuzzing only ever
    tests the decoder's first check."""
    assert all(_decodes(frame) for frame in SEEDS) and len(SEEDS) > len(CAPTURED) // 2
