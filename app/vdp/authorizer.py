"""Admission of a VSI: may this VM, with these MAC/VID filter entries, attach at this port?

Pure: a decision depends only on the request, the VSI type database of the moment and the
bindings that exist (a BindingIndex, so a decision costs the same whatever the number of VMs).
Admission is per MAC: the flows admit a VM by its source MAC on its port.

Checks run in this order; the first failure decides the VDP status (VdpError, the low nibble of
the response status) and whether retrying the same request can help (``hard``):

| refusal                                                   | status                        | hard |
|-----------------------------------------------------------|-------------------------------|------|
| no filter entries                                         | INVALID_FORMAT                | yes  |
| a group filter format (GroupID/VID, GroupID/MAC/VID) on a | INVALID_FORMAT                | yes  |
|   port whose EVB TLVs did not agree on group IDs          |                               |      |
| VSIID octets that do not fit the VSIID format, or all 0   | INVALID_FORMAT                | yes  |
| a MAC that is multicast or all zero                       | INVALID_VID_GROUP_MAC         | yes  |
| VSI type ID/version unknown                               | OTHER_FAILURE                 | yes  |
| VSI manager unreachable while resolving the type (seam)   | UNABLE_TO_CONTACT_VSI_MANAGER | no   |
| no VSI manager for the Manager ID (vm_managers) to ask    | UNABLE_TO_CONTACT_VSI_MANAGER | yes  |
| the manager's profile breaks its tenant's VLAN pool/quota | OTHER_FAILURE                 | yes  |
| Manager ID not allowed by the type                        | OTHER_FAILURE                 | yes  |
| a filter format without MAC (VID, GroupID/VID) for a type | INVALID_FORMAT                | yes  |
|   without ``whole_vlan``, or at an S-channel              |                               |      |
| the type's tenant not allowed at the port (port_tenants)  | OTHER_FAILURE                 | yes  |
| not registered, under registered-only admission           | OTHER_FAILURE                 | no   |
| registered with another type/version or tenant            | OTHER_FAILURE                 | yes  |
| a MAC not in the VM's registration (or none registered,   | INVALID_VID_GROUP_MAC         | yes  |
|   under registered-only), or registered for ANOTHER VM    |                               |      |
| VID not allowed by the type (VID 0 with no default VLAN), | INVALID_VID_GROUP_MAC         | yes  |
|   a group ID the type does not map, or a VID not its VLAN |                               |      |
| a PCP the station insists on (PS bit) that is not the one | OTHER_FAILURE                 | yes  |
|   the type assigns (qos.pcp)                              |                               |      |
| the same MAC/VID twice (after resolving VID 0)            | INVALID_FORMAT                | yes  |
| a MAC bound (prepared or forwarding) to ANOTHER VSI       | INVALID_VID_GROUP_MAC         | yes  |
| a whole VLAN owned by ANOTHER VSI (anywhere), or used by  | INVALID_VID_GROUP_MAC         | yes  |
|   another VSI at the port; a VLAN owned at the port       |                               |      |
| the port's server in maintenance (a VSI new to the port)  | INSUFFICIENT_RESOURCES        | no   |
| type's max_per_port / max_per_switch reached, or the      | INSUFFICIENT_RESOURCES        | no   |
|   bridge's cap of VSIs per port / per switch (any type)   |                               |      |

Limits count attachments: a plain Pre-Associate holds no MAC but takes a place, or a station
could pre-associate without end. Registrations: app/vdp/admission.py.

Why these codes: a well-formed TLV naming a type we do not know is neither a format nor a
resource problem, and the manager was not unreachable but is not authorized, so both are
OTHER_FAILURE; "unable to contact VSI manager" is kept for the one case it names (retrying may
help). A VLAN the type does not allow and a MAC claimed by another VM (anti-spoofing) are what
status 5 is for. Limits are the bridge's resources: status 2, and they may free up, so not hard;
a server in maintenance (app/faults/maintenance.py) lends no resources to new VMs until it is
back, while the VMs already there keep theirs (their keep-alives pass).
Format checks come first so that a malformed request is never reported as a policy problem.
Admission is per MAC, except for a VSI that owns whole VLANs at its port (entries without a MAC):
its port and VLAN admit it, so one VSI per VLAN of the fabric, alone in it at its port. A group
ID names a tenant segment: the type's ``groups`` give its VLAN (VID 0 resolves per entry).
A type that assigns a PCP (qos.pcp) returns it in every granted entry with the PS bit.
"""

