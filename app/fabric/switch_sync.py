"""One connected switch: learn its ports, reconcile its flows and meters, watch the canary.

Pure: every method takes what the switch said and returns the OpenFlow messages to send. Its
requests take their xids from the controller's one space (app/fabric/xids.py) and are remembered
by purpose, so the owner of the switch (app/fabric_control.py) can tell what a reply answers.
Nothing is wiped on connect: what the switch already holds of ours and still wants stays
untouched, so traffic keeps flowing through a controller restart.

Whether the switch takes bundles (app/fabric/bundles.py) is asked before anything else: an empty
bundle opened and discarded ahead of the port list request. The switch answers in order, so when
the port list arrives the probe has been answered (bundles) or refused (ordered batches).
"""

from collections.abc import Callable, Iterable
from enum import Enum

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric import bundles
from app.fabric.ports import Port, port_role
from app.fabric.xids import Xids
from app.flows import ofmsg
from app.flows.base_pipeline import CANARY_COOKIE, base_flows, base_meters, is_local_port
from app.flows.ofmsg import FlowEntry, MeterSpec
from app.flows.reconcile import reconcile_meters, reconcile_switch
from app.flows.tables import (
    COOKIE_APP,
    COOKIE_MASK_APP,
    COOKIE_MASK_KIND,
    COOKIE_MASK_OWNER,
    CookieKind,
    cookie,
)

# A statistics poll unanswered this long (seconds) is given up and the next one sent.
STATS_TIMEOUT = 60.0
_STATS = ("stats_flows", "stats_meters")


class SyncState(str, Enum):
    CONNECTING = "connecting"  # features seen, waiting for the port list
    SYNCING = "syncing"  # waiting for the switch's flows and meters
    READY = "ready"  # reconciled and confirmed by a barrier


