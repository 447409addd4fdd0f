"""One simulated OpenFlow 1.3 switch and its TCP connection to the controller.

The switch (ports, flow table, meters, stations) outlives its connection, so a controller
restart finds the tables as it left them, like Open vSwitch in fail-mode secure. It takes
bundles (ONF extension 230) as Open vSwitch does: flow-mods added to a bundle are applied at its
commit, all of them, or none when one is malformed.
"""

import asyncio

from bench.ofsim import ofwire as w
from bench.ofsim.flowtable import FlowTable

SERVER, TRUNK = "server", "trunk"


class SimSwitch:
    def __init__(self, fabric, name: str, dpid: int, index: int) -> None:
        self.fabric = fabric
        self.name = name
        self.dpid = dpid
        self.index = index
        self.ports: dict[int, tuple[str, bytes, str]] = {}  # number -> (name, hw_addr, role)
        self.stations: dict = {}  # server port -> Station
        self.peers: dict[int, tuple[SimSwitch, int]] = {}  # trunk port -> (peer, its port)
        self.table = FlowTable()
        self.conn: SwitchConnection | None = None
        self.out: list[bytes] = []
        self._pin_prefix: dict[int, bytes] = {}
        # connect-time synchronisation, as the controller drives it: tables read, then a barrier
        self.ready = False
        self.tables_read = 0  # bit 1: flows read, bit 2: meters read
        self.t_connected = 0.0
        self.t_ready = 0.0
        self.mods_at_connect = 0
        self.mods_to_ready = 0
        self.connections = 0
        self.msgs_in = [0] * 32
        self.msgs_out = 0
        self.dropped_offline = 0
        self.errors_sent = 0
        self.bundles: dict[int, list[bytes]] = {}  # open bundle id -> its flow-mods
        self.bundles_committed = 0
        self.bundled_flow_mods = 0

    def add_port(self, number: int, name: str, role: str) -> None:
        hw = bytes(
            [
                0x02,
                0x0F,
                self.index >> 8 & 0xFF,
                self.index & 0xFF,
                number >> 8 & 0xFF,
                number & 0xFF,
            ]
        )
        self.ports[number] = (name, hw, role)
        self._pin_prefix[number] = w.packet_in_prefix(number)

    # output -------------------------------------------------------------------------------
    def send(self, msg: bytes) -> None:
        if self.conn is None:
            if not self.fabric.closed:  # the teardown at the end is no outage
                self.dropped_offline += 1
            return
        if not self.out:
            self.fabric.dirty.append(self)
        self.out.append(msg)
        self.msgs_out += 1

    def packet_in(self, port_no: int, frame: bytes) -> bytes:
        """Punts `frame` as received on `port_no`; returns the message (for retransmission)."""
        msg = w.packet_in(self._pin_prefix[port_no], frame)
        self.send(msg)
        return msg

    def flush(self) -> None:
        if self.conn is not None and self.out:
            self.conn.transport.write(b"".join(self.out))
        self.out.clear()

    # input --------------------------------------------------------------------------------
    def handle(self, buf: bytes, off: int, end: int, now: float) -> None:
        """One complete message buf[off:end]."""
        msg_type = buf[off + 1]
        self.msgs_in[msg_type & 31] += 1
        if msg_type == w.FLOW_MOD:
            if not self.table.flow_mod(buf, off, end):
                self._malformed(buf, off, end)
        elif msg_type == w.PACKET_OUT:
            self._packet_out(buf, off, end, now)
        elif msg_type == w.BARRIER_REQUEST:
            self.send(w.HEADER.pack(w.OFP_VERSION, w.BARRIER_REPLY, 8, _xid(buf, off)))
            if not self.ready and self.tables_read == 3:
                self.ready = True
                self.t_ready = now
                self.mods_to_ready = self._mods() - self.mods_at_connect
                self.fabric.on_switch_ready(self, now)
        elif msg_type == w.METER_MOD:
            if not self.table.meter_mod(buf, off, end):
                self._malformed(buf, off, end)
        elif msg_type == w.MULTIPART_REQUEST:
            self._multipart(buf, off, end)
        elif msg_type == w.EXPERIMENTER:
            self._experimenter(buf, off, end)
        elif msg_type == w.ECHO_REQUEST:
            self.send(w.message(w.ECHO_REPLY, _xid(buf, off), buf[off + 8 : end]))
        elif msg_type == w.FEATURES_REQUEST:
            self.send(w.features_reply(_xid(buf, off), self.dpid))
        elif msg_type == w.GET_CONFIG_REQUEST:
            self.send(w.message(w.GET_CONFIG_REPLY, _xid(buf, off), b"\x00\x00\xff\xff"))
        elif msg_type == w.ROLE_REQUEST:
            self.send(w.message(w.ROLE_REPLY, _xid(buf, off), buf[off + 8 : end]))
        elif msg_type == w.GET_ASYNC_REQUEST:
            self.send(w.message(w.GET_ASYNC_REPLY, _xid(buf, off), bytes(24)))
        # HELLO, SET_CONFIG, SET_ASYNC, PORT_MOD, TABLE_MOD, GROUP_MOD, ERROR: nothing to answer

    def _mods(self) -> int:
        return self.table.flow_mods + self.table.meter_mods

    def _malformed(self, buf: bytes, off: int, end: int) -> None:
        self.errors_sent += 1
        self.send(w.error(_xid(buf, off), w.OFPET_BAD_REQUEST, w.OFPBRC_BAD_LEN, buf[off:end]))

    def _experimenter(self, buf: bytes, off: int, end: int) -> None:
        if end - off < 24:
            return self._malformed(buf, off, end)
        experimenter, exp_type = w.EXPERIMENTER_HEADER.unpack_from(buf, off + 8)
        if experimenter != w.ONF_EXPERIMENTER_ID:
            return self._malformed(buf, off, end)
        if exp_type == w.ONF_ET_BUNDLE_ADD_MESSAGE:
            bundle_id = w.U32.unpack_from(buf, off + 16)[0]
            if bundle_id not in self.bundles:
                return self._refuse(buf, off, end, w.ONFERR_ET_BAD_ID)
            self.bundles[bundle_id].append(buf[off + 24 : end])
            return None
        if exp_type != w.ONF_ET_BUNDLE_CONTROL:
            return self._malformed(buf, off, end)
        bundle_id, kind, flags = w.BUNDLE_CONTROL.unpack_from(buf, off + 16)
        if kind == w.BCT_OPEN:
            self.bundles[bundle_id] = []
        elif kind not in (w.BCT_COMMIT, w.BCT_DISCARD) or bundle_id not in self.bundles:
            return self._refuse(buf, off, end, w.ONFERR_ET_BAD_ID)
        elif kind == w.BCT_COMMIT and not self._commit(self.bundles.pop(bundle_id)):
            return self._refuse(buf, off, end, w.ONFERR_ET_FAILED)
        else:
            self.bundles.pop(bundle_id, None)
        self.send(w.bundle_reply(_xid(buf, off), bundle_id, kind + 1, flags))
        return None

    def _commit(self, flow_mods: list[bytes]) -> bool:
        """All of a bundle's flow-mods, or none when one of them is malformed."""
        table = self.table
        if not all(table.well_formed(m, 0, len(m)) for m in flow_mods):
            return False
        for m in flow_mods:
            table.flow_mod(m, 0, len(m))
        self.bundles_committed += 1
        self.bundled_flow_mods += len(flow_mods)
        return True

    def _refuse(self, buf: bytes, off: int, end: int, exp_type: int) -> None:
        self.errors_sent += 1
        self.send(w.experimenter_error(_xid(buf, off), exp_type, buf[off:end]))

    def _packet_out(self, buf: bytes, off: int, end: int, now: float) -> None:
        if end - off < 24:
            return self._malformed(buf, off, end)
        _buffer, _in_port, actions_len = w.PACKET_OUT_BODY.unpack_from(buf, off + 8)
        data_at = off + 24 + actions_len
        if data_at > end:
            return self._malformed(buf, off, end)
        frame = buf[data_at:end]
        for port_no in w.output_ports(buf, off + 24, data_at):
            station = self.stations.get(port_no)
            if station is not None:
                station.on_frame(frame, now)
                continue
            peer = self.peers.get(port_no)
            if peer is not None:  # the cable: the peer punts it (its LLDP punt flow)
                peer[0].packet_in(peer[1], frame)
                self.fabric.on_trunk_frame(self, port_no)
        return None

    def _multipart(self, buf: bytes, off: int, end: int) -> None:
        mp_type, _flags = w.MULTIPART.unpack_from(buf, off + 8)
        xid = _xid(buf, off)
        table = self.table
        body = off + 16
        if mp_type in (w.MP_FLOW, w.MP_AGGREGATE):
            if end - body < 40:
                return self._malformed(buf, off, end)
            table_id, out_port, _group, cookie, mask = w.FLOW_STATS_REQUEST.unpack_from(buf, body)
            mlen = w.U16.unpack_from(buf, body + 34)[0]
            oxm = buf[body + 36 : body + 32 + mlen]
            keys = table.select(table_id, cookie, mask, oxm, None, out_port)
            if mp_type == w.MP_FLOW:
                entries = table.flow_stats(keys)
                self.tables_read |= 1
            else:
                entries = [w.aggregate_entry(len(keys))]
        elif mp_type == w.MP_METER_CONFIG:
            if end - body < 8:
                return self._malformed(buf, off, end)
            entries = table.meter_configs(w.U32.unpack_from(buf, body)[0])
            self.tables_read |= 2
        elif mp_type == w.MP_PORT_DESC:
            entries = [
                w.port_entry(number, hw, name)
                for number, (name, hw, _) in sorted(self.ports.items())
            ]
            local_hw = bytes(
                [2, 0xEE, 0, self.index >> 16 & 0xFF, self.index >> 8 & 0xFF, self.index & 0xFF]
            )
            entries.append(w.port_entry(w.OFPP_LOCAL, local_hw, self.name))  # names the bridge
        elif mp_type == w.MP_DESC:
            entries = [w.desc_entry()]
        else:
            entries = []  # statistics this switch does not keep: an empty answer
        for msg in w.multipart_replies(xid, mp_type, entries):
            self.send(msg)
        return None


