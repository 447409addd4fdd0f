"""The EVB station behind one server port, behaving like lldpad's (qbg/ecp22.c, vdp22sm.c):

* LLDP: sends its LLDPDU with a station-mode EVB TLV (as lldpad: RRREQ, R 3, RTE 14, RWD 20,
  RKA from --rka) at start and every 30 s; VDP starts once the bridge's LLDPDU with a
  bridge-mode EVB TLV came back, whose R, RTE and RKA (the negotiated maxima) it then uses.
* ECP: one PDU outstanding per port; retransmitted after 10us*2^RTE without an ACK, given up
  after R retries (the next PDU then goes). The next PDU goes when the bridge ACKs (pacing
  "ack", the default: as fast as the ECP window allows) or, as lldpad really does it
  (ecp22.c runs its transmit machine only from the ACK timer), when the ACK timer of an ACKed
  PDU fires (pacing "timer": at most one PDU per 10us*2^RTE per port). Every ECP
  request of the bridge (VDP responses, unsolicited De-Associates) is ACKed at once; one with the
  sequence of the last one delivered is a duplicate: ACKed, not delivered again.
* VDP: one VSI per ECP PDU (lldpad does not batch): an Associate per VM (Manager ID, the bench
  VSI type, a UUID VSIID, one MAC/VID filter entry, VID 0 or a VID of the type). Once granted,
  the same request with the VID granted is sent again every 10us*2^RKA as its keep-alive.
  An unsolicited De-Associate of a held VM is recorded as expired.

Frames are built with struct from per-station prefixes and parsed by offset; the layouts are
checked against app.codec in tests/integration/test_scale_bench.py.
"""

import struct
from collections import deque

EVB_DST = bytes.fromhex("0180c2000000")
ETH_LLDP = 0x88CC
ETH_ECP = 0x8940
ECP_REQUEST = 0x1001  # version 1, op request, subtype VDP
ECP_ACK = 0x1401  # version 1, op ACK, subtype VDP
ASSOCIATE = 3
DE_ASSOCIATE = 4
STATUS_RESPONSE = 0x40
STATUS_KEEP = 0x20
TIME_UNIT = 10e-6

# VM states
NEW, PENDING, HELD, REFUSED, FAILED, EXPIRED, ENDED = range(7)

# Manager ID TLV header (type 5, length 16) and Associate TLV header (type 3, 25 + one
# MAC/VID entry): lldpad's layout, no End TLV (frame 71 octets, no padding needed).
_MGR_TLV = struct.pack("!H", 5 << 9 | 16)
_VSI = struct.Struct("!HB3sBB16sBH6sH")
_U16 = struct.Struct("!H")


def evb_duration(exponent: int) -> float:
    return TIME_UNIT * (1 << exponent)


def response_wait(r: int, rte: int, rwd: int) -> float:
    """How long a station waits for the VDP response to a request: what ECP may take to deliver
    it plus the bridge's resource wait delay, with 50 % margin (the same sum as the bridge's
    keep-alive timeout in 802.1Qbg 41.5.5; 17.5 s for R 3, RTE 14, RWD 20)."""
    return 1.5 * ((1 + 2 * r) * evb_duration(rte) + evb_duration(rwd))


class Vm:
    __slots__ = (
        "index",
        "uuid",
        "mac",
        "vid_req",
        "vid",
        "state",
        "station",
        "gen",
        "t_req",
        "t_ka",
        "t_ok",
    )

    def __init__(self, index: int, uuid: bytes, mac: bytes, vid_req: int, station) -> None:
        self.index = index
        self.uuid = uuid
        self.mac = mac
        self.vid_req = vid_req
        self.vid = None  # granted
        self.state = NEW
        self.station = station
        self.gen = 0  # bumped per request sent, so stale timers are recognised
        self.t_req = 0.0  # first transmission of the pending Associate
        self.t_ka = 0.0  # first transmission of the pending keep-alive (0: none)
        self.t_ok = 0.0  # last successful response


