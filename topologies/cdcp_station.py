"""A multichannel server of the bed: the station side of CDCP (IEEE 802.1Qbg-2012 clause 42),
which lldpad lacks, one EVB/ECP/VDP station per S-channel, and the S-component that carries
each channel's VMs (topologies/vm.py ChannelVm) in its S-tag. It runs as a thread of the test
process on raw sockets opened in the server's netns: the kernel here has no 802.1ad VLAN device.

    server = MultichannelServer(dc.server("srv11"), {2: [web_vsi], 3: [db_vsi]}).start()
    server.granted()      # CDCP: SCID -> the S-VID the bridge gave it
    server.statuses()     # VDP: VM MAC -> the status of the bridge's response
    server.leave(2)       # CDCP: the station gives S-channel 2 up
    server.stop()

CDCP, station side: the station lists its S-channels in the LLDPDU of its port (untagged), the
default S-channel <1, 1> first, each other as <SCID, 0> until the bridge's CDCP TLV names its
S-VID, and as <SCID, S-VID> from then on. Per channel, S-tagged: LLDP with a station EVB TLV;
once the bridge's EVB TLV came, each VM's Associate, one ECP PDU outstanding and resent until
acknowledged, and again every keep-alive period; the bridge's ECP requests (its responses) are
acknowledged. Frames of the VMs go up in their channel's S-tag; S-tagged frames down lose it
and go to the channel's VMs (by MAC, or to all of them when group-addressed).
"""

import select
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass

from app.codec.builders import build_ecp_ack, build_vdp_request
from app.codec.cdcp_tlv import CdcpRole, CdcpTlv, SChannel
from app.codec.ecp import ETHERTYPE_ECP
from app.codec.errors import CodecError
from app.codec.ethernet import TPID_STAG, VlanTag, decode_ethernet
from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame, decode_evb_frame, encode_evb_frame
from app.codec.lldp import ETHERTYPE_LLDP, ChassisId, LldpPdu, PortId
from app.codec.vdp import FilterEntry, FilterFormat, ManagerIdTlv, VdpTlvType, Vdpdu, VsiId, VsiTlv
from app.session.cdcp import DEFAULT_CHANNEL
from app.session.evb_negotiation import evb_duration
from topologies.netns_io import call_in_netns

ETH_P_ALL = 0x0003
SOL_PACKET, PACKET_AUXDATA, PACKET_OUTGOING = 263, 8, 4
TP_STATUS_VLAN_VALID, TP_STATUS_VLAN_TPID_VALID = 0x10, 0x40
_AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata
STATION_EVB = EvbTlv(
    mode=EvbMode.STATION, rrreq=True, rrstat=RrStat.UNKNOWN, r=3, rte=14, rwd=20, rka=20
)
LLDP_INTERVAL = 1.0  # the station speaks often: a test waits for nothing longer
ECP_RETRY = 1.0


@dataclass
class ChannelVsi:
    """A VM of an S-channel as VDP names it; `status`: the bridge's answer, None until then."""

    vm: object  # topologies.vm.ChannelVm
    uuid: str
    type_id: int
    version: int
    manager: str = "mgr1"
    status: int | None = None

    def request(self) -> tuple[ManagerIdTlv, VsiTlv]:
        tlv = VsiTlv(
            VdpTlvType.ASSOCIATE,
            0,
            self.type_id,
            self.version,
            VsiId.from_uuid(self.uuid),
            FilterFormat.MAC_VID,
            (FilterEntry(0, mac=self.vm.mac),),
        )
        return ManagerIdTlv.from_name(self.manager), tlv


class _Channel:
    def __init__(self, scid: int, vsis: list[ChannelVsi]) -> None:
        self.scid = scid
        self.vsis = {vsi.vm.mac: vsi for vsi in vsis}
        self.svid = 0  # until the bridge's CDCP TLV names it
        self.reset()

    def reset(self) -> None:
        """A new (or lost) S-VID: the channel's station starts over."""
        self.bridge_evb: EvbTlv | None = None
        self.sequence = 0
        self.outstanding: tuple[int, bytes] | None = None  # (sequence, frame)
        self.sent_at = 0.0
        self.queue: deque[ChannelVsi] = deque()
        self.keepalive_at = float("inf")

    @property
    def tag(self) -> VlanTag:
        return VlanTag(self.svid, tpid=TPID_STAG)


