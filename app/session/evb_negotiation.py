"""EVB TLV negotiation, bridge side (IEEE 802.1Qbg-2012 clause 6.6 / D.2.12), as lldpad's bridge
does it (qbg/lldp_evb22.c: bridge_tlv, common_tlv), so that lldpad stations see what they expect:

* RRCTR is set when the station asks for reflective relay (RRREQ) and we can do it (RRCAP);
* group IDs are usable only when both sides advertise them (BGID and SGID);
* R, RTE, RWD and RKA are the larger of both sides' values; ROL says the peer's value was taken,
  which lldpad also sets when both are equal (captured: both RWD 20, bridge sends ROL=1);
* unlike lldpad, a station cannot raise a timer past the bridge's maximum for it (``max_*``, or
  the bridge's own value if that is higher): a station asking RKA 31 would otherwise keep its
  VSIs for six days without a keep-alive. The clamped value is the one answered (ROL clear);
* the bridge echoes the station-status octet it last received.

All timers are 10 us * 2^exponent.
"""

import math
from dataclasses import dataclass, field
from typing import Any

from app.codec.evb_tlv import EvbMode, EvbTlv, encode_evb_tlv

TIME_UNIT = 10e-6  # seconds: the base of every EVB timer exponent


def evb_duration(exponent: int) -> float:
    """10 us * 2^exponent, in seconds."""
    return TIME_UNIT * (1 << exponent)


def bridge_keepalive_timeout(r: int, rte: int, rka: int) -> float:
    """How long the bridge keeps a VSI its station does not refresh: lldpad's bridge keep-alive
    timer (qbg/vdp22sm.c vdp22_timeout(vdp, vdp_rka), IEEE 802.1Qbg-2012 41.5.5.9):
    ((1 + 2R) * 10us*2^RTE + 10us*2^RKA) * 1.5, i.e. the station's keep-alive period plus the time
    ECP may need to deliver it, with 50 % margin. 17.45 s for R=3, RTE=14, RKA=20."""
    return ((1 + 2 * r) * evb_duration(rte) + evb_duration(rka)) * 1.5


