"""A small threaded WSGI server for the REST API (no eventlet: os-ken runs native threads)."""

import logging
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

LOG = logging.getLogger("evb_nms.rest")


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the signature is the stdlib's
        LOG.debug("%s %s", self.address_string(), format % args)


class RestServer:
    def __init__(self, host: str, port: int, wsgi_app):
        self._server = make_server(
            host, port, wsgi_app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, name="rest", daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
