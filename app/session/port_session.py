"""The bridge side of one station-facing edge port: LLDP/EVB negotiation and ECP22 carrying VDP.

Pure: every entry point takes ``now`` and returns a SessionOutput (frames to send out of this
port, VDP requests for the VDP bridge, events); call ``tick`` at ``next_deadline()``.

* LLDP with a station-mode EVB TLV: negotiate; when the TLV we answer with is new or changed,
  send our LLDPDU at once and a few more at the fast interval (802.1AB fast start): lldpad's
  station enables VDP only when it receives our EVB TLV. Afterwards every ``lldp_tx_interval``.
  LLDP without an EVB TLV is counted, not answered. A shutdown LLDPDU (TTL 0) ends the station:
  the agreement is dropped and ECP's receiver reset, since a restarted lldpad numbers from 1,
  and the station's next LLDPDU is answered at once.
* VDP requests: each is acknowledged at once (ECP) and its (Manager ID, VSI) pairs are delivered,
  except for duplicates and TLVs with the response bit, which a station must not send.
* ``send_vdp``: the VDP bridge's responses and unsolicited De-Associates, packed into VDPDUs
  and queued on ECP (one outstanding, retransmitted, given up after R retries). A full ECP queue
  (a station that does not acknowledge) drops the VDPDU: counted, and one ``ecp.overflow`` event
  per episode (until the queue drains to half), so a flood does not become a flood of events.
* A station's EVB timers above the bridge's maxima are clamped (evb_negotiation): the answer
  carries the clamped values and an ``evb.clamped`` event names what was asked.

* CDCP (the default S-channel only): a station's CDCP TLV, when new or changed, is handed up
  (``SessionOutput.cdcp``); the control plane decides the channels (app/session/cdcp.py) and
  must call ``answer_cdcp``, which puts the bridge's CDCP TLV in this session's LLDPDUs from
  then on and sends the LLDPDU that answers the frame (one, with both TLVs).

A session serves one S-channel (``port.svid``; 0: the port itself, untagged). Its frames go to
01:80:c2:00:00:00 from ``bridge_mac``, untagged on the default S-channel as lldpad expects,
S-tagged with the S-VID on another; EVB frames tagged otherwise (a C-tag, another S-VID) are
counted (``tagged``) and dropped.
"""

import collections
from dataclasses import dataclass, field
from typing import Any

from app.codec.builders import build_bridge_lldp_frame, build_ecp_ack
from app.codec.cdcp_tlv import CdcpTlv
from app.codec.ecp import ETHERTYPE_ECP, EcpOp, EcpPdu, encode_ecpdu
from app.codec.ethernet import (
    NEAREST_CUSTOMER_BRIDGE,
    TPID_STAG,
    EthernetFrame,
    VlanTag,
    encode_ethernet,
)
from app.codec.evb_tlv import EvbMode, EvbTlv
from app.codec.frame import EcpAckFrame, EvbFrame, LldpFrame, VdpFrame, channel_svid
from app.codec.lldp import PortId
from app.codec.vdp import (
    MANAGER_ID_LENGTH,
    ManagerIdTlv,
    VdpOrgTlv,
    Vdpdu,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
)
from app.fabric.ports import PortRef
from app.session.ecp_machine import EcpMachine
from app.session.evb_negotiation import (
    BridgeEvbConfig,
    EvbAgreement,
    bridge_keepalive_timeout,
    bridge_tlv_unsolicited,
    evb_tlv_fields,
    negotiate,
)
from app.session.evb_settings import settings_view
from app.vdp.describe import port_fields, vsi_id_text

# lldpad's ECP22_MAXPAYLOAD_LEN: the Ethernet payload (1500) less the ECP header and room for an
# End TLV. A VDPDU of ours is at least 18 + 29 octets, so its frame never needs padding.
MAX_VDPDU_LENGTH = 1500 - 4 - 2
MANAGER_TLV_LENGTH = 2 + MANAGER_ID_LENGTH

