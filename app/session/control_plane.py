"""Where punted EVB control frames enter the logic: decode, count, hand to the port's session.

Pure apart from the event log: `handle_frame` takes the frame and `now` and returns the frames to
send back. A frame that does not decode is counted and dropped; the port keeps working.
"""
import collections
import logging

from app.codec.errors import CodecError
from app.codec.evb_tlv import EvbMode
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame, decode_evb_frame
from app.events import EventLog
from app.fabric.ports import Port

# At most one frame.dropped event per port per this many seconds: a flood of garbage must not
# become a flood of log lines; the counter still counts every frame.
DROP_EVENT_INTERVAL = 10.0


class ControlPlane:
    def __init__(self, event_log: EventLog):
        self.event_log = event_log
        self._counters: dict[int, dict[str, collections.Counter]] = collections.defaultdict(
            lambda: collections.defaultdict(collections.Counter))
        self._stations: set[tuple[int, int]] = set()
        self._last_drop_event: dict[tuple[int, int], float] = {}

    def handle_frame(self, dpid: int, switch_name: str, port: Port, data: bytes,
                     now: float) -> list[tuple[int, bytes]]:
        counters = self._counters[dpid][port.name]
        try:
            frame = decode_evb_frame(data)
        except CodecError as err:
            counters["malformed"] += 1
            self._drop_event(dpid, switch_name, port, err, now)
            return []
        if isinstance(frame, LldpFrame):
            evb = frame.lldpdu.evb
            counters["lldp_evb" if evb else "lldp"] += 1
            if evb and (dpid, port.number) not in self._stations:
                self._stations.add((dpid, port.number))
                self.event_log.emit("station.seen", switch=switch_name, port=port.name,
                                    mac=frame.src, mode=_mode_name(evb.mode), rrreq=evb.rrreq)
        elif isinstance(frame, VdpFrame):
            counters["ecp_req"] += 1
        elif isinstance(frame, EcpAckFrame):
            counters["ecp_ack"] += 1
        return []

    def _drop_event(self, dpid: int, switch_name: str, port: Port, err: CodecError,
                    now: float) -> None:
        key = (dpid, port.number)
        last = self._last_drop_event.get(key)
        if last is not None and now - last < DROP_EVENT_INTERVAL:
            return
        self._last_drop_event[key] = now
        self.event_log.emit("frame.dropped", switch=switch_name, port=port.name,
                            level=logging.WARNING, field=err.field, reason=err.message,
                            dropped_total=self._counters[dpid][port.name]["malformed"])

    def forget_switch(self, dpid: int) -> None:
        self._stations = {key for key in self._stations if key[0] != dpid}

    def counters_for(self, dpid: int) -> dict[str, dict[str, int]]:
        """Per port name: frames by kind (lldp, lldp_evb, ecp_req, ecp_ack, malformed)."""
        return {name: dict(counts) for name, counts in self._counters[dpid].items()}


def _mode_name(mode: int) -> str:
    try:
        return EvbMode(mode).name.lower()
    except ValueError:
        return str(mode)
