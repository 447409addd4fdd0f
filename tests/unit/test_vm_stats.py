"""VM statistics from fake flow and meter stats replies (app/flows/vm_stats.py)."""

from types import SimpleNamespace

from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric.ports import PortRef
from app.flows import ofmsg
from app.flows.flow_stats_wire import WireFlowStatsPart, counts
from app.flows.tables import CookieKind, Priority, Table, cookie, vm_meter_id
from app.flows.vm_stats import VmStats
from tests.unit.test_flow_stats_wire import _stats_octets

EDGE, AGG = 1, 2
PORTS = {7: PortRef(EDGE, 3), 8: PortRef(EDGE, 3), 9: PortRef(EDGE, 4)}
MAC = "52:54:00:00:00:07"
DELIVER = (ofmsg.apply_actions(ofmsg.pop_vlan(), ofmsg.output(3)),)


def port_of(handle):
    return PORTS.get(handle)


def stat(table, priority, handle, packets, octets=0, instructions=(), kind=CookieKind.VSI):
    """As an OFPFlowStats reads (what the statistics read of it)."""
    return SimpleNamespace(
        table_id=table,
        priority=priority,
        cookie=cookie(kind, handle),
        instructions=list(instructions),
        packet_count=packets,
        byte_count=octets,
    )


def vm_flows(handle, sent, delivered, denied_in, denied_out):
    return [
        stat(Table.CLASSIFY, Priority.VM_ADMIT, handle, sent, sent * 100, (ofmsg.goto(1),)),
        stat(Table.CLASSIFY, Priority.VM_ADMIT_IP, handle, 1, 100, (ofmsg.goto(1),)),
        stat(Table.INGRESS_ACL, 31999, handle, denied_in),
        stat(Table.INGRESS_ACL, 31997, handle, 50, 5000, (ofmsg.goto(2),)),
        stat(Table.FORWARD, Priority.VM_UNICAST, handle, 99, 9900, (ofmsg.goto(3),)),
        stat(Table.EGRESS_ACL, 31999, handle, denied_out),
        stat(Table.EGRESS_ACL, 31997, handle, delivered, delivered * 60, DELIVER),
    ]


def meter(handle, drops):
    bands = [parser.OFPMeterBandStats(packet_band_count=drops, byte_band_count=drops * 100)]
    return parser.OFPMeterStats(meter_id=vm_meter_id(handle), band_stats=bands)


def test_each_flow_counts_what_it_carries():
    stats = VmStats()
    reply = vm_flows(7, 10, 4, 2, 1) + vm_flows(8, 5, 3, 0, 0)
    stats.flow_stats(EDGE, counts(reply), port_of, 100.0)
    stats.meter_stats(
        EDGE, [meter(7, 6), parser.OFPMeterStats(meter_id=1, band_stats=[])], port_of, 101.0
    )
    counters, polled_at = stats.vm(EDGE, 7)
    assert counters.as_dict() == {
        "packets_in": 11,
        "bytes_in": 1100,
        "packets_out": 4,
        "bytes_out": 240,
        "acl_drops": 3,
        "meter_drops": 6,
    }
    assert polled_at == 101.0
    ((dpid, port_no, total),) = stats.ports()
    assert (dpid, port_no) == (EDGE, 3)
    assert (total.packets_in, total.packets_out, total.meter_drops) == (17, 7, 6)
    assert stats.malformed == stats.unknown == 0


def test_transit_entries_and_other_switches_count_nothing():
    stats = VmStats()
    stats.flow_stats(AGG, counts(vm_flows(7, 10, 4, 2, 1)), port_of, 1.0)
    assert stats.vm(AGG, 7) is None and stats.ports() == []
    assert stats.unknown == 0  # a binding held elsewhere: its unicast entry, not an error


def test_malformed_and_unknown_entries_are_counted_and_dropped():
    stats = VmStats()
    bad = [
        SimpleNamespace(table_id=0),  # no counters
        SimpleNamespace(table_id=0, packet_count=1, byte_count=1),  # no cookie
        stat(Table.CLASSIFY, Priority.VM_ADMIT, 7, -1),
        stat(Table.CLASSIFY, Priority.VM_ADMIT, 7, "many"),
        "garbage",
    ]
    unknown = [
        stat(Table.CLASSIFY, Priority.VM_ADMIT, 1234, 5),  # no binding has handle 1234
        stat(Table.CLASSIFY, Priority.PORT_ROLE, 3, 5, kind=CookieKind.BASE),
        SimpleNamespace(
            **{**vars(stat(Table.CLASSIFY, 40000, 7, 1)), "cookie": 0x1234}
        ),  # not ours
    ]
    stats.flow_stats(EDGE, counts([*bad, *unknown, *vm_flows(9, 2, 2, 0, 0)]), port_of, 5.0)
    stats.meter_stats(
        EDGE, [SimpleNamespace(meter_id=vm_meter_id(9)), object(), meter(1234, 3)], port_of, 6.0
    )
    assert stats.malformed == 7
    assert stats.unknown == 4
    assert stats.vm(EDGE, 9)[0].packets_in == 3


def test_a_gone_binding_and_a_gone_switch_are_forgotten():
    stats = VmStats()
    stats.flow_stats(EDGE, counts(vm_flows(7, 1, 1, 0, 0) + vm_flows(9, 1, 1, 0, 0)), port_of, 1.0)
    stats.meter_stats(EDGE, [meter(7, 1)], port_of, 1.0)
    gone = {9: PORTS[9]}  # handle 7 left
    stats.flow_stats(EDGE, counts(vm_flows(9, 3, 1, 0, 0)), gone.get, 2.0)
    stats.meter_stats(EDGE, [], gone.get, 2.0)
    assert stats.vm(EDGE, 7) is None
    assert [(p, c.packets_in) for _, p, c in stats.ports()] == [(4, 4)]
    stats.forget(EDGE)
    assert stats.vm(EDGE, 9) is None and stats.ports() == []


def test_a_reply_as_the_controller_parses_it_counts_without_parsing_a_match():
    """WireFlowStatsPart (app/flows/flow_stats_wire.py, the controller's flow stats parser) gives
    the header and the instructions' length: the statistics never parse a match."""
    deliver = ofmsg.apply_actions(ofmsg.pop_vlan(), ofmsg.output(3))
    c = cookie(CookieKind.VSI, 7)
    flows = [
        (ofmsg.flow(0, Priority.VM_ADMIT, c, (ofmsg.goto(1),), in_port=3, eth_src=MAC), 4),
        (ofmsg.flow(1, 31999, c, (), metadata=7, eth_type=0x800, ip_proto=6, tcp_dst=23), 2),
        (ofmsg.flow(3, 31999, c, (deliver,), metadata=7), 5),
    ]
    octets = b"".join(_stats_octets(entry, packets) for entry, packets in flows)
    part = WireFlowStatsPart.parser(octets, 0)
    stats = VmStats()
    stats.flow_stats(EDGE, counts([part]), port_of, 1.0)
    counters, _ = stats.vm(EDGE, 7)
    assert (counters.packets_in, counters.acl_drops, counters.packets_out) == (4, 2, 5)
    assert counters.bytes_out == 5 * 60
    assert part.flows()[1].entry.key == flows[1][0].key  # reconciliation's, on demand
