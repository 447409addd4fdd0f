"""Following what changes under an etcd prefix (etcd's v3 watch, through the JSON gateway), so
that a controller's cache can follow the store that other controllers write (docs/ha.md).

One thread a watch, one streamed request at a time. Every change after the revision given is
handed to `on_change(key, value, revision)` in revision order (value None: deleted), from the
watch's thread and with nothing queued: the callback decides what to keep. `on_batch(revision)`,
if given, is called once the changes of one message are handed over: etcd sends a revision's
changes (a transaction's) in one message, so what the callbacks built is whole there. A stream
that breaks (the member stopped, a network error) is opened again on the next endpoint from the
revision after the last one handed over, so nothing is missed and nothing handed twice. When
etcd has compacted away revisions the watch still needed, `on_compacted()` is called; it reloads
what it follows and returns the revision it read, from which the watch goes on.

etcd3gw's own watcher is not used: it neither resumes on another member nor reports a stream
that ended, and its iterator queues without bound."""

import base64
import json
import logging
import socket
import threading
from collections.abc import Callable, Sequence

import requests

from app.store.base import StoreError
from app.store.etcd_kv import RETRY_PAUSE, parse_endpoint, prefix_end

LOG = logging.getLogger("evb_nms.store")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


class PrefixWatch:
    def __init__(
        self,
        endpoints: Sequence[str],
        prefix: str,
        revision: int,
        on_change: Callable[[str, bytes | None, int], None],
        on_compacted: Callable[[], int],
        connect_timeout: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        self._urls = []
        for url in endpoints:
            scheme, host, port = parse_endpoint(url)
            host = f"[{host}]" if ":" in host else host
            self._urls.append(f"{scheme}://{host}:{port}")
        self._prefix, self.revision = prefix, revision
        self._on_change, self._on_compacted = on_change, on_compacted
        self._on_batch = on_batch
        self._timeout = connect_timeout
        self._session = requests.Session()
        self._session.trust_env = False  # as EtcdKv's
        self._stopping = threading.Event()
        self._response: requests.Response | None = None
        self.reconnects = 0  # streams opened again after one broke
        self._current = 0
        self._thread = threading.Thread(target=self._run, name="etcd-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._follow(self._urls[self._current])
                continue  # compacted: again from the revision reloaded
            except (requests.RequestException, ValueError, StoreError) as err:
                if self._stopping.is_set():
                    return
                # StoreError: the reload after a compaction found no etcd: it runs again.
                LOG.info("etcd watch of %s broke (%s): resuming elsewhere", self._prefix, err)
            self._current = (self._current + 1) % len(self._urls)
            self.reconnects += 1
            self._stopping.wait(RETRY_PAUSE)

    def _follow(self, url: str) -> None:
        """One stream, until it ends or breaks."""
        request = {
            "create_request": {
                "key": _b64(self._prefix),
                "range_end": _b64(prefix_end(self._prefix)),
                "start_revision": str(self.revision + 1),
            }
        }
        with self._session.post(
            url + "/v3/watch", json=request, stream=True, timeout=(self._timeout, None)
        ) as response:
            response.raise_for_status()
            self._response = response
            # The chunks as they arrive: iter_lines' default of 512 bytes joins the pieces of a
            # large message again at each one (a save of 500 VSIs: 10 times the CPU).
            for line in response.iter_lines(chunk_size=None):
                if self._stopping.is_set():
                    return
                if line and not self._handle(json.loads(line).get("result", {})):
                    return
        # The member closed the stream (it is stopping): resume on the next one.
        raise requests.ConnectionError("the watch stream ended")

    def _handle(self, result: dict) -> bool:
        """Hands over the changes of one message; False when the stream is over."""
        if result.get("canceled"):
            if result.get("compact_revision"):  # what we missed is gone: reload
                LOG.warning("etcd watch of %s: compacted, reloading", self._prefix)
                self.revision = self._on_compacted()
                return False
            raise ValueError(f"etcd cancelled the watch: {result.get('cancel_reason')}")
        events = result.get("events", [])
        for event in events:
            kv = event["kv"]
            revision = int(kv["mod_revision"])
            deleted = event.get("type") == "DELETE"  # the gateway leaves out PUT, the default
            value = None if deleted else base64.b64decode(kv.get("value", ""))
            try:
                self._on_change(base64.b64decode(kv["key"]).decode(), value, revision)
            except Exception:  # one bad callback must not end the watch
                LOG.exception("etcd watch of %s: the change at %d failed", self._prefix, revision)
            self.revision = revision
        if events and self._on_batch is not None:
            try:
                self._on_batch(self.revision)
            except Exception:
                LOG.exception("etcd watch of %s: batch %d failed", self._prefix, self.revision)
        return True

    def stop(self) -> None:
        self._stopping.set()
        response = self._response
        if response is not None:
            # Closing the response would wait for the read under way; shutting its socket down
            # ends that read.
            try:
                with socket.fromfd(
                    response.raw._fp.fileno(), socket.AF_INET, socket.SOCK_STREAM
                ) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except (AttributeError, OSError, ValueError):
                pass  # the stream is closed already
        self._thread.join(timeout=self._timeout)
        self._session.close()
