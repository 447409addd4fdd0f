"""Every filter format and every VSIID format, round trip: a station's request on the wire, the
bridge's answer on the wire (granted VIDs, group IDs, the type's PCP with the PS bit), the
lldpad-style keep-alive that repeats the answer, and the association as REST shows it, whose
VSI ID text names the same VSIID again."""

import json
from dataclasses import replace

import pytest

from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiTlv,
    decode_vdpdu,
    encode_vdpdu,
)
from app.controller.nms_service import vsi_view
from app.fabric.ports import PortRef
from app.policy import Qos, VsiTypeDatabase, VsiTypeKey, VsiTypeProfile
from app.registry.vms import canonical_vsi_id
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from app.vdp.describe import vsi_id_from_text, vsi_id_text

PORT = PortRef(1, 3)
MGR = ManagerIdTlv.from_name("mgr1")
MAC = "52:00:00:00:00:2a"
SEGMENTS = VsiTypeProfile(
    VsiTypeKey(9, 1),
    "segments",
    "blue",
    frozenset({400, 401}),
    frozenset({"mgr1"}),
    default_vlan=401,
    groups=((7, 400),),
    whole_vlan=True,
    qos=Qos(pcp=5),
)
VSI_IDS = {
    "ipv4": VsiId.from_ipv4("192.0.2.10"),
    "ipv6": VsiId.from_ipv6("2001:db8::10"),
    "mac": VsiId.from_mac("52:00:00:00:00:99"),
    "local": VsiId.from_local(b"host7/vm12".ljust(16, b"\0")),
    "uuid": VsiId.from_uuid("a1b2c3d4-0000-0000-0000-000000000042"),
}
# (station's entry, VID granted, as REST shows the entry)
FORMATS = {
    FilterFormat.VID: (FilterEntry(vid=0), 401, {"mac": None, "group_id": None}),
    FilterFormat.MAC_VID: (FilterEntry(vid=0, mac=MAC), 401, {"mac": MAC, "group_id": None}),
    FilterFormat.GROUP_VID: (FilterEntry(vid=0, group_id=7), 400, {"mac": None, "group_id": 7}),
    FilterFormat.GROUP_MAC_VID: (
        FilterEntry(vid=0, mac=MAC, group_id=7),
        400,
        {"mac": MAC, "group_id": 7},
    ),
}


def wire(tlv: VsiTlv) -> VsiTlv:
    """``tlv`` sent as a VDPDU and read back."""
    ((manager, back),) = decode_vdpdu(encode_vdpdu(Vdpdu((MGR, tlv)))).vsis_with_manager()
    assert manager == MGR
    return back


@pytest.mark.parametrize("vsi_name", sorted(VSI_IDS))
@pytest.mark.parametrize("filter_format", list(FilterFormat), ids=lambda f: f.name)
def test_request_answer_keepalive_and_rest_view(vsi_name, filter_format):
    vsi_id = VSI_IDS[vsi_name]
    entry, vid, shown = FORMATS[filter_format]
    request = VsiTlv(VdpTlvType.ASSOCIATE, 0, 9, 1, vsi_id, filter_format, (entry,))
    assert wire(request) == request
    bridge = VdpBridge(Authorizer(lambda: VsiTypeDatabase([SEGMENTS])))

    outcome = bridge.on_request(PORT, MGR, wire(request), 0.0, 30.0)
    ((_, _, response),) = outcome.responses
    answer = wire(response)
    assert answer.error == VdpError.SUCCESS and answer.is_response
    assert replace(answer, status=0, filters=request.filters) == request
    (granted,) = answer.filters
    assert (granted.vid, granted.ps, granted.pcp) == (vid, True, 5)
    assert (granted.mac, granted.group_id) == (entry.mac, entry.group_id)

    # The station adopts the answer and repeats it as its keep-alive: the same answer back.
    again = bridge.on_request(PORT, MGR, wire(replace(answer, status=0)), 5.0, 30.0)
    assert again.responses == [(PORT, MGR, response)] and not again.changes

    view = json.loads(json.dumps(vsi_view(bridge.vsi(vsi_id), {})))
    (attachment,) = view["attachments"]
    assert attachment["filter_format"] == filter_format.name.lower().replace("_", "-")
    assert attachment["entries"] == [{**shown, "vid": vid, "pcp": 5}]
    # The VSI ID as REST writes it (and takes it in a path) names the same VSIID.
    assert view["vsi_id"] == vsi_id_text(vsi_id) == canonical_vsi_id(view["vsi_id"])
    assert vsi_id_from_text(view["vsi_id"]) == vsi_id
