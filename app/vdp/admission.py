"""What a station must show beyond its VSI type: the VM manager's registration (draft 5.1) and
the bridge's caps per port and switch.

Pure. Two modes, per tenant (the default for all, overridden per tenant):

* ``type-only``: a VSI needs only a type its Manager ID may use (the demo's mode). A VSI ID the
  VM manager *has* registered must still match its registration, and a registered MAC belongs
  to its VM: nobody else may claim it.
* ``registered-only``: the VSI ID must be registered, and the request must match it: type and
  version, tenant, and every MAC among the registered ones.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from app.codec.vdp import VdpError
from app.policy.profile import VsiTypeKey, VsiTypeProfile

TYPE_ONLY, REGISTERED_ONLY = "type-only", "registered-only"
ADMISSION_MODES = (TYPE_ONLY, REGISTERED_ONLY)
# Attachments (Pre-Associates included) per server port and per switch, of every type. lldpad
# keeps ~512 VSIs alive per port at RKA 23 (docs/evb-timers.md); bench/scale.py's largest run
# puts ~320 VMs on a switch.
MAX_PER_PORT = 1024
MAX_PER_SWITCH = 16384


class Registration(Protocol):
    """What admission reads of a VM registration (app/registry/vms.py VmRecord)."""

    @property
    def vsi_id(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def macs(self) -> tuple[str, ...]: ...

    @property
    def type_key(self) -> VsiTypeKey: ...


class Registrations(Protocol):
    """The registry's reads (app/registry/registry.py); neither takes a lock."""

    def vm(self, vsi_id: str) -> Registration | None: ...

    def vm_by_mac(self, mac: str) -> Registration | None: ...


class NoRegistrations:
    def vm(self, vsi_id: str) -> Registration | None:
        return None

    def vm_by_mac(self, mac: str) -> Registration | None:
        return None


@dataclass(frozen=True)
class AdmissionPolicy:
    mode: str = TYPE_ONLY
    by_tenant: Mapping[str, str] = field(default_factory=dict)  # tenant -> mode
    max_per_port: int = MAX_PER_PORT
    max_per_switch: int = MAX_PER_SWITCH

    def mode_for(self, tenant: str) -> str:
        return self.by_tenant.get(tenant, self.mode)


DEFAULT_POLICY = AdmissionPolicy()


@dataclass(frozen=True)
class Mismatch:
    error: VdpError
    reason: str
    hard: bool


def check_registration(
    mode: str,
    vsi_id: str,
    profile: VsiTypeProfile,
    macs: tuple[str, ...],
    registrations: Registrations,
) -> Mismatch | None:
    """Why the request (``vsi_id`` as vsi_id_text writes it, the resolved ``profile``, its
    ``macs``) does not match the VM manager's registrations, or None. Costs the request's MACs."""
    vm = registrations.vm(vsi_id)
    if vm is None:
        if mode == REGISTERED_ONLY:
            # Not hard: the VM manager may register it a moment after the VM started.
            return Mismatch(
                VdpError.OTHER_FAILURE,
                f"VSI {vsi_id} is not registered and tenant {profile.tenant} admits only "
                f"registered VMs",
                False,
            )
    else:
        problem = _differs(vm, profile, macs, mode)
        if problem is not None:
            return Mismatch(*problem, True)
    for mac in macs:
        owner = registrations.vm_by_mac(mac)
        if owner is not None and owner.vsi_id != vsi_id:
            return Mismatch(
                VdpError.INVALID_VID_GROUP_MAC, f"MAC {mac} is registered for another VM", True
            )
    return None


def _differs(
    vm: Registration, profile: VsiTypeProfile, macs: tuple[str, ...], mode: str
) -> tuple[VdpError, str] | None:
    if vm.type_key != profile.key:
        return VdpError.OTHER_FAILURE, f"the VM is registered with {vm.type_key}, not {profile.key}"
    if vm.tenant != profile.tenant:
        return (
            VdpError.OTHER_FAILURE,
            f"the VM is registered for another tenant than {profile.name}'s",
        )
    if not vm.macs and mode == REGISTERED_ONLY:
        return VdpError.INVALID_VID_GROUP_MAC, "the registration lists no MACs"
    unregistered = [mac for mac in macs if vm.macs and mac not in vm.macs]
    if unregistered:
        return VdpError.INVALID_VID_GROUP_MAC, f"MAC {unregistered[0]} is not registered for the VM"
    return None
