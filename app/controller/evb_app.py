"""The os-ken application: a thin shim between OpenFlow events and the pure logic.

Every OpenFlow event becomes one call on app/fabric_control.py's FabricControl, which owns the
switches and the control plane; what it returns is bound to the switches' datapaths and sent
(app/controller/sender.py). The shim keeps what is os-ken's or a thread's: the datapaths, the
work queue, the timers, the REST server, and the one lock that serializes the pure logic.

os-ken's threads only queue events (and send a station's ECP ACK, which needs no state:
FabricControl.ecp_ack): one worker thread takes them in order, in batches, with the lock. So a
long batch never stalls os-ken's event thread, whose queue (128 events) would otherwise fill and
stop every switch connection's receive loop, ECP ACKs included. The timer
thread (ECP retransmissions, keep-alive expiry) takes the lock between batches; the REST
service takes it for its calls.
"""

import collections
import functools
import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable

from os_ken.base import app_manager
from os_ken.controller import ofp_event
from os_ken.controller.handler import (
    CONFIG_DISPATCHER,
    DEAD_DISPATCHER,
    HANDSHAKE_DISPATCHER,
    MAIN_DISPATCHER,
    set_ev_cls,
)
from os_ken.lib import hub
from os_ken.ofproto import ofproto_v1_3 as ofp

from app.codec.frame import is_ecp_ack, vm_frame_source
from app.codec.probe import is_probe
from app.config import Settings
from app.control_plane import ControlPlane
from app.controller.guard import guarded
from app.controller.leadership import Leadership
from app.controller.nms_service import ControllerService
from app.controller.sender import send_all
from app.controller.work import WorkQueues
from app.events import EventLog
from app.fabric.connections import Adopt, Probe, Release, Report, SwitchConnections
from app.fabric_control import FabricControl, Out
from app.faults.monitor import FaultMonitor
from app.faults.subscriptions import Subscribers
from app.flows import flow_stats_wire
from app.ha import EXIT_DEPOSED
from app.ha.election import Election, Leader, leader_key
from app.ha.roles import deposing_error
from app.metrics import Metrics
from app.policy.database import VsiTypeDatabase
from app.registry.pools import VlanPools
from app.registry.registry import Registry
from app.rest.api import RestApi
from app.rest.leader_forward import LeaderForward
from app.rest.listener import rest_server
from app.rest.tokens import TokenSource
from app.store.base import Fenced
from app.store.opening import open_stores
from app.vcenter import routes as vcenter_routes
from app.vcenter.destinations import DestinationPolicy
from app.vcenter.notifier import DeliveryPool
from app.vcenter.vm_report import ReportCursor
from app.vdp.authorizer import Authorizer, lookup_in_database
from app.vdp.bridge import VdpBridge
from app.vdp.locations import LocationHistory
from app.vdp.port_tenants import PortTenants

LOG = logging.getLogger("evb_nms.controller")
TICK_INTERVAL = 0.02  # ECP retransmissions are due every 10us*2^RTE (164 ms at lldpad's RTE 14)
# The VM statistics polls are spread over their interval (app/fabric/poll_schedule.py): checked
# this often, i.e. at most this late.
STATS_TICK = 0.1
# The audit and the probes are looked at this often (more often for an audit above 10/s: it
# sends one request at a time).
BACKGROUND_TICK = 0.1
MIRROR_WAIT = 2.0  # seconds a takeover waits for the watch to reach the election's revision
# OpenFlow events wait for the worker thread, switch events and punted frames each in a FIFO this
# long; a flood beyond it is counted and dropped (the switches' punt meters should stop it first).
WORK_QUEUE = 50000
# At most this many events per batch: the lock is held for one batch, and the timers (ECP
# retransmissions, keep-alive expiry) must not wait long behind it.
WORK_BATCH = 500
# Sends of fewer messages delay a switch's echo reply by 10 ms at most (MESSAGE_TIME): not
# worth telling the liveness checks.
BACKLOG_NOTED = 100
# Messages that only prove the switch alive (app/fabric/connections.py).
_LIVENESS_ONLY = [
    ofp_event.EventOFPEchoReply,
    ofp_event.EventOFPEchoRequest,
    ofp_event.EventOFPRoleReply,
]
# Replies to what we ask at connect time may overtake os-ken's own move to MAIN_DISPATCHER.
_CONNECTED = [CONFIG_DISPATCHER, MAIN_DISPATCHER]
_MULTIPART_REPLIES = [
    ofp_event.EventOFPPortDescStatsReply,
    ofp_event.EventOFPMeterConfigStatsReply,
    ofp_event.EventOFPMeterStatsReply,
    ofp_event.EventOFPFlowStatsReply,
]


