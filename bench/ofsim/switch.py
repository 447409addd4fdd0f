"""One simulated OpenFlow 1.3 switch and its TCP connections, one per controller.

The switch (ports, flow table, meters, stations) outlives its connections, so a controller
restart finds the tables as it left them, like Open vSwitch in fail-mode secure. With several
controllers each connection has a role (roles.py: Open vSwitch's rules): packet-ins go to the
MASTER and EQUAL connections, a SLAVE's changes are refused. It takes bundles (ONF extension
230) as Open vSwitch does: per connection, flow-mods added to a bundle are applied at its
commit, all of them, or none when one is malformed.
"""

import asyncio
from collections import deque

from bench.ofsim import ofwire as w
from bench.ofsim import roles as r
from bench.ofsim.flowtable import FlowTable

SERVER, TRUNK = "server", "trunk"


MASTER_LOG = 64  # MASTER requests remembered per switch (a bench kills its leader a few times)


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
        self.conns: dict[int, SwitchConnection] = {}  # controller index -> its connection
        self.roles = r.Roles()
        self._pin_prefix: dict[int, bytes] = {}
        # the last connect-time synchronisation a controller completed (tables read, then a
        # barrier): when its connection came up and ended, the mods it took
        self.t_connected = 0.0
        self.t_ready = 0.0
        self.mods_to_ready = 0
        # (time, generation, controller) of each MASTER request taken, the latest last
        self.masters: deque = deque(maxlen=MASTER_LOG)
        self.connections = 0
        self.msgs_in = [0] * 32
        self.msgs_out = 0
        self.dropped_offline = 0  # packet-ins no connection was to get (no MASTER nor EQUAL)
        self.errors_sent = 0
        self.slave_refusals = 0
        self.role_errors = 0
        self.bundles_committed = 0
        self.bundled_flow_mods = 0

    @property
    def ready(self) -> bool:
        """A controller that may change the switch has synchronised with it."""
        return any(
            conn.ready and self.roles.role(controller) != r.SLAVE
            for controller, conn in self.conns.items()
        )

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
    def punt(self, msg: bytes) -> None:
        """A packet-in (built once: the station keeps it to retransmit) to every connection
        that gets packet-ins."""
        targets = self.roles.packet_in_targets()
        if not targets:
            if not self.fabric.closed:  # the teardown at the end is no outage
                self.dropped_offline += 1
            return
        for controller in targets:
            self.conns[controller].send(msg)

    def packet_in(self, port_no: int, frame: bytes) -> bytes:
        """Punts `frame` as received on `port_no`; returns the message (for retransmission)."""
        msg = w.packet_in(self._pin_prefix[port_no], frame)
        self.punt(msg)
        return msg

    # input --------------------------------------------------------------------------------
    def handle(self, conn: "SwitchConnection", buf: bytes, off: int, end: int, now: float) -> None:
        """One complete message buf[off:end] from `conn`'s controller."""
        msg_type = buf[off + 1]
        self.msgs_in[msg_type & 31] += 1
        if not self.roles.may_send(conn.controller, msg_type):
            self.slave_refusals += 1
            conn.send(w.error(_xid(buf, off), w.OFPET_BAD_REQUEST, r.OFPBRC_IS_SLAVE, buf[off:end]))
        elif msg_type == w.FLOW_MOD:
            if not self.table.flow_mod(buf, off, end):
                self._malformed(conn, buf, off, end)
        elif msg_type == w.PACKET_OUT:
            self._packet_out(conn, buf, off, end, now)
        elif msg_type == w.BARRIER_REQUEST:
            conn.send(w.HEADER.pack(w.OFP_VERSION, w.BARRIER_REPLY, 8, _xid(buf, off)))
            if not conn.ready and conn.tables_read == 3:
                conn.ready = True
                conn.t_ready = now
                self.t_connected, self.t_ready = conn.t_connected, now
                self.mods_to_ready = self._mods() - conn.mods_at_connect
        elif msg_type == w.METER_MOD:
            if not self.table.meter_mod(buf, off, end):
                self._malformed(conn, buf, off, end)
        elif msg_type == w.MULTIPART_REQUEST:
            self._multipart(conn, buf, off, end)
        elif msg_type == w.EXPERIMENTER:
            self._experimenter(conn, buf, off, end)
        elif msg_type == w.ECHO_REQUEST:
            conn.send(w.message(w.ECHO_REPLY, _xid(buf, off), buf[off + 8 : end]))
        elif msg_type == w.FEATURES_REQUEST:
            conn.send(w.features_reply(_xid(buf, off), self.dpid))
        elif msg_type == w.GET_CONFIG_REQUEST:
            conn.send(w.message(w.GET_CONFIG_REPLY, _xid(buf, off), b"\x00\x00\xff\xff"))
        elif msg_type == w.ROLE_REQUEST:
            self._role_request(conn, buf, off, end, now)
        elif msg_type == w.GET_ASYNC_REQUEST:
            conn.send(w.message(w.GET_ASYNC_REPLY, _xid(buf, off), bytes(24)))
        # HELLO, SET_CONFIG, SET_ASYNC, PORT_MOD, TABLE_MOD, GROUP_MOD, ERROR: nothing to answer

    def _role_request(self, conn, buf: bytes, off: int, end: int, now: float) -> None:
        if end - off < 24:
            return self._malformed(conn, buf, off, end)
        role, generation = w.ROLE_BODY.unpack_from(buf, off + 8)
        answer = self.roles.request(conn.controller, role, generation)
        xid = _xid(buf, off)
        if answer.error is not None:
            self.role_errors += 1
            conn.send(w.error(xid, r.OFPET_ROLE_REQUEST_FAILED, answer.error, buf[off:end]))
            return None
        if role == r.MASTER:
            self.masters.append((now, generation, conn.controller))
        conn.send(w.message(w.ROLE_REPLY, xid, w.ROLE_BODY.pack(answer.role, answer.generation)))
        return None

    def _mods(self) -> int:
        return self.table.flow_mods + self.table.meter_mods

    def _malformed(self, conn, buf: bytes, off: int, end: int) -> None:
        self.errors_sent += 1
        conn.send(w.error(_xid(buf, off), w.OFPET_BAD_REQUEST, w.OFPBRC_BAD_LEN, buf[off:end]))

    def _experimenter(self, conn, buf: bytes, off: int, end: int) -> None:
        if end - off < 24:
            return self._malformed(conn, buf, off, end)
        experimenter, exp_type = w.EXPERIMENTER_HEADER.unpack_from(buf, off + 8)
        if experimenter != w.ONF_EXPERIMENTER_ID:
            return self._malformed(conn, buf, off, end)
        if exp_type == w.ONF_ET_BUNDLE_ADD_MESSAGE:
            bundle_id = w.U32.unpack_from(buf, off + 16)[0]
            if bundle_id not in conn.bundles:
                return self._refuse(conn, buf, off, end, w.ONFERR_ET_BAD_ID)
            conn.bundles[bundle_id].append(buf[off + 24 : end])
            return None
        if exp_type != w.ONF_ET_BUNDLE_CONTROL:
            return self._malformed(conn, buf, off, end)
        bundle_id, kind, flags = w.BUNDLE_CONTROL.unpack_from(buf, off + 16)
        if kind == w.BCT_OPEN:
            conn.bundles[bundle_id] = []
        elif kind not in (w.BCT_COMMIT, w.BCT_DISCARD) or bundle_id not in conn.bundles:
            return self._refuse(conn, buf, off, end, w.ONFERR_ET_BAD_ID)
        elif kind == w.BCT_COMMIT and not self._commit(conn.bundles.pop(bundle_id)):
            return self._refuse(conn, buf, off, end, w.ONFERR_ET_FAILED)
        else:
            conn.bundles.pop(bundle_id, None)
        conn.send(w.bundle_reply(_xid(buf, off), bundle_id, kind + 1, flags))
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

    def _refuse(self, conn, buf: bytes, off: int, end: int, exp_type: int) -> None:
        self.errors_sent += 1
        conn.send(w.experimenter_error(_xid(buf, off), exp_type, buf[off:end]))

    def _packet_out(self, conn, buf: bytes, off: int, end: int, now: float) -> None:
        if end - off < 24:
            return self._malformed(conn, buf, off, end)
        _buffer, _in_port, actions_len = w.PACKET_OUT_BODY.unpack_from(buf, off + 8)
        data_at = off + 24 + actions_len
        if data_at > end:
            return self._malformed(conn, buf, off, end)
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

    def _multipart(self, conn, buf: bytes, off: int, end: int) -> None:
        mp_type, _flags = w.MULTIPART.unpack_from(buf, off + 8)
        xid = _xid(buf, off)
        table = self.table
        body = off + 16
        if mp_type in (w.MP_FLOW, w.MP_AGGREGATE):
            if end - body < 40:
                return self._malformed(conn, buf, off, end)
            table_id, out_port, _group, cookie, mask = w.FLOW_STATS_REQUEST.unpack_from(buf, body)
            mlen = w.U16.unpack_from(buf, body + 34)[0]
            oxm = buf[body + 36 : body + 32 + mlen]
            keys = table.select(table_id, cookie, mask, oxm, None, out_port)
            if mp_type == w.MP_FLOW:
                entries = table.flow_stats(keys)
                conn.tables_read |= 1
            else:
                entries = [w.aggregate_entry(len(keys))]
        elif mp_type == w.MP_METER_CONFIG:
            if end - body < 8:
                return self._malformed(conn, buf, off, end)
            entries = table.meter_configs(w.U32.unpack_from(buf, body)[0])
            conn.tables_read |= 2
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
            conn.send(msg)
        return None