from collections.abc import Callable
from dataclasses import dataclass

from app.codec.errors import CodecError
from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpError,
    VsiId,
    VsiIdFormat,
    VsiTlv,
)
from app.fabric.ports import PortRef
from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey, VsiTypeProfile, manager_id_from_octets
from app.vdp.admission import (
    DEFAULT_POLICY,
    AdmissionPolicy,
    NoRegistrations,
    Registrations,
    check_registration,
)
from app.vdp.binding import MacVid, VmBinding
from app.vdp.binding_index import BindingIndex
from app.vdp.describe import vsi_id_text

_FORMATS_WITH_MAC = (FilterFormat.MAC_VID, FilterFormat.GROUP_MAC_VID)
_FORMATS_WITH_GROUP = (FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID)
_VSI_ID_ACCESSORS = {VsiIdFormat.IPV4: "ipv4", VsiIdFormat.IPV6: "ipv6", VsiIdFormat.MAC: "mac"}


class VsiManagerUnreachable(Exception):
    """Raised by a ProfileLookup that had to ask the VSI manager and could not reach it."""


class UnknownVsiManager(VsiManagerUnreachable):
    """Raised by a ProfileLookup when no VM manager answers for the request's Manager ID."""


class ProfileRefused(Exception):
    """Raised by a ProfileLookup whose answer its tenant may not use (app/registry/tenancy.py:
    a VLAN outside the tenant's pool or of another tenant, the tenant's profile quota)."""


# (database, normalized Manager ID, type key) -> the profile, or None when the type is unknown.
# The seam for asking the VM manager about types the database lacks: such a lookup tries the
# database first and raises VsiManagerUnreachable when it cannot get an answer.
ProfileLookup = Callable[[VsiTypeDatabase, str, VsiTypeKey], VsiTypeProfile | None]


def lookup_in_database(
    database: VsiTypeDatabase, manager_id: str, key: VsiTypeKey
) -> VsiTypeProfile | None:
    """The default lookup: the database alone."""
    return database.get(key.type_id, key.version)


@dataclass(frozen=True)
class AuthRequest:
    """What a station asks for; ``filters`` as the request carries them (VID 0 = bridge chooses)."""

    port: PortRef
    manager_id: str  # normalized (manager_id_from_octets)
    type_id: int
    type_version: int
    vsi_id: VsiId
    filter_format: FilterFormat
    filters: tuple[FilterEntry, ...]

    @classmethod
    def from_tlv(cls, port: PortRef, manager: ManagerIdTlv, tlv: VsiTlv) -> "AuthRequest":
        return cls(
            port,
            manager_id_from_octets(manager.mgrid),
            tlv.type_id,
            tlv.type_version,
            tlv.vsi_id,
            tlv.filter_format,
            tlv.filters,
        )


@dataclass(frozen=True)
class Decision:
    """``entries``: the granted MAC/VIDs, one per request filter entry and in the same order (so
    the response can carry them back); empty when refused. ``pcp``: the PCP the type assigns,
    returned with the PS bit. ``hard``: retrying cannot help."""

    error: VdpError
    reason: str
    entries: tuple[MacVid, ...] = ()
    profile: VsiTypeProfile | None = None
    hard: bool = False
    pcp: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is VdpError.SUCCESS


def _refuse(
    error: VdpError, reason: str, *, hard: bool, profile: VsiTypeProfile | None = None
) -> Decision:
    return Decision(error, reason, profile=profile, hard=hard)


def _vsi_id_problem(vsi_id: VsiId) -> str | None:
    if not any(vsi_id.value):
        return "the VSIID is all zeros"
    accessor = _VSI_ID_ACCESSORS.get(vsi_id.format)
    if accessor is not None:
        try:
            getattr(vsi_id, accessor)
        except CodecError as err:
            return f"the VSIID does not fit its format: {err.message}"
    return None


def _mac_problem(mac: str) -> str | None:
    if mac == "00:00:00:00:00:00":
        return f"MAC {mac} is all zeros"
    if int(mac[:2], 16) & 1:
        return f"MAC {mac} is a group address, a VM's MAC must be unicast"
    return None