class EvbApp(app_manager.OSKenApp):
    OFP_VERSIONS = [ofp.OFP_VERSION]
    # Both replaced by the console script before os-ken instantiates the app. `policies` is the
    # policy files' database: the registry adds the pushed profiles and owns the result.
    settings = Settings()
    policies = VsiTypeDatabase()
    # The REST API's tokens in force (SIGHUP reloads them); None: settings.api_tokens.
    tokens: TokenSource | None = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        flow_stats_wire.install()  # switches' flows parsed only as far as reconciling needs
        # Re-entrant: event sinks called with it held ask the control plane again (_vm_places).
        self.lock = threading.RLock()
        self.store, self.intent_store = open_stores(self.settings)
        self.event_log = EventLog()
        self.event_log.add_sink(self.store.append_event)
        self.metrics = Metrics()
        self.event_log.add_sink(self.metrics.on_event)
        self._lookups_done = queue.SimpleQueue()
        lookup = lookup_in_database
        # The VM managers (app/vcenter/routes.py): lookups run on their clients' workers, their
        # answers are replayed by the tick loop; each hears of its own VSIs.
        managers = vcenter_routes.build(
            self.settings,
            on_done=lambda query, _: self._lookups_done.put(query),
            vet=lambda profile: self.registry.refusal_of_looked_up(profile),
        )
        self.vcenter, self.notifier = managers or (None, None)
        if managers is not None:
            lookup = managers[0].profile_lookup
            self.event_log.add_sink(managers[1])
        self.monitor = FaultMonitor(
            self.event_log,
            self.store,
            self._vm_places,
            subscribers=Subscribers(
                destinations=DestinationPolicy(self.settings.webhook_allow),
                quota=self.settings.subscription_quota,
                pool=lambda: DeliveryPool(
                    self.settings.webhook_workers, self.settings.webhook_queue
                ),
            ),
        )
        self.event_log.add_sink(self.monitor)  # the last sink (see app/faults/monitor.py)
        # The registry pushes its changes to the service, which needs the bridge: the bridge
        # asks the registry for the database only once a request arrives.
        bridge = VdpBridge(
            Authorizer(
                lambda: self.registry.database(),
                lookup=lookup,
                maintenance=self._maintenance_reason,
                group_ids=lambda port: self.fabric.control.group_ids_at(port),
                policy=self.settings.admission,
                registrations=lambda: self.registry,
                port_tenants=PortTenants(
                    self.settings.port_tenants,
                    lambda port: self.fabric.control.switches.names(port),
                ).refusal,
            )
        )
        self.fabric = FabricControl(
            ControlPlane(
                self.event_log,
                bridge,
                save=self.intent_store.save,
                evb_settings=self.settings.evb_port_settings,
                cdcp_config=self.settings.cdcp_config,
                locations=LocationHistory(
                    saved=self.store.locations(),
                    save=self.store.save_locations,
                    host_of=self._host_at,
                ),
                observer=self.metrics,
            ),
            self.settings.trunk_ports,
            record_switch=self._record_switch,
            stats_interval=self.settings.stats_interval,
            audit_rate=self.settings.audit_rate,
            probe_vlans=self.settings.probe_vlans,
            probe_interval=self.settings.probe_interval,
            expected_timeout=self.settings.expected_switch_timeout,
        )
        self._datapaths: dict[int, object] = {}
        # Which connection speaks for each dpid (app/fabric/connections.py); os-ken's event
        # thread and the tick thread (its deadlines) ask it under their own lock, never the
        # logic's.
        self._connections = SwitchConnections(
            self.settings.of_allowed_dpids,
            is_open=_is_open,
            echo_interval=self.settings.of_echo_interval,
            echo_timeout=self.settings.of_echo_timeout,
        )
        self._connections_lock = threading.Lock()
        self.stray_messages = 0  # from connections that do not speak for a dpid: dropped
        self.service = ControllerService(self.fabric, bridge, self.lock, self._send)
        self.metrics.watch(
            switches=self.service.switches,
            vsi_counts=self.service.vsi_counts,
            alarms=lambda: self.monitor.alarms(None, active_only=True),
            webhooks=self._webhook_stats,
            port_stats=self.service.port_stats,
            # Two ints, read without the lock.
            stats_dropped=lambda: {
                "malformed": self.fabric.stats.malformed,
                "unknown": self.fabric.stats.unknown,
            },
        )
        self.registry = Registry(
            self.policies,
            self.store,
            self.service,
            emit=self.event_log.emit,
            pools=VlanPools(self.settings.vlan_pools, required=self.settings.vlan_pools_required),
            max_profiles=self.settings.max_profiles_per_tenant,
        )
        # Several controllers on one etcd prefix: only the elected leader restores the intent
        # and takes the switches (_take_over); alone, this one does it now.
        self.election, self.leadership = self._election()
        if self.election is None:
            intent = self.intent_store.load()
            if intent:  # before any switch connects: they are reconciled against it, not flushed
                self.fabric.control.restore(intent, self.registry.database(), time.monotonic())
            self.fabric.expect_switches(self.store.switches(), time.monotonic())
        self._stopping = threading.Event()
        self._work = WorkQueues(WORK_QUEUE)
        self.handler_errors = 0  # exceptions caught by app.controller.guard
        api = RestApi(
            self.service,
            self.registry,
            self.store,
            self.monitor,
            self.tokens or self.settings.api_tokens,
            metrics=self.metrics,
            ha_status=self._ha_status if self.election is not None else None,
        ).wsgi
        if self.election is not None:
            self._forward = LeaderForward(api, self.election, self.settings)
            api = self._forward.wsgi
            self.metrics.watch_ha(self._ha_status)
        self.rest = rest_server(self.settings, api)
        self.following = None  # with etcd, the caches follow what other controllers store
        if self.settings.store == "etcd":
            from app.controller.store_following import follow_store

            self.following = follow_store(self)

    def start(self):
        thread = super().start()
        self.rest.start()
        if self.election is not None:
            self.election.start()
        self.threads.append(hub.spawn(self._canary_loop))
        if self.settings.stats_interval:
            self.threads.append(hub.spawn(self._stats_loop))
        if self.settings.audit_rate or self.settings.probe_vlans:
            self.threads.append(hub.spawn(self._background_loop))
        self.threads.append(hub.spawn(self._tick_loop))
        self.threads.append(hub.spawn(self._work_loop))
        self.event_log.emit(
            "controller.started",
            of_port=self.settings.of_port,
            rest=self.settings.rest_listen,
            store=self.settings.store,
            db=self.settings.db_path
            if self.settings.store == "sqlite"
            else ",".join(self.settings.etcd_endpoints) + self.settings.etcd_prefix,
            vsi_types=len(self.registry.database()),
        )
        return thread

    def _webhook_stats(self) -> dict[str, dict[str, int]]:
        """Delivery counters: the VM manager's notifier, the fault subscribers' summed."""
        stats = self.notifier.stats() if self.notifier is not None else {}
        summed: dict[str, int] = {}
        for subscription in self.monitor.subscribers.list(None):
            for result, count in subscription["delivery"].items():
                summed[result] = summed.get(result, 0) + count
        return {**stats, "subscribers": summed} if summed else stats

    def stop(self):
        self._stopping.set()
        if self.election is not None:
            self.election.stop()  # a leader hands over at once
        self.rest.stop()
        self.event_log.emit("controller.stopped")
        super().stop()
        if self.vcenter is not None and self.notifier is not None:
            self.notifier.flush(2)
            self.notifier.close()
            self.vcenter.close()
        if self.following is not None:
            self.following.stop()
        self.monitor.close()
        self.store.close()
        self.intent_store.close()

    # leadership (docs/ha.md) --------------------------------------------------------------
    def _election(self) -> tuple[Election | None, Leadership | None]:
        if self.settings.store != "etcd":
            return None, None
        from app.store.etcd_kv import EtcdKv  # a controller on SQLite needs no etcd client

        ttl = self.settings.leader_lease_ttl
        controller_id, url = self.settings.ha_identity
        election = Election(
            # Its own client, answering within half a lease: a renewal must not wait longer.
            EtcdKv(self.settings.etcd_endpoints, max(0.5, ttl / 2)),
            self.settings.etcd_prefix,
            controller_id,
            url,
            ttl,
            on_elected=self._take_over,
            on_leader=self._follow_leader,
            on_deposed=self._deposed,
        )
        return election, Leadership(self._adopt)

    def _take_over(self, generation: int) -> None:
        """This controller was elected: the intent as the store holds it, saved from now on
        only while it leads; then every switch held, as MASTER, reconciled without a flush."""
        assert self.leadership is not None
        try:
            self.intent_store.fence(leader_key(self.settings.etcd_prefix), generation)
            intent = self._intent_at(generation)
            remembered = self.store.switches()
            with self.lock:
                now = time.monotonic()
                if intent:
                    self.fabric.control.restore(intent, self.registry.database(), now)
                self.fabric.expect_switches(remembered, now)
            with self._connections_lock:
                self.leadership.lead(generation)
                switches = len(self._datapaths)
        except Exception as err:  # a leader that cannot take over must not hold the key
            LOG.exception("takeover failed")
            self._deposed(f"the takeover failed: {err}")
            return
        self.event_log.emit(
            "ha.elected",
            generation=generation,
            switches=switches,
            vsis=len(intent["vsis"]) if intent else 0,
        )

    def _ha_status(self) -> dict:
        assert self.election is not None
        return {
            **self.election.status(),
            "store": "etcd",
            "switches": len(self._datapaths),
            "forwarded": self._forward.forwarded,
            "forward_failures": self._forward.failed,
            "leases_revoked": self.election.revoked,
            **self._following_counters(),
        }

    def _following_counters(self) -> dict[str, int]:
        following = self.following
        if following is None:
            return {}
        return {
            "store_changes_applied": following.feed.applied,
            "store_changes_failed": following.feed.failed,
            "store_reloads": following.feed.reloads,
            "store_values_dropped": following.dropped,
        }

    def _intent_at(self, generation: int) -> dict | None:
        """The intent as of the election: the mirror the store's watch keeps (no read of the
        whole intent from etcd), once it has seen every change up to the winning transaction,
        the registry's included (one watch hands both over in revision order); etcd's copy if
        the watch lags further than MIRROR_WAIT."""
        mirror = self.following.mirror if self.following is not None else None
        if mirror is not None and mirror.wait_for(generation, MIRROR_WAIT):
            return mirror.intent()
        LOG.warning("the store's watch lags behind the election: the intent is read from etcd")
        return self.intent_store.load()

    def _follow_leader(self, leader: Leader | None) -> None:
        assert self.leadership is not None
        with self._connections_lock:
            self.leadership.follow(leader)
        if leader is not None:
            self.event_log.emit(
                "ha.following", leader=leader.id, url=leader.url, generation=leader.generation
            )

    def _deposed(self, reason: str) -> None:
        """Crash-only: a controller that no longer leads stops at once (its supervisor starts
        it again as a follower); the store and the switches refuse what it would still send."""
        self.event_log.emit("ha.deposed", level=logging.ERROR, reason=reason)
        logging.shutdown()
        os._exit(EXIT_DEPOSED)

    def _adopt(self, dpid: int, conn, address: str | None) -> None:
        """The fabric takes the switch (called with the connections lock held)."""
        self._datapaths[dpid] = conn
        self._queue(functools.partial(self.fabric.switch_connected, dpid, address))

    # the pure logic's questions and messages ---------------------------------------------
    def _maintenance_reason(self, port) -> str | None:
        """The authorizer's question (asked with the lock held)."""
        record = self.monitor.in_maintenance(self.fabric.control.switches.names(port))
        return record.reason if record else None

    def _host_at(self, port) -> str | None:
        """The location history's question (asked with the lock held): the name of the host
        the port leads to, by registration or by its station's LLDP (app/registry/inventory.py)."""
        control = self.fabric.control
        switch, name = control.switches.names(port)
        host = self.registry.state.inventory.host_at(switch, name, control.station_mac(port))
        return host.name if host is not None else None

    def _vm_places(self, where) -> list:
        """The fault monitor's question (asked from event sinks, maybe with the lock held)."""
        with self.lock:
            return self.fabric.control.vm_places(where)

    def _record_switch(self, dpid: int, name: str) -> None:
        self.store.record_switch(f"{dpid:016x}", name, time.time())

    def _send(self, out: Out) -> None:
        """Called with the lock held, so messages reach each switch in the order planned. A
        large send delays the switches' echo replies: the liveness checks are told."""
        send_all(self._datapaths, out)
        if len(out) < BACKLOG_NOTED:
            return
        now = time.monotonic()
        with self._connections_lock:
            for dpid, messages in collections.Counter(dpid for dpid, _ in out).items():
                if (datapath := self._datapaths.get(dpid)) is not None:
                    self._connections.sent(datapath, messages, now)

    def _save(self) -> None:
        """With the lock held, once a batch's or a tick's messages are sent (FabricControl.save);
        a failing disk is logged and tried again at the next one, never the end of the thread."""
        try:
            self.fabric.save(time.monotonic())
        except Fenced as err:  # another controller leads: nothing more of ours may happen
            self._deposed(str(err))
        except Exception:
            self.handler_errors += 1
            LOG.exception("saving the intent failed")

    def _queue(self, call: Callable[[float], Out | None]) -> None:
        """Hands one switch event to the worker thread (os-ken's threads never wait for the
        lock)."""
        self._work.put_event(call)

    # OpenFlow events ----------------------------------------------------------------------
    # connections -------------------------------------------------------------------------
    def _dpid_of(self, datapath) -> int | None:
        """The dpid `datapath` speaks for, now heard from (any message proves a switch alive);
        None (counted) for any other connection, whose messages are dropped: a refused or
        waiting duplicate must not act as the switch. (Not datapath.id: os-ken sets it from
        whatever features reply the peer sent.)"""
        with self._connections_lock:
            io = self._carry_out(self._connections.heard(datapath, time.monotonic()))
            dpid = self._connections.dpid_of(datapath)
            following = self.leadership is not None and not self.leadership.leading
        _connection_io(io)
        if dpid is None:
            self.stray_messages += 1
        elif following:
            return None  # a follower's switches are not its to hear
        return dpid

    def _connection_steps(self, decide: Callable[[SwitchConnections, float], list]) -> None:
        """Carries out what SwitchConnections decides."""
        with self._connections_lock:
            io = self._carry_out(decide(self._connections, time.monotonic()))
        _connection_io(io)

    def _carry_out(self, steps: list) -> list:
        """With the connections lock held: the routing table and the fabric's events change in
        the order decided. Returns what is left to do after the lock: closing and probing."""
        io = []
        if steps:
            following = self.leadership is not None and not self.leadership.leading
            for step in steps:
                if isinstance(step, Adopt):
                    if self.leadership is None:
                        self._adopt(step.dpid, step.conn, step.address)
                    else:
                        self.leadership.connected(step.dpid, step.conn, step.address)
                elif isinstance(step, Release):
                    if self.leadership is not None:
                        self.leadership.released(step.dpid, step.conn)
                    if self._datapaths.get(step.dpid) is step.conn:
                        del self._datapaths[step.dpid]
                        self._queue(functools.partial(self.fabric.switch_disconnected, step.dpid))
                    io.append(step)
                elif isinstance(step, Report):
                    # A follower's connection is its own: the leader's decides the alarms.
                    role = {"role": "slave"} if following else {}
                    self._queue(functools.partial(self._report_connection, step, role))
                else:
                    io.append(step)
        return io

    def _report_connection(self, report: Report, role: dict, now: float) -> None:
        """On the worker thread, with the lock: names the switch if it is known."""
        self.event_log.emit(
            report.kind,
            switch=self.fabric.control.switches.name(report.dpid),
            level=logging.WARNING,
            dpid=f"{report.dpid:016x}",
            **report.detail,
            **role,
        )

    @set_ev_cls(ofp_event.EventOFPStateChange, HANDSHAKE_DISPATCHER)
    @guarded
    def _on_connection(self, ev):
        self._connection_steps(lambda conns, now: conns.opened(ev.datapath, now))

    @set_ev_cls(ofp_event.EventOFPSwitchFeatures, CONFIG_DISPATCHER)
    @guarded
    def _on_features(self, ev):
        datapath, dpid = ev.msg.datapath, ev.msg.datapath_id
        address = datapath.address[0] if datapath.address else None
        self._connection_steps(lambda conns, now: conns.connected(dpid, datapath, address, now))

    @set_ev_cls(_LIVENESS_ONLY, _CONNECTED)
    @guarded
    def _on_heard(self, ev):
        self._dpid_of(ev.msg.datapath)  # heard: all these say (os-ken answers echo requests)

    @set_ev_cls(ofp_event.EventOFPStateChange, DEAD_DISPATCHER)
    @guarded
    def _on_disconnect(self, ev):
        self._connection_steps(lambda conns, now: conns.closed(ev.datapath, now))

    @set_ev_cls(_MULTIPART_REPLIES, _CONNECTED)
    @guarded
    def _on_multipart_reply(self, ev):
        if (dpid := self._dpid_of(ev.msg.datapath)) is not None:
            work = functools.partial(self.fabric.multipart_reply, dpid, ev.msg)
            # A switch's flows reconcile it: one per batch (app/controller/work.py).
            slow = isinstance(ev, ofp_event.EventOFPFlowStatsReply)
            (self._work.put_slow if slow else self._queue)(work)

    @set_ev_cls(ofp_event.EventOFPBarrierReply, _CONNECTED)
    @guarded
    def _on_barrier(self, ev):
        if (dpid := self._dpid_of(ev.msg.datapath)) is not None:
            self._queue(functools.partial(self.fabric.barrier_reply, dpid, ev.msg.xid))

    @set_ev_cls(ofp_event.EventOFPPortStatus, MAIN_DISPATCHER)
    @guarded
    def _on_port_status(self, ev):
        msg = ev.msg
        if (dpid := self._dpid_of(msg.datapath)) is not None:
            self._queue(functools.partial(self.fabric.port_status, dpid, msg.reason, msg.desc))

    @set_ev_cls(ofp_event.EventOFPErrorMsg, _CONNECTED)
    @guarded
    def _on_error(self, ev):
        msg = ev.msg
        # An experimenter error (a bundle's: ONF extension) has an exp_type, not a code.
        code = msg.exp_type if msg.type == ofp.OFPET_EXPERIMENTER else msg.code
        if self.leadership is not None and self.leadership.leading:
            if (reason := deposing_error(msg.type, code)) is not None:
                self._deposed(reason)
        if (dpid := self._dpid_of(msg.datapath)) is not None:
            self._queue(lambda now: self.fabric.error(dpid, msg.xid, msg.type, code))

    @set_ev_cls(ofp_event.EventONFBundleCtrlMsg, _CONNECTED)
    @guarded
    def _on_bundle_reply(self, ev):
        msg = ev.msg
        if (dpid := self._dpid_of(msg.datapath)) is not None:
            self._queue(functools.partial(self.fabric.bundle_reply, dpid, msg.xid, msg.type))

    @set_ev_cls(ofp_event.EventOFPPacketIn, MAIN_DISPATCHER)
    @guarded
    def _on_packet_in(self, ev):
        msg = ev.msg
        if (dpid := self._dpid_of(msg.datapath)) is None:
            return
        port_no, data = msg.match.get("in_port"), bytes(msg.data)
        # A station's ACK completes our ECP transmission: behind a backlog of requests it would
        # come late, and ECP would retransmit and give up on a PDU the station has.
        if is_ecp_ack(data):
            self._work.put_event(functools.partial(self.fabric.receive, dpid, port_no, data))
            return
        # A data-plane probe back at its destination edge: timed now, not after the backlog.
        if is_probe(data):
            work = functools.partial(
                self.fabric.probe_arrived, dpid, port_no, data, time.monotonic()
            )
            self._work.put_event(lambda now: work())
            return
        # Not EVB control traffic: a VM's frame from a standby admission flow, whose activation
        # is what a migrating VM waits for: ahead of the backlog too.
        if vm_frame_source(data) is not None:
            self._work.put_event(functools.partial(self.fabric.first_frame, dpid, port_no, data))
            return
        # Likewise our ACK of the station's request leaves now, not after the backlog.
        ack = self.fabric.ecp_ack(dpid, port_no, data)
        send_all(self._datapaths, ack)
        self._work.put_frame(
            functools.partial(self.fabric.receive, dpid, port_no, data, acked=bool(ack))
        )

    # threads ------------------------------------------------------------------------------
    def _work_loop(self):
        """The OpenFlow events in batches: the switch events waiting (barrier replies first
        among equals: a response waits for them), then up to WORK_BATCH punted frames, each
        taken with its time (a frame's ECP ACK and LLDP answer leave at once), then the batch's
        VDP requests together: one flow batch and one barrier per switch for all of them
        (FabricControl.receive / process)."""
        while not self._stopping.is_set():
            events, frames = self._work.take(WORK_BATCH, timeout=0.1)
            if not events and not frames:
                continue
            with self.lock:
                for call in [*events, *frames, self.fabric.process]:
                    try:
                        self._send(call(time.monotonic()) or [])
                    except Exception:  # one bad event must not end the thread or its batch
                        self.handler_errors += 1
                        LOG.exception("event %r failed", call)
                self._save()

    def _canary_loop(self):
        while not self._stopping.wait(self.settings.canary_interval):
            with self.lock:
                self._send(self.fabric.canary_probes())

    def _stats_loop(self):
        """The VM statistics: each ready switch with VMs polled once per stats interval (a flow
        stats and a meter stats request), the switches' polls spread over it; then, with a VM
        manager, once per interval the next page of the VM report (from the last polls'
        counters) to its webhook."""
        cursor = ReportCursor()
        next_report = time.monotonic() + self.settings.stats_interval
        while not self._stopping.wait(STATS_TICK):
            try:
                now = time.monotonic()
                with self.lock:
                    self._send(self.fabric.stats_probes(now))
                if self.notifier is not None and now >= next_report:
                    next_report = now + self.settings.stats_interval
                    report = self.service.vm_report(cursor)
                    if report is not None:
                        self.notifier.report(report)
            except Exception:  # the polls must survive any bug in one round
                self.handler_errors += 1
                LOG.exception("statistics poll failed")

    def _background_loop(self):
        """The intent audit's requests (its budget: audit_rate a second, one outstanding) and
        the data-plane probes. A follower holds no switch (docs/ha.md): only the leader audits
        and probes."""
        tick = (
            min(BACKGROUND_TICK, 1 / self.settings.audit_rate)
            if self.settings.audit_rate
            else BACKGROUND_TICK
        )
        while not self._stopping.wait(max(0.01, tick)):
            if self.leadership is not None and not self.leadership.leading:
                continue
            try:
                with self.lock:
                    self._send(self.fabric.background(time.monotonic()))
            except Exception:  # the audit must survive any bug in one round
                self.handler_errors += 1
                LOG.exception("audit or probe round failed")

    def _wake_closed_connections(self):
        """With native threads os-ken reports a lost switch (DEAD_DISPATCHER) only when the
        connection's send thread wakes up, i.e. at our next message to it (the canary, seconds
        later): once the receive side has closed the socket, an empty send wakes it at once."""
        held = self.leadership.connections() if self.leadership else self._datapaths.values()
        for datapath in list(held):
            if datapath.socket.fileno() == -1:
                datapath.send(b"")

    def _tick_loop(self):
        while not self._stopping.wait(TICK_INTERVAL):
            try:
                self._wake_closed_connections()
                self._connection_steps(lambda conns, now: conns.expire(now))
                with self.lock:
                    while not self._lookups_done.empty():
                        query = self._lookups_done.get()
                        self._send(self.fabric.lookup_done(query, time.monotonic()))
                    self._send(self.fabric.tick(time.monotonic()))
                    self._save()
            except Exception:  # the timers must survive any bug in one tick
                self.handler_errors += 1
                LOG.exception("control plane tick failed")


def _is_open(datapath) -> bool:
    return datapath.state != DEAD_DISPATCHER and datapath.socket.fileno() != -1


def _connection_io(steps: list) -> None:
    """Closing and probing, without the connections lock: a send may wait for a full queue."""
    for step in steps:
        if isinstance(step, Probe):
            _probe(step.conn, step.xid)
        else:
            _shut(step.conn)


def _probe(datapath, xid: int) -> None:
    """An echo request, unless the connection's send queue is full: a switch that reads
    nothing would hold the sender (the tick thread) until the socket's timeout; its echo's
    deadline runs all the same."""
    send_q = datapath.send_q
    if send_q is not None and send_q.full():
        return
    echo = datapath.ofproto_parser.OFPEchoRequest(datapath)
    echo.xid = xid
    datapath.send_msg(echo)


def _shut(datapath) -> None:
    """Ends a connection without waiting: os-ken's receive loop sees the end and reaps it (its
    close() would post an event to our own queue, which may be full while we run)."""
    try:
        datapath.socket.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # closed already
