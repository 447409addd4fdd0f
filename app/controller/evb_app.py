"""The os-ken application: a thin shim between OpenFlow events and the pure logic.

Per switch, app/fabric/switch_sync.py decides what to send at connect time; punted EVB frames and
timers go to app/control_plane.py, which returns frames and flow batches. This module only routes
events, binds messages to datapaths, sends them, and tells the control plane when a batch's
barrier has answered (app/controller/batches.py) so that VDP responses follow their flows.
"""
import logging
import queue
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from app.config import Settings
from app.control_plane import ControlPlane, Reaction
from app.controller.batches import BatchTracker
from app.controller.guard import guarded
from app.controller.multipart import MultipartCollector
from app.controller.nms_service import ControllerService
from app.controller.sender import send_all
from app.events import EventLog
from app.faults.monitor import FaultMonitor
from app.fabric.ports import PortRole
from app.fabric.switch_sync import SwitchSync
from app.flows import ofmsg
from app.rest.api import RestApi
from app.rest.server import RestServer
from app.policy.database import VsiTypeDatabase
from app.registry.registry import Registry
from app.store.intent_store import IntentStore
from app.store.sqlite_store import SqliteStore
from app.vcenter.client import VcenterClient
from app.vcenter.notifier import Notifier
from app.vdp.authorizer import Authorizer, lookup_in_database
from app.vdp.bridge import VdpBridge

LOG = logging.getLogger("evb_nms.controller")
TICK_INTERVAL = 0.02  # ECP retransmissions are due every 10us*2^RTE (164 ms at lldpad's RTE 14)
# Punted frames wait here for the frame thread; a flood beyond it is counted and dropped (the
# switch's punt meter should have stopped it first).
FRAME_QUEUE = 50000
# At most this many frames per batch: the control plane's lock is held for one batch, and the
# timers (ECP retransmissions, keep-alive expiry) must not wait long behind it.
FRAME_BATCH = 500
# Replies to what we ask at connect time may overtake os-ken's own move to MAIN_DISPATCHER.
_CONNECTED = [CONFIG_DISPATCHER, MAIN_DISPATCHER]


class EvbApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    # Both replaced by the console script before os-ken instantiates the app.
    settings = Settings()
    policies = VsiTypeDatabase()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plane_lock = threading.RLock()  # the control plane is single-threaded logic
        self.store = SqliteStore(self.settings.db_path)
        self.event_log = EventLog()
        self.event_log.add_sink(self.store.append_event)
        self.service = ControllerService(self)
        # The VSI type database: policy files plus the profiles the VM manager pushed.
        self.registry = Registry(self.policies, self.store, self.service,
                                 emit=self.event_log.emit)
        self.policies = self.registry.database()
        self.vcenter, self._lookups_done = None, queue.SimpleQueue()
        lookup = lookup_in_database
        if self.settings.vcenter_url:
            # Lookups run on the client's workers; their answers are replayed by the tick loop.
            self.vcenter = VcenterClient(self.settings.vcenter_url,
                                         timeout=self.settings.vcenter_timeout,
                                         ttl=self.settings.vcenter_ttl,
                                         on_done=lambda query, _: self._lookups_done.put(query))
            lookup = self.vcenter.profile_lookup
            self.notifier = Notifier(self.settings.vcenter_url.rstrip("/") + "/v1/notifications",
                                     timeout=self.settings.vcenter_timeout)
            self.event_log.add_sink(self.notifier)
        self.monitor = FaultMonitor(self.event_log, self.store, self._vm_places)
        self.event_log.add_sink(self.monitor)  # the last sink (see app/faults/monitor.py)
        self.bridge = VdpBridge(Authorizer(lambda: self.policies, lookup=lookup,
                                           maintenance=self._maintenance_reason))
        self.intent_store = IntentStore(self.settings.db_path)
        self.control = ControlPlane(self.event_log, self.bridge, save=self.intent_store.save,
                                    evb_config=self.settings.evb_config)
        intent = self.intent_store.load()
        if intent:  # before any switch connects: they are reconciled against it, not flushed
            self.control.restore(intent, self.policies, time.monotonic())
        self._batches = BatchTracker()
        self._lock = threading.Lock()
        self._datapaths: dict[int, object] = {}
        self._syncs: dict[int, SwitchSync] = {}
        self._multipart = MultipartCollector()
        self._stopping = threading.Event()
        self._frames: queue.Queue = queue.Queue(FRAME_QUEUE)
        self.frames_dropped = 0  # punted frames the queue had no room for
        self.handler_errors = 0  # exceptions caught by app.controller.guard
        self.rest = RestServer(*self.settings.rest_address, RestApi(
            self.service, self.registry, self.store, self.monitor,
            self.settings.api_tokens).wsgi)

    def start(self):
        thread = super().start()
        self.rest.start()
        self.threads.append(hub.spawn(self._canary_loop))
        self.threads.append(hub.spawn(self._tick_loop))
        self.threads.append(hub.spawn(self._frame_loop))
        self.event_log.emit("controller.started", of_port=self.settings.of_port,
                            rest=self.settings.rest_listen, db=self.settings.db_path,
                            vsi_types=len(self.policies))
        return thread

    def stop(self):
        self._stopping.set()
        self.rest.stop()
        self.event_log.emit("controller.stopped")
        super().stop()
        if self.vcenter is not None:
            self.notifier.flush(2)
            self.notifier.close()
            self.vcenter.close()
        self.monitor.close()
        self.store.close()
        self.intent_store.close()

    # status for the REST layer -------------------------------------------------------------
    def switches_snapshot(self) -> list[dict]:
        with self._lock:
            syncs = list(self._syncs.values())
        return [{
            "dpid": f"{s.dpid:016x}",
            "name": s.name,
            "state": s.state.value,
            "last_sync": dict(s.last_sync),
            "ports": [{"number": p.number, "name": p.name, "role": p.role.value, "up": p.up}
                      for p in sorted(s.ports.values(), key=lambda p: p.number)],
            "punts": self._punt_counters(s.dpid),
        } for s in syncs]

    def _maintenance_reason(self, port) -> str | None:
        """The authorizer's question (asked with the control plane's lock held)."""
        record = self.monitor.in_maintenance(self.control.switches.names(port))
        return record.reason if record else None

    def _vm_places(self, where) -> list:
        """The fault monitor's question (asked from event sinks, maybe with the lock held)."""
        with self.plane_lock:
            return self.control.vm_places(where)

    def _punt_counters(self, dpid: int) -> dict:
        with self.plane_lock:
            return self.control.counters_for(dpid)

    # OpenFlow events ----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev):
        datapath = ev.msg.datapath
        # os-ken's own handler sets datapath.id in another thread, maybe not yet: set it first,
        # the replies to our connect-time requests are routed by it.
        dpid = datapath.id = ev.msg.datapath_id
        sync = SwitchSync(dpid, self.settings.trunk_ports, extra_flows=self._vm_flows,
                          extra_meters=self._vm_meters)
        with self._lock:
            self._datapaths[dpid] = datapath
            self._syncs[dpid] = sync
        address = datapath.address[0] if datapath.address else None
        self.event_log.emit("switch.connected", switch=sync.name, address=address)
        send_all(datapath, sync.on_features())

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    @guarded
    def _on_disconnect(self, ev):
        dpid = ev.datapath.id
        if dpid is None:
            return
        with self._lock:
            if self._datapaths.get(dpid) is not ev.datapath:
                return  # an older connection of a switch that has reconnected already
            del self._datapaths[dpid]
            sync = self._syncs.pop(dpid)
        self._multipart.forget(dpid)
        self.event_log.emit("switch.disconnected", switch=sync.name, level=logging.WARNING)
        with self.plane_lock:
            self._confirm(self._batches.on_disconnect(dpid))
            self.react(self.control.switch_gone(dpid, time.monotonic()))

    def _reply_for(self, ev):
        """(datapath, sync, purpose, body) of a complete multipart reply, or None."""
        datapath = ev.msg.datapath
        with self._lock:
            sync = self._syncs.get(datapath.id)
        if sync is None:
            return None
        body = self._multipart.add(datapath.id, ev.msg)
        if body is None:
            return None
        return datapath, sync, sync.purpose(ev.msg.xid), body

    @set_ev_cls(ofp_event.EventOFPPortDescStatsReply, _CONNECTED)
    @guarded
    def _on_port_desc(self, ev):
        reply = self._reply_for(ev)
        if reply and reply[2] == "ports":
            datapath, sync, _, body = reply
            send_all(datapath, sync.on_ports(body))
            with self.plane_lock:
                self.react(self.control.switch_ports(sync.dpid, sync.name, sync.ports,
                                                      time.monotonic()))
            self.store.record_switch(sync.name, sync.name, time.time())

    @set_ev_cls(ofp_event.EventOFPMeterConfigStatsReply, _CONNECTED)
    @guarded
    def _on_meter_config(self, ev):
        reply = self._reply_for(ev)
        if reply and reply[2] == "meters":
            datapath, sync, _, body = reply
            send_all(datapath, sync.on_meters(body))

    @set_ev_cls(ofp_event.EventOFPFlowStatsReply, _CONNECTED)
    @guarded
    def _on_flow_stats(self, ev):
        reply = self._reply_for(ev)
        if not reply:
            return
        datapath, sync, purpose, body = reply
        if purpose == "flows":
            send_all(datapath, sync.on_flows(body))
        elif purpose == "canary":
            msgs = sync.on_canary(body)
            if msgs:
                self.event_log.emit("switch.flows_lost", switch=sync.name, level=logging.WARNING,
                                 action="resync")
            send_all(datapath, msgs)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, _CONNECTED)
    @guarded
    def _on_barrier(self, ev):
        if self._batches.owns(ev.msg.xid):
            with self.plane_lock:
                self._confirm(self._batches.on_barrier(ev.msg.datapath.id, ev.msg.xid))
            return
        with self._lock:
            sync = self._syncs.get(ev.msg.datapath.id)
        if sync and sync.purpose(ev.msg.xid) == "barrier":
            sync.on_barrier()
            with self.plane_lock:
                self.react(self.control.switch_ready(sync.dpid))
            # The server ports down at connect time: no port status will say so (app/faults).
            down = sorted(p.name for p in sync.ports.values()
                          if p.role is PortRole.SERVER and not p.up)
            self.event_log.emit("switch.ready", switch=sync.name, ports=len(sync.ports),
                                server_ports_down=down, **sync.last_sync)

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _on_port_status(self, ev):
        msg = ev.msg
        with self._lock:
            sync = self._syncs.get(msg.datapath.id)
        if sync is None:
            return
        port, msgs = sync.on_port_status(msg.reason, msg.desc)
        if port is None:
            return
        send_all(msg.datapath, msgs)
        with self.plane_lock:
            self.react(self.control.switch_ports(sync.dpid, sync.name, sync.ports,
                                                  time.monotonic()))
        change = {ofp.OFPPR_ADD: "added", ofp.OFPPR_DELETE: "deleted"}.get(msg.reason, "modified")
        self.event_log.emit("port." + change, switch=sync.name, port=port.name,
                         role=port.role.value, up=port.up)

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev):
        msg = ev.msg
        with self._lock:
            sync = self._syncs.get(msg.datapath.id)
        in_port = msg.match.get("in_port")
        port = sync.ports.get(in_port) if sync else None
        if port is None:
            return
        try:
            self._frames.put_nowait((sync.dpid, port, bytes(msg.data)))
        except queue.Full:
            self.frames_dropped += 1

    def _frame_loop(self):
        """Punted frames in batches: each frame's ACK (and LLDP answer) leaves as soon as its
        session has seen it, then the batch's VDP requests are planned together: one flow
        batch and one barrier per switch for all of them (app/control_plane.py)."""
        while not self._stopping.is_set():
            try:
                batch = [self._frames.get(timeout=0.1)]
            except queue.Empty:
                continue
            while len(batch) < FRAME_BATCH:
                try:
                    batch.append(self._frames.get_nowait())
                except queue.Empty:
                    break
            try:
                with self.plane_lock:
                    for dpid, port, data in batch:
                        self.react(self.control.receive(dpid, port, data, time.monotonic()))
                    self.react(self.control.process(time.monotonic()))
            except Exception:  # one bad batch must not end the frame thread
                self.handler_errors += 1
                LOG.exception("punted frames failed")

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def _on_error(self, ev):
        msg = ev.msg
        with self._lock:
            sync = self._syncs.get(msg.datapath.id)
        self.event_log.emit("switch.error", switch=sync.name if sync else None,
                            level=logging.WARNING, type=msg.type, code=msg.code, xid=msg.xid)
        if self._batches.owns(msg.xid):
            with self.plane_lock:
                self._batches.on_error(msg.datapath.id, msg.xid,
                                       f"OpenFlow error type {msg.type} code {msg.code}")

    # the canary ---------------------------------------------------------------------------
    def _canary_loop(self):
        while not self._stopping.wait(self.settings.canary_interval):
            with self._lock:
                pairs = [(self._datapaths[d], s) for d, s in self._syncs.items()]
            for datapath, sync in pairs:
                send_all(datapath, sync.canary_probe())

    # the control plane's reactions -------------------------------------------------------
    def _vm_flows(self, dpid: int) -> list:
        with self.plane_lock:
            return self.control.vm_flows(dpid)

    def _vm_meters(self, dpid: int) -> dict:
        with self.plane_lock:
            return self.control.vm_meters(dpid)

    def react(self, reaction: Reaction) -> None:
        """Sends what the control plane returned. Called with _plane_lock held."""
        now = time.monotonic()
        with self._lock:
            datapaths = dict(self._datapaths)
        for dpid, port_no, frame in reaction.packets:  # first: ECP ACKs never wait for flows
            datapath = datapaths.get(dpid)
            if datapath is not None:
                send_all(datapath, [ofmsg.packet_out(port_no, frame)])
        for batch in reaction.batches:
            datapath = datapaths.get(batch.dpid)
            if datapath is None:
                continue  # reconciled when it reconnects
            barrier = datapath.ofproto_parser.OFPBarrierRequest(None)
            send_all(datapath, self._batches.stamp(reaction.ticket, batch.dpid, batch.msgs,
                                                   barrier, now))
        if reaction.ticket is not None and not any(b.dpid in datapaths for b in reaction.batches):
            self.react(self.control.flows_confirmed(reaction.ticket, {}, now))

    def _confirm(self, completed: list[tuple[int, dict]]) -> None:
        for ticket, failed in completed:
            self.react(self.control.flows_confirmed(ticket, failed, time.monotonic()))

    def _wake_closed_connections(self):
        """With native threads os-ken reports a lost switch (DEAD_DISPATCHER) only when the
        connection's send thread wakes up, i.e. at our next message to it (the canary, seconds
        later): once the receive side has closed the socket, an empty send wakes it at once."""
        with self._lock:
            datapaths = list(self._datapaths.values())
        for datapath in datapaths:
            if datapath.socket.fileno() == -1:
                datapath.send(b"")

    def _tick_loop(self):
        while not self._stopping.wait(TICK_INTERVAL):
            try:
                self._wake_closed_connections()
                with self.plane_lock:
                    now = time.monotonic()
                    self._confirm(self._batches.expire(now))
                    while not self._lookups_done.empty():
                        self.react(self.control.lookup_done(self._lookups_done.get(), now))
                    self.react(self.control.tick(now))
            except Exception:  # the timers must survive any bug in one tick
                self.handler_errors += 1
                LOG.exception("control plane tick failed")
