"""The scale benchmark's load generator (bench/scale.py, bench/ofsim/): its hand-made wire
formats agree with app.codec and os-ken, its flow table applies flow-mods as a switch does, and
a small run against a real evb-nms associates every VM with consistent flows.

No Open vSwitch, Mininet or root needed: the switches and stations are simulated.
"""

import heapq
import json
import struct
import subprocess
import sys
from pathlib import Path

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.builders import build_vdp_request
from app.codec.ecp import EcpOp, EcpPdu, encode_ecpdu
from app.codec.ethernet import EthernetFrame, encode_ethernet
from app.codec.frame import EcpAckFrame, encode_evb_frame
from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiIdFormat,
    VsiTlv,
    encode_vdpdu,
    make_deassociate,
    make_response,
)
from bench.ofsim import ofwire
from bench.ofsim.fabric import Fabric
from bench.ofsim.flowtable import FlowTable
from bench.ofsim.station import EXPIRED, HELD, PENDING
from tests.ofsim_messages import Datapath, connected, parse, wire

REPO = Path(__file__).resolve().parents[2]
BRIDGE_MAC = "02:0f:00:01:00:01"


def _fabric(**kw) -> Fabric:
    return Fabric(**{"edges": 1, "ports": 1, "vms": 2, **kw})


def _vsi(vm, mode=VdpTlvType.ASSOCIATE, vid=0, status=0) -> VsiTlv:
    return VsiTlv(
        mode,
        status,
        900,
        1,
        VsiId(VsiIdFormat.UUID, vm.uuid),
        FilterFormat.MAC_VID,
        (FilterEntry(vid=vid, mac=":".join(f"{b:02x}" for b in vm.mac)),),
    )


def _bridge_request(station, seq: int, tlv: VsiTlv) -> bytes:
    payload = encode_vdpdu(Vdpdu((ManagerIdTlv.from_name("mgr1"), tlv)))
    return encode_ethernet(
        EthernetFrame(
            "01:80:c2:00:00:00",
            BRIDGE_MAC,
            0x8940,
            encode_ecpdu(EcpPdu(EcpOp.REQUEST, seq, payload)),
        )
    )


def test_station_frames_are_what_app_codec_builds():
    fabric = _fabric()
    station, vm = fabric.stations[0], fabric.vms[0]
    mac = ":".join(f"{b:02x}" for b in station.mac)
    expected = build_vdp_request(mac, 5, Vdpdu((ManagerIdTlv.from_name("mgr1"), _vsi(vm))))
    assert station.request_frame(vm, 0, 5) == expected
    ack = station._ack_prefix + struct.pack("!H", 9)  # lldpad's unpadded 18-octet ACK
    assert ack == encode_evb_frame(EcpAckFrame(mac, 9))


def _due(fabric, now: float) -> None:
    """Runs the generator's timers due at `now` (what its tick does)."""
    while fabric._timers and fabric._timers[0][0] <= now:
        _, _, fn, args = heapq.heappop(fabric._timers)
        fn(now, *args)


def test_station_associates_keeps_alive_and_records_deassociates():
    fabric = _fabric()
    station, vm = fabric.stations[0], fabric.vms[0]
    sent = connected(station.switch).out
    station.queue.append(vm)
    station.pump(1.0)
    assert (vm.state, fabric.stats.requested) == (PENDING, 1)
    assert sent.pop().endswith(station.request_frame(vm, 0, 1))  # VID 0: bridge chooses
    station.on_frame(encode_evb_frame(EcpAckFrame(BRIDGE_MAC, 1)), 1.1)
    assert station.outstanding is None
    granted = make_response(
        _vsi(vm), filters=(FilterEntry(vid=100, mac=":".join(f"{b:02x}" for b in vm.mac)),)
    )
    station.on_frame(_bridge_request(station, 3, granted), 1.25)
    assert (vm.state, vm.vid, fabric.held, fabric.stats.granted) == (HELD, 100, 1, 1)
    assert list(fabric.stats.latency) == [0.25]
    assert sent.pop().endswith(b"\x14\x01\x00\x03")  # the VDP response was ACKed
    station.on_frame(_bridge_request(station, 3, granted), 1.3)
    assert fabric.stats.ecp_duplicates_rx == 1  # same sequence: ACKed again, not delivered
    sent.clear()
    _due(fabric, 1.25 + station.ka_interval)  # the keep-alive: the request, VID granted
    assert fabric.stats.ka_sent == 1
    assert sent.pop().endswith(station.request_frame(vm, 100, 2))
    station.on_frame(_bridge_request(station, 4, granted), 12.0)
    assert fabric.stats.ka_answered == 1
    deassoc = make_deassociate(make_response(_vsi(vm, vid=100)))
    station.on_frame(_bridge_request(station, 5, deassoc), 13.0)
    assert (vm.state, fabric.held, fabric.stats.expired) == (EXPIRED, 0, 1)


