"""The VM flows each switch is meant to hold, and the messages that move it to a new plan.

Pure: `update` takes the new per-switch plans, remembers them as the intent and returns, per
switch, only the difference (reconcile_switch's safe order: meters, flows, stale meters). A
switch that reconnects is reconciled against the same intent by SwitchSync (flows/meters hooks).
"""
from collections.abc import Mapping

from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.reconcile import reconcile_switch
from app.flows.vm_flows import VmPlan

_EMPTY = VmPlan()


class FlowProgrammer:
    def __init__(self) -> None:
        self._intent: dict[int, VmPlan] = {}

    def update(self, plans: Mapping[int, VmPlan]) -> dict[int, list]:
        changes = {}
        for dpid in sorted(set(plans) | set(self._intent)):
            new, old = plans.get(dpid, _EMPTY), self._intent.get(dpid, _EMPTY)
            msgs = reconcile_switch(new.flows, old.flows, new.meters, old.meters)
            if msgs:
                changes[dpid] = msgs
        self._intent = {dpid: plan for dpid, plan in plans.items() if plan.flows or plan.meters}
        return changes

    def flows(self, dpid: int) -> list[FlowEntry]:
        return list(self._intent.get(dpid, _EMPTY).flows)

    def meters(self, dpid: int) -> dict[int, MeterSpec]:
        return dict(self._intent.get(dpid, _EMPTY).meters)
