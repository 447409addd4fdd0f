"""Bring a switch to the intended state without wiping it.

Pure: compares what the controller wants with what the switch reported and returns the OpenFlow
messages that close the gap. Flows that are not ours (cookie without our app byte) are left alone.
"""
from collections.abc import Iterable, Mapping

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry
from app.flows.tables import cookie_kind


def reconcile_flows(desired: Iterable[FlowEntry], actual: Iterable[FlowEntry]) -> list:
    want = {entry.key: entry for entry in desired}
    have = {entry.key: entry for entry in actual if cookie_kind(entry.cookie) is not None}
    msgs = [ofmsg.delete_flow_strict(entry) for key, entry in have.items() if key not in want]
    for key, entry in want.items():
        current = have.get(key)
        if current is None or current.cookie != entry.cookie or current.body != entry.body:
            msgs.append(ofmsg.add_flow(entry))  # an ADD of an existing flow replaces it in place
    return msgs


def reconcile_meters(desired: Mapping[int, tuple[int, int]],
                     actual: Mapping[int, tuple[int, int]]) -> list:
    """Meters by id -> (rate pps, burst packets); only the meter ids in `desired` are touched."""
    msgs = []
    for meter_id, (rate, burst) in desired.items():
        if meter_id not in actual:
            msgs.append(ofmsg.meter_mod(ofp.OFPMC_ADD, meter_id, rate, burst))
        elif actual[meter_id] != (rate, burst):
            msgs.append(ofmsg.meter_mod(ofp.OFPMC_MODIFY, meter_id, rate, burst))
    return msgs