class MultichannelServer:
    def __init__(self, server, channels: dict[int, list[ChannelVsi]]) -> None:
        """`server`: the Mininet host; `channels`: SCID (2 and up) -> the VMs in that channel."""
        self._server = server
        self._uplink = server.defaultIntf().name
        self._channels = {scid: _Channel(scid, vsis) for scid, vsis in channels.items()}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._sockets: dict[str, socket.socket] = {}
        self._vm_ports: dict[str, tuple[_Channel, ChannelVsi]] = {}  # server end -> VM
        self._mac = ""

    # control ----------------------------------------------------------------------------------
    def start(self) -> "MultichannelServer":
        vsis = [vsi for channel in self._channels.values() for vsi in channel.vsis.values()]
        names = [self._uplink] + [vsi.vm.server_end for vsi in vsis]
        self._sockets = call_in_netns(
            f"/proc/{self._server.pid}/ns/net", lambda: {name: _open(name) for name in names}
        )
        self._mac = ":".join(f"{b:02x}" for b in self._sockets[self._uplink].getsockname()[4])
        for channel in self._channels.values():
            for vsi in channel.vsis.values():
                self._vm_ports[vsi.vm.server_end] = (channel, vsi)
        self._thread = threading.Thread(target=self._run, name=f"cdcp-{self._server.name}")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop as an LLDP agent does: a shutdown LLDPDU (TTL 0) on each channel and the port,
        so the bridge's ECP receivers expect new sequence numbers from the next station."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sockets:
            for channel in self._channels.values():
                if channel.svid:
                    self._send(self._lldp((STATION_EVB,), channel.tag, ttl=0))
            self._send(self._lldp((), None, ttl=0))
        for sock in self._sockets.values():
            sock.close()
        self._sockets = {}

    def leave(self, scid: int) -> None:
        """The station gives the S-channel up: its next LLDPDU no longer lists it, and its VMs
        are cut off here at once."""
        with self._lock:
            channel = self._channels.pop(scid)
            for vsi in channel.vsis.values():
                del self._vm_ports[vsi.vm.server_end]

    def granted(self) -> dict[int, int]:
        """SCID -> S-VID, for the channels the bridge created."""
        with self._lock:
            return {c.scid: c.svid for c in self._channels.values() if c.svid}

    def statuses(self) -> dict[str, int | None]:
        """VM MAC -> the status octet of the bridge's last response (None: none yet)."""
        with self._lock:
            return {mac: v.status for c in self._channels.values() for mac, v in c.vsis.items()}

    # the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        uplink = self._sockets[self._uplink]
        next_lldp = 0.0
        while not self._stopping.is_set():
            readable, _, _ = select.select(list(self._sockets.values()), [], [], 0.1)
            now = time.monotonic()
            with self._lock:
                for sock in readable:
                    frame = _receive(sock)
                    if frame is None:
                        continue
                    if sock is uplink:
                        self._from_bridge(frame, now)
                    else:
                        self._from_vm(sock, frame)
                if now >= next_lldp:
                    next_lldp = now + LLDP_INTERVAL
                    self._send_lldp()
                for channel in self._channels.values():
                    self._vdp(channel, now)

    def _send(self, frame: bytes) -> None:
        self._sockets[self._uplink].send(frame)

    def _send_lldp(self) -> None:
        pairs = [DEFAULT_CHANNEL] + [
            SChannel(scid, self._channels[scid].svid) for scid in sorted(self._channels)
        ]
        cdcp = CdcpTlv(role=CdcpRole.STATION, scomp=True, chncap=len(pairs), channels=tuple(pairs))
        self._send(self._lldp((cdcp,), None))
        for channel in self._channels.values():
            if channel.svid:
                self._send(self._lldp((STATION_EVB,), channel.tag))

    def _lldp(self, tlvs: tuple, vlan: VlanTag | None, ttl: int = 120) -> bytes:
        port_id = PortId.from_name(self._uplink)
        pdu = LldpPdu(ChassisId.from_mac(self._mac), port_id, ttl, tlvs)
        return encode_evb_frame(LldpFrame(self._mac, pdu, vlan=vlan))

    def _vdp(self, channel: _Channel, now: float) -> None:
        """The channel's next Associate, a retransmission, or the keep-alives that are due."""
        if channel.bridge_evb is None:
            return
        if now >= channel.keepalive_at:
            channel.queue.extend(channel.vsis.values())
            rka = max(STATION_EVB.rka, channel.bridge_evb.rka)
            channel.keepalive_at = now + evb_duration(rka)
        if channel.outstanding is not None:
            if now - channel.sent_at >= ECP_RETRY:
                self._send(channel.outstanding[1])
                channel.sent_at = now
            return
        if channel.queue:
            channel.sequence = channel.sequence % 0xFFFF + 1
            frame = build_vdp_request(
                self._mac,
                channel.sequence,
                Vdpdu(channel.queue.popleft().request()),
                vlan=channel.tag,
            )
            channel.outstanding, channel.sent_at = (channel.sequence, frame), now
            self._send(frame)

    # frames -----------------------------------------------------------------------------------
    def _from_bridge(self, data: bytes, now: float) -> None:
        try:
            eth = decode_ethernet(data)
        except CodecError:
            return
        if eth.vlan is None or eth.vlan.tpid != TPID_STAG:
            if eth.ethertype == ETHERTYPE_LLDP:
                self._on_port_lldp(data)
            return
        channel = next((c for c in self._channels.values() if c.svid == eth.vlan.vid), None)
        if channel is None:
            return
        if eth.ethertype in (ETHERTYPE_LLDP, ETHERTYPE_ECP):
            self._on_channel_frame(channel, data, now)
            return
        inner = data[:12] + data[16:]  # the S-tag comes off: the VMs send and get untagged
        for vsi in channel.vsis.values():
            if int(eth.dst[:2], 16) & 1 or eth.dst == vsi.vm.mac:
                self._sockets[vsi.vm.server_end].send(inner)

    def _on_port_lldp(self, data: bytes) -> None:
        try:
            cdcp = decode_evb_frame(data).lldpdu.cdcp
        except (CodecError, AttributeError):
            return
        if cdcp is None or cdcp.role != CdcpRole.BRIDGE:
            return
        given = {c.scid: c.svid for c in cdcp.channels[1:]}
        for channel in self._channels.values():
            svid = given.get(channel.scid, 0)
            if svid != channel.svid:
                channel.svid = svid
                channel.reset()

    def _on_channel_frame(self, channel: _Channel, data: bytes, now: float) -> None:
        try:
            frame = decode_evb_frame(data)
        except CodecError:
            return
        if isinstance(frame, LldpFrame):
            evb = frame.lldpdu.evb
            if evb is not None and evb.mode == EvbMode.BRIDGE and channel.bridge_evb is None:
                channel.bridge_evb = evb
                channel.keepalive_at = now  # the first Associates go now
        elif isinstance(frame, EcpAckFrame):
            if channel.outstanding is not None and channel.outstanding[0] == frame.sequence:
                channel.outstanding = None
        elif isinstance(frame, VdpFrame):
            self._send(build_ecp_ack(self._mac, frame.sequence, vlan=channel.tag))
            for _, tlv in frame.vdpdu.vsis_with_manager():
                for vsi in channel.vsis.values():
                    if tlv.is_response and tlv.vsi_id == VsiId.from_uuid(vsi.uuid):
                        vsi.status = tlv.status

    def _from_vm(self, sock: socket.socket, data: bytes) -> None:
        """A VM's frame: up the uplink in its channel's S-tag (none yet: dropped)."""
        name = next(n for n, s in self._sockets.items() if s is sock)
        channel, _ = self._vm_ports.get(name, (None, None))
        if channel is not None and channel.svid:
            tci = channel.svid.to_bytes(2, "big")
            self._send(data[:12] + TPID_STAG.to_bytes(2, "big") + tci + data[12:])


def _open(ifname: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    sock.bind((ifname, ETH_P_ALL))
    return sock


def _receive(sock: socket.socket) -> bytes | None:
    """The next frame the interface received (None for one it sent), its VLAN tag put back
    where the kernel took it off (it hands tags over beside the frame)."""
    data, ancillary, _, address = sock.recvmsg(65535, socket.CMSG_SPACE(_AUXDATA.size))
    if address[2] == PACKET_OUTGOING:
        return None
    for level, kind, value in ancillary:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(value) >= _AUXDATA.size:
            status, _, _, _, _, tci, tpid = _AUXDATA.unpack_from(value)
            if status & TP_STATUS_VLAN_VALID:
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID else 0x8100
                data = data[:12] + struct.pack("!HH", tpid, tci) + data[12:]
    return data
