"""The os-ken application: a thin shim between OpenFlow events and the pure logic.

Per switch, app/fabric/switch_sync.py decides what to send; EVB control frames punted by the
switches go to app/session (per-port EVB/ECP sessions). This module only routes events, binds
messages to datapaths and sends them.
"""
import logging
import threading
import time

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER, DEAD_DISPATCHER, MAIN_DISPATCHER, set_ev_cls)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from app.config import Settings
from app.controller.guard import guarded
from app.controller.multipart import MultipartCollector
from app.controller.sender import send_all
from app.events import EventLog
from app.fabric.switch_sync import SwitchSync
from app.flows import ofmsg
from app.rest.api import RestApi
from app.rest.server import RestServer
from app.session.control_plane import ControlPlane
from app.store.sqlite_store import SqliteStore

LOG = logging.getLogger("evb_nms.controller")
# Replies to what we ask at connect time may overtake os-ken's own move to MAIN_DISPATCHER.
_CONNECTED = [CONFIG_DISPATCHER, MAIN_DISPATCHER]


class EvbApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    settings = Settings()  # replaced by the console script before os-ken instantiates the app

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.store = SqliteStore(self.settings.db_path)
        self.event_log = EventLog()
        self.event_log.add_sink(self.store.append_event)
        self.control = ControlPlane(self.event_log)
        self._lock = threading.Lock()
        self._datapaths: dict[int, object] = {}
        self._syncs: dict[int, SwitchSync] = {}
        self._multipart = MultipartCollector()
        self._stopping = threading.Event()
        self.handler_errors = 0  # exceptions caught by app.controller.guard
        self.rest = RestServer(*self.settings.rest_address, RestApi(self).wsgi)

    def start(self):
        thread = super().start()
        self.rest.start()
        self.threads.append(hub.spawn(self._canary_loop))
        self.event_log.emit("controller.started", of_port=self.settings.of_port,
                         rest=self.settings.rest_listen, db=self.settings.db_path)
        return thread

    def stop(self):
        self._stopping.set()
        self.rest.stop()
        self.event_log.emit("controller.stopped")
        super().stop()
        self.store.close()

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
            "punts": self.control.counters_for(s.dpid),
        } for s in syncs]

    # OpenFlow events ----------------------------------------------------------------------
    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev):
        datapath = ev.msg.datapath
        # os-ken's own handler sets datapath.id in another thread, maybe not yet: set it first,
        # the replies to our connect-time requests are routed by it.
        dpid = datapath.id = ev.msg.datapath_id
        sync = SwitchSync(dpid, self.settings.trunk_ports)
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
        self.control.forget_switch(dpid)
        self.event_log.emit("switch.disconnected", switch=sync.name, level=logging.WARNING)

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
        with self._lock:
            sync = self._syncs.get(ev.msg.datapath.id)
        if sync and sync.purpose(ev.msg.xid) == "barrier":
            sync.on_barrier()
            self.event_log.emit("switch.ready", switch=sync.name, ports=len(sync.ports),
                             **sync.last_sync)

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
        replies = self.control.handle_frame(sync.dpid, sync.name, port, bytes(msg.data),
                                            time.monotonic())
        send_all(msg.datapath, [ofmsg.packet_out(out_port, data) for out_port, data in replies])

    @set_ev_cls(ofp_event.EventOFPErrorMsg, MAIN_DISPATCHER)
    @guarded
    def _on_error(self, ev):
        msg = ev.msg
        with self._lock:
            sync = self._syncs.get(msg.datapath.id)
        self.event_log.emit("switch.error", switch=sync.name if sync else None,
                         level=logging.WARNING, type=msg.type, code=msg.code, xid=msg.xid)

    # the canary ---------------------------------------------------------------------------
    def _canary_loop(self):
        while not self._stopping.wait(self.settings.canary_interval):
            with self._lock:
                pairs = [(self._datapaths[d], s) for d, s in self._syncs.items()]
            for datapath, sync in pairs:
                send_all(datapath, sync.canary_probe())
