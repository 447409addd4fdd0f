"""The simulated switch's controller roles (bench/ofsim/roles.py): Open vSwitch's rules, first
as pure decisions, then on the wire of a simulated switch with three controllers."""

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from bench.ofsim import ofwire
from bench.ofsim import roles as r
from bench.ofsim.fabric import Fabric
from tests.ofsim_messages import connected, parse, wire

U64 = 1 << 64


def _roles(*controllers: int) -> r.Roles:
    roles = r.Roles()
    for controller in controllers:
        roles.connect(controller)
    return roles


def test_connections_start_equal_and_all_get_packet_ins():
    roles = _roles(0, 1, 2)
    assert [roles.role(c) for c in (0, 1, 2)] == [r.EQUAL] * 3
    assert roles.packet_in_targets() == [0, 1, 2]
    assert roles.master() is None and roles.generation is None


def test_a_new_master_demotes_the_old_one_and_slaves_get_no_packet_ins():
    roles = _roles(0, 1, 2)
    assert roles.request(0, r.MASTER, 5) == r.Answer(None, r.MASTER, 5)
    assert roles.request(1, r.SLAVE, 5) == r.Answer(None, r.SLAVE, 5)
    assert roles.packet_in_targets() == [0, 2]  # 2 is still EQUAL
    assert roles.request(2, r.MASTER, 6) == r.Answer(None, r.MASTER, 6)
    assert (roles.role(0), roles.master(), roles.generation) == (r.SLAVE, 2, 6)
    assert roles.packet_in_targets() == [2]


def test_a_stale_generation_is_refused_and_changes_nothing():
    roles = _roles(0, 1)
    roles.request(1, r.MASTER, 10)
    assert roles.request(0, r.MASTER, 9) == r.Answer(r.OFPRRFC_STALE, r.EQUAL, 10)
    assert roles.request(0, r.SLAVE, 9).error == r.OFPRRFC_STALE
    assert (roles.master(), roles.role(0), roles.generation) == (1, r.EQUAL, 10)
    # the same generation again is not stale (a leader repeating itself)
    assert roles.request(1, r.MASTER, 10).error is None


def test_generations_compare_as_a_signed_difference_across_the_wrap():
    roles = _roles(0, 1)
    roles.request(0, r.MASTER, U64 - 1)
    assert roles.request(1, r.MASTER, 0).error is None  # 0 - (2^64 - 1) = +1
    assert roles.request(0, r.MASTER, U64 - 1).error == r.OFPRRFC_STALE
    assert roles.request(0, r.MASTER, (1 << 63) - 1).error is None  # 2^63 - 1 ahead of 0
    assert roles.request(1, r.MASTER, U64 - 1).error == r.OFPRRFC_STALE  # 2^63 behind


def test_equal_and_nochange_leave_the_generation_alone():
    roles = _roles(0, 1)
    roles.request(0, r.MASTER, 7)
    assert roles.request(1, r.EQUAL, 1) == r.Answer(None, r.EQUAL, 7)
    assert roles.request(0, r.NOCHANGE, 1) == r.Answer(None, r.MASTER, 7)
    assert roles.generation == 7 and roles.packet_in_targets() == [0, 1]


def test_an_unknown_role_is_refused():
    roles = _roles(0)
    assert roles.request(0, 4, 1) == r.Answer(r.OFPRRFC_BAD_ROLE, r.EQUAL, 0)
    assert roles.generation is None


@pytest.mark.parametrize(
    "msg_type",
    [
        ofwire.FLOW_MOD,
        ofwire.GROUP_MOD,
        ofwire.PORT_MOD,
        ofwire.TABLE_MOD,
        ofwire.METER_MOD,
        ofwire.PACKET_OUT,
        ofwire.EXPERIMENTER,
    ],
)
def test_a_slave_may_not_change_the_switch(msg_type):
    roles = _roles(0, 1)
    roles.request(0, r.SLAVE, 1)
    assert not roles.may_send(0, msg_type)
    assert roles.may_send(1, msg_type)  # EQUAL