SESSION_COUNTERS = (
    "lldp",
    "lldp_evb",
    "lldp_evb_ignored",
    "lldp_cdcp",
    "lldp_cdcp_ignored",
    "lldp_shutdown",
    "lldp_tx",
    "ecp_req",
    "ecp_ack",
    "tagged",
    "vdp_tlvs",
    "vdp_responses",
    "vdp_org_tlvs_ignored",
)

VdpItem = tuple[ManagerIdTlv, VsiTlv]
Event = tuple[str, dict[str, Any]]


@dataclass
class SessionOutput:
    """``frames``: to send out of the port, in order. ``vdp``: station requests for the VDP
    bridge. ``events``: (kind, fields); fields carry ``switch`` (16 hex digits), ``port`` (the
    name) and ``port_no``, so ``EventLog.emit(kind, **fields)`` takes them as they are.
    ``cdcp``: the station's CDCP TLV, when it is new or changed (for ``answer_cdcp``)."""

    frames: list[bytes] = field(default_factory=list)
    vdp: list[VdpItem] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    cdcp: CdcpTlv | None = None


def pack_vdpdus(items: list[VdpItem]) -> list[Vdpdu]:
    """The fewest VDPDUs carrying ``items`` in order: each starts with its one Manager ID TLV
    (lldpad drops a VDPDU with a second one), so a new VDPDU begins when the manager changes or
    the next VSI TLV would not fit."""
    vdpdus: list[Vdpdu] = []
    tlvs: list[ManagerIdTlv | VsiTlv] = []
    size = 0
    for manager, vsi in items:
        vsi_size = len(encode_vdpdu(Vdpdu((manager, vsi)))) - MANAGER_TLV_LENGTH
        if not tlvs or tlvs[0] != manager or size + vsi_size > MAX_VDPDU_LENGTH:
            if tlvs:
                vdpdus.append(Vdpdu(tuple(tlvs)))
            tlvs, size = [manager], MANAGER_TLV_LENGTH
        tlvs.append(vsi)
        size += vsi_size
    if tlvs:
        vdpdus.append(Vdpdu(tuple(tlvs)))
    return vdpdus


