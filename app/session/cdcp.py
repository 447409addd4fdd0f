"""CDCP, bridge side (IEEE 802.1Qbg-2012 clause 42; the TLV of D.2.13, app/codec/cdcp_tlv.py):
which S-channels a server port carries, and the S-VID of each.

Pure: ``answer`` takes the station's CDCP TLV and the port's channels as the bridge holds them
(SCID -> S-VID) and returns the bridge's CDCP TLV and the channels after it.

* The station asks, the bridge decides and keeps the configuration. The station lists its
  S-channels as SCID/SVID pairs, the default S-channel <1, 1> first (it is the port itself,
  untagged); a channel it wants reads <SCID, 0>, one it holds <SCID, S-VID>.
* Each SCID the station lists keeps the S-VID the bridge gave it; a new one gets the station's
  own S-VID if that is free and in the range (a bridge that lost its state keeps the station's
  channels), else the lowest free S-VID of the range. S-VIDs are per port: every port may use
  the whole range.
* At most min(the bridge's ChnCap, the station's ChnCap) channels, the default one included;
  an SCID beyond that, or with no S-VID left, is answered <SCID, 0>: not created.
* A channel the station no longer lists is removed, and its S-VID is free again.
* A station without an S-component (SComp clear) has the default channel only.
* A TLV that is not a station's, or whose pairs do not start with <1, 1> or repeat an SCID,
  changes nothing and is not answered (``CdcpAnswer.ignored`` says why).
"""

from collections.abc import Mapping
from dataclasses import dataclass

from app.codec.cdcp_tlv import MAX_CHANNELS, CdcpRole, CdcpTlv, SChannel

DEFAULT_SCID = 1
DEFAULT_CHANNEL = SChannel(DEFAULT_SCID, 1)  # the port itself: S-VID 1 is its untagged PVID
LOWEST_SVID = 2  # S-VID 1 is the default channel's, 4095 is reserved
HIGHEST_SVID = 4094


@dataclass(frozen=True)
class CdcpConfig:
    """``max_channels``: the bridge's ChnCap, S-channels per server port with the default one
    (0: CDCP off, a station's CDCP TLV is not answered); ``svids``: the range (first, last)
    the S-VIDs of a port's channels come from."""

    max_channels: int = 8
    svids: tuple[int, int] = (4000, 4094)

    def __post_init__(self) -> None:
        if not 0 <= self.max_channels <= MAX_CHANNELS:
            raise ValueError(f"max_channels: expected 0..{MAX_CHANNELS}, got {self.max_channels}")
        first, last = self.svids
        if not LOWEST_SVID <= first <= last <= HIGHEST_SVID:
            raise ValueError(
                f"svids: expected first-last within {LOWEST_SVID}-{HIGHEST_SVID}, "
                f"got {first}-{last}"
            )

    @property
    def enabled(self) -> bool:
        return self.max_channels > 0


@dataclass(frozen=True)
class CdcpAnswer:
    """``tlv``: the bridge's CDCP TLV (None when the station's is ignored); ``channels``: the
    port's S-channels after it, SCID -> S-VID (the default one not included); ``refused``: the
    SCIDs asked for and not created; ``ignored``: why the station's TLV changed nothing."""

    tlv: CdcpTlv | None
    channels: dict[int, int]
    refused: tuple[int, ...] = ()
    ignored: str | None = None


def answer(station: CdcpTlv, held: Mapping[int, int], config: CdcpConfig) -> CdcpAnswer:
    problem = _problem(station)
    if problem is not None:
        return CdcpAnswer(None, dict(held), ignored=problem)
    wanted = station.channels[1:] if station.scomp else ()
    room = max(0, min(config.max_channels, station.chncap) - 1)  # the default takes one
    # What the station still lists keeps its S-VID, in the station's order, as far as room goes.
    kept = {c.scid: held[c.scid] for c in wanted if c.scid in held}
    channels = dict(list(kept.items())[:room])
    used = set(channels.values())
    first, last = config.svids
    refused = []
    for pair in wanted:
        if pair.scid in channels:
            continue
        svid = _free_svid(pair.svid, used, first, last) if len(channels) < room else None
        if svid is None:
            refused.append(pair.scid)
            continue
        channels[pair.scid] = svid
        used.add(svid)
    tlv = CdcpTlv(
        role=CdcpRole.BRIDGE,
        scomp=True,
        chncap=config.max_channels,
        channels=(
            DEFAULT_CHANNEL,
            *(SChannel(c.scid, channels.get(c.scid, 0)) for c in wanted),
        ),
    )
    return CdcpAnswer(tlv, channels, tuple(refused))


def _problem(station: CdcpTlv) -> str | None:
    if station.role != CdcpRole.STATION:
        return "CDCP TLV not in the station role"
    if not station.channels or station.channels[0] != DEFAULT_CHANNEL:
        return "the first SCID/SVID pair is not the default S-channel <1, 1>"
    scids = [c.scid for c in station.channels]
    if len(set(scids)) != len(scids) or 0 in scids:
        return "an SCID is 0 or listed twice"
    return None


def _free_svid(hint: int, used: set[int], first: int, last: int) -> int | None:
    """The station's S-VID if it is free in the range, else the lowest free one: at most
    len(used) + 1 candidates are looked at."""
    if first <= hint <= last and hint not in used:
        return hint
    return next((svid for svid in range(first, last + 1) if svid not in used), None)
