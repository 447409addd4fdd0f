"""The VM manager ("vCenter") side: the controller's lookup client, its webhook notifier and a
reference manager service (``evb-vcenter``). See docs/vcenter.md."""

from app.vcenter.client import (
    LookupPending,
    LookupResult,
    LookupStatus,
    ProfileQuery,
    VcenterClient,
    VmQuery,
)
from app.vcenter.notifier import DEFAULT_KINDS, Notifier

__all__ = [
    "DEFAULT_KINDS",
    "LookupPending",
    "LookupResult",
    "LookupStatus",
    "Notifier",
    "ProfileQuery",
    "VcenterClient",
    "VmQuery",
]