class PortSession:
    def __init__(
        self,
        port: PortRef,
        port_name: str,
        bridge_mac: str,
        config: BridgeEvbConfig,
        first_sequence: int = 1,
    ) -> None:
        self.port = port
        self.port_name = port_name
        self.bridge_mac = bridge_mac
        self.config = config
        self._port_id = PortId.from_name(port_name)
        self._tag = VlanTag(port.svid, tpid=TPID_STAG) if port.svid else None
        self._ecp = EcpMachine(config.r, config.rte, first_sequence, config.ecp_queue_limit)
        # An ecp.overflow event was sent and the queue has not drained to half since.
        self._overflowing = False
        self._agreement: EvbAgreement | None = None
        self._station_mac: str | None = None
        self._station_tlv: EvbTlv | None = None
        self._station_last_seen: float | None = None
        self._ignored_tlv: EvbTlv | None = None  # the last EVB TLV not in station mode
        self._sent_tlv: EvbTlv | None = None  # the EVB TLV of our last LLDPDU
        self._station_cdcp: CdcpTlv | None = None  # the station's last CDCP TLV
        self._cdcp: CdcpTlv | None = None  # ours, in every LLDPDU while set
        self._lldp_due: float | None = None  # None until a station was seen
        self._fast_left = 0
        self._counters = collections.Counter(dict.fromkeys(SESSION_COUNTERS, 0))

    # Entry points

    def on_frame(self, frame: EvbFrame, now: float, acked: bool = False) -> SessionOutput:
        """``acked``: the shim has sent this ECP request's ACK already (it needs only the
        headers: app/codec/frame.ecp_request_sequence); the session still counts it."""
        if not isinstance(frame, (LldpFrame, VdpFrame, EcpAckFrame)):
            raise TypeError(f"not an EVB frame: {type(frame).__name__}")
        out = SessionOutput()
        if not self._on_channel(frame.vlan):
            self._counters["tagged"] += 1
        elif isinstance(frame, LldpFrame):
            self._on_lldp(frame, now, out)
        elif isinstance(frame, VdpFrame):
            self._on_vdp(frame, now, out, acked)
        else:
            self._counters["ecp_ack"] += 1
            self._ecp.on_pdu(EcpPdu(EcpOp.ACK, frame.sequence), now)
        self._transmit(now, out)
        return out

    def send_vdp(self, items: list[VdpItem], now: float) -> SessionOutput:
        """Queue the bridge's VSI TLVs (responses, unsolicited De-Associates) for the station."""
        out = SessionOutput()
        if self._ecp.queued <= self._ecp.queue_limit // 2:  # drained: the episode is over
            self._overflowing = False
        dropped: list[str] = []
        for vdpdu in pack_vdpdus(items):
            if not self._ecp.send(encode_vdpdu(vdpdu), now):
                dropped += [vsi_id_text(vsi.vsi_id) for _, vsi in vdpdu.vsis_with_manager()]
        if dropped and not self._overflowing:
            out.events.append(
                (
                    "ecp.overflow",
                    {
                        **self._fields(),
                        "queued": self._ecp.queued,
                        "limit": self._ecp.queue_limit,
                        "vsis": dropped,
                        "overflow_total": self._ecp.counters["overflow"],
                    },
                )
            )
            self._overflowing = True
        self._transmit(now, out)
        return out

    def answer_cdcp(self, tlv: CdcpTlv | None, now: float) -> SessionOutput:
        """Our CDCP TLV (None: none) for the station's that ``SessionOutput.cdcp`` handed up, and
        in every LLDPDU from now on. It goes out at once, fast start, even when it is the one
        sent last: a station that changed its TLV (a restarted one asks <SCID, 0> again for what
        it held) waits for it. At most one per station TLV that changed, and those come through
        the port's punt meter."""
        out = SessionOutput()
        self._cdcp = tlv
        self._send_lldp(now, out, fast_start=True)
        return out

    def tick(self, now: float) -> SessionOutput:
        """ECP retransmissions and give-ups that are due, and the periodic LLDPDU."""
        out = SessionOutput()
        if self._lldp_due is not None and now >= self._lldp_due:
            self._send_lldp(now, out)
        self._transmit(now, out)
        return out

    def next_deadline(self) -> float | None:
        deadlines = [t for t in (self._ecp.next_deadline(), self._lldp_due) if t is not None]
        return min(deadlines, default=None)

    # Views

    @property
    def agreement(self) -> EvbAgreement | None:
        """None until a station's EVB TLV was seen (and again after it shut down)."""
        return self._agreement

    @property
    def station_mac(self) -> str | None:
        """The source MAC of the station's LLDP (its host's uplink), None while none is heard."""
        return self._station_mac

    @property
    def keepalive_timeout(self) -> float:
        """How long the VDP bridge keeps a VSI of this port without a keep-alive: from the
        agreement, or from our own values while there is none."""
        if self._agreement is not None:
            return self._agreement.bridge_keepalive_timeout
        return bridge_keepalive_timeout(self.config.r, self.config.rte, self.config.rka)

    @property
    def counters(self) -> dict[str, int]:
        ecp = self._ecp.counters
        return {
            **self._counters,
            "ecp_req_tx": ecp["tx_pdus"],
            "ecp_ack_tx": ecp["acks_tx"],
            "duplicates": ecp["duplicates"],
            "retransmits": ecp["retransmits"],
            "gave_up": ecp["gave_up"],
            "acks_unexpected": ecp["acks_unexpected"],
            "ecp_overflow": ecp["overflow"],
        }

    def snapshot(self) -> dict[str, Any]:
        outstanding = self._ecp.outstanding
        station = None
        if self._station_mac is not None:
            assert self._station_tlv is not None  # set with the station's MAC
            station = {
                "mac": self._station_mac,
                "last_seen": self._station_last_seen,
                "evb": evb_tlv_fields(self._station_tlv),
            }
        return {
            "switch": f"{self.port.dpid:016x}",
            "port_no": self.port.port_no,
            "port": self.port_name,
            "svid": self.port.svid,
            "bridge_mac": self.bridge_mac,
            "station": station,
            "agreement": self._agreement.summary() if self._agreement else None,
            "bridge_tlv": evb_tlv_fields(self._sent_tlv) if self._sent_tlv else None,
            "bridge_settings": settings_view(self.config),
            "cdcp": {
                "station": _cdcp_fields(self._station_cdcp),
                "bridge": _cdcp_fields(self._cdcp),
            }
            if self._station_cdcp or self._cdcp
            else None,
            "keepalive_timeout": self.keepalive_timeout,
            "next_lldp": self._lldp_due,
            "ecp": {
                "r": self._ecp.r,
                "rte": self._ecp.rte,
                "outstanding": outstanding.sequence if outstanding else None,
                "queued": self._ecp.queued,
                "queue_limit": self._ecp.queue_limit,
                "last_received": self._ecp.last_received,
            },
            "counters": self.counters,
        }

    def _on_channel(self, vlan: VlanTag | None) -> bool:
        """Whether a frame tagged so travels in this session's S-channel (any PCP, DEI)."""
        return vlan is None if self._tag is None else channel_svid(vlan) == self.port.svid

    # LLDP

    def _on_lldp(self, frame: LldpFrame, now: float, out: SessionOutput) -> None:
        if frame.lldpdu.ttl == 0:
            self._counters["lldp_shutdown"] += 1
            self._station_cdcp = None  # answered again when a station speaks again
            if frame.src == self._station_mac:
                out.events.append(("station.shutdown", {**self._fields(), "mac": frame.src}))
                self._agreement = self._station_mac = self._station_tlv = None
                self._sent_tlv = None  # a restarted station waits for our TLV: at once
                self._ecp.reset_receiver()
            return
        cdcp = frame.lldpdu.cdcp
        if cdcp is not None and self.port.svid:  # CDCP runs on the default S-channel only
            self._counters["lldp_cdcp_ignored"] += 1
        elif cdcp is not None:
            self._counters["lldp_cdcp"] += 1
            if cdcp != self._station_cdcp:
                self._station_cdcp = out.cdcp = cdcp
        tlv = frame.lldpdu.evb
        if tlv is None:
            self._counters["lldp"] += 1
            return
        self._counters["lldp_evb"] += 1
        if tlv.mode != EvbMode.STATION:
            self._counters["lldp_evb_ignored"] += 1
            if tlv != self._ignored_tlv:
                out.events.append(
                    (
                        "evb.ignored",
                        {
                            **self._fields(),
                            "mac": frame.src,
                            "reason": "EVB TLV not in station mode",
                            **evb_tlv_fields(tlv),
                        },
                    )
                )
            self._ignored_tlv = tlv
            return
        if frame.src != self._station_mac:
            out.events.append(
                ("station.seen", {**self._fields(), "mac": frame.src, **evb_tlv_fields(tlv)})
            )
            if self._station_mac is not None:  # another station: its sequence numbers are its own
                self._ecp.reset_receiver()
        self._station_mac, self._station_tlv, self._station_last_seen = frame.src, tlv, now
        agreement = negotiate(tlv, self.config)
        if self._agreement is None or agreement.summary() != self._agreement.summary():
            out.events.append(
                ("evb.negotiated", {**self._fields(), "mac": frame.src, **agreement.summary()})
            )
            if agreement.clamped:
                out.events.append(
                    (
                        "evb.clamped",
                        {
                            **self._fields(),
                            "mac": frame.src,
                            "asked": agreement.clamped,
                            "agreed": {
                                name: getattr(agreement, name) for name in agreement.clamped
                            },
                        },
                    )
                )
        self._agreement = agreement
        self._ecp.r, self._ecp.rte = agreement.r, agreement.rte
        if agreement.bridge_tlv != self._sent_tlv and out.cdcp is None:  # else answer_cdcp
            self._send_lldp(now, out, fast_start=True)

    def _evb_tlv(self) -> EvbTlv:
        agreement = self._agreement
        return agreement.bridge_tlv if agreement else bridge_tlv_unsolicited(self.config)

    def _send_lldp(self, now: float, out: SessionOutput, fast_start: bool = False) -> None:
        tlv = self._evb_tlv()
        out.frames.append(
            build_bridge_lldp_frame(
                self.bridge_mac,
                self._port_id,
                self.config.lldp_ttl,
                tlv,
                cdcp=self._cdcp,
                vlan=self._tag,
            )
        )
        self._counters["lldp_tx"] += 1
        self._sent_tlv = tlv
        if fast_start:
            self._fast_left = self.config.lldp_fast_tx_count
        self._fast_left = max(0, self._fast_left - 1)
        fast = self._fast_left > 0
        self._lldp_due = now + (
            self.config.lldp_fast_tx_interval if fast else self.config.lldp_tx_interval
        )

    # ECP / VDP

    def _on_vdp(self, frame: VdpFrame, now: float, out: SessionOutput, acked: bool) -> None:
        self._counters["ecp_req"] += 1
        # The VDPDU is decoded already: ECP needs only the header.
        received = self._ecp.on_pdu(EcpPdu(EcpOp.REQUEST, frame.sequence), now)
        assert received.ack is not None  # every request is acknowledged
        if not acked:
            out.frames.append(build_ecp_ack(self.bridge_mac, received.ack.sequence, vlan=self._tag))
        if received.duplicate:
            out.events.append(
                ("ecp.duplicate", {**self._fields(), "mac": frame.src, "sequence": frame.sequence})
            )
            return
        for manager, vsi in frame.vdpdu.vsis_with_manager():
            if vsi.is_response:
                self._counters["vdp_responses"] += 1
                out.events.append(
                    (
                        "vdp.response_ignored",
                        {
                            **self._fields(),
                            "mac": frame.src,
                            "vsi": vsi_id_text(vsi.vsi_id),
                            "mode": vsi.mode.name.lower(),
                            "status": f"{vsi.status:#04x}",
                        },
                    )
                )
            else:
                self._counters["vdp_tlvs"] += 1
                out.vdp.append((manager, vsi))
        # Organizationally defined TLVs extend VDP for their OUI's owner. We define none, so as
        # LLDP does with an OUI it does not know (802.1AB 9.2.7.7.2 / 802.1Qbg 41.2.9) they are
        # ignored, neither answered nor echoed, and counted; the VSI TLVs around them are
        # answered as usual.
        self._counters["vdp_org_tlvs_ignored"] += sum(
            isinstance(tlv, VdpOrgTlv) for tlv in frame.vdpdu.tlvs
        )

    def _transmit(self, now: float, out: SessionOutput) -> None:
        sent = self._ecp.poll(now)
        out.frames.extend(
            encode_ethernet(
                EthernetFrame(
                    NEAREST_CUSTOMER_BRIDGE,
                    self.bridge_mac,
                    ETHERTYPE_ECP,
                    encode_ecpdu(pdu),
                    self._tag,
                )
            )
            for pdu in sent.pdus
        )
        for pdu in sent.gave_up:
            vsis = [
                vsi_id_text(vsi.vsi_id) for _, vsi in decode_vdpdu(pdu.payload).vsis_with_manager()
            ]
            out.events.append(
                (
                    "ecp.gave_up",
                    {
                        **self._fields(),
                        "sequence": pdu.sequence,
                        "retries": self._ecp.r,
                        "vsis": vsis,
                    },
                )
            )

    def _fields(self) -> dict[str, Any]:
        return port_fields(self.port)


def _cdcp_fields(tlv: CdcpTlv | None) -> dict[str, Any] | None:
    if tlv is None:
        return None
    return {
        "role": "station" if tlv.role else "bridge",
        "scomp": tlv.scomp,
        "chncap": tlv.chncap,
        "channels": [{"scid": c.scid, "svid": c.svid} for c in tlv.channels],
    }
