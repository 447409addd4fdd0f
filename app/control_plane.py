"""The path of one request, end to end, in one place:

    packet-in -> decode (app/codec) -> per-port EVB/ECP session (app/session/port_session.py)
      -> VDP bridge machine (app/vdp/bridge.py) -> authorizer (app/vdp/authorizer.py)
      -> flow plan (app/flows/vm_flows.py) -> one barrier-checked batch per switch
      -> only then the VDP response, out through the port's ECP.

Pure apart from the event log: every entry point takes `now` and returns a Reaction (frames to
send now, flow batches to apply); the os-ken shim (app/controller/evb_app.py) sends them and
calls `flows_confirmed` when the switches' barriers have answered.
"""
import collections
import dataclasses
import itertools
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from app.codec.errors import CodecError
from app.codec.frame import decode_evb_frame
from app.codec.vdp import STATUS_ERROR_MASK, VdpError, VdpTlvType, VsiId, VsiTlv
from app.events import EventLog
from app.fabric import links
from app.fabric.links import Topology
from app.fabric.ports import Port, PortRef, PortRole
from app.flows.vm_flows import plan_vm_flows
from app.flows.programmer import FlowProgrammer
from app.session.evb_negotiation import BridgeEvbConfig
from app.session.port_session import PortSession, SessionOutput
from app.vcenter.client import LookupPending
from app.vdp.bridge import VdpBridge
from app.vdp.describe import port_fields, vsi_id_text
from app.vdp.outcome import Outcome, Send

# At most one frame.dropped event per port per this many seconds: a flood of garbage must not
# become a flood of log lines; the counters still count every frame.
DROP_EVENT_INTERVAL = 10.0
# How long a relocation prepared by the VM manager waits for the destination station's Associate.
RELOCATION_HOLD = 120.0


@dataclass
class FlowBatch:
    dpid: int
    msgs: list


@dataclass
class Reaction:
    """What the shim does: send `packets` now; send each batch followed by a barrier and, when
    `ticket` is set, call flows_confirmed(ticket) once every batch's barrier has answered."""
    packets: list[tuple[int, int, bytes]] = field(default_factory=list)  # (dpid, port_no, frame)
    batches: list[FlowBatch] = field(default_factory=list)
    ticket: int | None = None

    def extend(self, other: "Reaction") -> "Reaction":
        # One ticket per reaction: the batches would otherwise confirm the wrong responses.
        if self.ticket is not None and other.ticket is not None:
            raise ValueError("two flow changes awaiting confirmation in one reaction")
        self.packets += other.packets
        self.batches += other.batches
        if other.ticket is not None:
            self.ticket = other.ticket
        return self


@dataclass
class _Held:
    """VDP messages that may leave only once their flows are on the switches."""
    responses: list[Send]
    unsolicited: list[Send]


