"""Routes: a method and a path template (``/v1/vms/{vsi_id}``, as OpenAPI writes paths) to a
handler, with who may call it."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from app.rest.http import ApiError


class Access(str, Enum):
    OPEN = "open"  # no token needed (health, the API document)
    ADMIN = "admin"  # the fabric itself: switches, links, stations
    TENANT = "tenant"  # any token; the handler shows a tenant only its own


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Callable
    access: Access = Access.TENANT

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))


class Router:
    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        """The route and its path parameters; 404 for an unknown path, 405 for a known path
        with another method."""
        parts = tuple(path.strip("/").split("/"))
        allowed = []
        for route in self.routes:
            params = _bind(route.segments, parts)
            if params is None:
                continue
            if route.method == method:
                return route, params
            allowed.append(route.method)
        if allowed:
            raise ApiError(
                405,
                f"{method} not allowed on {path}; allowed: {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise ApiError(404, f"no resource at {path}")


def _bind(template: tuple[str, ...], parts: tuple[str, ...]) -> dict[str, str] | None:
    if len(template) != len(parts):
        return None
    params = {}
    for expected, part in zip(template, parts, strict=True):
        if expected.startswith("{") and expected.endswith("}"):
            if not part:
                return None
            params[expected[1:-1]] = part
        elif expected != part:
            return None
    return params
