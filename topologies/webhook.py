"""A webhook receiver for the bed and the benchmarks: an HTTP server on 127.0.0.1 that answers
every POST with 204 and keeps (monotonic receive time, JSON body) of each, so that a scenario
can wait for a notification and time it.

    with WebhookSink() as sink:
        ...subscribe sink.url...
        body = sink.wait_for(lambda b: b["current"] == "alarm", timeout=5)
"""

import json
import threading
import time
from collections.abc import Callable
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):  # the scenario reports what matters
        pass


class WebhookSink:
    def __init__(self, path: str = "/hook") -> None:
        self._path = path
        self._cond = threading.Condition()
        self.received: list[tuple[float, dict]] = []
        self._server: WSGIServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{self._path}"

    def __enter__(self) -> "WebhookSink":
        self._server = make_server("127.0.0.1", 0, self._app, handler_class=_Quiet)
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ, start_response):
        at = time.monotonic()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            body = json.loads(environ["wsgi.input"].read(length) or b"null")
        except ValueError:
            body = None
        with self._cond:
            self.received.append((at, body))
            self._cond.notify_all()
        start_response("204 No Content", [])
        return [b""]

    def wait_for(
        self, matches: Callable[[dict], bool], timeout: float, after: float = 0.0
    ) -> tuple[float, dict]:
        """(receive time, body) of the first body received after monotonic time ``after``
        that ``matches``; AssertionError naming what did arrive if none within ``timeout``."""

        def found():
            return next(
                (
                    (at, body)
                    for at, body in self.received
                    if at >= after and isinstance(body, dict) and matches(body)
                ),
                None,
            )

        with self._cond:
            if not self._cond.wait_for(found, timeout):
                raise AssertionError(
                    f"no matching notification within {timeout} s; got "
                    f"{[body for _, body in self.received]}"
                )
            return found()
