"""The flows and meters the bound VMs need, switch by switch.

Pure: from the bindings (app/vdp/binding.py), the spanning tree of the inter-switch links
(app/fabric/links.py Routes) and the server ports granted reflective relay, compute what every
switch holds beyond the base pipeline. docs/pipeline.md draws the result and counts the flows
of one VM. `plan_vm_flows` plans the whole fabric (the reference); app/flows/programmer.py plans
one change at a time from the same pieces.

Per binding, on its edge switch (cookie VSI/handle; metadata carries the handle between tables):
  PREPARED, STANDBY and FORWARDING: its meter, its ingress ACL (INGRESS_ACL) and its egress ACL
  with the delivery to its port (EGRESS_ACL). Nothing leads there until it forwards.
  STANDBY only: its admission matches punt the VM's frames to the controller (activation).
  FORWARDING only: admission of its MACs (CLASSIFY) and the unicast entries toward it (FORWARD).
On every switch above its edge on the tree: one unicast entry per MAC/VID down toward it.
Per switch below a root (cookie LINK/uplink): every other tagged unicast frame goes up, so a
switch holds entries for the VMs of its own subtree only, and a root (the aggregation layer)
for all of them; a frame for a MAC nobody holds dies at the root.
Per VLAN (cookie VLAN/VID): flooding of group-addressed frames to the VLAN's forwarding members.
A binding at an S-channel (its port's ``svid``) is admitted from frames in the channel's S-tag
(the VMs send untagged inside it: the S-tag is swapped for the VM's C-tag) and delivered with
the C-tag swapped back for the S-tag; everything in between is as for any binding.
Per linked trunk port outside the flood tree (cookie LINK/port): group-addressed frames dropped.
"""

import functools
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Set
from dataclasses import dataclass, field

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.fabric.links import Routes
from app.fabric.ports import PortRef
from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec, flow
from app.flows.tables import (
    GROUP_ADDRESS_BIT,
    CookieKind,
    Priority,
    Table,
    cookie,
    port_punt_meter_id,
    vm_meter_id,
)
from app.policy.acl import ETH_TYPE_IPV4, ETH_TYPE_IPV6, IP_PROTO_TCP, IP_PROTO_UDP, AclRule
from app.policy.profile import Qos
from app.vdp.binding import BindingState, MacVid, VmBinding

GROUP_ADDRESSED = (GROUP_ADDRESS_BIT, GROUP_ADDRESS_BIT)  # eth_dst match of every group address
UNICAST = ("00:00:00:00:00:00", GROUP_ADDRESS_BIT)  # eth_dst match of every unicast address
# vlan_vid match of every tagged frame. Open vSwitch refuses a pop_vlan (OpenFlow 1.3:
# OFPBAC_MATCH_INCONSISTENT) in a flow whose match does not guarantee a tag.
ANY_TAG = (ofp.OFPVID_PRESENT, ofp.OFPVID_PRESENT)
_TRANSPORT = {IP_PROTO_TCP: "tcp", IP_PROTO_UDP: "udp"}


@dataclass(frozen=True)
class VmPlan:
    """What one switch holds for the VMs: flows sorted by table, priority down, match."""

    flows: list[FlowEntry] = field(default_factory=list)
    meters: dict[int, MeterSpec] = field(default_factory=dict)


# Where a VLAN's members sit on a switch: (port number, S-VID; 0: the port itself)
LocalPort = tuple[int, int]
# VID -> switch -> local port -> MAC -> how many forwarding entries list it there
# (MAC None: the VLAN's owner)
Members = Mapping[int, Mapping[int, Mapping[LocalPort, Mapping[str | None, int]]]]


