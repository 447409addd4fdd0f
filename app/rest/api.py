"""REST API v1 (WebOb). Read-only views for now: health, switches, events."""
import json

from webob import Request, Response
from webob.exc import HTTPException, HTTPMethodNotAllowed, HTTPNotFound


def json_response(body, status: int = 200) -> Response:
    return Response(status=status, content_type="application/json", charset="utf-8",
                    body=json.dumps(body, indent=1, default=str).encode() + b"\n")


class RestApi:
    def __init__(self, controller):
        self._controller = controller
        self._routes = {
            "/v1/health": self.health,
            "/v1/switches": self.switches,
            "/v1/events": self.events,
        }

    def wsgi(self, environ, start_response):
        request = Request(environ)
        try:
            handler = self._routes.get(request.path_info.rstrip("/"))
            if handler is None:
                raise HTTPNotFound(detail=f"no resource at {request.path_info}")
            if request.method != "GET":
                raise HTTPMethodNotAllowed(detail=f"{request.method} not allowed")
            response = handler(request)
        except HTTPException as err:
            response = json_response({"error": err.detail or err.explanation}, err.code)
        return response(environ, start_response)

    def health(self, request):
        switches = self._controller.switches_snapshot()
        return json_response({"status": "ok",
                              "switches": len(switches),
                              "switches_ready": sum(s["state"] == "ready" for s in switches)})

    def switches(self, request):
        return json_response(self._controller.switches_snapshot())

    def events(self, request):
        try:
            after = int(request.GET.get("after", 0))
            limit = min(int(request.GET.get("limit", 100)), 1000)
        except ValueError:
            return json_response({"error": "after and limit must be integers"}, 400)
        kind = request.GET.get("kind", "")
        return json_response(self._controller.store.events(kind, after, limit))
