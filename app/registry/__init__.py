"""The profile and VM registry: the VSI type database of the policy files plus what the VM
manager pushed over REST (profiles, VM registrations, group registrations), persisted."""

from app.registry.errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError
from app.registry.registry import ChangeResult, Registry, RegistryState
from app.registry.vms import VmRecord

__all__ = [
    "ChangeResult",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "NotFound",
    "Registry",
    "RegistryError",
    "RegistryState",
    "VmRecord",
]