def plan_vm_flows(
    bindings: Iterable[VmBinding], routes: Routes, rr_ports: Set[PortRef]
) -> dict[int, VmPlan]:
    """Per dpid (every switch of `routes` and every edge with a binding): its VmPlan.
    Raises ValueError if the bindings break their contract (see _check_contract)."""
    bindings = sorted(bindings, key=lambda b: b.handle)
    _check_contract(bindings)
    switches = routes.switches() | {b.port.dpid for b in bindings}
    flows: dict[int, list[FlowEntry]] = defaultdict(list)
    meters: dict[int, dict[int, MeterSpec]] = defaultdict(dict)
    members: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    for binding in bindings:
        for dpid, entries in binding_flows(binding, routes, binding.port in rr_ports).items():
            flows[dpid] += entries
        meters[binding.port.dpid].update(binding_meters(binding))
        if binding.forwarding:
            for entry in binding.entries:
                at_port = members[entry.vid][binding.port.dpid][local_port(binding.port)]
                at_port[entry.mac] = at_port.get(entry.mac, 0) + 1
    for vid, vlan_members in members.items():
        for dpid, entries in vlan_flood_flows(vid, vlan_members, routes, rr_ports).items():
            flows[dpid] += entries
    for dpid in switches:
        flows[dpid] += switch_flows(dpid, routes)
    return {
        dpid: VmPlan(sorted(flows[dpid], key=_flow_order), meters[dpid])
        for dpid in sorted(switches)
    }


def binding_flows(
    binding: VmBinding, routes: Routes, reflective_relay: bool
) -> dict[int, list[FlowEntry]]:
    """One binding's flows, per switch: its edge and, while it forwards, every switch above."""
    edge = binding.port.dpid
    flows = {edge: edge_flows(binding, reflective_relay, routes.uplink(edge))}
    if binding.forwarding:
        for dpid, port_no in routes.ancestors(edge):
            flows[dpid] = transit_flows(binding, port_no, routes.uplink(dpid))
    return flows


def binding_meters(binding: VmBinding) -> dict[int, MeterSpec]:
    """The binding's meter on its edge, by meter id (none without a rate limit)."""
    spec = vm_meter(binding.profile.qos)
    return {} if spec is None else {vm_meter_id(binding.handle): spec}


def switch_flows(dpid: int, routes: Routes) -> list[FlowEntry]:
    """What a switch holds because of where it sits on the tree."""
    return link_guard_flows(dpid, routes) + default_up_flows(dpid, routes)


def _check_contract(bindings: list[VmBinding]) -> None:
    """Handles are unique, a binding lists a MAC/VID once, and a MAC forwards for one binding
    only (the authorizer's anti-spoofing rule): otherwise two flows would share one key."""
    handles: set[int] = set()
    owner: dict[str | int, int] = {}
    for binding in bindings:
        if binding.handle in handles:
            raise ValueError(f"handle {binding.handle} is bound twice")
        handles.add(binding.handle)
        if len(set(binding.entries)) != len(binding.entries):
            raise ValueError(f"binding {binding.handle} lists a MAC/VID twice")
        if not binding.forwarding:
            continue
        for entry in binding.entries:
            # A whole VLAN is its owner's as a MAC is its VM's (key: the VID).
            key = entry.mac if entry.mac is not None else entry.vid
            if owner.setdefault(key, binding.handle) != binding.handle:
                raise ValueError(
                    f"MAC/VLAN {key} forwards for bindings {owner[key]} and {binding.handle}"
                )


def _flow_order(entry: FlowEntry) -> tuple:
    return entry.table_id, -entry.priority, repr(entry.match), entry.cookie


def vm_meter(qos: Qos) -> MeterSpec | None:
    """The profile's rate limit as a kbit/s meter; the burst defaults to one second's worth."""
    if qos.rate_kbps is None:
        return None
    return MeterSpec.kbps(qos.rate_kbps, qos.burst_kb or qos.rate_kbps)


def tagged(vid: int) -> int:
    """The vlan_vid match/set-field value of a frame tagged with `vid`."""
    return vid | ofp.OFPVID_PRESENT


def local_port(port: PortRef) -> LocalPort:
    return port.port_no, port.svid


def _s_tag(svid: int) -> list:
    """Actions that put a frame into S-channel `svid` (Open vSwitch's vlan_vid match and
    set-field see the outer tag whatever its TPID)."""
    return [ofmsg.push_vlan(ofmsg.ETH_TYPE_8021AD), ofmsg.set_field(vlan_vid=tagged(svid))]