@pytest.mark.parametrize(
    "msg_type",
    [
        ofwire.MULTIPART_REQUEST,
        ofwire.BARRIER_REQUEST,
        ofwire.ECHO_REQUEST,
        ofwire.FEATURES_REQUEST,
        ofwire.ROLE_REQUEST,
    ],
)
def test_a_slave_may_read(msg_type):
    roles = _roles(0)
    roles.request(0, r.SLAVE, 1)
    assert roles.may_send(0, msg_type)


def test_a_disconnected_controller_is_forgotten_but_the_generation_kept():
    roles = _roles(0, 1)
    roles.request(0, r.MASTER, 3)
    roles.request(1, r.SLAVE, 3)
    roles.disconnect(0)
    assert (roles.master(), roles.packet_in_targets(), roles.generation) == (None, [], 3)
    roles.connect(0)  # reconnected: EQUAL again
    assert roles.packet_in_targets() == [0]


# on the simulated switch --------------------------------------------------------------------
def _switch_with(controllers: int):
    sw = Fabric(edges=1, ports=1, vms=1).edges[0]
    return sw, [connected(sw, controller) for controller in range(controllers)]


def _send(sw, conn, msg, now=0.0):
    data = wire(msg)
    conn.out.clear()
    sw.handle(conn, data, 0, len(data), now)
    return [parse(out) for out in conn.out]


def test_role_requests_on_the_wire_as_os_ken_sends_them():
    sw, (a, b, c) = _switch_with(3)
    (reply,) = _send(sw, a, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_MASTER, 41), now=1.5)
    assert (reply.msg_type, reply.role, reply.generation_id) == (
        ofp.OFPT_ROLE_REPLY,
        ofp.OFPCR_ROLE_MASTER,
        41,
    )
    (reply,) = _send(sw, b, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_SLAVE, 41))
    assert reply.role == ofp.OFPCR_ROLE_SLAVE
    (error,) = _send(sw, c, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_MASTER, 40))
    assert (error.type, error.code) == (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert list(sw.masters) == [(1.5, 41, 0)] and sw.role_errors == 1


def test_a_slave_s_flow_mod_is_refused_and_its_reads_answered():
    sw, (a, b) = _switch_with(2)
    _send(sw, a, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_MASTER, 1))
    _send(sw, b, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_SLAVE, 1))
    flow_mod = parser.OFPFlowMod(None, match=parser.OFPMatch(in_port=1), instructions=[])
    (error,) = _send(sw, b, flow_mod)
    assert (error.type, error.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert not sw.table.flows and sw.slave_refusals == 1
    (reply,) = _send(sw, b, parser.OFPBarrierRequest(None))
    assert reply.msg_type == ofp.OFPT_BARRIER_REPLY
    assert _send(sw, a, flow_mod) == [] and len(sw.table.flows) == 1


def test_packet_ins_go_to_the_master_only_and_none_is_lost_silently():
    sw, (a, b, c) = _switch_with(3)
    station = sw.stations[1]
    _send(sw, a, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_MASTER, 1))
    for conn in (b, c):
        _send(sw, conn, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_SLAVE, 1))
    for conn in (a, b, c):
        conn.out.clear()
    station.send_lldp()
    assert [len(conn.out) for conn in (a, b, c)] == [1, 0, 0]
    assert parse(a.out[0]).msg_type == ofp.OFPT_PACKET_IN
    a.connection_lost(None)  # the leader dies: the followers are SLAVEs, nobody gets it
    station.send_lldp()
    assert [len(conn.out) for conn in (b, c)] == [0, 0] and sw.dropped_offline == 1
    _send(sw, c, parser.OFPRoleRequest(None, ofp.OFPCR_ROLE_MASTER, 2), now=3.0)
    c.out.clear()
    station.send_lldp()
    assert (len(b.out), len(c.out)) == (0, 1)
    assert [m[1:] for m in sw.masters] == [(1, 0), (2, 2)]
