"""The VDP22 bridge role (IEEE 802.1Qbg-2012 clause 41): every VSI of the fabric and its state.

Pure: methods take ``now`` (seconds) and return an Outcome (frames to send, whether the bindings
changed, decision events); no I/O, no timers of its own (call ``expire`` periodically).

VSIs are keyed by VSI ID across the whole fabric, not per port, so that anti-spoofing sees every
MAC and a VSI can move between ports. A VSI is *attached* at one or more ports; each attachment
has its station's last granted request, the response it got, its keep-alive timer and a state:

* PRE_ASSOCIATED (Pre-Associate): validated only. Nothing is reserved or installed, so there is
  no binding; it does not hold its MACs against other VSIs or count against limits.
* PRE_ASSOCIATED_RR (Pre-Associate with RR): validated and reserved: a PREPARED binding.
* ASSOCIATED (Associate): a FORWARDING binding. At most one per VSI.
* SUSPENDED: after a De-Associate with the S-bit (suspend / migrate-from) that left the VSI
  attached nowhere: the VSI's record is held, nothing is forwarded or reserved, until an
  attachment appears (any port) or the hold, the De-Associate's keep-alive timeout, ends.

Migration: a Pre-Associate(-RR) at another port adds a second attachment while the source keeps
forwarding. That destination stands by (a STANDBY binding: meter and ACLs ready, the VM's frames
there punted, nothing forwarded) and the first frame with one of its MACs there (QEMU's RARP
announcement as the VM resumes, or any frame) activates it (``activate``): the destination
forwards and the source is superseded (still associated for its station, forwarding nothing) in
one change, so the network follows the VM as soon as it runs, not one VDP round later. The
destination's Associate then confirms what is in place; the source's De-Associate tidies up. An
Associate at the destination moves the VSI whether or not it was activated: the destination
forwards, the source attachment is removed in the same Outcome and, if its station had not
de-associated, is sent an unsolicited De-Associate. Other pre-associations of the VSI are left to
expire or de-associate; a standby that expires or is de-associated before any frame leaves the
source forwarding (a cancelled migration). Activation happens only at a port where the VSI
stands by with that MAC: the VM's MAC anywhere else meets the default deny.
A bare Associate (no attachment at that port, no migrate-to hint, the M-bit) while the VSI is
associated elsewhere is refused (OTHER_FAILURE, not hard; vsi.refused with ``held_at``): naming
a running VM's VSI ID is no migration, and the source keeps it. Once the source is gone
(de-associated, suspended, timed out) the VSI may start anywhere.

Responses (status octet: response bit 0x40 | KEEP 0x20 | HARD 0x10 | error):
* Granted: 0x40; VID 0 entries come back with the VID the bridge chose (the station adopts it).
* Keep-alive (a request identical, hints aside, to the last granted one at that port): the same
  response again and the timer refreshed; no re-authorization, so the station's adopted VIDs
  stay valid.
* Refused at a port where the VSI is ASSOCIATED (a changed request): error + KEEP. The
  association stays exactly as it was, still forwarding; the timer is not refreshed (only a
  keep-alive of the associated state is one). lldpad's station keeps its association on KEEP in
  an Associate response and de-associates when a keep-alive gets KEEP.
* Refused anywhere else (a new VSI, or one only pre-associated at that port): error, no KEEP,
  and a pre-association at that port is released: on an error without KEEP the station ends the
  VSI (lldpad: VDP22_END), so keeping it would only leak the reservation until the timeout.
* HARD is set when retrying the same request cannot succeed (see the authorizer's table: format,
  unknown type, Manager ID, VID, spoofed MAC); resource limits and an unreachable VSI manager
  are transient. lldpad's station ignores HARD; it tells other stations not to retry.
* Pre-Associate(-RR) at the port where the VSI is ASSOCIATED: OTHER_FAILURE + KEEP + HARD. A
  pre-association must not silently stop a running VM; lldpad's station never sends it and its
  bridge table marks it an error. (At another port it is a migration, see above.)
* De-Associate: 0x40, always, also for a VSI not attached at that port (nothing to remove: the
  station's goal holds). It removes exactly that VSI's attachment at that port; unlike lldpad's
  bridge (wire notes section 5), it is never mistaken for a keep-alive.
* Unsolicited De-Associate (keep-alive timeout, bridge-initiated, migration source): status 0,
  carrying the filters of the last response, since the station compares the VIDs it adopted.
* A station TLV with the response bit set is ignored (as lldpad does), with a vsi.ignored event.
"""

import heapq
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from enum import Enum

from sortedcontainers import SortedKeyList

from app.codec.vdp import (
    STATUS_M,
    STATUS_S,
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
    make_deassociate,
    make_response,
)
from app.fabric.ports import PortRef
from app.policy.profile import VsiTypeKey, VsiTypeProfile, manager_id_from_octets
from app.vdp.authorizer import AuthRequest, Authorizer, Decision
from app.vdp.binding import BindingState, MacVid, VmBinding
from app.vdp.binding_index import BindingIndex
from app.vdp.describe import port_fields, vsi_id_text
from app.vdp.outcome import Outcome

HANDLE_LIMIT = 2**31


class VsiState(str, Enum):
    PRE_ASSOCIATED = "pre-associated"
    PRE_ASSOCIATED_RR = "pre-associated-rr"
    ASSOCIATED = "associated"
    SUSPENDED = "suspended"


_STATE_OF_MODE = {
    VdpTlvType.PRE_ASSOCIATE: VsiState.PRE_ASSOCIATED,
    VdpTlvType.PRE_ASSOCIATE_RR: VsiState.PRE_ASSOCIATED_RR,
    VdpTlvType.ASSOCIATE: VsiState.ASSOCIATED,
}
_BINDING_OF_STATE = {
    VsiState.PRE_ASSOCIATED_RR: BindingState.PREPARED,
    VsiState.ASSOCIATED: BindingState.FORWARDING,
}