def deliver_actions(svid: int, out: int, untag: bool = True) -> list:
    """A C-tagged frame to a station out of `out`: untagged (`untag`), or as it is; in the S-tag
    of its S-channel `svid` if it has one."""
    popped = [ofmsg.pop_vlan()] if untag else []
    return [*popped, *(_s_tag(svid) if svid else ()), ofmsg.output(out)]


# one binding, on its own edge --------------------------------------------------------------------
def edge_flows(binding: VmBinding, reflective_relay: bool, uplink: int | None) -> list[FlowEntry]:
    """``uplink``: the edge's port toward the root (None: it is one)."""
    owner = cookie(CookieKind.VSI, binding.handle)
    profile, port_no, svid = binding.profile, binding.port.port_no, binding.port.svid
    # An owner of whole VLANs gets its frames tagged, as it sends them; a VM untagged.
    untag = not binding.whole_vlans
    deliver = ofmsg.apply_actions(*deliver_actions(svid, port_no, untag))
    # A frame is never sent back out of the port it came in on, except through OFPP_IN_PORT:
    # with reflective relay the in_port variant hairpins same-port traffic, without it the plain
    # delivery drops it. An S-channel's frames have lost their S-tag by then, so the variant
    # takes those of every channel of the port: VMs of two S-channels of one port reach each
    # other only where the receiver's channel has reflective relay.
    hairpin = (
        (port_no, (ofmsg.apply_actions(*deliver_actions(svid, ofp.OFPP_IN_PORT, untag)),))
        if reflective_relay
        else None
    )
    flows = [
        *acl_flows(
            Table.INGRESS_ACL,
            owner,
            binding.handle,
            profile.ingress_acl,
            profile.acl_default,
            (ofmsg.goto(Table.FORWARD),),
        ),
        *acl_flows(
            Table.EGRESS_ACL,
            owner,
            binding.handle,
            profile.egress_acl,
            profile.acl_default,
            (deliver,),
            hairpin,
            vlan_vid=ANY_TAG,
        ),
    ]
    if binding.state is BindingState.STANDBY:
        flows += standby_flows(binding)
    if binding.forwarding:
        flows += admit_flows(binding)
        to_acl = (ofmsg.write_metadata(binding.handle), ofmsg.goto(Table.EGRESS_ACL))
        flows += [_unicast(entry, owner, to_acl, uplink) for entry in binding.entries]
    return flows


def _unicast(
    entry: MacVid, owner_cookie: int, instructions: tuple, uplink: int | None
) -> FlowEntry:
    """The unicast entry toward ``entry`` in FORWARD: its VLAN and MAC. For an owned VLAN,
    every unicast address of the VLAN that no VM's entry claims; below the root only for
    frames coming down (only the root knows every VM: the others send such frames up)."""
    match: dict[str, object] = {"vlan_vid": tagged(entry.vid)}
    if entry.mac is not None:
        priority, match["eth_dst"] = Priority.VM_UNICAST, entry.mac
    else:
        priority, match["eth_dst"] = Priority.VLAN_OWNER, UNICAST
        if uplink is not None:
            match["in_port"] = uplink
    return flow(Table.FORWARD, priority, owner_cookie, instructions, **match)


def _admission_matches(binding: VmBinding) -> list[tuple[dict[str, object], list[object]]]:
    """(match, tagging actions) per admission flow: per MAC/VID, frames already tagged with
    the VID, and untagged frames for the first VID listed for the MAC (an untagged frame names
    no VLAN, so the first entry decides; it gets the tag pushed). An owned VLAN: the frames
    tagged with it at the port, whatever their source. At an S-channel the VMs send untagged
    inside its S-tag: per MAC, that tag is swapped for the first VID's C-tag."""
    matches: list[tuple[dict[str, object], list[object]]] = []
    untagged_macs: set[str] = set()
    svid = binding.port.svid
    for entry in binding.entries:
        vlan = tagged(entry.vid)
        if entry.mac is None:
            matches.append((dict(in_port=binding.port.port_no, vlan_vid=vlan), []))
            continue
        if svid:
            if entry.mac not in untagged_macs:
                untagged_macs.add(entry.mac)
                swap = [ofmsg.pop_vlan(), ofmsg.push_vlan(), ofmsg.set_field(vlan_vid=vlan)]
                match = dict(in_port=binding.port.port_no, eth_src=entry.mac, vlan_vid=tagged(svid))
                matches.append((match, swap))
            continue
        variants: list[tuple[int, list[object]]] = [(vlan, [])]
        if entry.mac not in untagged_macs:
            untagged_macs.add(entry.mac)
            variants.append((ofp.OFPVID_NONE, [ofmsg.push_vlan(), ofmsg.set_field(vlan_vid=vlan)]))
        for vlan_match, tagging in variants:
            match = dict(in_port=binding.port.port_no, eth_src=entry.mac, vlan_vid=vlan_match)
            matches.append((match, tagging))
    return matches


