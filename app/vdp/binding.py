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
    mac: str | None  # lower-case, colon separated; None: the VSI owns the whole VLAN at its
    # port (a VID or GroupID/VID filter), whatever MACs send in it
    vid: int  # 1..4094, the VLAN the bridge assigned (never 0)


@dataclass(frozen=True)
class VmBinding:
    handle: int  # unique per binding (a migrating VSI has two); owner part of
    # its cookies
    vsi_id: VsiId
    port: PortRef
    entries: tuple[MacVid, ...]  # the VM's MAC/VID filter, as granted: all with a MAC or all
    # without (one filter format per VSI TLV)
    profile: VsiTypeProfile
    state: BindingState

    @property
    def forwarding(self) -> bool:
        return self.state is BindingState.FORWARDING

    @property
    def whole_vlans(self) -> bool:
        """Whether the binding owns whole VLANs at its port (entries without a MAC)."""
        return any(entry.mac is None for entry in self.entries)
