"""Bring a switch to the intended state without wiping it.

Pure: compares what the controller wants with what the switch reported and returns the OpenFlow
messages that close the gap. Flows that are not ours (cookie without our app byte) are left alone.
"""

from collections.abc import Iterable, Mapping

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.tables import cookie_kind, is_swept_meter


def reconcile_flows(desired: Iterable[FlowEntry], actual: Iterable[FlowEntry]) -> list:
    want = {entry.key: entry for entry in desired}
    have = {entry.key: entry for entry in actual if cookie_kind(entry.cookie) is not None}
    msgs = [ofmsg.delete_flow_strict(entry) for key, entry in have.items() if key not in want]
    for key, entry in want.items():
        current = have.get(key)
        if current is None or current.cookie != entry.cookie or current.body != entry.body:
            msgs.append(ofmsg.add_flow(entry))  # an ADD of an existing flow replaces it in place
    return msgs


def reconcile_meters(desired: Mapping[int, MeterSpec], actual: Mapping[int, MeterSpec]) -> list:
    """Adds or modifies the meters in `desired`; deletes per-port and per-VM meters
    (is_swept_meter) that are no longer wanted. Other meters are left alone."""
    msgs = []
    for meter_id, spec in desired.items():
        if meter_id not in actual:
            msgs.append(ofmsg.meter_mod(ofp.OFPMC_ADD, meter_id, spec))
        elif actual[meter_id] != spec:
            msgs.append(ofmsg.meter_mod(ofp.OFPMC_MODIFY, meter_id, spec))
    msgs += [
        ofmsg.meter_delete(meter_id)
        for meter_id in sorted(actual)
        if is_swept_meter(meter_id) and meter_id not in desired
    ]
    return msgs


def reconcile_switch(
    desired_flows: Iterable[FlowEntry],
    actual_flows: Iterable[FlowEntry],
    desired_meters: Mapping[int, MeterSpec],
    actual_meters: Mapping[int, MeterSpec],
) -> list:
    """Flows and meters together, in the order a switch accepts them: new and changed meters
    first (a flow that names a missing meter is refused), then the flows, then the stale
    meters (deleting a meter deletes the flows that still use it)."""
    meter_msgs = reconcile_meters(desired_meters, actual_meters)
    deletes = [m for m in meter_msgs if m.command == ofp.OFPMC_DELETE]
    sets = [m for m in meter_msgs if m.command != ofp.OFPMC_DELETE]
    return [*sets, *reconcile_flows(desired_flows, actual_flows), *deletes]