def admit_flows(binding: VmBinding) -> list[FlowEntry]:
    """Admission of the binding's MAC/VIDs (_admission_matches): it tags, marks PCP, meters,
    and hands the binding's handle to its ingress ACL. With a DSCP mark, IPv4 and IPv6 get
    their own flows: setting ip_dscp needs an IP eth_type match."""
    owner = cookie(CookieKind.VSI, binding.handle)
    qos = binding.profile.qos
    # Instructions in the order OVS reports them (meter, actions, metadata, goto), so a
    # reconciliation compares equal.
    metering = (ofmsg.meter(vm_meter_id(binding.handle)),) if qos.rate_kbps is not None else ()
    marking = [ofmsg.set_field(vlan_pcp=qos.pcp)] if qos.pcp is not None else []
    onward = (ofmsg.write_metadata(binding.handle), ofmsg.goto(Table.INGRESS_ACL))
    flows = []
    for match, tagging in _admission_matches(binding):
        actions = tagging + marking
        flows.append(
            flow(
                Table.CLASSIFY,
                Priority.VM_ADMIT,
                owner,
                _instructions(metering, actions, onward),
                **match,
            )
        )
        if qos.dscp is not None:
            dscp = [*actions, ofmsg.set_field(ip_dscp=qos.dscp)]
            flows += [
                flow(
                    Table.CLASSIFY,
                    Priority.VM_ADMIT_IP,
                    owner,
                    _instructions(metering, dscp, onward),
                    eth_type=eth_type,
                    **match,
                )
                for eth_type in (ETH_TYPE_IPV4, ETH_TYPE_IPV6)
            ]
    return flows


def standby_flows(binding: VmBinding) -> list[FlowEntry]:
    """A migration's destination before the VM's first frame there: the admission matches
    punt (through the port's own punt meter, then the switch-wide one in PUNT) instead of
    forwarding. The first punted frame activates the binding, whose admission flows then
    replace these in place (same table, priority and match: no gap, no overlap)."""
    owner = cookie(CookieKind.VSI, binding.handle)
    meter_id = port_punt_meter_id(binding.port.port_no)
    punt = (*((ofmsg.meter(meter_id),) if meter_id is not None else ()), ofmsg.goto(Table.PUNT))
    return [
        flow(Table.CLASSIFY, Priority.VM_ADMIT, owner, punt, **match)
        for match, _ in _admission_matches(binding)
    ]


def _instructions(metering: tuple, actions: list, onward: tuple) -> tuple:
    return (*metering, *([ofmsg.apply_actions(*actions)] if actions else []), *onward)


def acl_priority(index: int) -> int:
    """The priority of rule `index`'s in_port variant; the plain rule sits one below."""
    priority = Priority.ACL_TOP - 2 * index
    if priority < 2:
        raise ValueError(f"an ACL of more than {Priority.ACL_TOP // 2 - 1} rules does not fit")
    return priority


def acl_flows(
    table: Table,
    owner_cookie: int,
    handle: int,
    rules: Iterable[AclRule],
    default: str,
    permit: tuple,
    hairpin: tuple[int, tuple] | None = None,
    **common_match,
) -> list[FlowEntry]:
    """The rules in order, first match wins, then `default` as a rule that matches all. A deny
    drops; a permit runs `permit`, or with `hairpin` = (port, instructions) runs those
    instructions for frames that came in on that port. Every flow matches the handle in the
    metadata and `common_match`."""
    flows = []
    for index, rule in enumerate([*rules, _match_all(default)]):
        match = {"metadata": handle, **common_match, **acl_match(rule)}
        priority = acl_priority(index)
        if rule.action == "deny":
            flows.append(flow(table, priority - 1, owner_cookie, (), **match))
            continue
        flows.append(flow(table, priority - 1, owner_cookie, permit, **match))
        if hairpin is not None:
            in_port, instructions = hairpin
            flows.append(
                flow(table, priority, owner_cookie, instructions, in_port=in_port, **match)
            )
    return flows


