"""The path of one request, end to end, in one place:

    packet-in -> decode (app/codec) -> per-port EVB/ECP session (app/session/port_session.py)
      -> VDP bridge machine (app/vdp/bridge.py) -> authorizer (app/vdp/authorizer.py)
      -> flow plan (app/flows/vm_flows.py) -> one barrier-checked batch per switch
      -> only then the VDP response, out through the port's ECP.

Pure apart from the event log: every entry point takes `now` and returns a Reaction (frames to
send now, flow batches to apply); the owner of the switches (app/fabric_control.py) turns it into
OpenFlow messages and calls `flows_confirmed` when the switches' barriers have answered.

Scale: the work and the disk writes of a request follow what it changes. The VDP bridge keeps
its bindings indexed, the flow programmer plans the changed bindings alone, the intent is saved
per VSI, and timers sit in heaps; only a change of the link graph re-plans what hangs on the
switches whose place in the tree moved. ECP is acknowledged on receipt (`receive`), before the
VDP work (`process`), so a station never retransmits because a request took time.
"""

import collections
import dataclasses
import heapq
import itertools
import logging
import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.codec.cdcp_tlv import CdcpTlv
from app.codec.errors import CodecError
from app.codec.frame import channel_svid, decode_evb_frame, frame_svid, vm_frame_source
from app.codec.vdp import STATUS_ERROR_MASK, ManagerIdTlv, VdpError, VdpTlvType, VsiId, VsiTlv
from app.events import EventLog
from app.fabric import links
from app.fabric.links import Topology
from app.fabric.ports import Port, PortRef, PortRole
from app.fabric.switch_directory import SwitchDirectory
from app.faults.alarms import VmPlace
from app.flows.programmer import FlowMods, FlowProgrammer
from app.observer import Observer
from app.refusal_events import RefusalSummary
from app.session import cdcp
from app.session.cdcp import CdcpConfig
from app.session.evb_negotiation import evb_duration
from app.session.evb_settings import EvbPortSettings
from app.session.port_session import PortSession, SessionOutput
from app.store.base import IntentChanges, vsi_key
from app.vcenter.client import LookupPending
from app.vdp.authorizer import Decision
from app.vdp.bridge import VdpBridge
from app.vdp.describe import port_fields, vsi_id_from_text, vsi_id_text
from app.vdp.locations import LocationHistory
from app.vdp.migrations import MigrationLog
from app.vdp.outcome import Outcome, Send

# At most one frame.dropped event per port per this many seconds: a flood of garbage must not
# become a flood of log lines; the counters still count every frame.
DROP_EVENT_INTERVAL = 10.0
# How long a relocation prepared by the VM manager waits for the destination station's Associate.
RELOCATION_HOLD = 120.0
# VDP requests received and not yet processed. They are processed after every batch of
# packet-ins, so this is reached only by a flood; beyond it requests are counted and dropped
# (acknowledged already: the station resends).
PENDING_LIMIT = 20000
# Decision events that tell of flows in place: emitted once the switches confirmed them.
_AFTER_FLOWS = frozenset({"vsi.activated"})
# A migrating VM's frames punted while its activation is on its way (its ARP request for a peer,
# say) are run through the switch again once the flows are in: dropped, the VM's ARP would be
# retried only a second later. At most this many per activation; more are counted and dropped.
HELD_FRAMES_LIMIT = 16
# A request waiting for the VM manager is answered within this share of its port's negotiated
# resource wait delay (RWD), the time its station waits: when the manager is slower, with
# "unable to contact VSI manager", not hard, so the station asks again (and the manager's answer,
# cached by then, decides). The rest of the RWD carries the response.
ANSWER_SHARE = 0.9
# Requests waiting for the VM manager, of all ports; beyond, refused at once as above.
PARKED_LIMIT = 20000
# How long a change with no station waiting on it (an activation, a link) may stay unsaved while
# flows are on their way; a sync of the disk takes 1-5 ms, as long as a whole activation.
SAVE_DELAY_MAX = 1.0


@dataclass
class FlowBatch:
    """One switch's messages of a change; `in_place`: they must apply as one step
    (FlowMods.in_place)."""

    dpid: int
    msgs: list
    in_place: bool = True


@dataclass
class Reaction:
    """What FabricControl does: send `packets` now (before the batches: ECP ACKs must not wait
    behind flows); send each batch followed by a barrier and, when `ticket` is set, call
    flows_confirmed(ticket) once every batch's barrier has answered. Frames that must follow
    flows (VDP responses) are never in the same reaction as those flows: they come with
    flows_confirmed. `resubmits` are VMs' frames to run through the switch's tables again as if
    they had just come in on their port (a migrating VM's frames punted while it was activated)."""

    packets: list[tuple[int, int, bytes]] = field(default_factory=list)  # (dpid, port_no, frame)
    batches: list[FlowBatch] = field(default_factory=list)
    ticket: int | None = None
    resubmits: list[tuple[int, int, bytes]] = field(default_factory=list)  # (dpid, in_port, frame)

    def extend(self, other: "Reaction") -> "Reaction":
        # One ticket per reaction: the batches would otherwise confirm the wrong responses.
        if self.ticket is not None and other.ticket is not None:
            raise ValueError("two flow changes awaiting confirmation in one reaction")
        self.packets += other.packets
        self.batches += other.batches
        self.resubmits += other.resubmits
        if other.ticket is not None:
            self.ticket = other.ticket
        return self


@dataclass
class _Held:
    """VDP messages that may leave only once their flows are on the switches."""

    responses: list[Send]
    unsolicited: list[Send]
    events: list[tuple[str, dict]]
    activation: tuple[PortRef, str] | None = None  # whose punted frames wait (_activating)
    arrivals: dict | None = None  # when the requests answered came (_send_vdp)


