"""Who is asking: ``Authorization: Bearer TOKEN`` against the configured API tokens.

With no token configured the API is open to whoever can reach its listen address (127.0.0.1 by
default) and every caller is an admin. An admin token sees and changes everything; a tenant
token only its tenant's profiles, VMs, associations and events.
"""

import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from webob import Request

from app.config import ApiToken
from app.rest.http import ApiError


@dataclass(frozen=True)
class Principal:
    tenant: str | None  # None: an admin

    @property
    def admin(self) -> bool:
        return self.tenant is None

    def may_see(self, tenant: str | None) -> bool:
        return self.tenant is None or tenant == self.tenant

    def require(self, tenant: str | None, what: str) -> None:
        """403 unless the principal may see ``what`` of ``tenant`` (for filters naming a
        tenant: they tell nothing about what exists)."""
        if not self.may_see(tenant):
            raise ApiError(403, f"{what} does not belong to tenant {self.tenant}")

    def check_visible(self, tenant: str | None, missing: ApiError) -> None:
        """To a tenant, another tenant's object is as if it did not exist: ``missing``, the
        404 for an object that does not exist, is raised for it too (no existence oracle)."""
        if not self.may_see(tenant):
            raise missing


ADMIN = Principal(None)


class Authenticator:
    def __init__(self, tokens: Callable[[], Sequence[ApiToken]]) -> None:
        """``tokens``: the tokens in force at each request (rotated without a restart)."""
        self._tokens = tokens

    def principal(self, request: Request) -> Principal:
        tokens = self._tokens()
        if not tokens:
            return ADMIN
        scheme, _, token = request.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(
                401,
                "expected the header Authorization: Bearer TOKEN",
                headers={"WWW-Authenticate": 'Bearer realm="evb-nms"'},
            )
        # Compare every token in constant time, so the timing tells nothing about near misses.
        matches = [
            entry for entry in tokens if hmac.compare_digest(entry.token.encode(), token.encode())
        ]
        if not matches:
            raise ApiError(
                401,
                "unknown API token",
                headers={"WWW-Authenticate": 'Bearer realm="evb-nms", error="invalid_token"'},
            )
        return ADMIN if matches[0].admin else Principal(matches[0].tenant)
