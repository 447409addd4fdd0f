"""The controller without os-ken: the one owner of every connected switch and of the control plane.

Each os-ken event becomes one call here (its time `now` given), and each call returns the OpenFlow
messages to send as (dpid, message) pairs, in sending order; the shim
(app/controller/evb_app.py) binds them to datapaths and sends them, nothing more (Faucet's valve
is the model). Calls are not thread-safe: the shim serializes them with one lock.

Per switch, a SwitchSync (app/fabric/switch_sync.py) learns the ports and reconciles the flows;
the control plane (app/control_plane.py) answers the stations and plans the VMs' flows. Every
message leaves with an xid of one space (app/fabric/xids.py), so a reply routes to what it
answers: a barrier of a flow batch (app/fabric/batches.py), or a request of the switch's
SwitchSync. A VDP response that follows flows leaves only once every barrier of its batches has
answered; a refused message, a switch that went away or no barrier reply within
batches.TIMEOUT turn it into a failure (ControlPlane.flows_confirmed). A batch goes as one bundle
(app/fabric/bundles.py) to a switch that answered SwitchSync's bundle probe, else as it is; a
refused commit fails its ticket as a refused flow-mod does.

In the background (`background`), the intent audit (app/fabric/audit.py) reads the ready switches
back a piece at a time within its budget and repairs what differs with a batch of its own (its
barrier checked, its outcome the event audit.repaired), and the data-plane probes
(app/fabric/probes.py) go between the edges of the probed VLANs.
"""

import itertools
import logging
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.builders import build_ecp_ack
from app.codec.frame import ecp_request_sequence
from app.control_plane import ControlPlane, FlowBatch, Reaction
from app.fabric import bundles
from app.fabric.audit import IntentAudit, Piece, PieceIntent, Repair
from app.fabric.batches import BatchTracker
from app.fabric.expected import ExpectedSwitches
from app.fabric.multipart import MultipartCollector
from app.fabric.poll_schedule import PollSchedule
from app.fabric.ports import PortRole
from app.fabric.probes import DataPlaneProbes, ProbeEvent
from app.fabric.switch_sync import SwitchSync
from app.fabric.xids import Xids
from app.flows import flow_stats_wire, ofmsg
from app.flows.base_pipeline import base_flows
from app.flows.vm_stats import VmStats

Out = list[tuple[int, Any]]  # (dpid, OpenFlow message), in sending order
_PORT_CHANGES = {ofp.OFPPR_ADD: "added", ofp.OFPPR_DELETE: "deleted"}
# Messages that change what a switch holds (the audit judges only what no change crossed).
_CHANGES = (parser.OFPFlowMod, parser.OFPMeterMod, parser.ONFBundleCtrlMsg, parser.ONFBundleAddMsg)