def _check_range(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer {low}..{high}, got {value!r}")


@dataclass(frozen=True)
class BridgeEvbConfig:
    """Our side of the EVB TLV and LLDP timing, defaults as lldpad's bridge (lldptool-evb22(8))
    and LLDP (802.1AB msgTxInterval 30 s, msgTxHold 4, txFastInit 4, msgFastTx 1 s)."""

    rrcap: bool = True  # reflective relay capable: grants a station's RRREQ
    bgid: bool = False  # group ID filter formats (VDP filter formats 3 and 4)
    r: int = 3  # ECP retries
    rte: int = 14  # ECP retransmission exponent: 163.84 ms
    rwd: int = 20  # VDP resource wait delay exponent: 10.49 s
    rka: int = 20  # VDP keep-alive exponent: 10.49 s
    lldp_tx_interval: float = 30.0
    lldp_tx_hold: int = 4  # TTL = interval * hold
    lldp_fast_tx_interval: float = 1.0
    lldp_fast_tx_count: int = 4  # LLDPDUs sent at the fast interval when a station appears
    # or changes
    # The most a station may raise each timer to (docs/evb-timers.md): R 7 and RTE 16 (655 ms)
    # bound ECP's share of the keep-alive timeout to 10 s; RKA 25 (335.5 s) lets one lldpad
    # station keep 2,048 VSIs and still notices a silent one within 8.5 minutes.
    max_r: int = 7
    max_rte: int = 16
    max_rwd: int = 25
    max_rka: int = 25
    # PDUs waiting for the station's ACKs on a port; beyond, new ones are dropped and counted.
    ecp_queue_limit: int = 1000

    def __post_init__(self) -> None:
        for name in ("rrcap", "bgid"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name}: expected a bool, got {getattr(self, name)!r}")
        for name in ("r", "max_r"):
            _check_range(name, getattr(self, name), 0, 7)
        for name in ("rte", "rwd", "rka", "max_rte", "max_rwd", "max_rka"):
            _check_range(name, getattr(self, name), 0, 31)
        _check_range("ecp_queue_limit", self.ecp_queue_limit, 1, 1_000_000)
        for name in ("lldp_tx_interval", "lldp_fast_tx_interval"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name}: expected a positive number of seconds, got {value!r}")
        _check_range("lldp_tx_hold", self.lldp_tx_hold, 1, 255)
        _check_range("lldp_fast_tx_count", self.lldp_fast_tx_count, 1, 8)
        _check_range("lldp_ttl", math.ceil(self.lldp_tx_interval * self.lldp_tx_hold), 1, 65535)

    @property
    def lldp_ttl(self) -> int:
        # lldpad sends interval * hold (120 s) without 802.1AB's "+ 1".
        return math.ceil(self.lldp_tx_interval * self.lldp_tx_hold)


@dataclass(frozen=True)
class EvbAgreement:
    """What a station's EVB TLV and our configuration agree on, and the TLV we answer with."""

    rr_granted: bool  # RRCTR
    group_ids: bool  # BGID and SGID
    r: int
    rte: int
    rwd: int
    rka: int
    bridge_tlv: EvbTlv
    # Timer -> the value the station asked for, for each timer held at the bridge's maximum.
    clamped: dict[str, int] = field(default_factory=dict)

    @property
    def ecp_retransmit_interval(self) -> float:
        return evb_duration(self.rte)

    @property
    def keepalive_interval(self) -> float:
        """How often the station refreshes each VSI."""
        return evb_duration(self.rka)

    @property
    def resource_wait_delay(self) -> float:
        """How long the station waits for a response to a request (before ECP's share)."""
        return evb_duration(self.rwd)

    @property
    def bridge_keepalive_timeout(self) -> float:
        return bridge_keepalive_timeout(self.r, self.rte, self.rka)

    def summary(self) -> dict[str, Any]:
        """The negotiated values, JSON-able (events, REST); excludes the echoed TLV."""
        return {
            "rr_granted": self.rr_granted,
            "group_ids": self.group_ids,
            "r": self.r,
            "rte": self.rte,
            "rwd": self.rwd,
            "rka": self.rka,
            "ecp_retransmit_interval": self.ecp_retransmit_interval,
            "keepalive_interval": self.keepalive_interval,
            "bridge_keepalive_timeout": self.bridge_keepalive_timeout,
            "clamped": dict(self.clamped),
        }


def negotiate(station: EvbTlv, config: BridgeEvbConfig) -> EvbAgreement:
    rr_granted = station.rrreq and config.rrcap
    agreed, clamped = {}, {}
    for name in ("r", "rte", "rwd", "rka"):
        ours, theirs = getattr(config, name), getattr(station, name)
        ceiling = max(ours, getattr(config, f"max_{name}"))
        agreed[name] = min(max(ours, theirs), ceiling)
        if theirs > ceiling:
            clamped[name] = theirs
    r, rte, rwd, rka = agreed["r"], agreed["rte"], agreed["rwd"], agreed["rka"]
    bridge_tlv = EvbTlv(
        mode=EvbMode.BRIDGE,
        bgid=config.bgid,
        rrcap=config.rrcap,
        rrctr=rr_granted,
        # Echo of the station status; its reserved bits are not echoed (sent as zero).
        sgid=station.sgid,
        rrreq=station.rrreq,
        rrstat=station.rrstat,
        r=r,
        rte=rte,
        rol_rwd=station.rwd >= config.rwd and "rwd" not in clamped,
        rwd=rwd,
        rol_rka=station.rka >= config.rka and "rka" not in clamped,
        rka=rka,
    )
    return EvbAgreement(
        rr_granted, station.sgid and config.bgid, r, rte, rwd, rka, bridge_tlv, clamped
    )


def bridge_tlv_unsolicited(config: BridgeEvbConfig) -> EvbTlv:
    """Our TLV before any station TLV was heard: own values, no ROL, station status zero
    (captured from lldpad: 02 00 6e 54 14)."""
    return EvbTlv(
        mode=EvbMode.BRIDGE,
        bgid=config.bgid,
        rrcap=config.rrcap,
        r=config.r,
        rte=config.rte,
        rwd=config.rwd,
        rka=config.rka,
    )


def evb_tlv_fields(tlv: EvbTlv) -> dict[str, Any]:
    """An EVB TLV for events and REST; ``raw`` is the five information octets as lldptool and
    the wire notes print them."""
    return {
        "raw": encode_evb_tlv(tlv)[-5:].hex(),
        "mode": int(tlv.mode),
        "bgid": tlv.bgid,
        "rrcap": tlv.rrcap,
        "rrctr": tlv.rrctr,
        "sgid": tlv.sgid,
        "rrreq": tlv.rrreq,
        "rrstat": int(tlv.rrstat),
        "r": tlv.r,
        "rte": tlv.rte,
        "rwd": tlv.rwd,
        "rka": tlv.rka,
    }