@dataclass(frozen=True)
class AttachmentInfo:
    """One attachment of a VSI (or its held record when SUSPENDED), for REST."""

    port: PortRef
    state: VsiState
    handle: int
    binding: BindingState | None
    manager_id: str
    type_id: int
    type_version: int
    profile: str
    tenant: str
    entries: tuple[MacVid, ...]
    filters: tuple[FilterEntry, ...]  # as answered: one per entry, with group IDs and PCP
    filter_format: FilterFormat
    since: float  # when it entered this state
    refreshed: float  # last request (or keep-alive) from its station
    expires: float  # keep-alive timeout; for SUSPENDED the end of the hold


@dataclass(frozen=True)
class VsiInfo:
    """A VSI, for REST. ``state``: ASSOCIATED if associated anywhere, else the most advanced
    state of its attachments (SUSPENDED: the held record is its only attachment)."""

    vsi_id: VsiId
    name: str  # vsi_id_text
    state: VsiState
    attachments: tuple[AttachmentInfo, ...]  # by port

    @property
    def migrating(self) -> bool:
        return len(self.attachments) > 1


@dataclass
class _Attachment:
    port: PortRef
    handle: int
    manager: ManagerIdTlv
    request: VsiTlv  # the last granted request: what a keep-alive repeats
    response: VsiTlv  # its answer, resent on keep-alive
    state: VsiState
    entries: tuple[MacVid, ...]
    profile: VsiTypeProfile
    since: float
    refreshed: float
    timeout: float
    # Migration (see the module docstring): a pre-association granted while the VSI forwarded
    # elsewhere stands by for the VM's first frame; the first frame activates it; the
    # association it took the VM from is superseded (still associated for its station, until
    # it de-associates, but forwarding nothing).
    standby: bool = False
    activated: bool = False
    superseded: bool = False
    # A new profile of its type that would answer it otherwise (VLANs, PCP), and the error its
    # station's next keep-alive gets for it; until then it keeps its profile and answer.
    revised: tuple[VsiTypeProfile, VdpError] | None = None
    # Seconds added to its first deadline after a restore, until its first keep-alive.
    grace: float = 0.0

    @property
    def current_profile(self) -> VsiTypeProfile:
        """The profile of its type it answers to: a revised one once its type changed."""
        return self.revised[0] if self.revised is not None else self.profile

    @property
    def expires(self) -> float:
        return self.refreshed + self.timeout + self.grace

    @property
    def manager_id(self) -> str:
        return manager_id_from_octets(self.manager.mgrid)


@dataclass
class _Vsi:
    vsi_id: VsiId
    attachments: dict[PortRef, _Attachment]
    suspended: _Attachment | None = None


def _mode_name(mode: VdpTlvType) -> str:
    return mode.name.lower().replace("_", "-")


def _hints(request: VsiTlv) -> str:
    return {STATUS_M: "to", STATUS_S: "from"}.get(request.status & (STATUS_M | STATUS_S), "none")


def _same_request(a: VsiTlv, b: VsiTlv) -> bool:
    """Equal apart from the status octet (hints), which lldpad fixes when it creates the VSI."""
    return replace(a, status=0) == replace(b, status=0)


def _request_fields(port: PortRef, manager: ManagerIdTlv, request: VsiTlv) -> dict[str, object]:
    return {
        **port_fields(port),
        "vsi": vsi_id_text(request.vsi_id),
        "manager": manager_id_from_octets(manager.mgrid),
        "mode": _mode_name(request.mode),
        "hints": _hints(request),
        "type_id": request.type_id,
        "type_version": request.type_version,
        "macs": [e.mac for e in request.filters],
        "vids": [e.vid for e in request.filters],
    }


def _attachment_fields(vsi_id: VsiId, att: _Attachment, **more: object) -> dict[str, object]:
    return {
        **port_fields(att.port),
        "vsi": vsi_id_text(vsi_id),
        "manager": att.manager_id,
        "state": att.state.value,
        "type_id": att.request.type_id,
        "type_version": att.request.type_version,
        "profile": att.profile.name,
        "tenant": att.profile.tenant,
        "handle": att.handle,
        "macs": [e.mac for e in att.entries],
        "vids": [e.vid for e in att.entries],
        **more,
    }


def _reindex(index: dict, vsi_id: VsiId, before: set, after: set) -> None:
    """Moves ``vsi_id`` in ``index`` (key -> set of VSI IDs) from the keys ``before`` to the
    keys ``after``."""
    for key in before - after:
        index[key].discard(vsi_id)
        if not index[key]:
            del index[key]
    for key in after - before:
        index[key].add(vsi_id)


def _order_key(vsi_id: VsiId) -> tuple[int, bytes]:
    return int(vsi_id.format), vsi_id.value


def _granted_filters(request: VsiTlv, decision: Decision) -> tuple[FilterEntry, ...]:
    """The request's entries with the granted VIDs and, when the type assigns one, its PCP with
    the PS bit (lldpad's station adopts both)."""
    pcp = decision.pcp
    return tuple(
        replace(f, vid=e.vid) if pcp is None else replace(f, vid=e.vid, ps=True, pcp=pcp)
        for f, e in zip(request.filters, decision.entries, strict=True)
    )


