"""Text forms of VDP identities, for events, snapshots and refusal reasons."""

import ipaddress

from app.codec.errors import CodecError
from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.ports import PortRef


def vsi_id_text(vsi_id: VsiId) -> str:
    """The VSIID as its format reads it (UUID, IP address, MAC); ``format:hex`` for a local
    VSIID or octets that do not fit their format (the authorizer refuses those)."""
    accessors = {
        VsiIdFormat.UUID: "uuid",
        VsiIdFormat.IPV4: "ipv4",
        VsiIdFormat.IPV6: "ipv6",
        VsiIdFormat.MAC: "mac",
    }
    if vsi_id.format in accessors:
        try:
            return str(getattr(vsi_id, accessors[vsi_id.format]))
        except CodecError:
            pass
    return f"{vsi_id.format.name.lower()}:{vsi_id.value.hex()}"


def vsi_id_from_text(text: str) -> VsiId | None:
    """The VSIID that vsi_id_text writes as ``text``; None if no VSIID reads so. A MAC-like
    text is taken as a MAC VSIID (it may also be a VM's MAC: the caller decides)."""
    name, _, octets = text.partition(":")
    try:
        if name.upper() in VsiIdFormat.__members__ and len(octets) == 32:
            return VsiId(VsiIdFormat[name.upper()], bytes.fromhex(octets))
        if text.count(":") == 5:
            return VsiId.from_mac(text)
        if "-" in text:
            return VsiId.from_uuid(text)
        address = ipaddress.ip_address(text)
    except (ValueError, CodecError):
        return None
    return VsiId.from_ipv4(address) if address.version == 4 else VsiId.from_ipv6(address)


def port_fields(port: PortRef) -> dict[str, object]:
    """Event fields saying where: the port itself (``at``), typed. The pure layers never name a
    switch or port; the control plane's one formatter turns every PortRef of an event into the
    names operators read (app/control_plane.py _emit)."""
    return {"at": port}
