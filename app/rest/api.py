"""REST API v1 (WebOb). Read-only views for now: health, switches, links, stations,
associations, events."""
import json
import time

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
            "/v1/links": self.links,
            "/v1/stations": self.stations,
            "/v1/associations": self.associations,
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

    def links(self, request):
        return json_response(self._controller.links_snapshot())

    def stations(self, request):
        """Per server port: the station, the negotiated EVB values, ECP state and counters."""
        return json_response(self._controller.sessions_snapshot())

    def associations(self, request):
        return json_response([vsi_view(v) for v in self._controller.vsis_snapshot()])

    def events(self, request):
        try:
            after = int(request.GET.get("after", 0))
            limit = min(int(request.GET.get("limit", 100)), 1000)
        except ValueError:
            return json_response({"error": "after and limit must be integers"}, 400)
        kind = request.GET.get("kind", "")
        return json_response(self._controller.store.events(kind, after, limit))


def vsi_view(info) -> dict:
    """A VSI as JSON: where it is attached, in which state, with which MAC/VID."""
    return {
        "vsi_id": info.name,
        "state": info.state.value,
        "migrating": info.migrating,
        "attachments": [{
            "switch": f"{a.port.dpid:016x}", "port_no": a.port.port_no, "state": a.state.value,
            "binding": a.binding.value if a.binding else None, "handle": a.handle,
            "manager_id": a.manager_id, "type_id": a.type_id, "type_version": a.type_version,
            "profile": a.profile, "entries": [{"mac": e.mac, "vid": e.vid} for e in a.entries],
            # The bridge's clock is time.monotonic(), as the controller's.
            "expires_in": round(a.expires - time.monotonic(), 1),
        } for a in info.attachments],
    }
