"""Plays the os-ken shim and the switches around a FabricControl (app/fabric_control.py).

Every (dpid, message) the FabricControl returns is applied, in the order returned, to that
switch's FakeSwitch, and every request is answered as a switch would: the port list, meter and
flow stats (as multipart replies, optionally in several parts), bundle replies and errors, and
barrier replies, which can be held back to see what waits for them. A frame sent out of a port
linked to another switch (a link probe) arrives there as a packet-in; the others are the
stations' frames, which the stations acknowledge at once as lldpad does. `timeline` records,
across switches, what each switch got and the barrier replies it sent, in order.
"""

from collections import deque

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.ethernet import decode_ethernet
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame, decode_evb_frame
from tests.fakes.fake_switch import FakeFabric
from tests.fakes.stations import Stations

_REPLIES = {
    parser.OFPPortDescStatsRequest: parser.OFPPortDescStatsReply,
    parser.OFPMeterConfigStatsRequest: parser.OFPMeterConfigStatsReply,
    parser.OFPFlowStatsRequest: parser.OFPFlowStatsReply,
    parser.OFPMeterStatsRequest: parser.OFPMeterStatsReply,
}
_FRAMES = {EcpAckFrame: "ecp-ack", VdpFrame: "vdp", LldpFrame: "lldp"}
_BUNDLE_CONTROLS = {
    ofp.ONF_BCT_OPEN_REQUEST: "bundle-open",
    ofp.ONF_BCT_COMMIT_REQUEST: "bundle-commit",
    ofp.ONF_BCT_DISCARD_REQUEST: "bundle-discard",
}


class Wire:
    def __init__(self, core, fabric: FakeFabric, parts: int = 1):
        """`parts`: how many messages each multipart reply is split into."""
        self.core = core
        self.fabric = fabric
        self.parts = parts
        self.timeline: list[tuple[int, str]] = []
        self.to_stations: list[tuple[int, int, bytes]] = []
        self.hold_barriers = False
        self.held: list[tuple[int, int]] = []  # (dpid, xid) of the barriers not answered yet

    def connect(self, now: float = 0.0) -> None:
        """Every switch connects and is reconciled; then the link probes of one tick."""
        for dpid in self.fabric.switches:
            self.deliver(self.core.switch_connected(dpid, "127.0.0.1", now), now)
        self.deliver(self.core.tick(now), now)

    def frames(self, frames, now: float = 1.0) -> None:
        """Punted (dpid, port_no, frame)s as the shim takes them: each ECP request acknowledged
        as it arrives, then each received by the worker, then the batch processed."""
        acked = []
        for dpid, port_no, data in frames:
            ack = self.core.ecp_ack(dpid, port_no, data)
            self.deliver(ack, now)
            acked.append(bool(ack))
        for (dpid, port_no, data), was_acked in zip(frames, acked, strict=True):
            self.deliver(self.core.receive(dpid, port_no, data, now, was_acked), now)
        self.deliver(self.core.process(now), now)

    def release(self, dpids=None, now: float = 1.0) -> None:
        """Answers the held barriers (of `dpids`, default all), in the order they were sent."""
        answer = [h for h in self.held if dpids is None or h[0] in dpids]
        self.held = [h for h in self.held if h not in answer]
        for dpid, xid in answer:
            self.timeline.append((dpid, "barrier-reply"))
            self.deliver(self.core.barrier_reply(dpid, xid, now), now)

    def deliver(self, out, now: float = 1.0) -> None:
        pending = deque(out)
        while pending:
            dpid, msg = pending.popleft()
            assert msg.xid is not None, f"{type(msg).__name__} without an xid of ours"
            self.fabric.switches[dpid].apply([msg])
            self.timeline.append((dpid, _label(msg)))
            pending.extend(self._answer(dpid, msg, now))

    def _answer(self, dpid: int, msg, now: float) -> list:
        fake = self.fabric.switches[dpid]
        answers, fake.answers = fake.answers, []
        for answer in answers:
            if answer.code is None:
                self.core.bundle_reply(dpid, answer.xid, answer.kind, now)
            else:
                self.core.error(dpid, answer.xid, answer.kind, answer.code)
        if isinstance(msg, parser.OFPBarrierRequest):
            if self.hold_barriers:
                self.held.append((dpid, msg.xid))
                return []
            self.timeline.append((dpid, "barrier-reply"))
            return self.core.barrier_reply(dpid, msg.xid, now)
        if isinstance(msg, parser.OFPPacketOut) and msg.in_port == ofp.OFPP_CONTROLLER:
            if msg.actions[0].port == ofp.OFPP_TABLE:  # a data-plane probe: walked to its end
                self._walk_probe(dpid, msg.data, now)
                return []
        if isinstance(msg, parser.OFPPacketOut):
            port_no = msg.actions[0].port
            peer = self.fabric.peers.get((dpid, port_no))
            if peer is None:
                self.to_stations.append((dpid, port_no, msg.data))
                ack = Stations.ack(dpid, port_no, msg.data)
                return [] if ack is None else self.core.receive(dpid, port_no, ack, now)
            return self.core.receive(*peer, msg.data, now)
        reply_class = _REPLIES.get(type(msg))
        if reply_class is None:
            return []
        body = {
            parser.OFPPortDescStatsRequest: fake.port_list,
            parser.OFPMeterConfigStatsRequest: fake.meter_configs,
            parser.OFPMeterStatsRequest: fake.meter_stats,
        }.get(type(msg), lambda: fake.flow_stats(msg))()
        out = []
        for i in range(self.parts):
            last = i == self.parts - 1
            reply = reply_class(
                None, body=body[i :: self.parts], flags=0 if last else ofp.OFPMPF_REPLY_MORE
            )
            reply.xid = msg.xid
            out += self.core.multipart_reply(dpid, reply, now)
        return out

    def _walk_probe(self, dpid: int, data: bytes, now: float) -> None:
        """A probe put into a switch's tables: where the fabric punts it, it is a packet-in."""
        eth = decode_ethernet(data)
        vlan = ofp.OFPVID_PRESENT | eth.vlan.vid if eth.vlan else ofp.OFPVID_NONE
        packet = dict(eth_dst=eth.dst, eth_src=eth.src, eth_type=eth.ethertype, vlan_vid=vlan)
        for delivery in self.fabric.send(dpid, ofp.OFPP_CONTROLLER, **packet):
            if delivery.port == ofp.OFPP_CONTROLLER:
                self.core.probe_arrived(delivery.dpid, delivery.in_port, data, now)


def _label(msg) -> str:
    if isinstance(msg, parser.OFPPacketOut):
        if msg.in_port == ofp.OFPP_CONTROLLER and msg.actions[0].port == ofp.OFPP_TABLE:
            return "probe"
        return _FRAMES[type(decode_evb_frame(msg.data))]
    if isinstance(msg, parser.ONFBundleCtrlMsg):
        return _BUNDLE_CONTROLS[msg.type]
    return {
        parser.OFPFlowMod: "flow-mod",
        parser.OFPMeterMod: "meter-mod",
        parser.OFPBarrierRequest: "barrier",
        parser.ONFBundleAddMsg: "bundle-add",
    }.get(type(msg), "request")