def _vid_refused(profile: VsiTypeProfile, entry: FilterEntry) -> str:
    if entry.group_id is not None:
        vlan = profile.group_vlans.get(entry.group_id)
        if vlan is None:
            return f"group ID {entry.group_id} is no group of the type"
        return f"group ID {entry.group_id} is VLAN {vlan}, not {entry.vid}"
    if entry.vid == 0:
        return "VID 0 asks the bridge to choose, but the type has no default VLAN"
    return f"VID {entry.vid} is not allowed"


def _conflict(request: AuthRequest, entries: tuple[MacVid, ...], bound: BindingIndex) -> str | None:
    """Why another VSI's bindings forbid ``entries``: a MAC is one VM's (anti-spoofing); a VLAN
    owned whole is its owner's alone, fabric-wide (unknown unicast of the VLAN goes to it), and
    alone at its port."""

    def others(bindings: list[VmBinding]) -> VmBinding | None:
        return next((b for b in bindings if b.vsi_id != request.vsi_id), None)

    for entry in dict.fromkeys(entries):
        if entry.mac is not None:
            holder = others(bound.holders_of(entry.mac))
            what = f"MAC {entry.mac} is bound to"
            if holder is None:
                owners = [b for b in bound.using(request.port, entry.vid) if b.whole_vlans]
                holder, what = others(owners), f"VLAN {entry.vid} is owned at the port by"
        else:
            holder, what = others(bound.owners_of(entry.vid)), f"VLAN {entry.vid} is owned by"
            if holder is None:
                holder = others(bound.using(request.port, entry.vid))
                what = f"VLAN {entry.vid} is used at the port by"
        if holder is not None:
            return f"{what} VSI {vsi_id_text(holder.vsi_id)} at {holder.port}"
    return None