class ControlPlane:
    def __init__(
        self,
        event_log: EventLog,
        bridge: VdpBridge,
        evb_settings: EvbPortSettings | None = None,
        save: Callable[[IntentChanges], None] = lambda changes: None,
        first_sequence: Callable[[], int] = lambda: random.randrange(1, 0x10000),
        locations: LocationHistory | None = None,
        observer: Observer | None = None,
        cdcp_config: CdcpConfig = CdcpConfig(),
    ):
        """`evb_settings`: the bridge's EVB settings of each port (app/session/evb_settings.py);
        `save` persists what changed in the intent (see IntentChanges): the owner calls
        `save_unless_busy` once it has sent a reaction's messages, and it is called before any
        station hears of a change; `first_sequence` picks each new port session's first ECP sequence
        number (random, so a restarted controller's first PDU is not taken for a duplicate);
        `locations`: the VSIs' location history, with its store (a fresh one if None);
        `observer`: told of each request, response, refusal and activation (app/metrics.py);
        `cdcp_config`: the S-channels a server port may have (app/session/cdcp.py)."""
        self.event_log = event_log
        self.bridge = bridge
        self.evb_settings = evb_settings or EvbPortSettings()
        self.cdcp_config = cdcp_config
        self._save = save
        self._first_sequence = first_sequence
        self.topology = Topology()
        self.programmer = FlowProgrammer()
        self.switches = SwitchDirectory()
        self.locations = locations if locations is not None else LocationHistory()
        self.observer = observer if observer is not None else Observer()
        self.migrations = MigrationLog()  # fed every decision event, typed, as it happens
        # dpid -> port or S-channel -> session
        self._sessions: dict[int, dict[PortRef, PortSession]] = {}
        # CDCP: each server port's S-channels, dpid -> port_no -> SCID -> S-VID (saved with the
        # intent; kept while the port is down, until its station no longer lists them).
        self._channels: dict[int, dict[int, dict[int, int]]] = {}
        self._channels_dirty = False
        # Session wake-ups: (deadline, tie-break, port), and the one deadline each port is
        # scheduled for, so a busy port does not fill the heap.
        self._wakeups: list[tuple[float, int, PortRef]] = []
        self._scheduled: dict[PortRef, float] = {}
        self._tie = itertools.count()
        # (port, manager, VSI TLV, keep-alive timeout, when it arrived)
        self._pending: list[tuple[PortRef, ManagerIdTlv, VsiTlv, float, float]] = []
        self._parked: dict = {}  # VM-manager query -> {(port, VSI ID): request}
        self._parked_count = 0
        # (answer deadline, tie-break, query, (port, VSI ID)): entries answered since are skipped
        self._answer_by: list[tuple[float, int, object, tuple[PortRef, VsiId]]] = []
        self._counters: dict[int, dict[str, collections.Counter]] = collections.defaultdict(
            lambda: collections.defaultdict(collections.Counter)
        )
        self._last_drop_event: dict[PortRef, float] = {}
        self.refusals = RefusalSummary()  # a flood of refusals is summed up, not one row each
        self._tickets = itertools.count(1)
        self._held: dict[int, _Held] = {}
        self._activating: dict[tuple[PortRef, str], list[bytes]] = {}  # (port, MAC): frames
        self._next_probe = 0.0
        # Reflective relay: ports whose station agreed it, ports with any agreement, and the
        # ports where it was granted before a restart (kept until their station speaks again).
        self._rr_granted: set[PortRef] = set()
        self._agreed: set[PortRef] = set()
        self._restored_rr: set[PortRef] = set()
        self._restored_switches: set[int] = set()  # with restored VSIs, not yet ready again
        self._rr_applied: frozenset[PortRef] = frozenset()  # what the flows and store have
        self._rr_dirty = False
        # What the next save writes, and since when the owner has seen it unsaved.
        self._dirty_vsis: set[VsiId] = set()
        self._links_dirty = False
        self._unsaved_since: float | None = None

    # switches -------------------------------------------------------------------------------
    def switch_ports(self, dpid: int, name: str, ports: dict[int, Port], now: float) -> Reaction:
        """The switch's current ports (at connect time and after every port change). A port
        that is gone or down loses its link and its station session; its VSIs stay until their
        keep-alive times out (a link flap must not de-associate every VM behind it)."""
        self.switches.update(dpid, name, ports)
        changed = False
        sessions = self._sessions.get(dpid, {})
        for number in {ref.port_no for ref in sessions} | self.topology.link_ports(dpid):
            port = ports.get(number)
            if port is None or not port.up:
                for ref in [ref for ref in sessions if ref.port_no == number]:
                    self._drop_session(ref)
                link = self.topology.remove_port(PortRef(dpid, number))
                if link is not None:
                    self._link_down(link)
                    changed = True
        # Probe at once: until its links are known, the switch forwards nothing across.
        reaction = Reaction(
            packets=[
                (dpid, port_no, frame)
                for port_no, frame in links.probe_frames(dpid, ports.values())
            ]
        )
        if changed:
            reaction.extend(self._topology_changed())
        return reaction.extend(self._rr_changed())

    def switch_ready(self, dpid: int, now: float) -> Reaction:
        """The switch holds our punt flows now: it probes its trunks, so its links to the
        switches connected already are found at once rather than at the next probe round (a
        neighbour that connects later probes toward it when it is ready). The first time after
        a restart, the restored VSIs behind it get their keep-alive timers (twice the timeout
        until their first keep-alive: VdpBridge.restore) from now: their stations could not be
        heard while it was away, however long reconciling took."""
        if dpid in self._restored_switches:
            self._restored_switches.discard(dpid)
            channels = [
                PortRef(dpid, port_no, svid)
                for port_no, held in self._channels.get(dpid, {}).items()
                for svid in held.values()
            ]
            self.bridge.restart_timers(
                [PortRef(dpid, port_no) for port_no in self.switches.ports(dpid)] + channels, now
            )
        return Reaction(packets=self._probes([dpid]))

    def switch_gone(self, dpid: int, now: float) -> Reaction:
        self.switches.remove(dpid)
        for ref in list(self._sessions.get(dpid, {})):
            self._drop_session(ref)
        reaction = self._topology_changed() if self.topology.remove_switch(dpid) else Reaction()
        return reaction.extend(self._rr_changed())

    def vm_flows(self, dpid: int) -> list:
        """Per-VM flows the switch must hold (SwitchSync reconciles them at connect time)."""
        return self.programmer.flows(dpid)

    def vm_meters(self, dpid: int) -> dict:
        return self.programmer.meters(dpid)

    # packet-in ------------------------------------------------------------------------------
    def handle_frame(self, dpid: int, port: Port, data: bytes, now: float) -> Reaction:
        """One punted frame, all the way: `receive` and then `process`."""
        return self.receive(dpid, port, data, now).extend(self.process(now))

    def receive(
        self, dpid: int, port: Port, data: bytes, now: float, acked: bool = False
    ) -> Reaction:
        """A punted frame as far as its port session: what goes back at once (the ECP ACK,
        LLDP, link changes). The VDP requests it carried wait for `process`, so the shim sends
        the ACK before any VDP work and requests arriving together are planned together.
        ``acked``: the shim has sent the ECP ACK already, before the frame was queued."""
        counters = self._counters[dpid][port.name]
        ref = PortRef(dpid, port.number)
        try:
            frame = decode_evb_frame(data)
        except CodecError as err:
            counters["malformed"] += 1
            self._drop_event(ref, port, err, now)
            return Reaction()
        probe_from = links.probe_origin(frame)
        if probe_from is not None:
            counters["link_probe"] += 1
            if port.role is PortRole.TRUNK and self.topology.add_link(probe_from, ref, now):
                self.event_log.emit(
                    "link.up",
                    switch=self.switches.name(dpid),
                    port=port.name,
                    peer=self.switches.text(probe_from),
                )
                return self._topology_changed()
            return Reaction()
        if port.role is not PortRole.SERVER:
            counters["ignored_on_trunk"] += 1
            return Reaction()
        svid = channel_svid(frame.vlan)
        if svid:
            if svid not in self._held_channels(ref).values():
                counters["unknown_channel"] += 1  # an S-VID CDCP did not give this port
                return Reaction()
            ref = PortRef(dpid, port.number, svid)
        session = self._session(ref, port)
        out = session.on_frame(frame, now, acked)
        reaction = self._session_output(session, out)
        if out.cdcp is not None:
            reaction.extend(self._answer_cdcp(session, out.cdcp, now))
        if out.vdp and len(self._pending) + len(out.vdp) > PENDING_LIMIT:
            counters["vdp_overload"] += len(out.vdp)  # acknowledged: the station will resend
        else:
            for _, vsi in out.vdp:
                self.observer.vdp_request(_mode_name(vsi.mode))
            self._pending += [
                (ref, manager, vsi, session.keepalive_timeout, now) for manager, vsi in out.vdp
            ]
        if self._note_agreement(ref, session):
            reaction.extend(self._rr_changed())  # hairpin flows follow reflective relay
        return reaction

    def first_frame(self, dpid: int, port: Port, data: bytes, now: float) -> Reaction:
        """A frame punted by a standby admission flow: a VM's first frames at its migration's
        destination activate it there (VdpBridge.activate). Frames that activate nothing (the
        ones still punted while the activation is on its way) are only counted."""
        counters = self._counters[dpid][port.name]
        mac = vm_frame_source(data) if port.role is PortRole.SERVER else None
        if mac is None:
            counters["vm_frame_ignored"] += 1
            return Reaction()
        ref = PortRef(dpid, port.number, frame_svid(data))
        outcome = self.bridge.activate(ref, mac, now)
        if outcome is not None:
            counters["activations"] += 1
            self._activating[(ref, mac)] = [data]
            return self._apply(outcome, now, activation=(ref, mac))
        held = self._activating.get((ref, mac))
        if held is not None and len(held) < HELD_FRAMES_LIMIT:
            held.append(data)
            return Reaction()
        if held is None and any(
            b.port == ref and b.forwarding and any(e.mac == mac for e in b.entries)
            for b in self.bridge.bound.at(dpid, port.number)
        ):
            counters["vm_frame_resubmitted"] += 1  # punted before the flows went in
            return Reaction(resubmits=[(dpid, port.number, data)])
        counters["vm_frame_ignored"] += 1
        return Reaction()

    def process(self, now: float) -> Reaction:
        """Every VDP request received since the last call, as one flow change."""
        pending, self._pending = self._pending, []
        return self._requests(pending, now)

    def _requests(self, requests, now: float) -> Reaction:
        """(port, manager, VSI TLV, keep-alive timeout, arrival) requests. Those that change no
        binding (keep-alives, refusals, Pre-Associates) are answered at once; the others become
        one flow change, one ticket, and their responses after it."""
        at_once, changing, touched = [], [], set()
        arrivals: dict[tuple[PortRef, VsiId, int], float] = {}  # for the response's latency
        for ref, manager, vsi, keepalive_timeout, arrived in requests:
            try:
                outcome = self.bridge.on_request(ref, manager, vsi, now, keepalive_timeout)
            except LookupPending as pending:
                outcome = self._park(pending.query, ref, manager, vsi, keepalive_timeout, arrived)
                if outcome is None:
                    continue
            if outcome.changes or vsi.vsi_id in touched:  # keep a VSI's answers in order
                changing.append(outcome)
                touched.add(vsi.vsi_id)
            else:
                at_once.append(outcome)
            arrivals[(ref, vsi.vsi_id, vsi.mode)] = arrived
        reaction = self._apply(Outcome().merge(*at_once), now, arrivals=arrivals)
        return reaction.extend(self._apply(Outcome().merge(*changing), now, arrivals=arrivals))

    def _park(
        self,
        query,
        ref: PortRef,
        manager: ManagerIdTlv,
        vsi: VsiTlv,
        keepalive_timeout: float,
        arrived: float,
    ) -> Outcome | None:
        """The VM manager is being asked about the request's type: the request waits for its
        answer, at most until ANSWER_SHARE of the port's RWD (then `_overdue`). Only the
        latest request of a VSI at a port is kept (the station resends), with the first one's
        deadline. Returns the refusal when too many wait already, else None."""
        if self._parked_count >= PARKED_LIMIT:
            return self.bridge.refuse(
                ref,
                manager,
                vsi,
                _unanswered(f"{PARKED_LIMIT} requests are waiting for the VM manager already"),
            )
        parked = self._parked.setdefault(query, {})
        key = (ref, vsi.vsi_id)
        earlier = parked.get(key)
        if earlier is None:
            self._parked_count += 1
            deadline = arrived + ANSWER_SHARE * self._resource_wait_delay(ref)
            heapq.heappush(self._answer_by, (deadline, next(self._tie), query, key))
            if len(self._answer_by) > 2 * PARKED_LIMIT:  # answered entries, dropped
                self._answer_by = [e for e in self._answer_by if self._parked_until(*e)]
                heapq.heapify(self._answer_by)
        else:
            deadline = earlier[-1]
        parked[key] = (manager, vsi, keepalive_timeout, arrived, deadline)
        return None

    def _parked_until(self, deadline: float, _tie, query, key) -> bool:
        """Whether a heap entry is the deadline of a request still waiting."""
        request = self._parked.get(query, {}).get(key)
        return request is not None and request[-1] == deadline

    def _resource_wait_delay(self, ref: PortRef) -> float:
        """How long the port's station waits for a response: the negotiated RWD."""
        session = self._sessions.get(ref.dpid, {}).get(ref)
        if session is None:
            return evb_duration(self.evb_settings.default.rwd)
        agreement = session.agreement
        return agreement.resource_wait_delay if agreement else evb_duration(session.config.rwd)

    def _unpark(self, query) -> dict:
        parked = self._parked.pop(query, {})
        self._parked_count -= len(parked)
        return parked

    def lookup_done(self, query, now: float) -> Reaction:
        """The VM manager answered `query` (the answer is in the client's cache): the requests
        parked on it go through the bridge again."""
        return self._requests(
            [(ref, *request[:-1]) for (ref, _), request in self._unpark(query).items()],
            now,
        )

    def _overdue(self, now: float) -> Outcome:
        """Requests whose VM-manager lookup outlasted their share of the RWD: refused, not
        hard. Costs what is due."""
        refused = []
        while self._answer_by and self._answer_by[0][0] <= now:
            entry = heapq.heappop(self._answer_by)
            if not self._parked_until(*entry):
                continue  # answered already
            _, _, query, key = entry
            parked = self._parked[query]
            (ref, _), (manager, vsi, _, arrived, _) = key, parked.pop(key)
            self._parked_count -= 1
            if not parked:
                del self._parked[query]
            reason = (
                f"the VM manager did not answer within {now - arrived:.2f} s, the share of "
                f"the station's resource wait delay the bridge may take"
            )
            refused.append(self.bridge.refuse(ref, manager, vsi, _unanswered(reason)))
        return Outcome().merge(*refused)

    # timers ---------------------------------------------------------------------------------
    def tick(self, now: float) -> Reaction:
        """What is due: ECP retransmissions and LLDP of the sessions whose time has come, VSIs
        whose keep-alive timed out, link probes. Costs what is due, not what is held."""
        reaction = Reaction()
        while self._wakeups and self._wakeups[0][0] <= now:
            deadline, _, ref = heapq.heappop(self._wakeups)
            if self._scheduled.get(ref) != deadline:
                continue  # superseded by an earlier wake-up
            del self._scheduled[ref]
            session = self._sessions.get(ref.dpid, {}).get(ref)
            due = session.next_deadline() if session is not None else None
            if due is None:
                continue
            if due > now:
                self._schedule(session)
                continue
            reaction.extend(self._session_output(session, session.tick(now)))
        reaction.extend(self._apply(self.bridge.expire(now).merge(self._overdue(now)), now))
        for kind, fields in self.refusals.due(now):
            self._emit(kind, fields)
        if now >= self._next_probe:
            self._next_probe = now + links.PROBE_INTERVAL
            reaction.packets += self._probes(self.switches.dpids())
            expired = self.topology.expire(now)
            for link in expired:
                self._link_down(link)
            if expired:
                reaction.extend(self._topology_changed())
        return reaction

    def _probes(self, dpids: list[int]) -> list[tuple[int, int, bytes]]:
        return [
            (dpid, port_no, frame)
            for dpid in dpids
            for port_no, frame in links.probe_frames(dpid, self.switches.ports(dpid).values())
        ]

    # the VDP outcome -> flows -> responses --------------------------------------------------
    def _apply(
        self,
        outcome: Outcome,
        now: float,
        activation: tuple[PortRef, str] | None = None,
        arrivals: dict | None = None,
    ) -> Reaction:
        after_flows = [(k, f) for k, f in outcome.events if k in _AFTER_FLOWS]
        for kind, fields in outcome.events:
            if kind in _AFTER_FLOWS:
                continue
            self.migrations.observe(kind, fields, now)
            if kind == "vsi.refused":
                self.observer.refusal(fields["error"])
            if kind != "vsi.refused" or self.refusals.admit(fields, now):
                self._emit(kind, fields)
        self._dirty_vsis |= outcome.dirty
        sends = outcome.responses + outcome.unsolicited
        if not outcome.changes:
            return self._send_vdp(sends, now, arrivals)
        self.locations.record(outcome.changes, now)
        reaction = self._flow_change(self.programmer.update(outcome.changes))
        held = _Held(outcome.responses, outcome.unsolicited, after_flows, activation, arrivals)
        if not reaction.batches:
            return reaction.extend(self._release(held, now))
        reaction.ticket = next(self._tickets)
        self._held[reaction.ticket] = held
        return reaction

    def _release(self, held: _Held, now: float) -> Reaction:
        """What waited for flows now in place: events, frames to run again, VDP messages."""
        self._emit_after_flows(held.events, now)
        reaction = self._send_vdp(held.responses + held.unsolicited, now, held.arrivals)
        if held.activation is not None:
            ref = held.activation[0]
            reaction.resubmits += [
                (ref.dpid, ref.port_no, frame)
                for frame in self._activating.pop(held.activation, [])
            ]
        return reaction

    def _emit_after_flows(self, events: list[tuple[str, dict]], now: float) -> None:
        for kind, fields in events:
            took = now - fields["first_frame_at"]
            self.observer.activation(took)
            done = {**fields, "took_ms": round(1000 * took, 3)}
            self.migrations.observe(kind, done, now)
            self._emit(kind, done)

    def _flow_change(self, changes: dict[int, FlowMods]) -> Reaction:
        """The batches for the connected switches (the others are reconciled when they
        connect). The intent they carry is saved after they are sent (`save_unless_busy`), so
        the disk's sync does not delay them: nobody has been told of it yet, and a controller
        that dies first reconciles the switches back to the intent saved before."""
        return Reaction(
            batches=[
                FlowBatch(dpid, msgs, msgs.in_place)
                for dpid, msgs in sorted(changes.items())
                if dpid in self.switches and msgs
            ]
        )

    def flows_confirmed(self, ticket: int, failed: dict[int, str], now: float) -> Reaction:
        """Every batch of `ticket` was answered by its barrier; `failed` maps the dpid of each
        switch that refused a message (or went away) to why."""
        held = self._held.pop(ticket, None)
        if held is None:
            return Reaction()
        if not failed:
            return self._release(held, now)
        if held.activation is not None:
            self._activating.pop(held.activation, None)
        # An activation whose flows did not all go in stays decided: the switch that failed is
        # reconciled to it when it reconnects, and the VM has no better place to forward.
        for _, fields in held.events:
            failure = {
                **fields,
                "switches": sorted(f"{d:016x}" for d in failed),
                "reason": "; ".join(failed.values()),
            }
            self.migrations.observe("vsi.activation_failed", failure, now)
            self._emit("vsi.activation_failed", failure)
        # The flows of these associations are not (all) in: refuse them rather than promise
        # forwarding that does not happen, and take back what was installed.
        undo = Outcome()
        responses = []
        for port, manager, tlv in held.responses:
            if tlv.error or tlv.mode is not VdpTlvType.ASSOCIATE:  # only these promise forwarding
                responses.append((port, manager, tlv))
                continue
            self._emit(
                "vsi.install_failed",
                {
                    **port_fields(port),
                    "vsi": vsi_id_text(tlv.vsi_id),
                    "switches": sorted(f"{d:016x}" for d in failed),
                    "reason": "; ".join(failed.values()),
                },
            )
            undo = undo.merge(
                self.bridge.deassociate(tlv.vsi_id, "flows could not be installed", now)
            )
            responses.append((port, manager, _failed(tlv)))
        undo.responses, undo.unsolicited = [], []  # the station hears of it through `responses`
        reaction = self._apply(undo, now)
        return reaction.extend(self._send_vdp(responses + held.unsolicited, now, held.arrivals))

    # the saved intent -----------------------------------------------------------------------
    def save_unless_busy(self, now: float, busy: bool) -> None:
        """The owner's save after its messages are sent. Skipped while `busy` (flows on their
        way to a switch), for at most SAVE_DELAY_MAX: what waits for their confirmation (VDP
        responses, a migrating VM's re-injected frames) must not wait behind the disk's sync
        as well. A station hears nothing before its change is saved all the same (_send_vdp)."""
        if not self._dirty():
            return
        if self._unsaved_since is None:
            self._unsaved_since = now
        if not busy or now - self._unsaved_since >= SAVE_DELAY_MAX:
            self.save()

    def save(self) -> None:
        """Writes what changed since the last save, in one call (one transaction)."""
        if not self._dirty():
            return
        changes = IntentChanges(
            vsis={
                vsi_key(int(v.format), v.value.hex()): self.bridge.export_vsi(v)
                for v in self._dirty_vsis
            },
            links=self._link_rows() if self._links_dirty else None,
            rr_ports=self._rr_rows() if self._rr_dirty else None,
            channels=self._channel_rows() if self._channels_dirty else None,
        )
        self._save(changes)
        self._dirty_vsis, self._links_dirty, self._rr_dirty = set(), False, False
        self._channels_dirty = False
        self._unsaved_since = None

    def _dirty(self) -> bool:
        return bool(self._dirty_vsis) or self._links_dirty or self._rr_dirty or self._channels_dirty

    def _rr_rows(self) -> list[list[int]]:
        """[dpid, port number] of each RR port, with its S-VID when it is an S-channel."""
        return sorted([r.dpid, r.port_no, *([r.svid] if r.svid else [])] for r in self._rr_applied)

    def _channel_rows(self) -> list[list[int]]:
        """[dpid, port number, SCID, S-VID] of every S-channel."""
        return sorted(
            [dpid, port_no, scid, svid]
            for dpid, ports in self._channels.items()
            for port_no, held in ports.items()
            for scid, svid in held.items()
        )

    def _link_rows(self) -> list[list[int]]:
        return [
            [link.a.dpid, link.a.port_no, link.b.dpid, link.b.port_no]
            for link in self.topology.links
        ]

    def intent(self) -> dict:
        """The whole intent as one document (what IntentStore.load returns): the bridge's
        VSIs, the links, the RR ports, the S-channels."""
        return {
            "version": 1,
            "vsis": self.bridge.export(),
            "links": self._link_rows(),
            "rr_ports": self._rr_rows(),
            "channels": self._channel_rows(),
        }

    def restore(self, intent: dict, database, now: float) -> None:
        """Takes back a saved intent at start, before any switch connects: each switch that
        connects is then reconciled against the same flows it holds, so nothing is flushed."""
        for a_dpid, a_port, b_dpid, b_port in intent.get("links", []):
            self.topology.add_link(PortRef(a_dpid, a_port), PortRef(b_dpid, b_port), now)
        self._restored_rr = {PortRef(*ref) for ref in intent.get("rr_ports", [])}
        for dpid, port_no, scid, svid in intent.get("channels", []):
            self._channels.setdefault(dpid, {}).setdefault(port_no, {})[scid] = svid
        self._restored_switches = {record["port"][0] for record in intent.get("vsis", [])}
        self._rr_applied = frozenset(self._restored_rr)
        self.programmer.set_routes(self.topology.routes())
        self.programmer.set_rr_ports(self._rr_applied)
        outcome = self.bridge.restore(intent.get("vsis", []), database, now)
        for kind, fields in outcome.events:
            self._emit(kind, fields)
        self.programmer.adopt(after for _, after in outcome.changes.values() if after)
        self._dirty_vsis |= outcome.dirty
        self.save()
        self.event_log.emit(
            "controller.restored", vsis=len(self.bridge), links=len(self.topology.links)
        )

    # S-channels (CDCP) ---------------------------------------------------------------------
    def _answer_cdcp(self, session: PortSession, station: CdcpTlv, now: float) -> Reaction:
        """A station's new CDCP TLV on its port: the port's S-channels follow it
        (app/session/cdcp.py), the removed ones take their VSIs and flows with them, and the
        port's LLDPDUs carry the answer. Costs the port's channels."""
        port = session.port
        if not self.cdcp_config.enabled:
            self._counters[port.dpid][session.port_name]["cdcp_disabled"] += 1
            return self._session_output(session, session.answer_cdcp(None, now))
        held = self._held_channels(port)
        result = cdcp.answer(station, held, self.cdcp_config)
        where = port_fields(port)
        if result.ignored is not None:
            self._emit("cdcp.ignored", {**where, "reason": result.ignored})
        added = {c: v for c, v in result.channels.items() if held.get(c) != v}
        removed = {c: v for c, v in held.items() if result.channels.get(c) != v}
        for scid, svid in sorted(removed.items()):
            self._emit("cdcp.channel_removed", {**where, "scid": scid, "svid": svid})
        for scid, svid in sorted(added.items()):
            self._emit("cdcp.channel_added", {**where, "scid": scid, "svid": svid})
        if result.refused:
            self._emit(
                "cdcp.refused",
                {
                    **where,
                    "scids": list(result.refused),
                    "channels": len(result.channels) + 1,
                    "chncap": min(self.cdcp_config.max_channels, station.chncap),
                    "svids": "{}-{}".format(*self.cdcp_config.svids),
                },
            )
        if added or removed:
            self._channels_dirty = True
            ports = self._channels.setdefault(port.dpid, {})
            ports[port.port_no] = result.channels
            if not result.channels:
                del ports[port.port_no]
                if not ports:
                    del self._channels[port.dpid]
        reaction = Reaction()
        for svid in removed.values():
            reaction.extend(self._close_channel(PortRef(port.dpid, port.port_no, svid), now))
        return reaction.extend(self._session_output(session, session.answer_cdcp(result.tlv, now)))

    def _held_channels(self, port: PortRef) -> dict[int, int]:
        """The S-channels of a server port, SCID -> S-VID."""
        return self._channels.get(port.dpid, {}).get(port.port_no, {})

    def _close_channel(self, channel: PortRef, now: float) -> Reaction:
        """An S-channel the station gave up: its session ends and its VSIs go with their flows
        (its station is gone with it: nobody to tell)."""
        self._drop_session(channel)
        reaction = self._apply(self.bridge.port_down(channel, now, "S-channel removed"), now)
        return reaction.extend(self._rr_changed())

    # links and reflective relay ---------------------------------------------------------------
    def _topology_changed(self) -> Reaction:
        self._links_dirty = True
        return self._flow_change(self.programmer.set_routes(self.topology.routes()))

    def _note_agreement(self, ref: PortRef, session: PortSession) -> bool:
        """Keeps the RR sets in step with the port's agreement; whether they changed."""
        agreement = session.agreement
        before = (ref in self._agreed, ref in self._rr_granted)
        after = (agreement is not None, bool(agreement and agreement.rr_granted))
        for present, members in zip(after, (self._agreed, self._rr_granted), strict=True):
            (members.add if present else members.discard)(ref)
        return before != after

    def _rr_ports(self) -> set[PortRef]:
        """Ports where reflective relay is granted; after a restart, until the station's next
        LLDP, the ports where it was granted before (so hairpin flows are not torn down)."""
        return self._rr_granted | (self._restored_rr - self._agreed)

    def _rr_changed(self) -> Reaction:
        """After an agreement changed or a session ended (not on every request: the set is
        as large as the ports with reflective relay)."""
        rr_ports = frozenset(self._rr_ports())
        if rr_ports == self._rr_applied:
            return Reaction()
        self._rr_applied, self._rr_dirty = rr_ports, True
        return self._flow_change(self.programmer.set_rr_ports(rr_ports))

    def _send_vdp(self, sends: list[Send], now: float, arrivals: dict | None = None) -> Reaction:
        """`arrivals`: when the requests these answer came, by (port, VSI ID, mode)."""
        if sends:
            self.save()  # what a station is told survives a restart
        by_port: dict[PortRef, list] = collections.defaultdict(list)
        for port, manager, tlv in sends:
            by_port[port].append((manager, tlv))
            arrived = (arrivals or {}).get((port, tlv.vsi_id, tlv.mode))
            self.observer.vdp_response(
                _mode_name(tlv.mode),
                _status_name(tlv),
                None if arrived is None else now - arrived,
            )
        reaction = Reaction()
        for ref, items in by_port.items():
            session = self._sessions.get(ref.dpid, {}).get(ref)
            if session is None:
                continue  # the port went away; the station will time the VSI out itself
            reaction.extend(self._session_output(session, session.send_vdp(items, now)))
        return reaction

    # the VM manager's and the operator's requests -----------------------------------------
    def deassociate(self, vsi_id: VsiId, reason: str, now: float) -> Reaction:
        """Bridge-initiated De-Associate: flows removed, then the station told. KeyError if the
        VSI is unknown."""
        return self._apply(self.bridge.deassociate(vsi_id, reason, now), now)

    def prepare(self, vsi_id: VsiId, port: PortRef, now: float, *, replicate: bool) -> Reaction:
        """Relocation (draft 5.5) or replication (5.6): the VSI's state prepared at `port`.
        KeyError / ValueError as VdpBridge.prepare."""
        if not self.switches.has_port(port):
            raise KeyError(f"no port {port} on a connected switch")
        hold = math.inf if replicate else RELOCATION_HOLD
        reason = "replication" if replicate else "relocation"
        return self._apply(self.bridge.prepare(vsi_id, port, now, hold, reason), now)

    def apply_profiles(self, database, now: float) -> tuple[Reaction, dict]:
        """A new VSI type database for the VMs already associated (see VdpBridge)."""
        outcome = self.bridge.update_profiles(database, now)
        result = {
            "updated": sum(kind == "vsi.updated" for kind, _ in outcome.events),
            "deassociated": [f["vsi"] for kind, f in outcome.events if kind == "vsi.deassociated"],
        }
        return self._apply(outcome, now), result

    def lookup(self, vsi_id: VsiId) -> dict | None:
        """Where the VSI is attached now and where it forwarded before (port, until `now`)."""
        info = self.bridge.vsi(vsi_id)
        if info is None and vsi_id not in self.locations:
            return None
        name, port_name = self.switches.name, self.switches.port_name
        return {
            "current": [
                {"switch": name(a.port.dpid), "port": port_name(a.port), "state": a.state.value}
                for a in (info.attachments if info else ())
            ],
            "previous": [
                {"switch": name(p.dpid), "port": port_name(p), "until": t, "host": host}
                for p, t, host in self.locations.of(vsi_id)
            ],
        }

    def station_mac(self, ref: PortRef) -> str | None:
        """The MAC the port's station sends its LLDP from (which host it is: the inventory)."""
        session = self._sessions.get(ref.dpid, {}).get(ref)
        return session.station_mac if session is not None else None

    def find_vsi(self, text: str) -> VsiId | None:
        """The VSI whose ID text or one of whose MACs is `text` (held now, or held before)."""
        text = text.lower()
        vsi_id = vsi_id_from_text(text)
        if vsi_id is not None and (self.bridge.vsi(vsi_id) is not None or vsi_id in self.locations):
            return vsi_id
        holders = self.bridge.with_mac(text)
        return holders[0] if holders else None

    def group_ids_at(self, ref: PortRef) -> bool:
        """Whether the station at ``ref`` and the bridge agreed on group IDs (BGID and SGID)."""
        session = self._sessions.get(ref.dpid, {}).get(ref)
        agreement = session.agreement if session is not None else None
        return agreement is not None and agreement.group_ids

    def vm_places(self, where: Iterable[tuple[str, str | None]]) -> list[VmPlace]:
        """The VMs forwarding at the given (switch name, port name) places, None for a whole
        switch (for the fault monitor): costs the VMs there, not the fabric's."""
        places = []
        for switch, port in set(where):
            dpid = self.switches.dpid_of(switch)
            port_no = self.switches.port_no_of(dpid, port) if dpid is not None and port else None
            if dpid is None or (port is not None and port_no is None):
                continue
            places += [
                VmPlace(
                    vsi_id_text(b.vsi_id),
                    b.profile.tenant,
                    switch,
                    self.switches.port_name(b.port),
                    tuple(e.mac for e in b.entries),
                )
                for b in self.bridge.bound.at(dpid, port_no)
                if b.forwarding
            ]
        return places

    # helpers --------------------------------------------------------------------------------
    def _session(self, ref: PortRef, port: Port) -> PortSession:
        session = self._sessions.get(ref.dpid, {}).get(ref)
        if session is None:
            config = self.evb_settings.for_port(self.switches.name(ref.dpid), port.name)
            session = PortSession(ref, port.name, port.hw_addr, config, self._first_sequence())
            self._sessions.setdefault(ref.dpid, {})[ref] = session
        return session

    def _drop_session(self, ref: PortRef) -> None:
        sessions = self._sessions.get(ref.dpid, {})
        if sessions.pop(ref, None) is not None:
            self._agreed.discard(ref)
            self._rr_granted.discard(ref)
        if not sessions:
            self._sessions.pop(ref.dpid, None)

    def _schedule(self, session: PortSession) -> None:
        """Wakes the session at its next deadline, unless an earlier wake-up is pending (it
        will look again)."""
        deadline = session.next_deadline()
        if deadline is None:
            return
        scheduled = self._scheduled.get(session.port)
        if scheduled is not None and scheduled <= deadline:
            return
        self._scheduled[session.port] = deadline
        heapq.heappush(self._wakeups, (deadline, next(self._tie), session.port))

    def _session_output(self, session: PortSession, out: SessionOutput) -> Reaction:
        for kind, fields in out.events:
            self._emit(kind, fields)
        self._schedule(session)
        return Reaction(
            packets=[(session.port.dpid, session.port.port_no, frame) for frame in out.frames]
        )

    def _link_down(self, link) -> None:
        self._emit("link.down", {**port_fields(link.a), "peer": self.switches.text(link.b)})

    def _emit(self, kind: str, fields: dict) -> None:
        """The one formatter of the pure parts' events: they say where with PortRefs (``at``,
        app/vdp/describe.port_fields, and any other field); operators read switch and port
        names."""
        at = fields.get("at")
        named = {
            key: self.switches.text(value) if isinstance(value, PortRef) else value
            for key, value in fields.items()
            if key != "at"
        }
        level = (
            logging.WARNING
            if kind.endswith(
                (
                    "refused",
                    "refused_summary",
                    "failed",
                    "expired",
                    "gave_up",
                    "overflow",
                    "clamped",
                )
            )
            else logging.INFO
        )
        if at is not None and at.svid:
            named["svid"] = at.svid
        self.event_log.emit(
            kind,
            switch=self.switches.name(at.dpid) if at else None,
            port=self.switches.port_name(at) if at else None,
            level=level,
            **named,
        )

    def _drop_event(self, ref: PortRef, port: Port, err: CodecError, now: float) -> None:
        last = self._last_drop_event.get(ref)
        if last is not None and now - last < DROP_EVENT_INTERVAL:
            return
        self._last_drop_event[ref] = now
        self.event_log.emit(
            "frame.dropped",
            switch=self.switches.name(ref.dpid),
            port=port.name,
            level=logging.WARNING,
            field=err.field,
            reason=err.message,
            dropped_total=self._counters[ref.dpid][port.name]["malformed"],
        )

    # views ----------------------------------------------------------------------------------
    def counters_for(self, dpid: int) -> dict[str, dict[str, int]]:
        """Per port name: frames by kind as counted here and by the port's session."""
        result = {name: dict(counts) for name, counts in self._counters[dpid].items()}
        for ref, session in self._sessions.get(dpid, {}).items():
            name = f"{session.port_name}.{ref.svid}" if ref.svid else session.port_name
            result.setdefault(name, {}).update(session.counters)
        return result

    def channels(self, dpid: int) -> dict[int, list[dict[str, int]]]:
        """The S-channels of the switch's server ports, by port number."""
        return {
            port_no: [{"scid": scid, "svid": svid} for scid, svid in sorted(held.items())]
            for port_no, held in sorted(self._channels.get(dpid, {}).items())
        }

    def links_snapshot(self) -> list[dict]:
        return [
            {"a": self.switches.text(link.a), "b": self.switches.text(link.b)}
            for link in self.topology.links
        ]

    def sessions_snapshot(self) -> list[dict]:
        """Every station session; a port's own (its default S-channel) lists its S-channels."""
        return [
            {
                **self._sessions[d][ref].snapshot(),
                **(
                    {}
                    if ref.svid
                    else {
                        "channels": [
                            {"scid": scid, "svid": svid}
                            for scid, svid in sorted(self._held_channels(ref).items())
                        ]
                    }
                ),
            }
            for d in sorted(self._sessions)
            for ref in sorted(self._sessions[d])
        ]


def _mode_name(mode: int) -> str:
    return VdpTlvType(mode).name.lower() if mode in VdpTlvType._value2member_map_ else str(mode)


def _status_name(tlv: VsiTlv) -> str:
    if not tlv.is_response:
        return "unsolicited"  # a bridge-initiated De-Associate
    return VdpError(tlv.error).name.lower() if tlv.error in VdpError._value2member_map_ else "other"


def _unanswered(reason: str) -> Decision:
    return Decision(VdpError.UNABLE_TO_CONTACT_VSI_MANAGER, reason, hard=False)


def _failed(tlv: VsiTlv) -> VsiTlv:
    status = (tlv.status & ~STATUS_ERROR_MASK) | VdpError.OTHER_FAILURE
    return dataclasses.replace(tlv, status=status)