@functools.cache
def _match_all(action: str) -> AclRule:
    return AclRule(action)  # validated once, not per flow planned


def acl_match(rule: AclRule) -> dict[str, object]:
    """The OpenFlow match of a rule (its prerequisites are checked by AclRule itself)."""
    match: dict[str, object] = {}
    for name in ("eth_src", "eth_dst"):
        mac = getattr(rule, name)
        if mac is not None:
            match[name] = mac.address if mac.mask is None else (mac.address, mac.mask)
    if rule.eth_type is not None:
        match["eth_type"] = rule.eth_type
    for name in ("ipv4_src", "ipv4_dst", "ipv6_src", "ipv6_dst"):
        network = getattr(rule, name)
        # A /0 matches everything; switches drop an all-zero mask from the flow they report.
        if network is not None and network.prefixlen:
            address = str(network.network_address)
            match[name] = (
                address
                if network.prefixlen == network.max_prefixlen
                else (address, str(network.netmask))
            )
    if rule.ip_proto is not None:
        match["ip_proto"] = rule.ip_proto
    for side in ("src", "dst"):
        port = getattr(rule, f"tp_{side}")
        if port is not None:
            assert rule.ip_proto is not None  # AclRule: a port needs ip_proto tcp or udp
            match[f"{_TRANSPORT[rule.ip_proto]}_{side}"] = port
    return match


# one binding, elsewhere ------------------------------------------------------------------------
def transit_flows(binding: VmBinding, port_no: int | None, uplink: int | None) -> list[FlowEntry]:
    """A switch other than the binding's edge: its MAC/VIDs out of `port_no`, still tagged
    (`uplink`: that switch's way up, None at the root)."""
    if port_no is None:
        return []
    down = (ofmsg.apply_actions(ofmsg.output(port_no)),)
    return [
        _unicast(entry, cookie(CookieKind.VSI, binding.handle), down, uplink)
        for entry in binding.entries
    ]


# shared by several bindings ---------------------------------------------------------------------
def vlan_flood_flows(
    vid: int,
    members: Mapping[int, Mapping[LocalPort, Mapping[str | None, int]]],
    routes: Routes,
    rr_ports: Set[PortRef],
    only: Collection[int] | None = None,
) -> dict[int, list[FlowEntry]]:
    """One VLAN's flood flows, per switch (those in `only`, or all): group-addressed frames go
    out tagged on the tree ports toward switches with members and untagged on the local member
    ports (in their S-tag on S-channels). `members`: switch -> local port -> MACs of the VLAN's
    forwarding entries there. The ingress port is skipped (OpenFlow never outputs there), so a
    frame never returns the way it came; from a port with a reflective-relay member (port or
    S-channel) and another member behind it, the in_port variant sends it back out through
    OFPP_IN_PORT to the reflective-relay members there. A switch without members gets the flow
    only where it joins two or more member subtrees. A port whose member is the VLAN's owner
    (MAC None) gets the frame tagged. Costs the member switches times the tree's depth."""
    present = [dpid for dpid, ports in members.items() if ports]
    below: dict[int, int] = defaultdict(int)  # member switches in each switch's subtree
    for dpid in present:
        below[dpid] += 1
        for ancestor, _ in routes.ancestors(dpid):
            below[ancestor] += 1
    trunks: dict[int, list[int]] = defaultdict(list)
    for dpid, count in below.items():
        hop = routes.up.get(dpid)
        if hop is None:
            continue
        uplink, parent, down = hop
        trunks[parent].append(down)  # the parent reaches members in this subtree
        if len(present) - count > 0:
            trunks[dpid].append(uplink)  # and this switch reaches the others above
    flows: dict[int, list[FlowEntry]] = {}
    for dpid in below if only is None else [d for d in only if d in below]:
        ports = members.get(dpid, {})
        # An owner is never at an S-channel (the authorizer refuses it there): its port number.
        owned = tuple(sorted(port_no for (port_no, _), macs in ports.items() if None in macs))
        local = tuple(sorted(key for key, macs in ports.items() if macs and None not in macs))
        toward = tuple(sorted(trunks.get(dpid, ())))
        if not local and not owned and len(toward) < 2:
            continue
        entries = [_flood_flow(vid, toward + owned, local, None)]
        for port_no in sorted({p for p, _ in local}):
            here = [key for key in local if key[0] == port_no]
            relayed = tuple(key for key in here if PortRef(dpid, *key) in rr_ports)
            if relayed and sum(len(ports[key]) for key in here) > 1:
                entries.append(_flood_flow(vid, toward + owned, local, port_no, relayed))
        flows[dpid] = entries
    return flows