class FabricControl:
    def __init__(
        self,
        control: ControlPlane,
        trunk_patterns: Iterable[str],
        record_switch: Callable[[int, str], None] = lambda dpid, name: None,
        stats_interval: float = 0.0,
        audit_rate: float = 0.0,
        probe_vlans: Iterable[int] = (),
        probe_interval: float = 2.0,
        expected_timeout: float = 0.0,
    ):
        """`record_switch(dpid, name)` is told of every switch whose name is learnt;
        `stats_interval`: seconds between two VM statistics polls of a switch (stats_probes;
        0: every switch at each call); `audit_rate`: the intent audit's multipart requests per
        second (0: no audit); `probe_vlans`: the VLANs probed every `probe_interval` seconds;
        `expected_timeout`: how long after `expect_switches` a remembered switch may stay away
        before it is reported absent (0: never)."""
        self.control = control
        self._event_log = control.event_log
        self._trunk_patterns = tuple(trunk_patterns)
        self._record_switch = record_switch
        self._xids = Xids()
        self._syncs: dict[int, SwitchSync] = {}
        self._batches = BatchTracker()
        self._multipart = MultipartCollector()
        self.stats = VmStats()
        self._poll_schedule = PollSchedule(stats_interval)
        self.audit = IntentAudit(audit_rate, self._xids, control.observer)
        # The control plane's tickets count up from 1; the audit's repairs take negative ones,
        # so one tracker keeps both and a completion knows whose it is.
        self._repairs: dict[int, Repair] = {}
        self._repair_tickets = itertools.count(1)
        self._piece_intent = PieceIntent(control.programmer)
        self.probes = DataPlaneProbes(
            probe_vlans, secrets.token_bytes(32), probe_interval, observer=control.observer
        )
        self._expected = ExpectedSwitches(expected_timeout)

    # switches -------------------------------------------------------------------------------
    def switch_connected(self, dpid: int, address: str | None, now: float) -> Out:
        """A switch said hello (features reply); a reconnecting one starts over."""
        sync = SwitchSync(
            dpid,
            self._trunk_patterns,
            self.control.vm_flows,
            self.control.vm_meters,
            xids=self._xids,
        )
        self._syncs[dpid] = sync
        self._expected.arrived(dpid)
        self._event_log.emit("switch.connected", switch=sync.name, address=address)
        return self._to(dpid, sync.on_features())

    def switch_disconnected(self, dpid: int, now: float) -> Out:
        sync = self._syncs.pop(dpid)
        self._multipart.forget(dpid)
        self.audit.forget(dpid)
        self.stats.forget(dpid)
        self._event_log.emit("switch.disconnected", switch=sync.name, level=logging.WARNING)
        out = self._confirm(self._batches.on_disconnect(dpid), now)
        return out + self.react(self.control.switch_gone(dpid, now), now)

    def multipart_reply(self, dpid: int, msg, now: float) -> Out:
        """One part of a port-description, meter-config, meter-stats or flow-stats reply."""
        sync = self._syncs.get(dpid)
        if sync is None:
            return []
        body = self._multipart.add(dpid, msg)
        if body is None:
            return []
        if self.audit.owns(dpid, msg.xid):
            repair = self.audit.reply(dpid, msg.xid, body, self._intent)
            return self._repair(dpid, repair, now) if repair is not None else []
        purpose = sync.purpose(msg.xid)
        if purpose == "ports":
            out = self._to(dpid, sync.on_ports(body))
            self._record_switch(dpid, sync.name)
            if not sync.bundles:
                self._event_log.emit(
                    "switch.bundles_unsupported",
                    switch=sync.name,
                    level=logging.WARNING,
                    reason=sync.no_bundles,
                    fallback="ordered batches",
                )
            return out + self.react(
                self.control.switch_ports(dpid, sync.name, sync.ports, now), now
            )
        if purpose == "meters":
            return self._to(dpid, sync.on_meters(body))
        if purpose == "flows":
            return self._to(dpid, sync.on_flows(flow_stats_wire.flows(body)))
        if purpose == "stats_flows":
            counts = flow_stats_wire.counts(body)
            self.stats.flow_stats(dpid, counts, self.control.programmer.port_of, now)
            return []
        if purpose == "stats_meters":
            self.stats.meter_stats(dpid, body, self.control.programmer.port_of, now)
            return []
        if purpose == "canary":
            msgs = sync.on_canary(body)
            if msgs:
                self._event_log.emit(
                    "switch.flows_lost", switch=sync.name, level=logging.WARNING, action="resync"
                )
            return self._to(dpid, msgs)
        return []

    def barrier_reply(self, dpid: int, xid: int, now: float) -> Out:
        if self._batches.owns(dpid, xid):
            return self._confirm(self._batches.on_barrier(dpid, xid), now)
        sync = self._syncs.get(dpid)
        if sync is None or sync.purpose(xid) != "barrier":
            return []  # the barrier of a batch no response waits for
        sync.on_barrier()
        out = self.react(self.control.switch_ready(dpid, now), now)
        # The server ports down at connect time: no port status will say so (app/faults).
        down = sorted(p.name for p in sync.ports.values() if p.role is PortRole.SERVER and not p.up)
        self._event_log.emit(
            "switch.ready",
            switch=sync.name,
            ports=len(sync.ports),
            server_ports_down=down,
            bundles=sync.bundles,
            **sync.last_sync,
        )
        return out

    def bundle_reply(self, dpid: int, xid: int, kind: int, now: float) -> Out:
        """A bundle control reply (open, commit, discard): nothing to send."""
        sync = self._syncs.get(dpid)
        if sync is not None:
            sync.on_bundle_reply(xid, kind)
        return []

    def error(self, dpid: int, xid: int, err_type: int, code: int) -> None:
        """The switch refused a message of ours: a batch's ticket fails at its barrier (a
        refused bundle probe only means no bundles: SwitchSync)."""
        sync = self._syncs.get(dpid)
        reason = f"OpenFlow error type {err_type} code {code}"
        self.audit.error(dpid, xid)
        if sync is not None and sync.on_error(xid, reason):
            return
        self._event_log.emit(
            "switch.error",
            switch=sync.name if sync else None,
            level=logging.WARNING,
            type=err_type,
            code=code,
            xid=xid,
        )
        self._batches.on_error(dpid, xid, reason)

    def port_status(self, dpid: int, reason: int, desc, now: float) -> Out:
        sync = self._syncs.get(dpid)
        if sync is None:
            return []
        port, msgs = sync.on_port_status(reason, desc)
        if port is None:
            return []
        out = self._to(dpid, msgs)
        out += self.react(self.control.switch_ports(dpid, sync.name, sync.ports, now), now)
        self._event_log.emit(
            "port." + _PORT_CHANGES.get(reason, "modified"),
            switch=sync.name,
            port=port.name,
            role=port.role.value,
            up=port.up,
        )
        return out

    def canary_probes(self) -> Out:
        return [
            pair
            for dpid, sync in self._syncs.items()
            for pair in self._to(dpid, sync.canary_probe())
        ]

    def stats_probes(self, now: float) -> Out:
        """The VM statistics polls due now (SwitchSync.stats_probe): every ready switch with
        VMs at its ports, once per stats interval, spread over it (app/fabric/poll_schedule.py).
        A switch with none (an aggregation switch: a VSI-cookie flow for every VM of the fabric
        and nothing to count) is never asked; what was counted at a switch whose VMs have all
        gone is dropped."""
        edges = self.control.programmer.edges()
        for dpid in self.stats.switches() - edges:
            self.stats.forget(dpid)
        targets = sorted(d for d in edges if d in self._syncs and self._syncs[d].ready)
        return [
            pair
            for dpid in self._poll_schedule.due(targets, now)
            for pair in self._to(dpid, self._syncs[dpid].stats_probe(now))
        ]

    # stations and timers --------------------------------------------------------------------
    def receive(self, dpid: int, port_no: int, data: bytes, now: float, acked: bool = False) -> Out:
        """A punted frame: what goes back at once (ECP ACK, LLDP); its VDP requests wait for
        `process`, so requests that arrive together are planned together. ``acked``: its ECP
        ACK is out already (`ecp_ack`)."""
        sync = self._syncs.get(dpid)
        port = sync.ports.get(port_no) if sync else None
        if port is None:
            return []
        return self.react(self.control.receive(dpid, port, data, now, acked), now)

    def first_frame(self, dpid: int, port_no: int, data: bytes, now: float) -> Out:
        """A VM's frame punted by a standby admission flow (ControlPlane.first_frame)."""
        sync = self._syncs.get(dpid)
        port = sync.ports.get(port_no) if sync else None
        if port is None:
            return []
        return self.react(self.control.first_frame(dpid, port, data, now), now)

    def ecp_ack(self, dpid: int, port_no: int, data: bytes) -> Out:
        """The ACK of a station's ECP request, sent by the shim as the frame arrives, so that it
        never waits behind VDP work: a late ACK makes the station retransmit and give up (ECP's
        timer is 164 ms at lldpad's RTE 14). Called WITHOUT the lock, from os-ken's event
        thread: it only looks up a switch and a port (single dict reads of immutable Ports) and
        builds a frame from the request's headers; the session counts the ACK when the worker
        hands it the frame (`receive(..., acked=True)`). Its xid comes from the one xid space
        all the same (`Xids.stamp` is a single next() on an itertools.count, atomic)."""
        sync = self._syncs.get(dpid)
        port = sync.ports.get(port_no) if sync else None
        if port is None or port.role is not PortRole.SERVER:
            return []
        sequence = ecp_request_sequence(data)
        if sequence is None:
            return []
        return self._to(dpid, [ofmsg.packet_out(port_no, build_ecp_ack(port.hw_addr, sequence))])

    def process(self, now: float) -> Out:
        return self.react(self.control.process(now), now)

    def lookup_done(self, query, now: float) -> Out:
        return self.react(self.control.lookup_done(query, now), now)

    def tick(self, now: float) -> Out:
        out = self._confirm(self._batches.expire(now), now)
        self._report_absent(now)
        return out + self.react(self.control.tick(now), now)

    def expect_switches(self, remembered: list[dict], now: float) -> None:
        """This controller takes the fabric: the switches the store remembers (its
        `switches()` records) are expected back within the expected timeout."""
        self._expected.expect(
            ((int(s["dpid"], 16), s["name"], s["last_seen"]) for s in remembered),
            self._syncs.keys(),
            now,
        )

    def _report_absent(self, now: float) -> None:
        for dpid, name in self._expected.due(now):
            self.control.switches.remember(dpid, name)  # its alarm names the VMs restored there
            self._event_log.emit(
                "switch.absent",
                switch=name,
                level=logging.WARNING,
                dpid=f"{dpid:016x}",
                timeout=self._expected.timeout,
            )

    # the control plane's reactions ----------------------------------------------------------
    def save(self, now: float) -> None:
        """After the messages of a call were sent: the intent saved, unless flows are still
        waiting for their barriers (ControlPlane.save_unless_busy)."""
        self.control.save_unless_busy(now, busy=self._batches.pending())

    def react(self, reaction: Reaction, now: float) -> Out:
        """The messages of a reaction: its frames first (ECP ACKs never wait behind flows),
        then each batch for a connected switch followed by a barrier: as one bundle if it changes
        flows in place and the switch takes bundles. A ticket with no batch on a connected switch
        is confirmed at once (the others are reconciled when they connect)."""
        out = [
            pair
            for dpid, port_no, frame in reaction.packets
            if dpid in self._syncs
            for pair in self._to(dpid, [ofmsg.packet_out(port_no, frame)])
        ]
        out += [
            pair
            for dpid, in_port, frame in reaction.resubmits
            if dpid in self._syncs
            for pair in self._to(dpid, [ofmsg.packet_resubmit(in_port, frame)])
        ]
        batches = [b for b in reaction.batches if b.dpid in self._syncs]
        for batch in batches:
            out += self._send_batch(batch, reaction.ticket, now)
        if reaction.ticket is not None and not batches:
            out += self.react(self.control.flows_confirmed(reaction.ticket, {}, now), now)
        return out

    def _send_batch(self, batch: FlowBatch, ticket: int | None, now: float) -> Out:
        """One switch's batch and its barrier (a bundle if it changes flows in place and the
        switch takes bundles), tracked for `ticket`."""
        batch_msgs = batch.msgs
        if batch.in_place and self._syncs[batch.dpid].bundles:
            batch_msgs = bundles.bundled(batch_msgs, self._xids.take())
        msgs = self._to(batch.dpid, [*batch_msgs, parser.OFPBarrierRequest(None)])
        if ticket is not None:
            *sent, (_, barrier) = msgs
            self._batches.track(ticket, batch.dpid, [m.xid for _, m in sent], barrier.xid, now)
        return msgs

    def _confirm(self, completed: list[tuple[int, dict, float]], now: float) -> Out:
        out: Out = []
        for ticket, failed, started in completed:
            repair = self._repairs.pop(ticket, None)
            if repair is not None:
                self._repaired(repair, failed)
                continue
            self.control.observer.flow_batch(now - started, failed=bool(failed))
            out += self.react(self.control.flows_confirmed(ticket, failed, now), now)
        return out

    # the intent audit and the data-plane probes ---------------------------------------------
    def background(self, now: float) -> Out:
        """What is due of the audit (its next request, within its budget) and of the probes
        (a round's packet-outs; the losses found)."""
        ready = sorted(d for d, s in self._syncs.items() if s.ready)
        out = self.audit.due(now, ready)
        frames, events = self.probes.due(now, self.control.programmer.vlan_members, set(ready))
        for dpid, frame in frames:
            out += self._to(dpid, [ofmsg.packet_resubmit(ofp.OFPP_CONTROLLER, frame)])
        self._probe_events(events)
        return out

    def probe_arrived(self, dpid: int, port_no: int, data: bytes, arrived: float) -> None:
        """A frame of the probe EtherType punted by `dpid` from `port_no`, at `arrived` (taken
        as the packet-in came in, not when the worker got to it)."""
        sync = self._syncs.get(dpid)
        port = sync.ports.get(port_no) if sync is not None else None
        trunk = port is not None and port.role is PortRole.TRUNK
        self._probe_events(self.probes.arrived(dpid, trunk, data, arrived))

    def _probe_events(self, events: list[ProbeEvent]) -> None:
        switches = self.control.switches
        for event in events:
            vid, src, dst = event.pair
            detail = dict(event.detail)
            if event.kind == "probe.lost":
                hops = self.control.programmer.routes.path(src, dst)
                detail["path"] = [switches.text(h) for h in hops] if hops is not None else None
            self._event_log.emit(
                event.kind,
                switch=switches.name(src),
                level=logging.WARNING if event.kind == "probe.lost" else logging.INFO,
                peer=switches.name(dst),
                vlan=vid,
                **detail,
            )

    def _intent(self, dpid: int, piece: Piece) -> tuple[list, dict]:
        """What `dpid` should hold of `piece`: its meters, or its flows of the piece's table
        and slice (app/fabric/audit.py PieceIntent)."""
        sync = self._syncs[dpid]
        if piece.table is None:
            return [], sync.desired_meters()
        return base_flows(sync.ports.values()) + self._piece_intent.flows(dpid, piece), {}

    def _repair(self, dpid: int, repair: Repair, now: float) -> Out:
        ticket = -next(self._repair_tickets)
        self._repairs[ticket] = repair
        return self._send_batch(FlowBatch(dpid, repair.msgs, repair.in_place), ticket, now)

    def _repaired(self, repair: Repair, failed: dict[int, str]) -> None:
        piece = repair.piece
        if not failed:
            self.control.observer.audit_repaired(repair.found)
        self._event_log.emit(
            "audit.repaired" if not failed else "audit.repair_failed",
            switch=self.control.switches.name(piece.dpid),
            level=logging.WARNING,
            piece=piece.describe(),
            **repair.found,
            examples=repair.examples,
            **({"reason": "; ".join(failed.values())} if failed else {}),
        )

    def _to(self, dpid: int, msgs: list) -> Out:
        """`msgs` for `dpid`, each with an xid of ours (SwitchSync's requests have theirs)."""
        changes = [msg for msg in msgs if isinstance(msg, _CHANGES)]
        if changes:
            self.audit.sent(dpid, changes)
            self._piece_intent.changed(dpid)
        return [(dpid, msg if msg.xid is not None else self._xids.stamp(msg)) for msg in msgs]

    # views ----------------------------------------------------------------------------------
    def switches_snapshot(self) -> list[dict]:
        return [
            {
                "dpid": f"{s.dpid:016x}",
                "name": s.name,
                "state": s.state.value,
                "last_sync": dict(s.last_sync),
                "bundles": {"used": s.bundles, "committed": s.bundles_committed},
                "ports": [
                    {
                        "number": p.number,
                        "name": p.name,
                        "role": p.role.value,
                        "up": p.up,
                        "channels": channels.get(p.number, []),
                    }
                    for p in sorted(s.ports.values(), key=lambda p: p.number)
                ],
                "punts": self.control.counters_for(s.dpid),
            }
            for s in self._syncs.values()
            for channels in [self.control.channels(s.dpid)]  # S-channels by port number
        ]