class SwitchSync:
    def __init__(
        self,
        dpid: int,
        trunk_patterns: Iterable[str],
        extra_flows: Callable[[int], list[FlowEntry]] = lambda dpid: [],
        extra_meters: Callable[[int], dict[int, MeterSpec]] = lambda dpid: {},
        xids: Xids | None = None,
    ):
        self.dpid = dpid
        self.name = f"{dpid:016x}"
        self.ports: dict[int, Port] = {}
        self.state = SyncState.CONNECTING
        self.last_sync: dict[str, int] = {}
        self._trunk_patterns = tuple(trunk_patterns)
        self._extra_flows = extra_flows
        self._extra_meters = extra_meters
        self._xids = xids or Xids()
        self._pending: dict[int, str] = {}
        self._meters: dict[int, MeterSpec] | None = None
        self._flows: list[FlowEntry] | None = None
        # Why flow batches go without bundles; None: they go as bundles.
        self.no_bundles: str | None = "not probed yet"
        self.bundles_committed = 0
        self._probe: set[int] = set()  # the xids of the bundle probe
        self._probe_answered = False
        self._probe_refused: str | None = None
        self.meter_stats = True  # False once the switch refused a meter stats request
        self._stats_sent = 0.0

    # requests -------------------------------------------------------------------------------
    def _request(self, msg, purpose: str):
        self._xids.stamp(msg)
        self._pending[msg.xid] = purpose
        return msg

    def purpose(self, xid: int) -> str | None:
        """What a reply with this xid answers ('ports', 'flows', 'meters', 'canary', 'barrier',
        'stats_flows', 'stats_meters')."""
        return self._pending.pop(xid, None)

    def desired_flows(self) -> list[FlowEntry]:
        return base_flows(self.ports.values()) + self._extra_flows(self.dpid)

    def desired_meters(self) -> dict[int, MeterSpec]:
        return {**base_meters(self.ports.values()), **self._extra_meters(self.dpid)}

    # the connect sequence ------------------------------------------------------------------
    @property
    def bundles(self) -> bool:
        """Flow batches go to this switch as bundles."""
        return self.no_bundles is None

    def on_features(self) -> list:
        self.state = SyncState.CONNECTING
        probe = [self._xids.stamp(m) for m in bundles.probe(self._xids.take())]
        self._probe = {m.xid for m in probe}
        return [*probe, self._request(parser.OFPPortDescStatsRequest(None, 0), "ports")]

    def on_bundle_reply(self, xid: int, kind: int) -> None:
        """A bundle control reply: the probe's, or a batch's (its commit counted; its outcome
        is its barrier's, app/fabric/batches.py)."""
        if xid in self._probe:
            self._probe_answered = True
        elif kind == ofp.ONF_BCT_COMMIT_REPLY:
            self.bundles_committed += 1

    def on_error(self, xid: int, reason: str) -> bool:
        """True when the error refuses the bundle probe: the switch takes no bundles. A refused
        statistics request answers its poll; a refused meter stats request is not sent again
        (the error is still reported, once)."""
        purpose = self._pending.get(xid)
        if purpose in _STATS:
            del self._pending[xid]
            self.meter_stats = self.meter_stats and purpose != "stats_meters"
            return False
        if xid not in self._probe:
            return False
        self._probe_refused = self._probe_refused or f"bundle probe refused: {reason}"
        return True

    def on_ports(self, ofp_ports: Iterable) -> list:
        self.ports = {}
        for p in ofp_ports:
            if not is_local_port(p.port_no):
                self.ports[p.port_no] = self._port(p)
            elif p.port_no == ofp.OFPP_LOCAL:
                self.name = _port_name(p)  # OVS names the local port after the bridge
        self.no_bundles = self._probe_refused or (
            None if self._probe_answered else "no answer to the bundle probe"
        )
        return self.resync()

    def resync(self) -> list:
        self.state = SyncState.SYNCING
        self._meters = self._flows = None
        return [
            self._request(parser.OFPMeterConfigStatsRequest(None, 0, ofp.OFPM_ALL), "meters"),
            self._request(ofmsg.flow_stats_request(COOKIE_APP, COOKIE_MASK_APP), "flows"),
        ]

    def on_meters(self, configs: Iterable) -> list:
        self._meters = {config.meter_id: ofmsg.meter_from_config(config) for config in configs}
        return self._maybe_reconcile()

    def on_flows(self, stats: Iterable) -> list:
        self._flows = [ofmsg.flow_from_stats(s) for s in stats]
        return self._maybe_reconcile()

    def _maybe_reconcile(self) -> list:
        if self._meters is None or self._flows is None:
            return []
        msgs = reconcile_switch(
            self.desired_flows(), self._flows, self.desired_meters(), self._meters
        )
        flow_msgs = [m for m in msgs if isinstance(m, parser.OFPFlowMod)]
        self.last_sync = {
            "flows_on_switch": len(self._flows),
            "flows_added_or_changed": sum(1 for m in flow_msgs if m.command == ofp.OFPFC_ADD),
            "flows_removed": sum(1 for m in flow_msgs if m.command != ofp.OFPFC_ADD),
            "meters_changed": len(msgs) - len(flow_msgs),
        }
        self._meters = self._flows = None
        return [*msgs, self._request(parser.OFPBarrierRequest(None), "barrier")]

    def on_barrier(self) -> None:
        self.state = SyncState.READY

    # later changes --------------------------------------------------------------------------
    def on_port_status(self, reason: int, ofp_port) -> tuple[Port | None, list]:
        """Returns the port (None if it is not a switch port) and the messages to send."""
        if is_local_port(ofp_port.port_no):
            return None, []
        # Only the base pipeline follows the port list here; the VM flows follow through the
        # control plane (switch_ports), so a port flap costs the ports, not the VMs.
        before = {e.key: e for e in base_flows(self.ports.values())}
        meters_before = base_meters(self.ports.values())
        if reason == ofp.OFPPR_DELETE:
            port = self.ports.pop(ofp_port.port_no, None) or self._port(ofp_port)
        else:
            port = self.ports[ofp_port.port_no] = self._port(ofp_port)
        after = {e.key: e for e in base_flows(self.ports.values())}
        # A new port's punt meter before the flows that name it; a gone port's after its flows.
        meter_msgs = reconcile_meters(base_meters(self.ports.values()), meters_before)
        msgs = [m for m in meter_msgs if m.command != ofp.OFPMC_DELETE]
        msgs += [ofmsg.delete_flow_strict(e) for k, e in before.items() if k not in after]
        msgs += [
            ofmsg.add_flow(e)
            for k, e in after.items()
            if k not in before or before[k].body != e.body
        ]
        msgs += [m for m in meter_msgs if m.command == ofp.OFPMC_DELETE]
        return port, msgs

    def canary_probe(self) -> list:
        if self.state is not SyncState.READY:
            return []
        return [self._request(ofmsg.flow_stats_request(CANARY_COOKIE, COOKIE_MASK_OWNER), "canary")]

    @property
    def ready(self) -> bool:
        return self.state is SyncState.READY

    def stats_probe(self, now: float) -> list:
        """The VM statistics' requests (app/flows/vm_stats.py): the VSI flows' counters and the
        meters' (unless the switch refused them once). None while the last ones are unanswered,
        so a slow switch never has more than one poll outstanding; a poll unanswered for
        STATS_TIMEOUT is given up (its replies, if they come, answer nothing)."""
        if self.state is not SyncState.READY:
            return []
        pending = [xid for xid, p in self._pending.items() if p in _STATS]
        if pending and now - self._stats_sent < STATS_TIMEOUT:
            return []
        for xid in pending:
            del self._pending[xid]
        self._stats_sent = now
        msgs = [
            self._request(
                ofmsg.flow_stats_request(cookie(CookieKind.VSI), COOKIE_MASK_KIND), "stats_flows"
            )
        ]
        if self.meter_stats:
            msgs.append(
                self._request(parser.OFPMeterStatsRequest(None, 0, ofp.OFPM_ALL), "stats_meters")
            )
        return msgs

    def on_canary(self, stats: list) -> list:
        """An empty answer means the switch lost our flows (restart, foreign flush): resync."""
        return [] if stats else self.resync()

    def _port(self, p) -> Port:
        name = _port_name(p)
        up = not (p.state & ofp.OFPPS_LINK_DOWN) and not (p.config & ofp.OFPPC_PORT_DOWN)
        return Port(p.port_no, name, p.hw_addr, port_role(name, self._trunk_patterns), up)


def _port_name(p) -> str:
    name = p.name
    return name.decode("utf-8", "replace").rstrip("\0") if isinstance(name, bytes) else name
