import json

from webob import Request

from app.rest.api import RestApi
from app.store.sqlite_store import SqliteStore
from app.events import Event


class FakeController:
    def __init__(self, store):
        self.store = store

    def switches_snapshot(self):
        return [{"dpid": "0000000000000001", "name": "edge1", "state": "ready"},
                {"dpid": "0000000000000002", "name": "edge2", "state": "syncing"}]


def call(api, path, method="GET"):
    response = Request.blank(path, method=method).get_response(api.wsgi)
    return response.status_code, json.loads(response.body)


def make_api(tmp_path):
    store = SqliteStore(str(tmp_path / "evb.db"))
    store.append_event(Event("switch.ready", switch="edge1"))
    store.append_event(Event("port.added", switch="edge1"))
    return RestApi(FakeController(store))


def test_health_counts_switches(tmp_path):
    assert call(make_api(tmp_path), "/v1/health") == (
        200, {"status": "ok", "switches": 2, "switches_ready": 1})


def test_switches(tmp_path):
    status, body = call(make_api(tmp_path), "/v1/switches/")
    assert status == 200 and [s["name"] for s in body] == ["edge1", "edge2"]


def test_events_filtered(tmp_path):
    status, body = call(make_api(tmp_path), "/v1/events?kind=port.&limit=5")
    assert status == 200 and [e["kind"] for e in body] == ["port.added"]


def test_bad_query_is_400(tmp_path):
    status, body = call(make_api(tmp_path), "/v1/events?limit=lots")
    assert status == 400 and "limit" in body["error"]


def test_unknown_path_is_404_and_wrong_method_405(tmp_path):
    api = make_api(tmp_path)
    status, body = call(api, "/v2/nothing")
    assert status == 404 and "/v2/nothing" in body["error"]
    status, body = call(api, "/v1/health", method="DELETE")
    assert status == 405 and "DELETE" in body["error"]
