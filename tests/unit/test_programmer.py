"""The incremental flow programmer against the whole-fabric plan: after any history of binding
changes, link changes and reflective-relay changes, the messages it returned, applied to the
switches, leave exactly what plan_vm_flows computes from scratch, and each switch's reconcile
intent (flows/meters) says the same. Also: the cost of a change is its own."""

from collections import defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.links import Topology
from app.fabric.ports import PortRef
from app.flows import ofmsg
from app.flows.programmer import FlowProgrammer
from app.flows.vm_flows import plan_vm_flows
from app.policy.acl import AclRule
from app.policy.profile import Qos, VsiTypeKey, VsiTypeProfile
from app.vdp.binding import BindingState, MacVid, VmBinding

AGG, EDGES = 0x100, (1, 2, 3)
# edge n: uplink 100 to agg port n; optional trunks between edges 1-2 (port 102) and 2-3 (103)
LINKS = [(PortRef(e, 100), PortRef(AGG, e)) for e in EDGES] + [
    (PortRef(1, 102), PortRef(2, 102)),
    (PortRef(2, 103), PortRef(3, 103)),
]
# Ports and S-channels of ports: a channel is a port of its own, sharing the switch port.
PORTS = [PortRef(e, p, s) for e in EDGES for p in (1, 2) for s in (0, 4000, 4001)]
MACS = [f"52:00:00:00:00:{n:02x}" for n in range(6)]


def profile(rate=None, deny_telnet=False, key=(5, 4)) -> VsiTypeProfile:
    acl = (AclRule("deny", eth_type=0x0800, ip_proto=6, tp_dst=23),) if deny_telnet else ()
    return VsiTypeProfile(
        VsiTypeKey(*key),
        "web",
        "blue",
        frozenset({100, 101}),
        frozenset({"mgr1"}),
        ingress_acl=acl,
        qos=Qos(rate_kbps=rate),
    )


PROFILES = [profile(), profile(rate=1000), profile(deny_telnet=True, rate=500)]


class Switches:
    """What the switches hold after the messages: per dpid, flow key -> (cookie, body), and
    meters. Applies ADD, DELETE_STRICT and DELETE (by cookie) as OpenFlow 1.3 does."""

    def __init__(self):
        self.flows = defaultdict(dict)
        self.meters = defaultdict(dict)

    def apply(self, changes: dict[int, list]) -> None:
        for dpid, msgs in changes.items():
            for msg in msgs:
                if isinstance(msg, parser.OFPMeterMod):
                    if msg.command == ofp.OFPMC_DELETE:
                        self.meters[dpid].pop(msg.meter_id)
                        self._drop(
                            dpid,
                            lambda entry, msg=msg: any(
                                isinstance(i, parser.OFPInstructionMeter)
                                and i.meter_id == msg.meter_id
                                for i in entry.instructions
                            ),
                        )
                    else:
                        band = msg.bands[0]
                        self.meters[dpid][msg.meter_id] = ofmsg.MeterSpec(
                            msg.flags, band.rate, band.burst_size
                        )
                    continue
                entry = ofmsg.FlowEntry(
                    msg.table_id,
                    msg.priority,
                    msg.cookie,
                    tuple(sorted(msg.match.items())),
                    tuple(msg.instructions),
                )
                if msg.command == ofp.OFPFC_ADD:
                    self.flows[dpid][entry.key] = entry
                elif msg.command == ofp.OFPFC_DELETE_STRICT:
                    held = self.flows[dpid].get(entry.key)
                    if (
                        held is not None
                        and held.cookie & msg.cookie_mask == msg.cookie & msg.cookie_mask
                    ):
                        del self.flows[dpid][entry.key]
                else:
                    assert msg.command == ofp.OFPFC_DELETE and msg.table_id == ofp.OFPTT_ALL
                    self._drop(
                        dpid,
                        lambda held, msg=msg: (
                            held.cookie & msg.cookie_mask == msg.cookie & msg.cookie_mask
                        ),
                    )

    def _drop(self, dpid, doomed) -> None:
        self.flows[dpid] = {k: e for k, e in self.flows[dpid].items() if not doomed(e)}

    def state(self) -> dict:
        return {
            dpid: ({k: (e.cookie, e.body) for k, e in flows.items()}, dict(self.meters[dpid]))
            for dpid, flows in self.flows.items()
            if flows or self.meters[dpid]
        }


def expected(bindings, topology, rr) -> dict:
    return {
        dpid: ({f.key: (f.cookie, f.body) for f in plan.flows}, dict(plan.meters))
        for dpid, plan in plan_vm_flows(bindings, topology.routes(), rr).items()
        if plan.flows or plan.meters
    }


ops = st.one_of(
    st.tuples(
        st.just("bind"),
        st.integers(0, 5),
        st.sampled_from(PORTS),
        st.integers(0, 5),
        st.sampled_from((100, 101)),
        st.sampled_from(list(BindingState)),
        st.integers(0, 2),
    ),
    st.tuples(st.just("unbind"), st.integers(0, 5)),
    st.tuples(st.just("link"), st.integers(0, len(LINKS) - 1)),
    st.tuples(st.just("rr"), st.sampled_from(PORTS)),
)


