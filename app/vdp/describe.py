"""Text forms of VDP identities, for events, snapshots and refusal reasons."""
from app.codec.errors import CodecError
from app.codec.vdp import VsiId, VsiIdFormat
from app.fabric.ports import PortRef


def vsi_id_text(vsi_id: VsiId) -> str:
    """The VSIID as its format reads it (UUID, IP address, MAC); ``format:hex`` for a local
    VSIID or octets that do not fit their format (the authorizer refuses those)."""
    accessors = {VsiIdFormat.UUID: "uuid", VsiIdFormat.IPV4: "ipv4", VsiIdFormat.IPV6: "ipv6",
                 VsiIdFormat.MAC: "mac"}
    if vsi_id.format in accessors:
        try:
            return str(getattr(vsi_id, accessors[vsi_id.format]))
        except CodecError:
            pass
    return f"{vsi_id.format.name.lower()}:{vsi_id.value.hex()}"


def port_fields(port: PortRef) -> dict[str, object]:
    """Event fields saying where: the port itself (``at``), typed. The pure layers never name a
    switch or port; the control plane's one formatter turns every PortRef of an event into the
    names operators read (app/control_plane.py _emit)."""
    return {"at": port}
