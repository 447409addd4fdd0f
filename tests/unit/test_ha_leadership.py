"""Which role a controller asks of each switch (app/controller/leadership.py, app/ha/roles.py):
a follower SLAVE under the leader's generation and nothing for the fabric; the leader MASTER
first, then the fabric; at the takeover every switch held so far."""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.controller.leadership import Leadership
from app.ha.election import Leader
from app.ha.roles import deposing_error


class Conn:
    ofproto_parser = parser

    def __init__(self, log):
        self.log = log

    def send_msg(self, msg):
        self.log.append((self, "role", msg.role, msg.generation_id))


def _leadership():
    log: list = []
    leadership = Leadership(lambda dpid, conn, address: log.append((conn, "adopt", dpid, address)))
    return leadership, log


def test_a_follower_asks_slave_under_the_leaders_generation_and_adopts_nothing():
    leadership, log = _leadership()
    one = Conn(log)
    leadership.connected(1, one, "10.0.0.1")
    assert log == []  # no leader known yet: nothing to claim
    leadership.follow(Leader("b", "http://b:1", 5, 40))
    two = Conn(log)
    leadership.connected(2, two, None)
    assert log == [(one, "role", ofp.OFPCR_ROLE_SLAVE, 40), (two, "role", ofp.OFPCR_ROLE_SLAVE, 40)]


def test_the_takeover_claims_every_switch_held_master_before_the_fabric_sees_it():
    leadership, log = _leadership()
    one, two = Conn(log), Conn(log)
    leadership.connected(1, one, "a")
    leadership.connected(2, two, "b")
    leadership.released(2, two)
    leadership.lead(41)
    assert log == [(one, "role", ofp.OFPCR_ROLE_MASTER, 41), (one, "adopt", 1, "a")]
    three = Conn(log)
    leadership.connected(3, three, "c")
    assert log[-2:] == [(three, "role", ofp.OFPCR_ROLE_MASTER, 41), (three, "adopt", 3, "c")]
    leadership.follow(Leader("b", "http://b:1", 5, 40))  # a stale view changes nothing
    assert len(log) == 4 and leadership.generation == 41


def test_a_release_of_an_older_connection_keeps_the_newer_one():
    leadership, log = _leadership()
    old, new = Conn(log), Conn(log)
    leadership.connected(1, old, None)
    leadership.connected(1, new, None)
    leadership.released(1, old)
    assert leadership.connections() == [new]


def test_errors_that_depose_a_leader():
    assert deposing_error(ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
    assert deposing_error(ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert deposing_error(ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_BAD_TYPE) is None
    assert deposing_error(ofp.OFPET_FLOW_MOD_FAILED, ofp.OFPRRFC_STALE) is None
