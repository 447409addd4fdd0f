"""Every controller answers the REST API; only the leader acts (docs/ha.md).

On a follower, a request is forwarded to the leader the election names, with the client's
method, path, query, body and credentials, and the leader's answer is passed back as it is: so
a client may use any controller, and each change is decided by the one controller that holds
the switches and saves the intent. What describes this controller itself stays local: its role
(`GET /v1/ha`), its health, its metrics, the console's files and the API document. With no
leader known (an election under way) the answer is 503 with Retry-After: 1. A request that was
forwarded once is never forwarded again (two controllers that each believe the other leads, for
the instant of a change, answer 503 rather than pass it back and forth)."""

import http.client
import logging
import ssl
from urllib.parse import quote, urlsplit

from app.config import Settings
from app.ha.election import Election
from app.rest.http import error_response

LOG = logging.getLogger("evb_nms.rest")
LOCAL = ("/v1/ha", "/v1/health", "/metrics", "/v1/openapi.yaml")
LOCAL_TREES = ("/console",)
FORWARDED = "X-Evb-Forwarded-By"
# Not the client's to pass on (RFC 9110 section 7.6.1), or set again by http.client.
_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding",
     "upgrade", "host", "content-length"}
)  # fmt: skip


class LeaderForward:
    def __init__(self, local, election: Election, settings: Settings):
        self._local, self._election = local, election
        # The leader must answer before this controller's own server gives up on the request.
        self._timeout = max(1.0, settings.rest_handler_timeout - 1)
        self._tls = ssl.create_default_context(cafile=settings.rest_tls_cert or None)
        self.forwarded = 0
        self.failed = 0

    def wsgi(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self._election.leading or path in LOCAL or path.startswith(LOCAL_TREES):
            return self._local(environ, start_response)
        leader = self._election.leader
        if leader is None or environ.get("HTTP_" + FORWARDED.upper().replace("-", "_")):
            response = error_response(
                503, "no leader is elected yet: try again", headers={"Retry-After": "1"}
            )
            return response(environ, start_response)
        try:
            status, headers, body = self._forward(environ, leader.url)
        except (OSError, http.client.HTTPException) as err:
            self.failed += 1
            LOG.warning("forwarding to the leader %s failed: %s", leader.url, err)
            response = error_response(
                503,
                f"the leader {leader.id} ({leader.url}) did not answer: {err}",
                headers={"Retry-After": "1"},
            )
            return response(environ, start_response)
        self.forwarded += 1
        start_response(status, headers)
        return [body]

    def _forward(self, environ, url: str) -> tuple[str, list[tuple[str, str]], bytes]:
        parts = urlsplit(url)
        if parts.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=self._timeout, context=self._tls
            )
        else:
            conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=self._timeout)
        target = quote(environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=~", encoding="latin-1")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        length = int(environ.get("CONTENT_LENGTH") or 0)  # bounded by our server already
        body = environ["wsgi.input"].read(length) if length else None
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key[5:].replace("_", "-").lower() not in _HOP
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        headers[FORWARDED] = self._election.id
        try:
            conn.request(environ.get("REQUEST_METHOD", "GET"), target, body, headers)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        passed = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP]
        return f"{answer.status} {answer.reason}", passed, data