class VdpBridge:
    """Each request costs the same whatever the number of VSIs held: bindings are indexed
    (BindingIndex) and keep-alive deadlines sit in a heap, so ``expire`` touches only what is
    due and a keep-alive only moves its attachment's deadline."""

    def __init__(self, authorizer: Authorizer) -> None:
        self._authorizer = authorizer
        self._vsis: dict[VsiId, _Vsi] = {}
        self._order = SortedKeyList(key=_order_key)  # the keys of _vsis, for pages (vsis_after)
        self._handles: set[int] = set()
        self._next_handle = 1
        self._bound = BindingIndex()
        self._bindings_of: dict[VsiId, list[VmBinding]] = {}
        # Attachments (not the held suspended records) by port and by type, with the profiles
        # in use per type, so a port or a profile change finds its VSIs without a scan.
        self._placed: dict[VsiId, tuple[tuple[PortRef, VsiTypeKey, VsiTypeProfile], ...]] = {}
        self._vsis_at: dict[PortRef, set[VsiId]] = defaultdict(set)
        self._vsis_of_type: dict[VsiTypeKey, set[VsiId]] = defaultdict(set)
        self._profiles_in_use: dict[VsiTypeKey, Counter[VsiTypeProfile]] = defaultdict(Counter)
        self._macs: dict[VsiId, set[str]] = {}  # of every attachment, held too
        self._vsis_by_mac: dict[str, set[VsiId]] = defaultdict(set)
        # (deadline, tie-break, VSI ID, attachment): checked when due, since a keep-alive moves
        # the deadline without touching the heap.
        self._deadlines: list[tuple[float, int, VsiId, _Attachment]] = []
        self._tie = itertools.count()

    # Station requests

    def on_request(
        self,
        port: PortRef,
        manager: ManagerIdTlv,
        request: VsiTlv,
        now: float,
        keepalive_timeout: float,
    ) -> Outcome:
        """One VSI TLV from the station at ``port``. ``keepalive_timeout``: how long the VSI
        lives without another request, from the EVB parameters negotiated on the port."""
        if request.is_response:
            return Outcome(
                events=[
                    (
                        "vsi.ignored",
                        {
                            **_request_fields(port, manager, request),
                            "status": f"{request.status:#04x}",
                            "reason": "a station sent a TLV with the response bit set",
                        },
                    )
                ]
            )
        vsi = self._vsis.get(request.vsi_id)
        att = vsi.attachments.get(port) if vsi else None
        if request.mode is VdpTlvType.DE_ASSOCIATE:
            return self._station_deassociate(
                vsi, att, port, manager, request, now, keepalive_timeout
            )
        # lldpad repeats what it was granted: after a VID 0 request, the VID we chose.
        if (
            att is not None
            and att.manager == manager
            and (_same_request(att.request, request) or _same_request(att.response, request))
        ):
            assert vsi is not None  # att is one of its attachments
            if att.revised is not None:
                revised, error = att.revised
                return self._refuse(
                    vsi,
                    att,
                    port,
                    manager,
                    request,
                    Decision(
                        error,
                        f"its VSI type changed ({revised.name}): the answer it was given no "
                        f"longer holds; De-Associate and associate again",
                    ),
                )
            self._refresh(vsi.vsi_id, att, now, keepalive_timeout)
            return Outcome(responses=[(port, manager, att.response)])
        state = _STATE_OF_MODE[request.mode]
        conflict = self._state_conflict(vsi, att, request, state)
        if conflict is not None:
            decision, more = conflict
            return self._refuse(vsi, att, port, manager, request, decision, **more)
        decision = self._authorizer.authorize(
            AuthRequest.from_tlv(port, manager, request), self._bound
        )
        if not decision.ok:
            return self._refuse(vsi, att, port, manager, request, decision)
        return self._grant(
            vsi, att, port, manager, request, state, decision, now, keepalive_timeout
        )

    def refuse(
        self, port: PortRef, manager: ManagerIdTlv, request: VsiTlv, decision: Decision
    ) -> Outcome:
        """A station request refused before the authorizer could decide (the VM manager did
        not answer in time): as a refused authorization."""
        vsi = self._vsis.get(request.vsi_id)
        att = vsi.attachments.get(port) if vsi else None
        return self._refuse(vsi, att, port, manager, request, decision)

    def _refuse(
        self,
        vsi: _Vsi | None,
        att: _Attachment | None,
        port: PortRef,
        manager: ManagerIdTlv,
        request: VsiTlv,
        decision: Decision,
        **more: object,
    ) -> Outcome:
        keep = att is not None and att.state is VsiState.ASSOCIATED
        response = make_response(request, decision.error, keep=keep, hard=decision.hard)
        fields = {
            **_request_fields(port, manager, request),
            "status": f"{response.status:#04x}",
            "error": decision.error.name.lower(),
            "keep": keep,
            "hard": decision.hard,
            "reason": decision.reason,
            **more,
        }
        outcome = Outcome(responses=[(port, manager, response)])
        if att is not None and not keep:
            assert vsi is not None  # att is one of its attachments
            fields["released"] = att.state.value
            self._detach(vsi, att)
            self._sync(vsi.vsi_id, outcome)
        outcome.events.append(("vsi.refused", fields))
        return outcome

    @staticmethod
    def _state_conflict(
        vsi: _Vsi | None, att: _Attachment | None, request: VsiTlv, state: VsiState
    ) -> tuple[Decision, dict[str, object]] | None:
        """What the VSI's current attachments forbid, before any authorization: the refusal
        and the fields its event adds."""
        associated = VsiState.ASSOCIATED
        if att is not None and att.state is associated and state is not associated:
            return Decision(
                VdpError.OTHER_FAILURE,
                "associated at this port: De-Associate before pre-associating again",
                hard=True,
            ), {}
        source = VdpBridge._unannounced_move(vsi, att, request)
        if source is not None:
            return Decision(
                VdpError.OTHER_FAILURE,
                "the VSI is associated at another port, whose station keeps it alive: it "
                "moves here only as a migration (hints 'to', a Pre-Associate here first, "
                "or the VM manager's relocation)",
            ), {"held_at": source.port}
        return None

    @staticmethod
    def _unannounced_move(
        vsi: _Vsi | None, att: _Attachment | None, request: VsiTlv
    ) -> _Attachment | None:
        """The attachment forwarding the VSI elsewhere that a bare Associate here would take
        over: one with no attachment here (no Pre-Associate, no relocation) and no migrate-to
        hint. Such a request is a station claiming a running VM's identity (or a VM started
        twice), not a migration: the source keeps it."""
        if vsi is None or att is not None or request.mode is not VdpTlvType.ASSOCIATE:
            return None
        if request.m_bit:
            return None
        return next(
            (
                other
                for other in vsi.attachments.values()
                if other.state is VsiState.ASSOCIATED or other.activated
            ),
            None,
        )

    def _grant(
        self,
        vsi: _Vsi | None,
        att: _Attachment | None,
        port: PortRef,
        manager: ManagerIdTlv,
        request: VsiTlv,
        state: VsiState,
        decision: Decision,
        now: float,
        keepalive_timeout: float,
    ) -> Outcome:
        profile = decision.profile
        assert profile is not None  # a granted decision names its profile
        response = make_response(request, filters=_granted_filters(request, decision))
        if vsi is None:
            vsi = self._vsis[request.vsi_id] = _Vsi(request.vsi_id, {})
            self._order.add(request.vsi_id)
        forwarding = self._forwarding(vsi)
        source = forwarding if forwarding is not None and forwarding.port != port else None
        resumed = vsi.suspended is not None
        if vsi.suspended is not None:
            self._handles.discard(vsi.suspended.handle)
            vsi.suspended = None
        if att is None:
            att = vsi.attachments[port] = _Attachment(
                port,
                self._allocate_handle(),
                manager,
                request,
                response,
                state,
                decision.entries,
                profile,
                now,
                now,
                keepalive_timeout,
            )
            self._watch(vsi.vsi_id, att)
        else:
            if att.state is not state:
                att.since = now
            att.manager, att.request, att.response, att.state = manager, request, response, state
            att.entries, att.profile = decision.entries, profile
            self._refresh(vsi.vsi_id, att, now, keepalive_timeout)
        was_activated = att.activated
        if state is VsiState.ASSOCIATED:
            att.standby = att.activated = att.superseded = False
        elif not att.activated:
            att.standby = source is not None
        outcome = Outcome(responses=[(port, manager, response)])
        fields = _attachment_fields(
            vsi.vsi_id,
            att,
            mode=_mode_name(request.mode),
            hints=_hints(request),
            reason=decision.reason,
        )
        if state is VsiState.ASSOCIATED:
            moved_from = [
                other
                for other in vsi.attachments.values()
                if other is not att and other.state is VsiState.ASSOCIATED
            ]
            if moved_from:
                fields["moved_from"] = moved_from[0].port
            for other in vsi.attachments.values():
                if other.activated:  # the VM is back here: the other stands by again
                    other.activated, other.standby = False, True
            outcome.events.append(
                ("vsi.associated", {**fields, "resumed": resumed, "activated": was_activated})
            )
            for source in moved_from:
                self._detach(vsi, source)
                outcome.unsolicited.append(
                    (source.port, source.manager, make_deassociate(source.response))
                )
                outcome.events.append(
                    (
                        "vsi.deassociated",
                        _attachment_fields(
                            vsi.vsi_id, source, initiator="bridge", reason="moved", moved_to=port
                        ),
                    )
                )
        else:
            if att.standby and source is not None:
                fields["standby_for"] = source.port
            outcome.events.append(("vsi.preassociated", fields))
        self._sync(vsi.vsi_id, outcome)
        return outcome

    def _station_deassociate(
        self,
        vsi: _Vsi | None,
        att: _Attachment | None,
        port: PortRef,
        manager: ManagerIdTlv,
        request: VsiTlv,
        now: float,
        keepalive_timeout: float,
    ) -> Outcome:
        outcome = Outcome(responses=[(port, manager, make_response(request))])
        if att is None:
            return outcome
        assert vsi is not None  # att is one of its attachments
        if request.s_bit and len(vsi.attachments) == 1:
            self._detach(vsi, att, suspend=True)
            att.state, att.since = VsiState.SUSPENDED, now
            self._refresh(vsi.vsi_id, att, now, keepalive_timeout)
            outcome.events.append(
                (
                    "vsi.suspended",
                    _attachment_fields(
                        vsi.vsi_id,
                        att,
                        reason="De-Associate with S-bit (suspend / migrate-from)",
                        hold_until=att.expires,
                    ),
                )
            )
        else:
            self._detach(vsi, att)
            outcome.events.append(
                (
                    "vsi.deassociated",
                    _attachment_fields(
                        vsi.vsi_id, att, initiator="station", reason="De-Associate from the station"
                    ),
                )
            )
        self._sync(vsi.vsi_id, outcome)
        return outcome

    # Bridge-initiated changes

    def expire(self, now: float) -> Outcome:
        """Removes attachments whose station has not refreshed them within their keep-alive
        timeout (each is sent an unsolicited De-Associate) and suspended VSIs whose hold ended.
        Costs what is due, not what is held."""
        outcome = Outcome()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, _, vsi_id, att = heapq.heappop(self._deadlines)
            vsi = self._vsis.get(vsi_id)
            suspended = vsi is not None and vsi.suspended is att
            if vsi is None or not (suspended or vsi.attachments.get(att.port) is att):
                continue  # detached or replaced since
            if now < att.expires:
                self._watch(vsi_id, att)  # refreshed since: wait for the new deadline
                continue
            if suspended:
                self._drop_suspended(vsi)
                outcome.events.append(
                    (
                        "vsi.expired",
                        _attachment_fields(
                            vsi_id,
                            att,
                            reason=f"suspended and not resumed within {att.timeout:g} s",
                        ),
                    )
                )
            else:
                self._detach(vsi, att)
                outcome.unsolicited.append((att.port, att.manager, make_deassociate(att.response)))
                outcome.events.append(
                    (
                        "vsi.expired",
                        _attachment_fields(
                            vsi_id, att, reason=f"no keep-alive for {att.timeout:g} s"
                        ),
                    )
                )
            self._sync(vsi_id, outcome)
        return outcome

    def deassociate(self, vsi_id: VsiId, reason: str, now: float) -> Outcome:
        """Bridge-initiated (e.g. the operator over REST): removes the VSI everywhere and sends
        each attached station an unsolicited De-Associate. KeyError if the VSI is unknown.
        (``now``, like port_down's, keeps every entry point alike; events are timed by the log.)"""
        vsi = self._vsis[vsi_id]
        outcome = Outcome()
        for att in list(vsi.attachments.values()):
            self._detach(vsi, att)
            outcome.unsolicited.append((att.port, att.manager, make_deassociate(att.response)))
            outcome.events.append(
                (
                    "vsi.deassociated",
                    _attachment_fields(vsi_id, att, initiator="bridge", reason=reason),
                )
            )
        if vsi.suspended is not None:
            held = vsi.suspended
            self._drop_suspended(vsi)
            outcome.events.append(
                (
                    "vsi.deassociated",
                    _attachment_fields(vsi_id, held, initiator="bridge", reason=reason),
                )
            )
        self._sync(vsi_id, outcome)
        return outcome

    def prepare(
        self, vsi_id: VsiId, port: PortRef, now: float, hold: float, reason: str
    ) -> Outcome:
        """The VM manager moves (draft 5.5) or copies (5.6) a VSI's network state to ``port``
        ahead of the station there: a PREPARED attachment with the profile and MAC/VIDs of the
        VSI's current attachment (meter and ACLs ready, nothing forwarded) that lives ``hold``
        seconds unless that station's own Associate confirms it, which then moves the VSI as
        any migration does. KeyError: unknown VSI; ValueError: already attached there, or
        refused at that port (limits), with the reason."""
        vsi = self._vsis[vsi_id]
        if port in vsi.attachments:
            raise ValueError(f"{vsi_id_text(vsi_id)} is already attached at {port}")
        sources = sorted(vsi.attachments.values(), key=lambda a: a.state is not VsiState.ASSOCIATED)
        if not sources:
            raise ValueError(f"{vsi_id_text(vsi_id)} is attached nowhere")
        source = sources[0]
        request = replace(source.response, mode=VdpTlvType.PRE_ASSOCIATE_RR, status=0)
        decision = self._authorizer.authorize(
            AuthRequest.from_tlv(port, source.manager, request), self._bound
        )
        if not decision.ok:
            raise ValueError(decision.reason)
        assert decision.profile is not None  # a granted decision names its profile
        response = make_response(request, filters=_granted_filters(request, decision))
        att = vsi.attachments[port] = _Attachment(
            port,
            self._allocate_handle(),
            source.manager,
            request,
            response,
            VsiState.PRE_ASSOCIATED_RR,
            decision.entries,
            decision.profile,
            now,
            now,
            hold,
        )
        forwarding = self._forwarding(vsi)
        att.standby = forwarding is not None
        self._watch(vsi_id, att)
        more = {"standby_for": forwarding.port} if forwarding is not None else {}
        outcome = Outcome(
            events=[
                (
                    "vsi.prepared",
                    _attachment_fields(
                        vsi_id, att, initiator="manager", reason=reason, source=source.port, **more
                    ),
                )
            ]
        )
        self._sync(vsi_id, outcome)
        return outcome

    def activate(self, port: PortRef, mac: str, now: float) -> Outcome | None:
        """A frame from ``mac`` arrived at ``port`` through a standby admission flow: the VSI
        standing by there with that MAC forwards from here on and the attachment that forwarded
        it is superseded, in one change. None if no VSI stands by there with that MAC (a frame
        punted while its activation was on its way, or a stale flow): nothing changes."""
        for vsi_id in self._vsis_by_mac.get(mac, ()):
            vsi = self._vsis[vsi_id]
            att = vsi.attachments.get(port)
            if att is None or not att.standby or all(e.mac != mac for e in att.entries):
                continue
            source = self._forwarding(vsi)
            att.standby, att.activated = False, True
            if source is not None:
                source.superseded = source.state is VsiState.ASSOCIATED
                source.activated = False
            outcome = Outcome()
            fields = _attachment_fields(vsi_id, att, mac=mac, first_frame_at=now)
            if source is not None:
                fields["moved_from"] = source.port
            outcome.events.append(("vsi.activated", fields))
            self._sync(vsi_id, outcome)
            return outcome
        return None

    def restart_timers(self, ports: Iterable[PortRef], now: float) -> None:
        """The keep-alive timers of the VSIs attached at ``ports`` start again at ``now`` (a
        restored VSI whose switch has only now been reconciled: its station was not heard)."""
        for port in ports:
            for vsi_id in self._vsis_at.get(port, ()):
                # Later only, so `expire` finds it when the old deadline is due; the restore's
                # grace stays: no keep-alive was heard yet.
                self._vsis[vsi_id].attachments[port].refreshed = now

    def update_profiles(self, database, now: float) -> Outcome:
        """A new VSI type database: attachments of changed types take the new profile (their
        flows are then modified in place, no gap); those whose type is gone, or whose VIDs or
        Manager ID the new profile no longer allows, are de-associated by the bridge. Costs the
        types in use and the VSIs of the changed ones."""
        outcome = Outcome()
        changed = [
            key
            for key, in_use in self._profiles_in_use.items()
            if set(in_use) != {database.get(key.type_id, key.version)}
        ]
        for key in changed:
            profile = database.get(key.type_id, key.version)
            for vsi_id in sorted(self._vsis_of_type.get(key, ()), key=vsi_id_text):
                vsi = self._vsis[vsi_id]
                for att in list(vsi.attachments.values()):
                    if att.profile.key == key and att.current_profile != profile:
                        self._take_profile(vsi, att, profile, outcome)
                self._sync(vsi_id, outcome)
        return outcome

    def _take_profile(
        self, vsi: _Vsi, att: _Attachment, profile: VsiTypeProfile | None, outcome: Outcome
    ) -> None:
        """The attachment under its type's new ``profile``: taken in place when it answers the
        station as before; revised (the station's next keep-alive gets error + KEEP, the old
        answer holds until the station de-associates) when the VLANs or PCP it would grant
        differ; de-associated at once when the profile no longer allows it."""
        granted = (
            tuple(
                MacVid(f.mac, profile.resolve_vid(f.vid, f.group_id) or 0)
                for f in att.request.filters
            )
            if profile is not None
            else ()
        )
        problem = (
            "its VSI type was removed"
            if profile is None
            else "its Manager ID is no longer allowed"
            if not profile.allows_manager(att.manager_id)
            else "its VLAN is no longer allowed"
            if any(e.vid not in profile.vlans for e in (*att.entries, *granted))
            else "owning whole VLANs is no longer allowed"
            if any(e.mac is None for e in att.entries) and not profile.whole_vlan
            else None
        )
        if problem is None:
            assert profile is not None  # a removed type is a problem
            same_vids = granted == att.entries
            if profile == att.profile or (same_vids and profile.qos.pcp == att.profile.qos.pcp):
                att.profile, att.revised, reason = profile, None, "profile changed"
            else:
                error = VdpError.OTHER_FAILURE if same_vids else VdpError.INVALID_VID_GROUP_MAC
                att.revised = (profile, error)
                reason = (
                    "profile changed: it would grant other VLANs or another PCP; the next "
                    "keep-alive is answered with an error and KEEP"
                )
            outcome.events.append(
                ("vsi.updated", _attachment_fields(vsi.vsi_id, att, reason=reason))
            )
            return
        self._detach(vsi, att)
        outcome.unsolicited.append((att.port, att.manager, make_deassociate(att.response)))
        outcome.events.append(
            (
                "vsi.deassociated",
                _attachment_fields(vsi.vsi_id, att, initiator="bridge", reason=problem),
            )
        )

    def port_down(self, port: PortRef, now: float, reason: str = "port down") -> Outcome:
        """The link to ``port``'s station is gone (or its S-channel, ``reason``): its
        attachments are removed, silently (the station cannot hear). If the link comes back
        before the station notices, its next keep-alive is simply a new request and is
        authorized again."""
        outcome = Outcome()
        for vsi_id in sorted(self._vsis_at.get(port, ()), key=vsi_id_text):
            vsi = self._vsis[vsi_id]
            att = vsi.attachments[port]
            self._detach(vsi, att)
            outcome.events.append(
                (
                    "vsi.deassociated",
                    _attachment_fields(vsi.vsi_id, att, initiator="bridge", reason=reason),
                )
            )
            self._sync(vsi.vsi_id, outcome)
        return outcome

    # Views

    def bindings(self) -> list[VmBinding]:
        """Every PREPARED and FORWARDING binding of the fabric, by handle. Handles are per
        attachment: a migrating VSI has two bindings with different handles, so the source's
        flows can be deleted by cookie without touching the destination's."""
        return sorted(self._bound, key=lambda b: b.handle)

    @property
    def bound(self) -> BindingIndex:
        """The bindings, indexed (read only: the bridge keeps it in step)."""
        return self._bound

    def vsis(self) -> list[VsiInfo]:
        return [self._info(vsi) for vsi in self._vsis.values()]

    def vsis_after(self, after: VsiId | None) -> Iterator[VsiInfo]:
        """The VSIs held after `after` (None: from the first) in VSI ID order (format, then
        octets: a UUID's text order), one at a time: a page costs its length and log(VSIs),
        not every VSI. Read it through before the bridge changes."""
        ids = (
            self._order
            if after is None
            else self._order.irange_key(_order_key(after), inclusive=(False, True))
        )
        return (self._info(self._vsis[vsi_id]) for vsi_id in ids)

    def vsi(self, vsi_id: VsiId) -> VsiInfo | None:
        vsi = self._vsis.get(vsi_id)
        return self._info(vsi) if vsi is not None else None

    def ports_held(self) -> list[PortRef]:
        """The ports with attachments, in order (costs the ports, not the VSIs)."""
        return sorted(port for port, vsis in self._vsis_at.items() if vsis)

    def held_at(self, port: PortRef) -> list[VsiId]:
        """The VSIs attached at `port`, in VSI ID order."""
        return sorted(self._vsis_at.get(port, ()), key=vsi_id_text)

    def with_mac(self, mac: str) -> list[VsiId]:
        """The VSIs with an attachment (or a held record) that lists ``mac``."""
        return sorted(self._vsis_by_mac.get(mac, ()), key=vsi_id_text)

    def __len__(self) -> int:
        return len(self._vsis)

    def attachment_counts(self) -> tuple[dict[int, int], dict[str, int]]:
        """Attachments per switch (dpid) and per tenant, from the indexes: costs the ports and
        the VSI types in use, not the VSIs (a metrics scrape asks it)."""
        by_switch: dict[int, int] = defaultdict(int)
        for port, vsis in self._vsis_at.items():
            by_switch[port.dpid] += len(vsis)
        by_tenant: dict[str, int] = defaultdict(int)
        for profiles in self._profiles_in_use.values():
            for profile, count in profiles.items():
                by_tenant[profile.tenant] += count
        return dict(by_switch), dict(by_tenant)

    def _info(self, vsi: _Vsi) -> VsiInfo:
        held = [vsi.suspended] if vsi.suspended is not None else []
        attachments = tuple(
            AttachmentInfo(
                att.port,
                att.state,
                att.handle,
                self._binding_state(att) if att is not vsi.suspended else None,
                att.manager_id,
                att.request.type_id,
                att.request.type_version,
                att.profile.name,
                att.profile.tenant,
                att.entries,
                att.response.filters,
                att.response.filter_format,
                att.since,
                att.refreshed,
                att.expires,
            )
            for att in sorted([*vsi.attachments.values(), *held], key=lambda a: a.port)
        )
        # SUSPENDED only ever stands alone, so the most advanced state of the list says it all.
        state = max((a.state for a in attachments), key=list(VsiState).index)
        return VsiInfo(vsi.vsi_id, vsi_id_text(vsi.vsi_id), state, attachments)

    # Persistence: what the bridge accepted survives a controller restart

    def export(self) -> list[dict]:
        """Every attachment (and held suspended record) as JSON-able data, for the store."""
        return [record for vsi_id in self._vsis for record in self.export_vsi(vsi_id)]

    def export_vsi(self, vsi_id: VsiId) -> list[dict]:
        """The records of one VSI ([] once it is gone), as ``export``. Requests and responses
        are kept as VDPDU octets, so a restored keep-alive compares byte for byte; timers are
        not kept: a restored VSI gets a full keep-alive period."""
        records: list[dict] = []
        vsi = self._vsis.get(vsi_id)
        if vsi is not None:
            held = [(vsi.suspended, True)] if vsi.suspended is not None else []
            for att, suspended in [*((a, False) for a in vsi.attachments.values()), *held]:
                records.append(
                    {
                        "vsi_id": [int(vsi.vsi_id.format), vsi.vsi_id.value.hex()],
                        "port": [
                            att.port.dpid,
                            att.port.port_no,
                            *([att.port.svid] if att.port.svid else []),
                        ],
                        "handle": att.handle,
                        "state": att.state.value,
                        "suspended": suspended,
                        "request": encode_vdpdu(Vdpdu((att.manager, att.request))).hex(),
                        "response": encode_vdpdu(Vdpdu((att.manager, att.response))).hex(),
                        "entries": [[e.mac, e.vid] for e in att.entries],
                        "timeout": None if math.isinf(att.timeout) else att.timeout,
                        "standby": att.standby,
                        "activated": att.activated,
                        "superseded": att.superseded,
                    }
                )
        return records

    def restore(self, records: list[dict], database, now: float) -> Outcome:
        """Recreates the exported attachments with their handles (so their flows and meters
        are the ones the switches still hold) and the profiles of ``database``; each gets twice
        its keep-alive timeout before its first keep-alive (a controller that stopped may have
        taken one and never answered it). A record whose type is gone is dropped with a
        vsi.deassociated event; its station hears nothing (it will time the VSI out, or its
        next keep-alive is refused)."""
        outcome = Outcome()
        dropped: set[VsiId] = set()
        for record in records:
            ((manager, request),) = decode_vdpdu(
                bytes.fromhex(record["request"])
            ).vsis_with_manager()
            ((_, response),) = decode_vdpdu(bytes.fromhex(record["response"])).vsis_with_manager()
            vsi_id = VsiId(record["vsi_id"][0], bytes.fromhex(record["vsi_id"][1]))
            port = PortRef(*record["port"])
            profile = database.get(request.type_id, request.type_version)
            timeout = math.inf if record["timeout"] is None else record["timeout"]
            att = _Attachment(
                port,
                record["handle"],
                manager,
                request,
                response,
                VsiState(record["state"]),
                tuple(MacVid(mac, vid) for mac, vid in record["entries"]),
                profile,
                now,
                now,
                timeout,
                record.get("standby", False),
                record.get("activated", False),
                record.get("superseded", False),
                # A station's keep-alive may have been acknowledged by the controller that
                # stopped and never answered: the station sends its next one only a keep-alive
                # period after its response wait, so one whole timeout more is allowed.
                grace=0.0 if math.isinf(timeout) else timeout,
            )
            if profile is None:
                outcome.events.append(
                    (
                        "vsi.deassociated",
                        {
                            **port_fields(port),
                            "vsi": vsi_id_text(vsi_id),
                            "initiator": "bridge",
                            "reason": "its VSI type is gone after the restart",
                        },
                    )
                )
                dropped.add(vsi_id)
                continue
            vsi = self._vsis.get(vsi_id)
            if vsi is None:
                vsi = self._vsis[vsi_id] = _Vsi(vsi_id, {})
                self._order.add(vsi_id)
            if record["suspended"]:
                vsi.suspended = att
            else:
                vsi.attachments[port] = att
            self._watch(vsi_id, att)
            self._handles.add(att.handle)
            self._next_handle = max(self._next_handle, att.handle % (HANDLE_LIMIT - 1) + 1)
        for vsi_id in list(self._vsis):
            self._sync(vsi_id, outcome)
        # What was read back is saved already; what was dropped must go from the store.
        outcome.dirty = dropped
        return outcome

    # Bookkeeping

    def _sync(self, vsi_id: VsiId, outcome: Outcome) -> None:
        """After a change to ``vsi_id``: brings the index in step with its bindings, records
        what changed in ``outcome`` and marks the VSI's saved record dirty."""
        vsi = self._vsis.get(vsi_id)
        self._place(vsi_id, vsi)
        after = self._vsi_bindings(vsi) if vsi is not None else []
        before = self._bindings_of.pop(vsi_id, [])
        if after:
            self._bindings_of[vsi_id] = after
        outcome.dirty.add(vsi_id)
        if before == after:
            return
        for binding in before:
            self._bound.remove(binding)
        for binding in after:
            self._bound.add(binding)
        was = {b.handle: b for b in before}
        now = {b.handle: b for b in after}
        for handle in was.keys() | now.keys():
            outcome.change(handle, was.get(handle), now.get(handle))

    def _place(self, vsi_id: VsiId, vsi: _Vsi | None) -> None:
        """Keeps the by-port, by-type and by-MAC indexes in step with the VSI's attachments."""
        held = [vsi.suspended] if vsi is not None and vsi.suspended is not None else []
        macs = (
            {e.mac for a in [*vsi.attachments.values(), *held] for e in a.entries if e.mac}
            if vsi is not None
            else set()
        )
        _reindex(self._vsis_by_mac, vsi_id, self._macs.pop(vsi_id, set()), macs)
        if macs:
            self._macs[vsi_id] = macs
        placed = (
            tuple((a.port, a.profile.key, a.current_profile) for a in vsi.attachments.values())
            if vsi is not None
            else ()
        )
        before = self._placed.pop(vsi_id, ())
        if placed:
            self._placed[vsi_id] = placed
        if placed == before:
            return
        for port, key, _ in before:
            self._bound.detach(vsi_id, port, key)
        for port, key, _ in placed:
            self._bound.attach(vsi_id, port, key)
        for entries, sign in ((before, -1), (placed, 1)):
            for _port, key, profile in entries:
                self._profiles_in_use[key][profile] += sign
                if not self._profiles_in_use[key][profile]:
                    del self._profiles_in_use[key][profile]
                    if not self._profiles_in_use[key]:
                        del self._profiles_in_use[key]
        _reindex(self._vsis_at, vsi_id, {p for p, _, _ in before}, {p for p, _, _ in placed})
        _reindex(self._vsis_of_type, vsi_id, {k for _, k, _ in before}, {k for _, k, _ in placed})

    def _watch(self, vsi_id: VsiId, att: _Attachment) -> None:
        if not math.isinf(att.expires):
            heapq.heappush(self._deadlines, (att.expires, next(self._tie), vsi_id, att))

    def _refresh(self, vsi_id: VsiId, att: _Attachment, now: float, timeout: float) -> None:
        """A keep-alive: the deadline moves later, which ``expire`` finds when the old one is
        due; only a deadline that moves earlier needs a new heap entry."""
        earlier = now + timeout < att.expires
        att.refreshed, att.timeout, att.grace = now, timeout, 0.0
        if earlier:
            self._watch(vsi_id, att)

    def _vsi_bindings(self, vsi: _Vsi) -> list[VmBinding]:
        return [
            VmBinding(att.handle, vsi.vsi_id, att.port, att.entries, att.profile, state)
            for att in vsi.attachments.values()
            if (state := self._binding_state(att)) is not None
        ]

    @staticmethod
    def _binding_state(att: _Attachment) -> BindingState | None:
        """What the attachment's flows do: an activated destination forwards and a superseded
        source does not, whatever their stations have said yet; a standby one punts."""
        if att.activated:
            return BindingState.FORWARDING
        if att.superseded:
            return None
        if att.standby:
            return BindingState.STANDBY
        return _BINDING_OF_STATE.get(att.state)

    def _forwarding(self, vsi: _Vsi) -> _Attachment | None:
        """The attachment the VSI forwards at, if any."""
        return next(
            (
                att
                for att in vsi.attachments.values()
                if self._binding_state(att) is BindingState.FORWARDING
            ),
            None,
        )

    def _detach(self, vsi: _Vsi, att: _Attachment, suspend: bool = False) -> None:
        """Removes ``att`` from ``vsi``; with ``suspend`` it becomes the VSI's held record (and
        keeps its handle, so the handle REST shows stays unique)."""
        del vsi.attachments[att.port]
        if suspend:
            vsi.suspended = att
        else:
            self._handles.discard(att.handle)
        self._forget_if_empty(vsi)

    def _drop_suspended(self, vsi: _Vsi) -> None:
        assert vsi.suspended is not None  # callers drop a held record they found
        self._handles.discard(vsi.suspended.handle)
        vsi.suspended = None
        self._forget_if_empty(vsi)

    def _forget_if_empty(self, vsi: _Vsi) -> None:
        if not vsi.attachments and vsi.suspended is None:
            del self._vsis[vsi.vsi_id]
            self._order.remove(vsi.vsi_id)

    def _allocate_handle(self) -> int:
        """The next free handle after the last one given, from 1, wrapping below 2**31: a
        handle is not given again soon after it was freed, while stale flows may linger."""
        while self._next_handle in self._handles:
            self._next_handle = self._next_handle % (HANDLE_LIMIT - 1) + 1
        handle = self._next_handle
        self._next_handle = handle % (HANDLE_LIMIT - 1) + 1
        self._handles.add(handle)
        return handle