@settings(max_examples=300)
@given(st.lists(ops, max_size=40))
def test_incremental_changes_always_agree_with_the_whole_plan(history):
    programmer, switches, topology = FlowProgrammer(), Switches(), Topology()
    bindings: dict[int, VmBinding] = {}  # VSI n -> its binding
    rr: set[PortRef] = set()
    handles = iter(range(1, 1000))
    for op in history:
        if op[0] == "bind":
            _, n, port, mac, vid, state, prof = op
            entries = (MacVid(MACS[mac], vid),)
            taken = {e.mac for m, b in bindings.items() if m != n for e in b.entries}
            if MACS[mac] in taken:
                continue  # the authorizer refuses a MAC another VSI holds
            old = bindings.get(n)
            new = VmBinding(
                next(handles) if old is None or old.port != port else old.handle,
                VsiId(VsiIdFormat.UUID, n.to_bytes(16, "big")),
                port,
                entries,
                PROFILES[prof],
                state,
            )
            changes = {new.handle: (old if old and old.handle == new.handle else None, new)}
            if old is not None and old.handle != new.handle:  # a move: the old handle goes
                changes[old.handle] = (old, None)
            bindings[n] = new
            switches.apply(programmer.update(changes))
        elif op[0] == "unbind":
            old = bindings.pop(op[1], None)
            if old is not None:
                switches.apply(programmer.update({old.handle: (old, None)}))
        elif op[0] == "link":
            a, b = LINKS[op[1]]
            if topology.peer(a) == b:
                topology.remove_port(a)
            else:
                topology.add_link(a, b, 0.0)
            switches.apply(programmer.set_routes(topology.routes()))
        else:
            rr ^= {op[1]}
            switches.apply(programmer.set_rr_ports(rr))
        want = expected(bindings.values(), topology, rr)
        assert switches.state() == want
        for dpid in set(want) | set(switches.state()):
            flows, meters = want.get(dpid, ({}, {}))
            assert {f.key: (f.cookie, f.body) for f in programmer.flows(dpid)} == flows
            assert programmer.meters(dpid) == meters


def _fabric(edges: int) -> Topology:
    topology = Topology()
    for e in range(1, edges + 1):
        topology.add_link(PortRef(e, 100), PortRef(AGG, e), 0.0)
    return topology


def test_one_associate_costs_its_own_flows_whatever_the_number_of_vms_held():
    topology = _fabric(16)
    programmer = FlowProgrammer()
    programmer.set_routes(topology.routes())

    def vm(n: int) -> VmBinding:
        mac = "52:00:" + ":".join(f"{b:02x}" for b in n.to_bytes(4, "big"))
        return VmBinding(
            n,
            VsiId(VsiIdFormat.UUID, n.to_bytes(16, "big")),
            PortRef(1 + n % 16, 1 + n % 32),
            (MacVid(mac, 100),),
            PROFILES[1],
            BindingState.FORWARDING,
        )

    def cost(n: int) -> dict[int, int]:
        return {dpid: len(msgs) for dpid, msgs in programmer.update({n: (None, vm(n))}).items()}

    for n in range(1, 1001):
        programmer.update({n: (None, vm(n))})
    first = cost(1001)
    for n in range(1002, 5001):
        programmer.update({n: (None, vm(n))})
    # Its edge (meter and flows) and the root (its MAC's entry); no other switch, same count.
    assert first.keys() == {1 + 1001 % 16, AGG}
    assert cost(5018) == {1 + 5018 % 16: first[1 + 1001 % 16], AGG: first[AGG]}
    removed = programmer.update({5018: (vm(5018), None)})
    assert set(removed) == {1 + 5018 % 16, AGG}
    assert [m.command for m in removed[1 + 5018 % 16] if isinstance(m, parser.OFPFlowMod)] == [
        ofp.OFPFC_DELETE
    ]  # one sweep by cookie


def _two_edges_and_one_vm() -> tuple[FlowProgrammer, VmBinding]:
    """A programmer on two edges below AGG, and a VM for edge 1 port 1 (not yet planned)."""
    programmer = FlowProgrammer()
    programmer.set_routes(_fabric(2).routes())
    vm = VmBinding(
        1,
        VsiId(VsiIdFormat.UUID, bytes(15) + b"\x01"),
        PortRef(1, 1),
        (MacVid(MACS[1], 100),),
        PROFILES[0],
        BindingState.FORWARDING,
    )
    return programmer, vm


def test_a_moving_mac_is_replaced_in_place_on_the_switches_above_before_the_old_is_deleted():
    programmer, source = _two_edges_and_one_vm()
    programmer.update({1: (None, source)})
    target = replace(source, handle=2, port=PortRef(2, 1))
    changes = programmer.update({1: (source, None), 2: (None, target)})
    on_agg = changes[AGG]
    assert [m.command for m in on_agg] == [ofp.OFPFC_ADD]  # modified in place, never missing
    first_delete = next(i for i, m in enumerate(changes[1]) if m.command != ofp.OFPFC_ADD)
    assert all(m.command != ofp.OFPFC_ADD for m in changes[1][first_delete:])


def test_only_a_change_to_flows_a_switch_holds_is_marked_in_place():
    """in_place decides the bundle (app/fabric/bundles.py): a VM's first flows need none."""
    programmer, first = _two_edges_and_one_vm()
    added = programmer.update({1: (None, first)})
    assert added and not any(msgs.in_place for msgs in added.values())
    second = replace(first, handle=2, vsi_id=VsiId(VsiIdFormat.UUID, bytes(15) + b"\x02"))
    second = replace(second, entries=(MacVid(MACS[2], 100),))
    assert not any(msgs.in_place for msgs in programmer.update({2: (None, second)}).values())
    moved = replace(second, handle=3, port=PortRef(2, 1))
    changes = programmer.update({2: (second, None), 3: (None, moved)})
    assert changes[1].in_place and changes[AGG].in_place  # deleted; the MAC's entry replaced
    assert all(msgs.in_place for msgs in programmer.update({1: (first, None)}).values())
