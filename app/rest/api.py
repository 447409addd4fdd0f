"""REST API v1 (WebOb, JSON): the operator's and the VM manager's view of the controller and
their way to change it. Routes live with their resources (fabric, associations, registry_views,
events, faults, console); this module authenticates, dispatches and turns every failure into a
JSON error. The API is described in docs/openapi.yaml, served at /v1/openapi.yaml."""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from webob import Request, Response

from app.config import ApiToken
from app.faults.monitor import FaultMonitor
from app.metrics import Metrics
from app.policy.errors import PolicyError
from app.registry import Registry
from app.registry.errors import Conflict, Forbidden, InvalidInput, NotFound, RegistryError
from app.rest.associations import AssociationViews
from app.rest.auth import Authenticator
from app.rest.console import ConsoleViews
from app.rest.events import EventViews
from app.rest.fabric import FabricViews
from app.rest.faults import FaultViews
from app.rest.http import ApiError, check_text, error_response, json_response
from app.rest.inventory_views import InventoryViews
from app.rest.migrations import MigrationViews
from app.rest.pools import PoolViews
from app.rest.registry_views import RegistryViews
from app.rest.router import Access, Route, Router
from app.service import NmsService
from app.store.base import Store, StoreError

LOG = logging.getLogger("evb_nms.rest")
OPENAPI_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"
_STATUS = {InvalidInput: 400, Forbidden: 403, NotFound: 404, Conflict: 409}
# A client's method is a label value only if it is one of these (bounded cardinality).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RestApi:
    def __init__(
        self,
        service: NmsService,
        registry: Registry,
        store: Store,
        monitor: FaultMonitor,
        api_tokens: Sequence[ApiToken] | Callable[[], Sequence[ApiToken]] = (),
        openapi_path: Path = OPENAPI_PATH,
        metrics: Metrics | None = None,
        ha_status: Callable[[], dict] | None = None,
    ):
        """``api_tokens``: fixed, or a callable giving those in force (app/rest/tokens.py);
        ``metrics``: served at GET /metrics (admin tokens), and told of every request;
        ``ha_status``: this controller's role among several (GET /v1/ha, admin tokens)."""
        fixed = tuple(api_tokens) if not callable(api_tokens) else None
        self._auth = Authenticator(api_tokens if fixed is None else lambda: fixed)
        self._openapi_path = openapi_path
        self._metrics = metrics
        self._ha_status = ha_status
        self.router = Router(
            [
                *FabricViews(service, registry).routes(),
                *AssociationViews(service, registry).routes(),
                *MigrationViews(service).routes(),
                *RegistryViews(service, registry).routes(),
                *PoolViews(registry).routes(),
                *InventoryViews(service, registry).routes(),
                *EventViews(store).routes(),
                *FaultViews(service, monitor).routes(),
                *ConsoleViews().routes(),
                Route("GET", "/v1/openapi.yaml", self.openapi, Access.OPEN),
                *([Route("GET", "/metrics", self.metrics, Access.ADMIN)] if metrics else []),
                Route("GET", "/v1/ha", self.ha, Access.ADMIN),
            ]
        )

    def wsgi(self, environ, start_response):
        request = Request(environ)
        template = "unmatched"
        try:
            route, params = self.router.match(request.method, _path(request))
            template = route.template
            principal = None
            if route.access is not Access.OPEN:
                principal = self._auth.principal(request)
                if route.access is Access.ADMIN and not principal.admin:
                    raise ApiError(
                        403,
                        "only admin tokens see the fabric; a tenant token sees "
                        "its profiles, VMs, associations and events",
                    )
            response = route.handler(request, principal, **params)
        except ApiError as err:
            response = error_response(err.status, err.message, err.field, err.headers)
        except RegistryError as err:
            response = error_response(_STATUS.get(type(err), 400), err.message, err.field)
        except PolicyError as err:  # a profile key or document the database refuses
            response = error_response(400, err.message, err.field)
        except StoreError as err:  # etcd away or refusing: the client may retry
            LOG.warning("%s %a: %s", request.method, environ.get("PATH_INFO", ""), err)
            response = error_response(503, f"the store failed: {err}")
        except Exception as err:  # one broken request must not take the API down
            # The raw path, escaped: it is the client's text, and must not forge log lines.
            LOG.exception("%s %a failed", request.method, environ.get("PATH_INFO", ""))
            response = error_response(500, f"internal error: {type(err).__name__}")
        if self._metrics is not None:
            method = request.method if request.method in _METHODS else "other"
            self._metrics.rest_request(method, template, response.status_code)
        return response(environ, start_response)

    def metrics(self, request: Request, principal):
        assert self._metrics is not None  # the route exists only with them
        body, content_type = self._metrics.exposition()
        response = Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    def ha(self, request: Request, principal):
        """A single controller leads alone."""
        if self._ha_status is None:
            return json_response({"role": "leader", "leader": None, "store": "sqlite"})
        return json_response(self._ha_status())

    def openapi(self, request: Request, principal):
        try:
            text = self._openapi_path.read_bytes()
        except OSError as err:
            raise ApiError(404, f"the API document is not installed: {err.strerror}") from None
        return Response(body=text, content_type="application/yaml", charset="utf-8")


def _path(request: Request) -> str:
    """The decoded path, or 400: ``%ff`` is no UTF-8, a control character no name."""
    try:
        path = request.path_info
    except UnicodeDecodeError:
        raise ApiError(400, "the path is not percent-encoded UTF-8", "path") from None
    return check_text(path, "path")
