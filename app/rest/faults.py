"""Faults and maintenance (app/faults): alarms, fault subscriptions (webhooks), servers and
their maintenance mode. A tenant sees the alarms that affect its VMs and manages its own
subscriptions; servers and maintenance are infrastructure, for admins."""

from webob import Request

from app.faults.alarms import places_of
from app.faults.monitor import FaultMonitor
from app.registry import fields
from app.registry.errors import InvalidInput
from app.rest.auth import Principal
from app.rest.fabric import find_switch
from app.rest.http import ApiError, Query, json_response, read_json
from app.rest.router import Access, Route
from app.service import NmsService

REASON_MAX = 200


class FaultViews:
    def __init__(self, service: NmsService, monitor: FaultMonitor) -> None:
        self._service = service
        self._monitor = monitor

    def routes(self) -> list[Route]:
        server = "/v1/servers/{switch}/{port}"
        return [
            Route("GET", "/v1/alarms", self.alarms),
            Route("GET", "/v1/subscriptions", self.subscriptions),
            Route("POST", "/v1/subscriptions", self.subscribe),
            Route("DELETE", "/v1/subscriptions/{sub_id}", self.unsubscribe),
            Route("GET", "/v1/servers", self.servers, Access.ADMIN),
            Route("PUT", server + "/maintenance", self.enter_maintenance, Access.ADMIN),
            Route("DELETE", server + "/maintenance", self.leave_maintenance, Access.ADMIN),
        ]

    def alarms(self, request: Request, principal: Principal):
        query = Query(request, ("state",))
        state = query.text("state") or "active"
        if state not in ("active", "all"):
            raise InvalidInput(f"expected active or all, got {state!r}", "state")
        return json_response(self._monitor.alarms(principal.tenant, state == "active"))

    def subscriptions(self, request: Request, principal: Principal):
        Query(request)
        return json_response(self._monitor.subscribers.list(principal.tenant))

    def subscribe(self, request: Request, principal: Principal):
        """201 with the subscription's signing secret, shown this once: not to be cached."""
        Query(request)
        response = json_response(self._monitor.subscribe(read_json(request), principal.tenant), 201)
        response.cache_control = "no-store"
        return response

    def unsubscribe(self, request: Request, principal: Principal, sub_id: str):
        Query(request)
        self._monitor.unsubscribe(sub_id, principal.tenant)
        return json_response({"deleted": sub_id})

    def servers(self, request: Request, principal: Principal):
        """Every server port with its station, the VMs forwarding there and its maintenance."""
        Query(request)
        stations = {
            (s["switch"], s["port_no"]): s.get("station")
            for s in self._service.stations()
            if not s.get("svid")  # the port's own station, not one of its S-channels'
        }
        vms: dict[tuple[str, str], list[str]] = {}
        for vm in places_of(self._service.associations()):
            vms.setdefault((vm.switch, vm.port), []).append(vm.vsi_id)
        answer = []
        for switch in self._service.switches():
            for port in switch["ports"]:
                if port["role"] != "server":
                    continue
                key = (switch["name"], port["name"])
                station = stations.get((switch["dpid"], port["number"]))
                record = self._monitor.in_maintenance(key)
                answer.append(
                    {
                        "switch": key[0],
                        "port": key[1],
                        "up": port["up"],
                        "station": station["mac"] if station else None,
                        "vms": vms.get(key, []),
                        "maintenance": record.as_dict() if record else None,
                    }
                )
        return json_response(answer)

    def enter_maintenance(self, request: Request, principal: Principal, switch: str, port: str):
        Query(request)
        body = fields.mapping(read_json(request), "", ("reason",), required=("reason",))
        reason = fields.text(body["reason"], "reason", REASON_MAX)
        return json_response(self._monitor.enter_maintenance(self._server(switch, port), reason))

    def leave_maintenance(self, request: Request, principal: Principal, switch: str, port: str):
        Query(request)
        # By its names it can end even while its switch is away.
        key = (
            (switch, port)
            if self._monitor.in_maintenance((switch, port))
            else self._server(switch, port)
        )
        self._monitor.leave_maintenance(key)
        return json_response({"switch": key[0], "port": key[1], "maintenance": None})

    def _server(self, switch: str, port: str) -> tuple[str, str]:
        """(switch name, port name) of a server port given by names (or dpid / number)."""
        found = find_switch(self._service.switches(), switch)
        if found is None:
            raise ApiError(404, f"no switch named {switch!r} (give its name or dpid)", "switch")
        for candidate in found["ports"]:
            if port in (candidate["name"], str(candidate["number"])):
                if candidate["role"] != "server":
                    raise InvalidInput(
                        f"{found['name']}/{candidate['name']} is a "
                        f"{candidate['role']} port, not a server's",
                        "port",
                    )
                return found["name"], candidate["name"]
        raise ApiError(404, f"switch {found['name']} has no port {port!r}", "port")
