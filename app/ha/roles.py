"""The OpenFlow roles the election decides (OpenFlow 1.3 section 6.3.5; docs/ha.md).

The leader asks every switch for MASTER with its generation, before anything else it sends; a
follower asks for SLAVE with the generation of the leader it knows, so that it receives no
packet-in and cannot change a flow (the switch refuses, OVS included). A switch remembers the
highest generation it was given and refuses an older one as stale: a deposed leader asking
again is refused, and so is every flow-mod of a connection the new MASTER made a SLAVE."""

from os_ken.ofproto import ofproto_v1_3 as ofp

MASTER, SLAVE = ofp.OFPCR_ROLE_MASTER, ofp.OFPCR_ROLE_SLAVE


def role_request(datapath, role: int, generation: int):
    return datapath.ofproto_parser.OFPRoleRequest(datapath, role, generation)


def deposing_error(msg_type: int, code: int) -> str | None:
    """What a switch's error says if it means this controller is no longer its master."""
    if msg_type == ofp.OFPET_ROLE_REQUEST_FAILED and code == ofp.OFPRRFC_STALE:
        return "a switch refused our MASTER request: a newer leader's generation is in force"
    if msg_type == ofp.OFPET_BAD_REQUEST and code == ofp.OFPBRC_IS_SLAVE:
        return "a switch refused our message: a newer leader made us its SLAVE"
    return None
