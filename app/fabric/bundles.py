"""A flow batch as one OpenFlow bundle (ONF extension 230 for OpenFlow 1.3), so a switch applies
its flow changes all at once, in order, or not at all: no packet ever meets half a move.

Bundles carry flow-mods, not meter-mods (Open vSwitch refuses those in a bundle). A batch is
planned gap-free as new and changed meters, flow adds, flow deletes, stale meters
(app/flows/programmer.py), so its meters go around the bundle: the ones to set before it (the
flows inside may name them), the stale ones after its commit (deleting a meter deletes the flows
that use it). A batch with fewer than two flow-mods is sent as it is: one message is atomic
already. Pure: the caller gives each bundle an id and the messages their xids.
"""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

# Every message of a bundle carries the same flags (Open vSwitch refuses a mismatch).
FLAGS = ofp.ONF_BF_ATOMIC | ofp.ONF_BF_ORDERED
# Below this many flow-mods a batch needs no bundle.
MIN_FLOW_MODS = 2


def control(bundle_id: int, kind: int) -> parser.ONFBundleCtrlMsg:
    """A bundle control request (ofp.ONF_BCT_OPEN_REQUEST, ..._COMMIT_REQUEST, ...)."""
    return parser.ONFBundleCtrlMsg(None, bundle_id, kind, FLAGS, [])


def probe(bundle_id: int) -> list:
    """Open and discard an empty bundle: a switch without bundles refuses the open."""
    return [
        control(bundle_id, ofp.ONF_BCT_OPEN_REQUEST),
        control(bundle_id, ofp.ONF_BCT_DISCARD_REQUEST),
    ]


def bundled(msgs: list, bundle_id: int) -> list:
    """The messages of one batch with its flow-mods in bundle `bundle_id`: the meters to set
    first, then open, each flow-mod (in order), commit, then the meters to delete."""
    flow_mods = [m for m in msgs if isinstance(m, parser.OFPFlowMod)]
    if len(flow_mods) < MIN_FLOW_MODS:
        return msgs
    after = [m for m in msgs if _deletes_meter(m)]
    before = [m for m in msgs if not isinstance(m, parser.OFPFlowMod) and not _deletes_meter(m)]
    return [
        *before,
        control(bundle_id, ofp.ONF_BCT_OPEN_REQUEST),
        *(parser.ONFBundleAddMsg(None, bundle_id, FLAGS, m, []) for m in flow_mods),
        control(bundle_id, ofp.ONF_BCT_COMMIT_REQUEST),
        *after,
    ]


def _deletes_meter(msg) -> bool:
    return isinstance(msg, parser.OFPMeterMod) and msg.command == ofp.OFPMC_DELETE
