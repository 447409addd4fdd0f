"""A flow batch as one bundle: its flow-mods inside, in order; meters set before it and deleted
after its commit; a batch of fewer than two flow-mods as it is."""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric.bundles import FLAGS, bundled, probe
from app.flows import ofmsg
from app.flows.ofmsg import MeterSpec

BUNDLE = 0xEB000042
SPEC = MeterSpec.pktps(100, 50)


def _flow(n: int):
    return ofmsg.flow(0, 100 + n, 0xEB03000000000001, eth_type=0x0800)


def _kind(msg) -> str:
    if isinstance(msg, parser.ONFBundleCtrlMsg):
        return {ofp.ONF_BCT_OPEN_REQUEST: "open", ofp.ONF_BCT_COMMIT_REQUEST: "commit"}[msg.type]
    if isinstance(msg, parser.ONFBundleAddMsg):
        return "add"
    return "meter-delete" if msg.command == ofp.OFPMC_DELETE else "meter-set"


def test_flow_mods_go_inside_in_order_meters_around():
    adds = [ofmsg.add_flow(_flow(n)) for n in range(3)]
    delete = ofmsg.delete_by_cookie(0xEB03000000000002)
    msgs = [
        ofmsg.meter_mod(ofp.OFPMC_ADD, 0x10001, SPEC),
        *adds,
        delete,
        ofmsg.meter_delete(0x10002),
    ]
    out = bundled(msgs, BUNDLE)
    assert [_kind(m) for m in out] == ["meter-set", "open", *["add"] * 4, "commit", "meter-delete"]
    inside = [m for m in out if isinstance(m, parser.ONFBundleAddMsg)]
    assert [m.message for m in inside] == [*adds, delete]
    controls = [m for m in out if isinstance(m, parser.ONFBundleCtrlMsg)]
    assert {m.bundle_id for m in inside + controls} == {BUNDLE}
    assert {m.flags for m in inside + controls} == {FLAGS}
    assert FLAGS == ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED


def test_a_batch_with_one_flow_mod_or_none_is_sent_as_it_is():
    one = [ofmsg.meter_mod(ofp.OFPMC_MODIFY, 0x10001, SPEC), ofmsg.add_flow(_flow(0))]
    assert bundled(one, BUNDLE) == one
    meters_only = [ofmsg.meter_delete(0x10002)]
    assert bundled(meters_only, BUNDLE) == meters_only


def test_the_probe_opens_and_discards_one_empty_bundle():
    opening, discard = probe(BUNDLE)
    assert (opening.type, discard.type) == (ofp.ONF_BCT_OPEN_REQUEST, ofp.ONF_BCT_DISCARD_REQUEST)
    assert opening.bundle_id == discard.bundle_id == BUNDLE
