"""The migration log (app/vdp/migrations.py): every migration, newest first, with its steps,
their times and how it ended. A tenant token sees its own VSIs' migrations only."""

from webob import Request

from app.registry.errors import InvalidInput
from app.rest.auth import Principal
from app.rest.http import Query, json_response
from app.rest.router import Route
from app.service import NmsService
from app.vdp.describe import vsi_id_from_text, vsi_id_text
from app.vdp.migrations import LIMIT

PAGE_DEFAULT = 100


class MigrationViews:
    def __init__(self, service: NmsService) -> None:
        self._service = service

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/migrations", self.migrations)]

    def migrations(self, request: Request, principal: Principal):
        query = Query(request, ("vsi", "limit"))
        vsi = query.text("vsi")
        limit = query.integer("limit", PAGE_DEFAULT, 1, LIMIT)
        return json_response(
            self._service.migrations(
                _vsi_id(vsi) if vsi is not None else None, principal.tenant, limit
            )
        )


def _vsi_id(text: str) -> str:
    """The VSI ID as the log writes it (a UUID in lower case, ...); 400 if no VSI ID reads so."""
    parsed = vsi_id_from_text(text.lower())
    if parsed is None:
        raise InvalidInput(
            f"expected a VSI ID (UUID, IPv4 or IPv6 address, MAC, or FORMAT:32 hex digits), "
            f"got {text!r}",
            "vsi",
        )
    return vsi_id_text(parsed)
