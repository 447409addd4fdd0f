"""The VSI type database: VSI Type ID + version -> profile, loaded from ``policies/*.yaml``."""

from app.policy.acl import AclRule, MacMatch
from app.policy.database import VsiTypeDatabase
from app.policy.errors import PolicyError
from app.policy.loader import load_file, load_policies, load_text
from app.policy.profile import (
    Limits,
    Qos,
    VsiTypeKey,
    VsiTypeProfile,
    manager_id_from_octets,
    normalize_manager_id,
)

__all__ = [
    "AclRule",
    "Limits",
    "MacMatch",
    "PolicyError",
    "Qos",
    "VsiTypeDatabase",
    "VsiTypeKey",
    "VsiTypeProfile",
    "load_file",
    "load_policies",
    "load_text",
    "manager_id_from_octets",
    "normalize_manager_id",
]
