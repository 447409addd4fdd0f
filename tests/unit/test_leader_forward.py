"""A follower's REST answers (app/rest/leader_forward.py): the leader's, for everything but what
describes the follower itself; 503 with Retry-After while no leader is known, when the leader
does not answer, and for a request some controller forwarded already."""

import json
import threading
from dataclasses import dataclass
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from webob import Request

from app.config import Settings
from app.ha.election import Leader
from app.rest.leader_forward import LeaderForward


@dataclass
class FakeElection:
    leading: bool = False
    leader: Leader | None = None
    id: str = "follower-1"


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def _echo(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ.get("QUERY_STRING", ""),
        "auth": environ.get("HTTP_AUTHORIZATION"),
        "by": environ.get("HTTP_X_EVB_FORWARDED_BY"),
        "body": environ["wsgi.input"].read(length).decode(),
    }
    start_response("201 Created", [("Content-Type", "application/json"), ("Link", "<x>")])
    return [json.dumps(body).encode()]


def _local(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"local"]


@pytest.fixture
def leader():
    server = make_server("127.0.0.1", 0, _echo, handler_class=_Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Leader("leader-1", f"http://127.0.0.1:{server.server_port}", 7, 42)
    server.shutdown()
    server.server_close()


def _call(election, method, path, body=None, headers=None):
    forward = LeaderForward(_local, election, Settings())
    request = Request.blank(path, method=method, headers=headers or {})
    if body is not None:
        request.body = body
        request.content_type = "application/json"
    return request.get_response(forward.wsgi), forward


def test_a_follower_passes_the_request_to_the_leader_and_its_answer_back(leader):
    response, forward = _call(
        FakeElection(leader=leader),
        "POST",
        "/v1/profiles/a%2Fb?dry_run=1",
        b'{"x": 1}',
        {"Authorization": "Bearer t0k"},
    )
    assert response.status_int == 201 and response.headers["Link"] == "<x>"
    seen = response.json
    assert seen == {
        "method": "POST",
        "path": "/v1/profiles/a/b",  # decoded, as the leader decodes it from a client
        "query": "dry_run=1",
        "auth": "Bearer t0k",
        "by": "follower-1",
        "body": '{"x": 1}',
    }
    assert forward.forwarded == 1


@pytest.mark.parametrize("path", ["/v1/ha", "/v1/health", "/metrics", "/console/app.js"])
def test_what_describes_the_follower_itself_is_answered_here(leader, path):
    response, _ = _call(FakeElection(leader=leader), "GET", path)
    assert response.body == b"local"


def test_the_leader_answers_itself():
    response, _ = _call(FakeElection(leading=True), "GET", "/v1/associations")
    assert response.body == b"local"


def test_no_leader_known_or_a_request_forwarded_already_is_503_with_retry_after(leader):
    for election, headers in [
        (FakeElection(), {}),
        (FakeElection(leader=leader), {"X-Evb-Forwarded-By": "other"}),
    ]:
        response, _ = _call(election, "GET", "/v1/associations", headers=headers)
        assert response.status_int == 503 and response.headers["Retry-After"] == "1"


def test_a_leader_that_does_not_answer_is_503_naming_it():
    gone = Leader("leader-1", "http://127.0.0.1:1", 7, 42)
    response, forward = _call(FakeElection(leader=gone), "GET", "/v1/vms")
    assert response.status_int == 503
    assert "the leader leader-1 (http://127.0.0.1:1) did not answer" in response.json["error"]
    assert forward.failed == 1