def _xid(buf: bytes, off: int) -> int:
    return w.U32.unpack_from(buf, off + 4)[0]


class SwitchConnection(asyncio.Protocol):
    """The TCP side of a SimSwitch towards one controller: frames the byte stream into
    messages, buffers what the switch sends it until the fabric flushes, and keeps what belongs
    to the connection (its open bundles, its connect-time synchronisation)."""

    def __init__(self, switch: SimSwitch, controller: int = 0) -> None:
        self.switch = switch
        self.controller = controller  # index of the controller's address
        self.transport = None
        self.rest = b""
        self.out: list[bytes] = []
        self.bundles: dict[int, list[bytes]] = {}  # open bundle id -> its flow-mods
        self.ready = False
        self.tables_read = 0  # bit 1: flows read, bit 2: meters read
        self.t_connected = 0.0
        self.t_ready = 0.0
        self.mods_at_connect = 0

    def send(self, msg: bytes) -> None:
        if not self.out:
            self.switch.fabric.dirty.append(self)
        self.out.append(msg)
        self.switch.msgs_out += 1

    def flush(self) -> None:
        if self.transport is not None and self.out:
            self.transport.write(b"".join(self.out))
        self.out.clear()

    def connection_made(self, transport) -> None:
        self.transport = transport
        sw = self.switch
        fabric = sw.fabric
        sw.conns[self.controller] = self
        sw.roles.connect(self.controller)
        sw.connections += 1
        self.t_connected = fabric.clock()
        self.mods_at_connect = sw._mods()
        self.send(w.hello())
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
                handle(self, buf, off, off + length, now)
            except Exception:  # a generator bug must not cost the switch its connection
                fabric.internal_error()
            off += length
        self.rest = buf[off:] if off < n else b""
        fabric.flush()

    def connection_lost(self, exc) -> None:
        sw = self.switch
        if sw.conns.get(self.controller) is self:
            del sw.conns[self.controller]
            sw.roles.disconnect(self.controller)
        self.transport = None
        self.out.clear()
        sw.fabric.on_disconnect(sw, self.controller)
