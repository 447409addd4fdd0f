"""TEMPORARY stub until the codecs land."""
import collections


class ControlPlane:
    def __init__(self, event_log):
        self.event_log = event_log
        self.counters = collections.defaultdict(collections.Counter)

    def handle_frame(self, dpid, switch_name, port, data, now):
        self.counters[dpid][port.name, data[12:14].hex()] += 1
        return []

    def counters_for(self, dpid):
        return {f"{k[0]}/{k[1]}": v for k, v in self.counters[dpid].items()}
