"""The VSI type database: an immutable set of profiles keyed by (type ID, version).

Immutable so that a reload or a pushed profile is atomic: build a new database, then swap the
reference; readers never see a half-updated one.
"""

from collections.abc import Iterable, Iterator

from app.policy.errors import PolicyError
from app.policy.profile import VsiTypeKey, VsiTypeProfile


class VsiTypeDatabase:
    def __init__(self, profiles: Iterable[VsiTypeProfile] = ()) -> None:
        by_key: dict[VsiTypeKey, VsiTypeProfile] = {}
        duplicates = []
        for profile in profiles:
            first = by_key.setdefault(profile.key, profile)
            if first is not profile:
                duplicates.append(
                    PolicyError(
                        f"{profile.key} is already defined at {first.source}",
                        file=profile.source_file,
                        line=profile.source_line,
                        field="type_id",
                    )
                )
        if duplicates:
            raise PolicyError.combine(duplicates)
        self._profiles = dict(sorted(by_key.items()))

    def get(self, type_id: int, version: int) -> VsiTypeProfile | None:
        return self._profiles.get(VsiTypeKey(type_id, version))

    def __getitem__(self, key: VsiTypeKey) -> VsiTypeProfile:
        return self._profiles[key]

    def __contains__(self, key: object) -> bool:
        return key in self._profiles

    def __len__(self) -> int:
        return len(self._profiles)

    def __iter__(self) -> Iterator[VsiTypeProfile]:
        """The profiles, in key order."""
        return iter(self._profiles.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, VsiTypeDatabase) and self._profiles == other._profiles

    def __repr__(self) -> str:
        return f"VsiTypeDatabase({', '.join(str(key) for key in self._profiles)})"

    def types(self) -> tuple[VsiTypeKey, ...]:
        """The keys, in order."""
        return tuple(self._profiles)

    def with_profile(self, profile: VsiTypeProfile) -> "VsiTypeDatabase":
        """A new database holding ``profile``, replacing any profile with the same key."""
        return VsiTypeDatabase({**self._profiles, profile.key: profile}.values())

    def without(self, key: VsiTypeKey) -> "VsiTypeDatabase":
        """A new database without ``key``; KeyError if it is not here."""
        if key not in self._profiles:
            raise KeyError(key)
        return VsiTypeDatabase(p for k, p in self._profiles.items() if k != key)
