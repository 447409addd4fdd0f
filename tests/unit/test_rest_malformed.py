"""Malformed requests get a 4xx naming what is wrong, never a 500; control characters in names
and URLs are refused at the REST boundary and cannot forge log lines."""

import json

import pytest
from webob import Request

from tests.unit.test_rest_harness import ADMIN_TOKEN, profile

VM = "/v1/vms/a1b2c3d4-0000-0000-0000-00000000000c"


def raw(harness, method: str, path: str, body: bytes | None = None, query: str = ""):
    """A request as the server hands it over: PATH_INFO is the URL's bytes read as latin-1."""
    request = Request.blank("/", method=method, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    request.environ["PATH_INFO"] = path
    request.environ["QUERY_STRING"] = query
    if body is not None:
        request.body = body
        request.content_type = "application/json"
    response = request.get_response(harness.api.wsgi)
    return response.status_code, response.json


@pytest.mark.parametrize(
    "path, body",
    [
        (VM, b'{"type_id": ' + b"9" * 4301 + b', "type_version": 1}'),
        ("/v1/profiles/9/1", b'{"vlans": [' + b"1" * 5000 + b"]}"),
        (VM, b'{"type_id": -' + b"9" * 4400 + b"}"),
    ],
)
def test_a_huge_json_integer_is_400(harness, path, body):
    status, answer = raw(harness, "PUT", path, body)
    assert status == 400 and "digits" in answer["error"], answer


@pytest.mark.parametrize(
    "path, query",
    [
        ("/v1/vms/\xff", ""),  # %ff: PATH_INFO holds the byte as latin-1
        ("/v1/profiles/\xff/1", ""),
        ("/v1/events", "kind=%ff"),
        ("/v1/lookup", "mac=%ff"),
        ("/v1/associations", "%ff=1"),
    ],
)
def test_percent_ff_in_path_or_query_is_400(harness, path, query):
    status, answer = raw(harness, "GET", path, query=query)
    assert status == 400 and "UTF-8" in answer["error"], answer


@pytest.mark.parametrize("method", ["GET", "DELETE"])
def test_a_type_id_out_of_range_in_the_path_is_400(harness, method):
    status, answer = harness.call(method, "/v1/profiles/99999999999999999999999/1")
    assert status == 400 and answer["field"] == "type_id", answer


@pytest.mark.parametrize(
    "path, document",
    [
        (VM, {"type_id": 5, "type_version": 4, "name": "\ud800"}),
        ("/v1/profiles/9/1", {**profile(9, 1), "name": "web\udfff"}),
        ("/v1/groups", {"group": "g\ud800", "profiles": [], "vms": []}),
    ],
)
def test_a_lone_surrogate_is_400(harness, path, document):
    method = "POST" if path == "/v1/groups" else "PUT"
    status, answer = harness.call(method, path, json.dumps(document).encode())
    assert status == 400 and "surrogate" in answer["error"], answer


@pytest.mark.parametrize(
    "bad", ["ok\nevent=switch.disconnected switch=edge1", "a\rb", "x\x00", "\x85"]
)
def test_control_characters_in_names_are_400(harness, bad):
    status, answer = harness.call("PUT", VM, {"type_id": 5, "type_version": 4, "name": bad})
    assert status == 400 and answer["field"] == "name" and "control" in answer["error"]
    status, answer = harness.call("PUT", "/v1/servers/edge1/edge1-s1/maintenance", {"reason": bad})
    assert status == 400 and answer["field"] == "reason", answer
    assert harness.call("GET", "/v1/vms")[1] == []


def test_control_characters_in_the_path_or_query_are_400(harness):
    status, answer = raw(harness, "GET", "/v1/switches/edge1\nevent=x")
    assert status == 400 and "control" in answer["error"]
    status, answer = raw(harness, "GET", "/v1/events", query="kind=a%0aevent%3dx")
    assert status == 400 and answer["field"] == "kind"


def test_a_failing_handler_is_logged_on_one_line_with_the_path_escaped(harness, caplog):
    def broken(request, principal, **params):
        raise RuntimeError("boom\nevent=switch.disconnected")

    route = next(r for r in harness.api.router.routes if r.template == "/v1/links")
    harness.api.router.routes = tuple(
        r if r is not route else type(route)(route.method, route.template, broken, route.access)
        for r in harness.api.router.routes
    )
    status, answer = harness.call("GET", "/v1/links")
    assert status == 500 and answer["error"] == "internal error: RuntimeError"
    (record,) = [r for r in caplog.records if r.name == "evb_nms.rest"]
    assert "\n" not in record.getMessage()