# An edge with P reflective-relay ports holds P + 1 flood flows of P outputs each, and a VM
# joining or leaving there re-plans them (before and after): cached, the unchanged ones are the
# same FlowEntry both times, whose instruction octets are serialized once (bench.scale
# 64 x 32: without it, building and comparing them was a third of the controller's CPU).
@functools.lru_cache(maxsize=4096)
def _flood_flow(
    vid: int,
    tagged_out: tuple[int, ...],
    local: tuple[LocalPort, ...],
    in_port: int | None,
    relayed: tuple[LocalPort, ...] = (),
) -> FlowEntry:
    """The flood flow: out of `tagged_out` as it is, untagged to the `local` members (in their
    S-tag at S-channels); with `in_port`, its variant for frames from that port: the `relayed`
    members there get them through OFPP_IN_PORT, the others there nothing."""
    actions = [ofmsg.output(port) for port in tagged_out]
    outs = [
        (ofp.OFPP_IN_PORT if port_no == in_port else port_no, svid)
        for port_no, svid in local
        if port_no != in_port or (port_no, svid) in relayed
    ]
    if outs:
        actions += [ofmsg.pop_vlan(), *(ofmsg.output(port) for port, svid in outs if not svid)]
        channels = [(port, svid) for port, svid in outs if svid]
        for port, svid in channels:  # each in its S-tag, taken off again for the next
            actions += [*_s_tag(svid), ofmsg.output(port), ofmsg.pop_vlan()]
        if channels:
            actions.pop()  # nothing follows the last S-channel's output
    match: dict[str, object] = dict(vlan_vid=tagged(vid), eth_dst=GROUP_ADDRESSED)
    priority = Priority.VLAN_FLOOD
    if in_port is not None:
        match["in_port"] = in_port
        priority = Priority.VLAN_FLOOD_HAIRPIN
    return flow(
        Table.FORWARD,
        priority,
        cookie(CookieKind.VLAN, vid),
        (ofmsg.apply_actions(*actions),),
        **match,
    )


def link_guard_flows(dpid: int, routes: Routes) -> list[FlowEntry]:
    """Group-addressed frames arriving on a linked port outside the flood tree are dropped, so
    a neighbour that still floods on an older tree cannot close a loop. Probes are punted by
    the higher-priority CONTROL_PUNT flows and keep such links alive."""
    return [
        flow(
            Table.CLASSIFY,
            Priority.LINK_GUARD,
            cookie(CookieKind.LINK, port),
            (),
            in_port=port,
            eth_dst=GROUP_ADDRESSED,
        )
        for port in routes.guards.get(dpid, ())
    ]


def default_up_flows(dpid: int, routes: Routes) -> list[FlowEntry]:
    """Below a root: tagged unicast frames no VM entry claims go up the tree. A frame that came
    down that port is not sent back (OpenFlow never outputs to the ingress port)."""
    uplink = routes.uplink(dpid)
    if uplink is None:
        return []
    return [
        flow(
            Table.FORWARD,
            Priority.DEFAULT_UP,
            cookie(CookieKind.LINK, uplink),
            (ofmsg.apply_actions(ofmsg.output(uplink)),),
            vlan_vid=ANY_TAG,
            eth_dst=UNICAST,
        )
    ]