class ControlPlane:
    def __init__(self, event_log: EventLog, bridge: VdpBridge,
                 evb_config: BridgeEvbConfig = BridgeEvbConfig(),
                 save: Callable[[dict], None] = lambda intent: None,
                 first_sequence: Callable[[], int] = lambda: random.randrange(1, 0x10000)):
        """`save` persists the intent (see `intent()`) before any station hears of a change;
        `first_sequence` picks each new port session's first ECP sequence number (random, so a
        restarted controller's first PDU is not mistaken for a duplicate)."""
        self.event_log = event_log
        self.bridge = bridge
        self.evb_config = evb_config
        self._save = save
        self._first_sequence = first_sequence
        self._restored_rr: set[PortRef] = set()
        self._parked: dict = {}  # VM-manager query -> {(port, VSI ID): request}
        self.topology = Topology()
        self.programmer = FlowProgrammer()
        self._switches: dict[int, tuple[str, dict[int, Port]]] = {}
        self._sessions: dict[PortRef, PortSession] = {}
        self._counters: dict[int, dict[str, collections.Counter]] = collections.defaultdict(
            lambda: collections.defaultdict(collections.Counter))
        self._last_drop_event: dict[PortRef, float] = {}
        self._tickets = itertools.count(1)
        self._held: dict[int, _Held] = {}
        self._next_probe = 0.0
        self._forwarding: dict = {}   # VsiId -> PortRef where it forwards now
        self._history: dict = collections.defaultdict(list)  # VsiId -> [(PortRef, until)]

    # switches -------------------------------------------------------------------------------
    def switch_ports(self, dpid: int, name: str, ports: dict[int, Port], now: float) -> Reaction:
        """The switch's current ports (at connect time and after every port change). A port
        that is gone or down loses its link and its station session; its VSIs stay until their
        keep-alive times out (a link flap must not de-associate every VM behind it)."""
        self._switches[dpid] = (name, dict(ports))
        changed = False
        for number in {r.port_no for r in self._sessions if r.dpid == dpid} | \
                self.topology.link_ports(dpid):
            port = ports.get(number)
            if port is None or not port.up:
                self._sessions.pop(PortRef(dpid, number), None)
                link = self.topology.remove_port(PortRef(dpid, number))
                if link is not None:
                    self._link_down(link)
                    changed = True
        # Probe at once: until its links are known, the switch forwards nothing across.
        reaction = Reaction(packets=[(dpid, port_no, frame) for port_no, frame
                                     in links.probe_frames(dpid, ports.values())])
        return reaction.extend(self._replan(now)) if changed else reaction

    def switch_ready(self, dpid: int) -> Reaction:
        """The switch holds our punt flows now: every switch probes its trunks, so the links
        toward it are found at once rather than at the next probe round."""
        return Reaction(packets=[(d, port_no, frame) for d, (_, ports) in self._switches.items()
                                 for port_no, frame in links.probe_frames(d, ports.values())])

    def switch_gone(self, dpid: int, now: float) -> Reaction:
        self._switches.pop(dpid, None)
        self._sessions = {r: s for r, s in self._sessions.items() if r.dpid != dpid}
        return self._replan(now) if self.topology.remove_switch(dpid) else Reaction()

    def vm_flows(self, dpid: int) -> list:
        """Per-VM flows the switch must hold (SwitchSync reconciles them at connect time)."""
        return self.programmer.flows(dpid)

    def vm_meters(self, dpid: int) -> dict:
        return self.programmer.meters(dpid)

    # packet-in ------------------------------------------------------------------------------
    def handle_frame(self, dpid: int, port: Port, data: bytes, now: float) -> Reaction:
        name = self._name(dpid)
        counters = self._counters[dpid][port.name]
        ref = PortRef(dpid, port.number)
        try:
            frame = decode_evb_frame(data)
        except CodecError as err:
            counters["malformed"] += 1
            self._drop_event(ref, name, port, err, now)
            return Reaction()
        probe_from = links.probe_origin(frame)
        if probe_from is not None:
            counters["link_probe"] += 1
            if port.role is PortRole.TRUNK and self.topology.add_link(probe_from, ref, now):
                self.event_log.emit("link.up", switch=name, port=port.name,
                                    peer=self._port_text(probe_from))
                return self._replan(now)
            return Reaction()
        if port.role is not PortRole.SERVER:
            counters["ignored_on_trunk"] += 1
            return Reaction()
        session = self._session(ref, port)
        relay = session.agreement.rr_granted if session.agreement else None
        out = session.on_frame(frame, now)
        reaction = self._session_output(session, out)
        if session.agreement and session.agreement.rr_granted != relay:
            reaction.extend(self._replan(now))  # hairpin flows follow reflective relay
        return reaction.extend(self._requests(
            [(ref, manager, vsi, session.keepalive_timeout) for manager, vsi in out.vdp], now))

    def _requests(self, requests, now: float) -> Reaction:
        """(port, manager, VSI TLV, keep-alive timeout) requests, as one outcome: one flow
        change, one ticket, and the responses after it."""
        outcome = Outcome()
        for ref, manager, vsi, keepalive_timeout in requests:
            try:
                outcome = outcome.merge(self.bridge.on_request(
                    ref, manager, vsi, now, keepalive_timeout))
            except LookupPending as pending:
                # The VM manager is being asked about this type: answer when it has answered.
                # Only the latest request of a VSI at a port is kept: the station resends.
                parked = self._parked.setdefault(pending.query, {})
                parked[(ref, vsi.vsi_id)] = (manager, vsi, keepalive_timeout)
        return self._apply(outcome, now)

    def lookup_done(self, query, now: float) -> Reaction:
        """The VM manager answered `query` (the answer is in the client's cache): the requests
        parked on it go through the bridge again."""
        parked = self._parked.pop(query, {})
        return self._requests([(ref, manager, vsi, timeout) for (ref, _), (manager, vsi, timeout)
                               in parked.items()], now)

    # timers ---------------------------------------------------------------------------------
    def tick(self, now: float) -> Reaction:
        reaction = Reaction()
        for session in list(self._sessions.values()):
            deadline = session.next_deadline()
            if deadline is not None and deadline <= now:
                reaction.extend(self._session_output(session, session.tick(now)))
        reaction.extend(self._apply(self.bridge.expire(now), now))
        if now >= self._next_probe:
            self._next_probe = now + links.PROBE_INTERVAL
            reaction.packets += [(dpid, port_no, frame)
                                 for dpid, (_, ports) in self._switches.items()
                                 for port_no, frame in links.probe_frames(dpid, ports.values())]
            expired = self.topology.expire(now)
            for link in expired:
                self._link_down(link)
            if expired:
                reaction.extend(self._replan(now))
        return reaction

    # the VDP outcome -> flows -> responses --------------------------------------------------
    def _apply(self, outcome: Outcome, now: float) -> Reaction:
        for kind, fields in outcome.events:
            self._emit(kind, fields)
        if not outcome.bindings_changed:
            if outcome.events:  # a state change without flows (e.g. a plain Pre-Associate)
                self._save(self.intent())
            return self._send_vdp(outcome.responses + outcome.unsolicited, now)
        reaction = self._replan(now)
        if not reaction.batches:
            return reaction.extend(self._send_vdp(outcome.responses + outcome.unsolicited, now))
        reaction.ticket = next(self._tickets)
        self._held[reaction.ticket] = _Held(outcome.responses, outcome.unsolicited)
        return reaction

    def flows_confirmed(self, ticket: int, failed: dict[int, str], now: float) -> Reaction:
        """Every batch of `ticket` was answered by its barrier; `failed` maps the dpid of each
        switch that refused a message (or went away) to why."""
        held = self._held.pop(ticket, None)
        if held is None:
            return Reaction()
        if not failed:
            return self._send_vdp(held.responses + held.unsolicited, now)
        # The flows of these associations are not (all) in: refuse them rather than promise
        # forwarding that does not happen, and take back what was installed.
        reaction = Reaction()
        responses = []
        for port, manager, tlv in held.responses:
            if tlv.error or tlv.mode is not VdpTlvType.ASSOCIATE:  # only these promise forwarding
                responses.append((port, manager, tlv))
                continue
            self._emit("vsi.install_failed", {**port_fields(port), "vsi": vsi_id_text(tlv.vsi_id),
                                              "switches": sorted(f"{d:016x}" for d in failed),
                                              "reason": "; ".join(failed.values())})
            undo = self.bridge.deassociate(tlv.vsi_id, "flows could not be installed", now)
            for kind, fields in undo.events:
                self._emit(kind, fields)
            responses.append((port, manager, _failed(tlv)))
        reaction.extend(self._replan(now))
        return reaction.extend(self._send_vdp(responses + held.unsolicited, now))

    def _track_locations(self, bindings, now: float) -> None:
        """Remembers where each VSI forwarded before (server lookup, draft 5.4)."""
        forwarding = {b.vsi_id: b.port for b in bindings if b.forwarding}
        for vsi_id, port in self._forwarding.items():
            if forwarding.get(vsi_id) != port:
                self._history[vsi_id].append((port, now))
        self._forwarding = forwarding

    def _rr_ports(self) -> set[PortRef]:
        """Ports where reflective relay is granted; after a restart, until the station's next
        LLDP, the ports where it was granted before (so hairpin flows are not torn down)."""
        agreed = {ref: s.agreement.rr_granted for ref, s in self._sessions.items() if s.agreement}
        return {ref for ref, granted in agreed.items() if granted} | \
            {ref for ref in self._restored_rr if ref not in agreed}

    def intent(self) -> dict:
        """What must survive a restart: the bridge's VSIs, the links, the RR ports."""
        return {"version": 1, "vsis": self.bridge.export(),
                "links": [[link.a.dpid, link.a.port_no, link.b.dpid, link.b.port_no]
                          for link in self.topology.links],
                "rr_ports": sorted([r.dpid, r.port_no] for r in self._rr_ports())}

    def restore(self, intent: dict, database, now: float) -> None:
        """Takes back a saved intent at start, before any switch connects: each switch that
        connects is then reconciled against the same flows it holds, so nothing is flushed."""
        outcome = self.bridge.restore(intent.get("vsis", []), database, now)
        for a_dpid, a_port, b_dpid, b_port in intent.get("links", []):
            self.topology.add_link(PortRef(a_dpid, a_port), PortRef(b_dpid, b_port), now)
        self._restored_rr = {PortRef(*ref) for ref in intent.get("rr_ports", [])}
        for kind, fields in outcome.events:
            self._emit(kind, fields)
        self._replan(now)
        self.event_log.emit("controller.restored", vsis=len(self.bridge.vsis()),
                            links=len(self.topology.links))

    def _replan(self, now: float) -> Reaction:
        bindings = self.bridge.bindings()
        self._track_locations(bindings, now)
        self._save(self.intent())
        plans = plan_vm_flows(bindings, self.topology, self._rr_ports())
        changes = self.programmer.update(plans)
        return Reaction(batches=[FlowBatch(dpid, msgs) for dpid, msgs in sorted(changes.items())
                                 if dpid in self._switches and msgs])

    def _send_vdp(self, sends: list[Send], now: float) -> Reaction:
        by_port: dict[PortRef, list] = collections.defaultdict(list)
        for port, manager, tlv in sends:
            by_port[port].append((manager, tlv))
        reaction = Reaction()
        for ref, items in by_port.items():
            session = self._sessions.get(ref)
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
        if port.dpid not in self._switches or port.port_no not in self._switches[port.dpid][1]:
            raise KeyError(f"no port {port} on a connected switch")
        hold = math.inf if replicate else RELOCATION_HOLD
        reason = "replication" if replicate else "relocation"
        return self._apply(self.bridge.prepare(vsi_id, port, now, hold, reason), now)

    def apply_profiles(self, database, now: float) -> tuple[Reaction, dict]:
        """A new VSI type database for the VMs already associated (see VdpBridge)."""
        outcome = self.bridge.update_profiles(database, now)
        result = {"updated": sum(kind == "vsi.updated" for kind, _ in outcome.events),
                  "deassociated": [f["vsi"] for kind, f in outcome.events
                                   if kind == "vsi.deassociated"]}
        return self._apply(outcome, now), result

    def port_names(self) -> dict[PortRef, tuple[str, str]]:
        """(switch name, port name) of every known port."""
        return {PortRef(dpid, number): (name, port.name)
                for dpid, (name, ports) in self._switches.items()
                for number, port in ports.items()}

    def lookup(self, vsi_id: VsiId) -> dict | None:
        """Where the VSI is attached now and where it forwarded before (port, until `now`)."""
        info = next((v for v in self.bridge.vsis() if v.vsi_id == vsi_id), None)
        if info is None and vsi_id not in self._history:
            return None
        return {
            "current": [{"switch": self._name(a.port.dpid), "port": self._port_name(a.port),
                         "state": a.state.value} for a in (info.attachments if info else ())],
            "previous": [{"switch": self._name(p.dpid), "port": self._port_name(p), "until": t}
                         for p, t in self._history.get(vsi_id, ())],
        }

    def find_vsi(self, text: str) -> VsiId | None:
        """The VSI whose ID text or one of whose MACs is `text`."""
        text = text.lower()
        for info in self.bridge.vsis():
            if info.name.lower() == text or any(
                    e.mac == text for a in info.attachments for e in a.entries):
                return info.vsi_id
        return next((v for v in self._history if vsi_id_text(v).lower() == text), None)

    def port_ref(self, switch: str, port: str) -> PortRef:
        """A port by switch name (or dpid) and port name (or number). KeyError if unknown."""
        for dpid, (name, ports) in self._switches.items():
            if switch in (name, f"{dpid:016x}", str(dpid)):
                for number, p in ports.items():
                    if port in (p.name, str(number)):
                        return PortRef(dpid, number)
                raise KeyError(f"switch {name} has no port {port}")
        raise KeyError(f"no connected switch {switch}")

    # helpers --------------------------------------------------------------------------------
    def _session(self, ref: PortRef, port: Port) -> PortSession:
        session = self._sessions.get(ref)
        if session is None:
            session = PortSession(ref, port.name, port.hw_addr, self.evb_config,
                                  self._first_sequence())
            self._sessions[ref] = session
        return session

    def _session_output(self, session: PortSession, out: SessionOutput) -> Reaction:
        for kind, fields in out.events:
            self._emit(kind, fields)
        return Reaction(packets=[(session.port.dpid, session.port.port_no, frame)
                                 for frame in out.frames])

    def _link_down(self, link) -> None:
        self._emit("link.down", {**port_fields(link.a), "peer": self._port_text(link.b)})

    def _emit(self, kind: str, fields: dict) -> None:
        """The pure parts name a port as app.vdp.describe.port_fields does (switch as 16 hex
        digits, port_no); operators read bridge and port names."""
        fields = dict(fields)
        switch, port_no, port = (fields.pop(k, None) for k in ("switch", "port_no", "port"))
        dpid = int(switch, 16) if switch is not None else None
        if port is None and dpid is not None and port_no is not None:
            port = self._port_name(PortRef(dpid, port_no))
        level = logging.WARNING if kind.endswith(("refused", "failed", "expired", "gave_up")) \
            else logging.INFO
        self.event_log.emit(kind, switch=self._name(dpid) if dpid is not None else None,
                            port=port, level=level, **fields)

    def _name(self, dpid: int) -> str:
        entry = self._switches.get(dpid)
        return entry[0] if entry else f"{dpid:016x}"

    def _port_name(self, ref: PortRef) -> str:
        entry = self._switches.get(ref.dpid)
        port = entry[1].get(ref.port_no) if entry else None
        return port.name if port else str(ref.port_no)

    def names(self, ref: PortRef) -> tuple[str, str]:
        """(switch name, port name) of a port; dpid in hex / port number when unknown."""
        return self._name(ref.dpid), self._port_name(ref)

    def _port_text(self, ref: PortRef) -> str:
        return f"{self._name(ref.dpid)}/{self._port_name(ref)}"

    def _drop_event(self, ref: PortRef, name: str, port: Port, err: CodecError,
                    now: float) -> None:
        last = self._last_drop_event.get(ref)
        if last is not None and now - last < DROP_EVENT_INTERVAL:
            return
        self._last_drop_event[ref] = now
        self.event_log.emit("frame.dropped", switch=name, port=port.name,
                            level=logging.WARNING, field=err.field, reason=err.message,
                            dropped_total=self._counters[ref.dpid][port.name]["malformed"])

    # views ----------------------------------------------------------------------------------
    def counters_for(self, dpid: int) -> dict[str, dict[str, int]]:
        """Per port name: frames by kind as counted here and by the port's session."""
        result = {name: dict(counts) for name, counts in self._counters[dpid].items()}
        for ref, session in self._sessions.items():
            if ref.dpid == dpid:
                result.setdefault(session.port_name, {}).update(session.counters)
        return result

    def links_snapshot(self) -> list[dict]:
        return [{"a": self._port_text(link.a), "b": self._port_text(link.b)}
                for link in self.topology.links]

    def sessions_snapshot(self) -> list[dict]:
        return [s.snapshot() for _, s in sorted(self._sessions.items())]


def _failed(tlv: VsiTlv) -> VsiTlv:
    status = (tlv.status & ~STATUS_ERROR_MASK) | VdpError.OTHER_FAILURE
    return dataclasses.replace(tlv, status=status)
