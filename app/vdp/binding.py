"""What the VDP bridge hands to flow programming: one VSI bound to one edge port.

The flow plan (app/flows/vm_flows.py) turns the set of bindings into flows; it never looks at
VDP state, and the VDP bridge never looks at flows.
"""

from dataclasses import dataclass
from enum import Enum

from app.codec.vdp import VsiId
from app.fabric.ports import PortRef
from app.policy.profile import VsiTypeProfile


class BindingState(str, Enum):
    PREPARED = "prepared"  # Pre-Associate with resource reservation: meter and ACL ready,
    # no admit
    STANDBY = "standby"  # a migration's destination: as PREPARED, and the VM's frames there are
    # punted, not forwarded, until the first one activates it (app/vdp/bridge.py)
    FORWARDING = "forwarding"  # Associate: admitted, forwarded, reachable


@dataclass(frozen=True)
class MacVid:
    mac: str  # lower-case, colon separated
    vid: int  # 1..4094, the VLAN the bridge assigned (never 0)


@dataclass(frozen=True)
class VmBinding:
    handle: int  # unique per binding (a migrating VSI has two); owner part of
    # its cookies
    vsi_id: VsiId
    port: PortRef
    entries: tuple[MacVid, ...]  # the VM's MAC/VID filter, as granted
    profile: VsiTypeProfile
    state: BindingState

    @property
    def forwarding(self) -> bool:
        return self.state is BindingState.FORWARDING
