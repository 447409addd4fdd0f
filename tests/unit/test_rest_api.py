"""The REST API's frame: routing, authentication, the fabric views, errors, the OpenAPI document."""

import pytest
import yaml
from webob import Request

from app.rest.api import OPENAPI_PATH
from app.rest.http import MAX_BODY
from app.store.base import StoreError
from tests.unit.test_rest_harness import ADMIN_TOKEN, BLUE_TOKEN, Harness

METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}


@pytest.fixture
def open_harness(tmp_path):
    return Harness(str(tmp_path / "evb.db"), tokens=())


def test_health_is_open_and_counts_switches_and_types(harness):
    assert harness.call("GET", "/v1/health", token=None) == (
        200,
        {"status": "ok", "switches": 2, "switches_ready": 1, "vsi_types": 3},
    )


def test_switches_links_stations(harness):
    status, switches = harness.call("GET", "/v1/switches/")
    assert status == 200 and [s["name"] for s in switches] == ["edge1", "edge2"]
    assert harness.call("GET", "/v1/links")[1] == [{"a": "edge1/edge1-up1", "b": "agg1/agg1-dn1"}]
    assert harness.call("GET", "/v1/probes")[1][0]["to"] == "edge2"
    assert harness.call("GET", "/v1/stations")[1][0]["port"] == "edge1-s1"


@pytest.mark.parametrize("name", ["edge2", "0000000000000002", "2"])
def test_one_switch_by_name_or_dpid(harness, name):
    status, switch = harness.call("GET", f"/v1/switches/{name}")
    assert status == 200 and switch["name"] == "edge2"


def test_unknown_switch_is_404(harness):
    status, body = harness.call("GET", "/v1/switches/core9")
    assert status == 404 and "core9" in body["error"] and body["field"] == "switch"


def test_without_tokens_the_api_is_open(open_harness):
    assert open_harness.call("GET", "/v1/switches", token=None)[0] == 200
    assert (
        open_harness.call(
            "PUT",
            "/v1/vms/a1b2c3d4-0000-0000-0000-00000000000c",
            {"type_id": 5, "type_version": 4},
            token=None,
        )[0]
        == 201
    )


def test_a_store_that_fails_is_a_503_that_says_why_and_changes_nothing(open_harness, monkeypatch):
    def unavailable(write):
        raise StoreError("etcd: no endpoint of http://127.0.0.1:2379 answered the transaction")

    monkeypatch.setattr(open_harness.store, "write_registry", unavailable)
    status, body = open_harness.call(
        "PUT", "/v1/vms/a1b2c3d4-0000-0000-0000-00000000000c", {"type_id": 5, "type_version": 4}
    )
    assert status == 503 and "no endpoint" in body["error"]
    assert open_harness.call("GET", "/v1/vms") == (200, [])


@pytest.mark.parametrize("header", [None, "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer wrong"])
def test_with_tokens_a_missing_or_unknown_token_is_401(harness, header):
    headers = {"Authorization": header} if header else {}
    response = Request.blank("/v1/vms", headers=headers).get_response(harness.api.wsgi)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json["field"] is None


@pytest.mark.parametrize(
    "path", ["/v1/switches", "/v1/switches/edge1", "/v1/links", "/v1/stations", "/v1/probes"]
)
def test_tenant_tokens_do_not_see_the_fabric(harness, path):
    status, body = harness.call("GET", path, token=BLUE_TOKEN)
    assert status == 403 and "admin" in body["error"]


def test_unknown_path_is_404_and_wrong_method_405(harness):
    status, body = harness.call("GET", "/v2/nothing")
    assert status == 404 and "/v2/nothing" in body["error"]
    response = Request.blank("/v1/health", method="DELETE").get_response(harness.api.wsgi)
    assert response.status_code == 405 and "DELETE" in response.json["error"]
    assert response.headers["Allow"] == "GET"
    status, body = harness.call("POST", "/v1/profiles/5/4", {})
    assert status == 405 and body["error"].endswith("allowed: GET, PUT, DELETE")


def test_unknown_query_parameters_are_refused(harness):
    status, body = harness.call("GET", "/v1/associations?tenat=blue")
    assert status == 400 and body["field"] == "tenat" and "allowed: tenant" in body["error"]
    status, body = harness.call("GET", "/v1/events?limit=1&limit=2")
    assert status == 400 and body["field"] == "limit"


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"type_id": 5,', "malformed JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b"", "expected a JSON body"),
        (b'{"type_id": NaN}', "NaN is not a JSON number"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_bodies_that_are_not_json_name_the_body(harness, body, message):
    status, answer = harness.call("PUT", "/v1/profiles/9/1", body)
    assert status == 400 and answer["field"] == "body" and message in answer["error"]


def test_a_duplicate_key_is_refused(harness):
    status, body = harness.call(
        "PUT", "/v1/profiles/9/1", b'{"name": "a", "name": "b", "tenant": "blue"}'
    )
    assert status == 400 and body["field"] == "name" and "twice" in body["error"]


def test_a_body_over_the_limit_is_413(harness):
    status, body = harness.call("POST", "/v1/groups", b" " * (MAX_BODY + 1))
    assert status == 413 and body["field"] == "body"


def test_an_exception_in_the_controller_is_a_500_not_a_crash(harness):
    def broken():
        raise RuntimeError("plane on fire")

    harness.service.switches = broken
    status, body = harness.call("GET", "/v1/switches")
    # The message stays in the log: it may tell a client about the controller's insides.
    assert status == 500 and body["error"] == "internal error: RuntimeError"


def test_the_openapi_document_is_served_open(harness):
    status, text = harness.call("GET", "/v1/openapi.yaml", token=None)
    assert status == 200 and yaml.safe_load(text)["openapi"].startswith("3.")


def test_a_missing_openapi_document_is_404(tmp_path):
    harness = Harness(str(tmp_path / "evb.db"))
    harness.api._openapi_path = tmp_path / "none.yaml"
    assert harness.call("GET", "/v1/openapi.yaml")[0] == 404


def test_every_route_is_in_the_openapi_document_and_vice_versa(harness):
    document = yaml.safe_load(OPENAPI_PATH.read_text())
    documented = {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }
    routed = {(route.method, route.template) for route in harness.api.router.routes}
    assert routed == documented


def test_the_openapi_document_is_consistent(harness):
    """Every operation has responses and a unique id; every $ref resolves; open routes say
    so; no key is left without a value."""
    document = yaml.safe_load(OPENAPI_PATH.read_text())
    ids = []
    open_routes = {
        (r.method, r.template) for r in harness.api.router.routes if r.access.value == "open"
    }

    def resolve(ref: str):
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    def refs(node):
        if isinstance(node, dict):
            for key, value in node.items():
                assert value is not None, key  # a stray comma in a YAML flow mapping
                if key == "$ref":
                    yield value
                else:
                    yield from refs(value)
        elif isinstance(node, list):
            for item in node:
                yield from refs(item)

    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            assert operation["responses"], (method, path)
            ids.append(operation["operationId"])
            is_open = operation.get("security") == []
            assert is_open == ((method.upper(), path) in open_routes), (method, path)
            for parameter in operation.get("parameters", []) + item.get("parameters", []):
                parameter = resolve(parameter["$ref"]) if "$ref" in parameter else parameter
                if parameter["in"] == "path":
                    assert "{" + parameter["name"] + "}" in path
    assert len(ids) == len(set(ids))
    for ref in refs(document):
        resolve(ref)


def test_the_admin_token_is_not_needed_for_health_but_works(harness):
    assert harness.call("GET", "/v1/health", token=ADMIN_TOKEN)[0] == 200
