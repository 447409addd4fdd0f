"""The VSI type database as the controller uses it: the profiles of the policy files (read-only
here, source "file") with the profiles pushed over REST on top (source "api").

A pushed profile may replace a file profile of the same (type_id, version): the VM manager owns
the profile truth (draft 3.4). Deleting that pushed profile brings the file profile back; a file
profile itself cannot be deleted over REST (edit the file).
"""

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey, VsiTypeProfile
from app.registry.documents import profile_document

FILE, API = "file", "api"


@dataclass(frozen=True)
class ProfileSet:
    files: VsiTypeDatabase = field(default_factory=VsiTypeDatabase)
    pushed: Mapping[VsiTypeKey, VsiTypeProfile] = field(default_factory=dict)

    @cached_property
    def database(self) -> VsiTypeDatabase:
        return VsiTypeDatabase({**{p.key: p for p in self.files}, **self.pushed}.values())

    @cached_property
    def tenant_counts(self) -> Counter[str]:
        """Tenant -> how many profiles of the database are its."""
        return Counter(profile.tenant for profile in self.database)

    @cached_property
    def vlan_tenants(self) -> dict[int, frozenset[str]]:
        """VLAN -> the tenants whose profiles use it; built once per database, so that a
        profile from outside (a lookup) is checked in the time of its own VLANs."""
        tenants: dict[int, set[str]] = {}
        for profile in self.database:
            for vid in profile.vlans:
                tenants.setdefault(vid, set()).add(profile.tenant)
        return {vid: frozenset(names) for vid, names in tenants.items()}

    def source(self, key: VsiTypeKey) -> str | None:
        """API if a pushed profile decides ``key``, FILE if a file does, None if neither."""
        if key in self.pushed:
            return API
        return FILE if key in self.files else None

    def with_pushed(self, profiles: Iterable[VsiTypeProfile]) -> "ProfileSet":
        return ProfileSet(self.files, {**self.pushed, **{p.key: p for p in profiles}})

    def without_pushed(self, keys: Iterable[VsiTypeKey]) -> "ProfileSet":
        gone = set(keys)
        return ProfileSet(self.files, {k: p for k, p in self.pushed.items() if k not in gone})

    def view(self, profile: VsiTypeProfile) -> dict:
        """The profile's document with where it comes from: ``source`` (api or file),
        ``origin`` (api, or the file and line) and, for a pushed profile that replaces a
        file profile, ``replaces`` (that file and line)."""
        view = {
            **profile_document(profile),
            "source": self.source(profile.key) or API,
            "origin": profile.source,
        }
        replaced = self.files.get(profile.key.type_id, profile.key.version)
        if replaced is not None and replaced is not profile:
            view["replaces"] = replaced.source
        return view