class Authorizer:
    def __init__(
        self,
        profiles: Callable[[], VsiTypeDatabase],
        lookup: ProfileLookup = lookup_in_database,
        maintenance: Callable[[PortRef], str | None] = lambda port: None,
        *,
        policy: AdmissionPolicy = DEFAULT_POLICY,
        registrations: Callable[[], Registrations] = NoRegistrations,
        port_tenants: Callable[[PortRef, str], str | None] = lambda port, tenant: None,
        group_ids: Callable[[PortRef], bool] = lambda port: True,
    ) -> None:
        """``maintenance``: why the server at a port is in maintenance, None if it is not;
        ``registrations``: the VM manager's registrations (the registry); ``port_tenants``:
        why a tenant may not associate at a port, None if it may; ``group_ids``: whether the
        EVB TLVs of a port agreed on group IDs (BGID and SGID)."""
        self._profiles = profiles
        self._lookup = lookup
        self._maintenance = maintenance
        self._policy = policy
        self._registrations = registrations
        self._port_tenants = port_tenants
        self._group_ids = group_ids

    def authorize(self, request: AuthRequest, bound: BindingIndex) -> Decision:
        """``bound``: every binding of the fabric; those of the requesting VSI itself are
        ignored (a VSI never conflicts with itself, e.g. while it migrates)."""
        if not request.filters:
            return _refuse(VdpError.INVALID_FORMAT, "no filter entries", hard=True)
        if request.filter_format in _FORMATS_WITH_GROUP and not self._group_ids(request.port):
            return _refuse(
                VdpError.INVALID_FORMAT,
                f"filter format {request.filter_format.name} needs group IDs, which the EVB "
                f"TLVs of the port did not agree on (BGID and SGID)",
                hard=True,
            )
        problem = _vsi_id_problem(request.vsi_id)
        if problem:
            return _refuse(VdpError.INVALID_FORMAT, problem, hard=True)
        for entry in request.filters:
            problem = _mac_problem(entry.mac) if entry.mac is not None else None
            if problem:
                return _refuse(VdpError.INVALID_VID_GROUP_MAC, problem, hard=True)

        key = VsiTypeKey(request.type_id, request.type_version)
        try:
            profile = self._lookup(self._profiles(), request.manager_id, key)
        except UnknownVsiManager as err:
            return _refuse(VdpError.UNABLE_TO_CONTACT_VSI_MANAGER, f"{key}: {err}", hard=True)
        except VsiManagerUnreachable as err:
            return _refuse(
                VdpError.UNABLE_TO_CONTACT_VSI_MANAGER,
                f"{key} is not in the database and the VSI manager is unreachable: {err}",
                hard=False,
            )
        except ProfileRefused as err:
            return _refuse(
                VdpError.OTHER_FAILURE, f"{key} from the VSI manager is refused: {err}", hard=True
            )
        if profile is None:
            return _refuse(VdpError.OTHER_FAILURE, f"unknown {key}", hard=True)
        if not profile.allows_manager(request.manager_id):
            return _refuse(
                VdpError.OTHER_FAILURE,
                f"Manager ID {request.manager_id!r} is not allowed for {key} ({profile.name})",
                hard=True,
                profile=profile,
            )
        if request.filter_format not in _FORMATS_WITH_MAC and not profile.whole_vlan:
            return _refuse(
                VdpError.INVALID_FORMAT,
                f"filter format {request.filter_format.name} carries no MAC: it owns a whole "
                f"VLAN at the port, which {profile.name} does not allow (whole_vlan)",
                hard=True,
                profile=profile,
            )
        if request.filter_format not in _FORMATS_WITH_MAC and request.port.svid:
            # Its frames would carry their C-tag inside the S-tag: OpenFlow sees the outer only.
            return _refuse(
                VdpError.INVALID_FORMAT,
                "a whole VLAN cannot be owned inside an S-channel (docs/cdcp.md)",
                hard=True,
                profile=profile,
            )
        why = self._port_tenants(request.port, profile.tenant)
        if why is not None:
            return _refuse(VdpError.OTHER_FAILURE, why, hard=True, profile=profile)
        mismatch = check_registration(
            self._policy.mode_for(profile.tenant),
            vsi_id_text(request.vsi_id),
            profile,
            tuple(dict.fromkeys(entry.mac for entry in request.filters if entry.mac)),
            self._registrations(),
        )
        if mismatch is not None:
            return _refuse(mismatch.error, mismatch.reason, hard=mismatch.hard, profile=profile)

        entries = []
        for entry in request.filters:
            vid = profile.resolve_vid(entry.vid, entry.group_id)
            if vid is None:
                return _refuse(
                    VdpError.INVALID_VID_GROUP_MAC,
                    f"{_vid_refused(profile, entry)} for {profile.name}: VLANs "
                    f"{sorted(profile.vlans)}",
                    hard=True,
                    profile=profile,
                )
            pcp = profile.qos.pcp
            if entry.ps and pcp is not None and entry.pcp != pcp:
                return _refuse(
                    VdpError.OTHER_FAILURE,
                    f"the station asks PCP {entry.pcp}, {profile.name} assigns PCP {pcp}",
                    hard=True,
                    profile=profile,
                )
            entries.append(MacVid(entry.mac, vid))
        if len(set(entries)) != len(entries):
            return _refuse(
                VdpError.INVALID_FORMAT,
                "the same MAC/VID is listed twice",
                hard=True,
                profile=profile,
            )
        conflict = _conflict(request, tuple(entries), bound)
        if conflict is not None:
            return _refuse(VdpError.INVALID_VID_GROUP_MAC, conflict, hard=True, profile=profile)

        if not bound.bound_at(request.vsi_id, request.port):
            why = self._maintenance(request.port)
            if why is not None:
                return _refuse(
                    VdpError.INSUFFICIENT_RESOURCES,
                    f"the server at {request.port} is in maintenance ({why}): it takes no new VMs",
                    hard=False,
                    profile=profile,
                )
        refusal = self._check_limits(request, profile, bound)
        if refusal:
            return refusal
        return Decision(
            VdpError.SUCCESS,
            f"granted as {profile.name}",
            tuple(entries),
            profile,
            pcp=profile.qos.pcp,
        )

    def _check_limits(
        self, request: AuthRequest, profile: VsiTypeProfile, bound: BindingIndex
    ) -> Decision | None:
        """Every attachment counts, a plain Pre-Associate too."""
        port, vsi_id = request.port, request.vsi_id
        for key, limit, where, whose in (
            (profile.key, profile.limits.max_per_port, "port", profile.name),
            (profile.key, profile.limits.max_per_switch, "switch", profile.name),
            (None, self._policy.max_per_port, "port", "the bridge"),
            (None, self._policy.max_per_switch, "switch", "the bridge"),
        ):
            if limit is None:
                continue
            count = (
                bound.count_on_port(key, port, besides=vsi_id)
                if where == "port"
                else bound.count_on_switch(key, port.dpid, besides=vsi_id)
            )
            if count >= limit:
                return _refuse(
                    VdpError.INSUFFICIENT_RESOURCES,
                    f"{whose} allows {limit} VMs per {where}, {count} are attached",
                    hard=False,
                    profile=profile,
                )
        return None