class Station:
    __slots__ = (
        "fabric",
        "switch",
        "port_no",
        "mac",
        "vms",
        "queue",
        "outstanding",
        "seq",
        "rx_last",
        "r",
        "rte",
        "rka",
        "retransmit",
        "ka_interval",
        "resp_wait",
        "evb_seen",
        "_req_prefix",
        "_ack_prefix",
        "lldp_frame",
    )

    def __init__(self, fabric, switch, port_no: int, mac: bytes, lldp_frame: bytes) -> None:
        self.fabric = fabric
        self.switch = switch
        self.port_no = port_no
        self.mac = mac
        self.vms: list[Vm] = []
        # VMs whose next request (Associate of a started VM, keep-alive) waits for the ECP
        # window, in order (lldpad's ECP queue)
        self.queue = deque()
        self.outstanding = None  # [sequence, packet-in, transmissions, first sent, ACKed]
        self.seq = 0
        self.rx_last = None
        self.r, self.rte, self.rka = 3, 14, 20
        self.retransmit = evb_duration(14)
        self.ka_interval = evb_duration(20)
        self.resp_wait = response_wait(3, 14, 20)
        self.evb_seen = False
        self._req_prefix = EVB_DST + mac + _U16.pack(ETH_ECP) + _U16.pack(ECP_REQUEST)
        self._ack_prefix = EVB_DST + mac + _U16.pack(ETH_ECP) + _U16.pack(ECP_ACK)
        self.lldp_frame = lldp_frame

    # sending ------------------------------------------------------------------------------
    def request_frame(self, vm: Vm, vid: int, seq: int) -> bytes:
        f = self.fabric
        return (
            self._req_prefix
            + _U16.pack(seq)
            + _MGR_TLV
            + f.manager_id
            + _VSI.pack(
                ASSOCIATE << 9 | 33, 0, f.type_id3, f.type_version, 5, vm.uuid, 2, 1, vm.mac, vid
            )
        )

    def send_lldp(self) -> None:
        self.switch.packet_in(self.port_no, self.lldp_frame)

    def enqueue(self, vm: Vm, now: float) -> None:
        self.queue.append(vm)
        if self.outstanding is None:
            self.pump(now)

    def pump(self, now: float) -> None:
        """Sends the next queued request if the ECP window is free."""
        queue = self.queue
        fabric = self.fabric
        while self.outstanding is None and queue:
            vm = queue[0]
            if vm.state == NEW:
                queue.popleft()
                vid = vm.vid_req
                vm.state = PENDING
                vm.t_req = now
                fabric.stats.requested += 1
            elif vm.state == HELD:
                queue.popleft()
                vid = vm.vid
                vm.t_ka = now
                fabric.stats.ka_sent += 1
            else:  # refused / ended meanwhile
                queue.popleft()
                continue
            vm.gen += 1
            self.seq = self.seq % 0xFFFF + 1  # lldpad: 1.., never 0
            pin = self.switch.packet_in(self.port_no, self.request_frame(vm, vid, self.seq))
            self.outstanding = [self.seq, pin, 1, now, False]
            fabric.after(now + self.retransmit, self._retransmit_due, self.seq)
            fabric.after(now + (fabric.resp_wait or self.resp_wait), self._response_due, vm, vm.gen)

    def _retransmit_due(self, now: float, seq: int) -> None:
        out = self.outstanding
        if out is None or out[0] != seq:
            return  # ACKed meanwhile
        if out[4]:  # ACKed, pacing "timer": the window opens only now
            self.outstanding = None
            self.pump(now)
            return
        stats = self.fabric.stats
        if out[2] <= self.r:
            out[2] += 1
            stats.ecp_retransmits += 1
            self.switch.punt(out[1])
            self.fabric.after(now + self.retransmit, self._retransmit_due, seq)
            return
        stats.ecp_gave_up += 1  # as lldpad: drop it, the next PDU goes
        self.outstanding = None
        self.pump(now)

    def _response_due(self, now: float, vm: Vm, gen: int) -> None:
        if vm.gen != gen:
            return
        stats = self.fabric.stats
        if vm.state == PENDING:
            vm.state = FAILED  # lldpad's station gives the VSI up (no retry here)
            stats.failed += 1
        elif vm.state == HELD and vm.t_ka:
            vm.t_ka = 0.0
            stats.ka_unanswered += 1
            self.fabric.schedule_keepalive(vm, now)

    # receiving ----------------------------------------------------------------------------
    def on_frame(self, data: bytes, now: float) -> None:
        """A frame the bridge sent out of this port (a packet-out)."""
        if len(data) < 14:
            self.fabric.stats.frames_ignored += 1
            return
        ethertype = (data[12] << 8) | data[13]
        if ethertype == ETH_ECP and len(data) >= 18:
            header = (data[14] << 8) | data[15]
            seq = (data[16] << 8) | data[17]
            if header == ECP_ACK:
                self._on_ack(seq, now)
            elif header == ECP_REQUEST:
                self._on_request(data, seq, now)
            else:
                self.fabric.stats.frames_ignored += 1
        elif ethertype == ETH_LLDP:
            self._on_lldp(data, now)
        else:
            self.fabric.stats.frames_ignored += 1

    def _on_ack(self, seq: int, now: float) -> None:
        out = self.outstanding
        stats = self.fabric.stats
        if out is None or out[0] != seq:
            stats.ecp_acks_unexpected += 1  # late ACK of a PDU given up, or a duplicate
            return
        if out[4]:
            stats.ecp_acks_unexpected += 1  # a second ACK of the same PDU
            return
        stats.ecp_ack_times.append(now - out[3])
        if self.fabric.pace_by_timer:
            out[4] = True
            return
        self.outstanding = None
        if self.queue:
            self.pump(now)

    def _on_request(self, data: bytes, seq: int, now: float) -> None:
        self.switch.packet_in(self.port_no, self._ack_prefix + _U16.pack(seq))
        stats = self.fabric.stats
        if seq == self.rx_last:
            stats.ecp_duplicates_rx += 1
            return
        self.rx_last = seq
        i, n = 18, len(data)
        while i + 2 <= n:
            tlv = (data[i] << 8) | data[i + 1]
            t, length = tlv >> 9, tlv & 0x1FF
            if t == 0:
                break
            v = i + 2
            if 1 <= t <= 4 and length >= 33 and v + length <= n:
                vid = ((data[v + 31] << 8) | data[v + 32]) & 0xFFF
                self._on_vsi(t, data[v], data[v + 6 : v + 22], vid, now)
            i = v + length

    def _on_vsi(self, mode: int, status: int, vsi_id: bytes, vid: int, now: float) -> None:
        fabric = self.fabric
        stats = fabric.stats
        vm = fabric.vms_by_id.get(vsi_id)
        if vm is None or vm.station is not self:
            stats.vdp_unknown += 1
            return
        if not status & STATUS_RESPONSE:
            if mode == DE_ASSOCIATE and vm.state == HELD:
                vm.state = EXPIRED  # keep-alive expiry or a bridge-initiated De-Associate
                fabric.held -= 1
                stats.expired += 1
            else:
                stats.vdp_unexpected += 1
            return
        error = status & 0x0F
        if mode != ASSOCIATE:
            stats.vdp_unexpected += 1
        elif vm.state == PENDING:
            vm.gen += 1  # its response timer is void
            stats.t_last_answer = now
            stats.latency.append(now - vm.t_req)
            stats.held_at.append(fabric.held)
            if error == 0:
                vm.state, vm.vid, vm.t_ok = HELD, vid, now
                fabric.held += 1
                stats.granted += 1
                fabric.schedule_keepalive(vm, now)
            else:
                vm.state = REFUSED
                stats.refused += 1
                stats.refusals[error] = stats.refusals.get(error, 0) + 1
        elif vm.state == HELD and vm.t_ka:
            vm.gen += 1
            stats.ka_times.append(now - vm.t_ka)
            vm.t_ka = 0.0
            if error == 0:
                stats.ka_answered += 1
                vm.t_ok = now
                fabric.schedule_keepalive(vm, now)
            else:
                stats.ka_refused += 1
                if status & STATUS_KEEP:
                    fabric.schedule_keepalive(vm, now)
                else:  # lldpad ends a VSI on an error without KEEP
                    vm.state = ENDED
                    fabric.held -= 1
        elif vm.state == FAILED:
            stats.late_responses += 1  # answered after the station had given up
        else:
            stats.vdp_unexpected += 1

    def _on_lldp(self, data: bytes, now: float) -> None:
        i, n = 14, len(data)
        while i + 2 <= n:
            tlv = (data[i] << 8) | data[i + 1]
            t, length = tlv >> 9, tlv & 0x1FF
            if t == 0:
                return
            v = i + 2
            # IEEE 802.1 OUI 00-80-C2, subtype 0x0D: the EVB TLV, 5 octets of information
            if t == 127 and length == 9 and data[v : v + 4] == b"\x00\x80\xc2\x0d":
                r_rte, mode_rwd, rka = data[v + 6], data[v + 7], data[v + 8]
                if mode_rwd >> 6 == 1:  # bridge mode: its values are the negotiated maxima
                    self.r, self.rte, self.rka = r_rte >> 5, r_rte & 0x1F, rka & 0x1F
                    self.retransmit = evb_duration(self.rte)
                    self.ka_interval = evb_duration(self.rka)
                    self.resp_wait = response_wait(self.r, self.rte, mode_rwd & 0x1F)
                    if not self.evb_seen:
                        self.evb_seen = True
                        self.fabric.on_evb(self, now)
                return
            i = v + length
