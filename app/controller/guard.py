"""Keep os-ken's event loop alive whatever a handler does.

With os-ken's native hub, `hub.TaskExit` is plain `Exception`, so `_event_loop` treats any
exception from a handler as a request to exit: the app's event thread ends silently and the
controller stops answering every switch. Each handler is therefore wrapped: an exception is
logged with its traceback and counted, and the loop goes on with the next event.
"""

import functools
import logging

LOG = logging.getLogger("evb_nms.controller")


def guarded(handler):
    @functools.wraps(handler)
    def wrapper(self, ev):
        try:
            handler(self, ev)
        except Exception:
            self.handler_errors += 1
            LOG.exception("handler %s failed on %s", handler.__name__, type(ev).__name__)

    return wrapper
