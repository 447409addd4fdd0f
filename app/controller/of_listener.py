"""os-ken's OpenFlow listener with a deadline and a log line for the TLS handshake.

With TLS, os-ken (native hub) runs each accepted connection's handshake in a thread of its own,
with no timeout, and its threads swallow every exception: a client that never finishes the
handshake would hold a thread forever, and a switch refused for its certificate would leave no
trace. This listener gives the handshake HANDSHAKE_TIMEOUT seconds (os-ken's own socket timeout
applies after it) and logs why a connection failed before it became a datapath. `install()`
puts it in os-ken's place before the apps start.
"""

import logging
import threading

from os_ken.lib import hub

LOG = logging.getLogger("evb_nms.controller")
HANDSHAKE_TIMEOUT = 10.0


class OpenFlowListener(hub.StreamServer):
    def __init__(self, listen_info, handle=None, backlog=None, spawn="default", **ssl_args):
        # Each connection runs in its own thread: this says whether its handshake is done.
        progress = threading.local()

        def session(sock, addr):
            progress.handshaken = True
            handle(sock, addr)

        super().__init__(listen_info, session, backlog, spawn, **ssl_args)
        if not ssl_args:
            return
        tls = self.handle

        def handshake_then_session(sock, addr):
            progress.handshaken = False
            sock.settimeout(HANDSHAKE_TIMEOUT)
            try:
                tls(sock, addr)
            except Exception as err:
                if progress.handshaken:
                    raise
                LOG.warning("OpenFlow connection from %s refused in the TLS handshake: %s",
                            addr[0], err)  # fmt: skip
                sock.close()

        self.handle = handshake_then_session


def install() -> None:
    from os_ken.controller import controller  # after os_ken.base.app_manager (a cycle)

    controller.StreamServer = OpenFlowListener