def test_openflow_replies_parse_with_os_ken():
    fabric = _fabric(edges=2, ports=3)
    edge = fabric.edges[0]
    conn = connected(edge)
    request = wire(parser.OFPPortDescStatsRequest(None, 0))
    edge.handle(conn, request, 0, len(request), 0.0)
    reply = parse(conn.out.pop())
    names = {p.port_no: p.name.decode().rstrip("\0") for p in reply.body}
    assert names == {1: "e1-s1", 2: "e1-s2", 3: "e1-s3", 4: "e1-up", ofp.OFPP_LOCAL: "e1"}
    assert all(not p.state & ofp.OFPPS_LINK_DOWN for p in reply.body)
    features = wire(parser.OFPFeaturesRequest(None))
    edge.handle(conn, features, 0, len(features), 0.0)
    assert parse(conn.out.pop()).datapath_id == edge.dpid


def test_flow_table_applies_flow_and_meter_mods():
    table = FlowTable()
    actions = [parser.OFPInstructionActions(ofp.OFPIT_APPLY_ACTIONS, [parser.OFPActionOutput(2)])]

    def mod(command, cookie=0, mask=0, table_id=0, priority=10, meter=None, **match):
        inst = ([parser.OFPInstructionMeter(meter)] if meter else []) + actions
        msg = wire(
            parser.OFPFlowMod(
                None,
                cookie=cookie,
                cookie_mask=mask,
                table_id=table_id,
                command=command,
                priority=priority,
                match=parser.OFPMatch(**match),
                instructions=inst,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
            )
        )
        assert table.flow_mod(msg, 0, len(msg))

    mod(ofp.OFPFC_ADD, cookie=1, in_port=1)
    mod(ofp.OFPFC_ADD, cookie=2, in_port=1)  # same key: replaced
    mod(ofp.OFPFC_ADD, cookie=2, in_port=2, priority=20)
    mod(ofp.OFPFC_ADD, cookie=3, table_id=1, in_port=1, meter=70000)
    assert len(table.flows) == 3
    mod(ofp.OFPFC_DELETE_STRICT, cookie=9, mask=(1 << 64) - 1, in_port=1)  # cookie differs
    assert len(table.flows) == 3
    mod(ofp.OFPFC_DELETE_STRICT, cookie=2, mask=(1 << 64) - 1, in_port=1)
    assert len(table.flows) == 2
    # flow stats: what it holds, parsed back by os-ken with the same match and instructions
    request = wire(
        parser.OFPFlowStatsRequest(
            None,
            table_id=ofp.OFPTT_ALL,
            cookie=2,
            cookie_mask=(1 << 64) - 1,
            out_port=ofp.OFPP_ANY,
            out_group=ofp.OFPG_ANY,
        )
    )
    fabric = _fabric()
    sw = fabric.edges[0]
    sw.table, conn = table, connected(sw)
    sw.handle(conn, request, 0, len(request), 0.0)
    (stats,) = parse(conn.out.pop()).body
    assert (stats.priority, stats.cookie, dict(stats.match.items())) == (20, 2, {"in_port": 2})
    assert stats.instructions[0].actions[0].port == 2
    # a deleted meter takes its flows along; a non-strict delete by cookie across all tables
    meter = wire(
        parser.OFPMeterMod(
            None,
            command=ofp.OFPMC_ADD,
            flags=ofp.OFPMF_KBPS,
            meter_id=70000,
            bands=[parser.OFPMeterBandDrop(rate=10, burst_size=1)],
        )
    )
    assert table.meter_mod(meter, 0, len(meter)) and 70000 in table.meters
    delete = wire(parser.OFPMeterMod(None, command=ofp.OFPMC_DELETE, flags=0, meter_id=70000))
    assert table.meter_mod(delete, 0, len(delete))
    assert len(table.flows) == 1 and not table.meters
    mod(ofp.OFPFC_DELETE, cookie=2, mask=(1 << 64) - 1, table_id=ofp.OFPTT_ALL)
    assert not table.flows


def _bundle_msg(kind: int, xid: int) -> bytes:
    msg = parser.ONFBundleCtrlMsg(None, 5, kind, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, [])
    msg.xid = xid
    return wire(msg)