def _xid(buf: bytes, off: int) -> int:
    return w.U32.unpack_from(buf, off + 4)[0]


class SwitchConnection(asyncio.Protocol):
    """The TCP side of a SimSwitch: frames the byte stream into messages."""

    def __init__(self, switch: SimSwitch) -> None:
        self.switch = switch
        self.transport = None
        self.rest = b""
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport) -> None:
        self.transport = transport
        sw = self.switch
        fabric = sw.fabric
        sw.conn = self
        sw.connections += 1
        sw.ready = False
        sw.tables_read = 0
        sw.t_connected = fabric.clock()
        sw.mods_at_connect = sw._mods()
        sw.bundles.clear()
        sw.out.clear()
        sw.send(w.hello())
        fabric.flush()

    def data_received(self, data: bytes) -> None:
        fabric = self.switch.fabric
        now = fabric.clock()
        buf = self.rest + data if self.rest else data
        off, n = 0, len(buf)
        handle = self.switch.handle
        while n - off >= 8:
            length = (buf[off + 2] << 8) | buf[off + 3]
            if length < 8:  # the stream cannot be framed any more
                self.switch.errors_sent += 1
                self.transport.close()
                return
            if n - off < length:
                break
            try:
                handle(buf, off, off + length, now)
            except Exception:  # a generator bug must not cost the switch its connection
                fabric.internal_error()
            off += length
        self.rest = buf[off:] if off < n else b""
        fabric.flush()

    def connection_lost(self, exc) -> None:
        sw = self.switch
        if sw.conn is self:
            sw.conn = None
            sw.ready = False
        sw.out.clear()
        if not self.closed.done():
            self.closed.set_result(exc)
        sw.fabric.on_disconnect(sw)
