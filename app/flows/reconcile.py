"""Bring a switch to the intended state without wiping it.

Pure: compares what the controller wants with what the switch reported and returns the OpenFlow
messages that close the gap. Flows that are not ours (cookie without our app byte) are left alone.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.tables import cookie_kind, is_swept_meter


@dataclass
class FlowDifferences:
    """What a switch holds of ours against what it should: flows it lacks, flows of ours it
    should not have, and flows with the right key (table, priority, match) that do something
    else (another cookie or other instructions: `changed` holds the wanted entry)."""

    missing: list[FlowEntry] = field(default_factory=list)
    unexpected: list[FlowEntry] = field(default_factory=list)
    changed: list[FlowEntry] = field(default_factory=list)

    def messages(self) -> list:
        """Stale flows deleted strictly, then the missing and changed ones added (an ADD of an
        existing flow replaces it in place)."""
        return [
            *(ofmsg.delete_flow_strict(entry) for entry in self.unexpected),
            *(ofmsg.add_flow(entry) for entry in [*self.missing, *self.changed]),
        ]


def flow_differences(desired: Iterable[FlowEntry], actual: Iterable[FlowEntry]) -> FlowDifferences:
    want = {entry.key: entry for entry in desired}
    have = {entry.key: entry for entry in actual if cookie_kind(entry.cookie) is not None}
    differences = FlowDifferences(unexpected=[e for k, e in have.items() if k not in want])
    for key, entry in want.items():
        current = have.get(key)
        if current is None:
            differences.missing.append(entry)
        elif current.cookie != entry.cookie or current.body != entry.body:
            differences.changed.append(entry)
    return differences


def reconcile_flows(desired: Iterable[FlowEntry], actual: Iterable[FlowEntry]) -> list:
    return flow_differences(desired, actual).messages()


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