def _bundle_add(in_port: int, xid: int) -> bytes:
    flow_mod = parser.OFPFlowMod(None, match=parser.OFPMatch(in_port=in_port), instructions=[])
    flow_mod.datapath = Datapath()
    msg = parser.ONFBundleAddMsg(None, 5, ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED, flow_mod, [])
    msg.xid = xid
    return wire(msg)


def test_bundles_apply_their_flow_mods_at_commit_all_or_none():
    sw = _fabric().edges[0]
    conn = connected(sw)

    def send(data: bytes):
        sw.handle(conn, data, 0, len(data), 0.0)
        return [parse(out) for out in conn.out]

    (reply,) = send(_bundle_msg(ofp.ONF_BCT_OPEN_REQUEST, 1))
    assert (reply.type, reply.xid, reply.bundle_id) == (ofp.ONF_BCT_OPEN_REPLY, 1, 5)
    conn.out.clear()
    assert send(_bundle_add(1, 2)) == [] and send(_bundle_add(2, 3)) == []
    assert not sw.table.flows  # nothing before the commit
    (reply,) = send(_bundle_msg(ofp.ONF_BCT_COMMIT_REQUEST, 4))
    assert (reply.type, reply.xid) == (ofp.ONF_BCT_COMMIT_REPLY, 4)
    assert len(sw.table.flows) == 2 and sw.bundles_committed == 1
    conn.out.clear()
    send(_bundle_msg(ofp.ONF_BCT_OPEN_REQUEST, 5))
    send(_bundle_add(3, 6))
    conn.out.clear()
    truncated = ofwire.message(ofwire.FLOW_MOD, 7, bytes(8))
    head = ofwire.EXPERIMENTER_HEADER.pack(
        ofwire.ONF_EXPERIMENTER_ID, ofwire.ONF_ET_BUNDLE_ADD_MESSAGE
    )
    add = ofwire.message(ofwire.EXPERIMENTER, 7, head + ofwire.BUNDLE_ADD.pack(5, 3) + truncated)
    assert send(add) == []  # taken: it is checked at the commit
    (error,) = send(_bundle_msg(ofp.ONF_BCT_COMMIT_REQUEST, 8))
    assert (error.type, error.exp_type, error.xid) == (
        ofp.OFPET_EXPERIMENTER,
        ofp.ONFERR_ET_FAILED,
        8,
    )
    assert len(sw.table.flows) == 2  # nothing of the refused bundle, its good flow-mod neither


def test_small_scale_run_against_the_real_controller():
    """4 edges x 4 ports, 200 VMs placed 20/40/60/80 per edge: every VM associated, none
    expired, and each edge's flows follow its own VMs. No timing is asserted: the machine may
    be loaded. 100 VMs/s rather than all at once, so that a slow machine does not turn the
    start into an ECP retransmission storm (bench/scale.py measures that, this test does not)."""
    cmd = [
        sys.executable,
        "-m",
        "bench.scale",
        "--switches",
        "4",
        "--ports",
        "4",
        "--vms",
        "200",
        "--rate",
        "100",
        "--placement",
        "weighted",
        "--hold",
        "2",
        "--progress",
        "0",
        "--timeout",
        "40",
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=55)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    for key in (
        "machine",
        "parameters",
        "associations",
        "throughput_per_s",
        "latency_ms",
        "flows",
        "keepalives",
        "ecp",
        "generator",
        "controller",
        "duration_s",
    ):
        assert key in result, key
    associations = result["associations"]
    assert (associations["requested"], associations["granted"]) == (200, 200), associations
    assert associations["refused"] == associations["failed"] == associations["expired"] == 0
    assert associations["states_at_end"]["held"] == 200
    assert result["latency_ms"]["overall"]["n"] == 200
    assert [c["checkpoint"] for c in result["latency_ms"]["by_vms_held"]] == [
        "1%",
        "10%",
        "50%",
        "100%",
    ]
    flows = result["flows"]
    edges = sorted(flows["edges"], key=lambda e: e["vms_held"])
    assert [e["vms_held"] for e in edges] == [20, 40, 60, 80]
    counts = [e["flows"] for e in edges]
    assert counts == sorted(set(counts)), counts  # grows with the edge's own VMs
    assert flows["checks"] == {
        "edges_admitting_exactly_own_vms": 4,
        "edges_forwarding_to_own_vms": 4,
        "aggs_forwarding_to_all_held_vms": 1,
        "stale_macs": 0,
    }
    assert all(e["meters"] > e["vms_held"] for e in edges)  # a meter per VM, plus the punt's
    assert result["switch_messages"]["errors_sent"] == 0
    assert result["switch_messages"]["generator_errors"] == 0
    assert result["switch_messages"]["bundles_committed"] > 0  # not the ordered fallback
    assert result["controller"]["rss_mb"] > 0
