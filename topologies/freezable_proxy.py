"""A TCP relay between switches and the controller that can be frozen: a switch whose OpenFlow
connection stays open but that says nothing, as a hung ovs-vswitchd would (SIGSTOP of one
bridge is not possible: one process serves them all).

    with FreezableProxy(controller_port) as proxy:
        ovs-vsctl set-controller edge2 tcp:127.0.0.1:{proxy.port}
        proxy.freeze()   # nothing passes either way; the sockets stay open
        proxy.thaw()     # it passes again (a side that closed meanwhile closes the other)

Each connection gets two threads, one per direction; the proxy ends only the threads and
sockets it made.
"""

import socket
import threading


class FreezableProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._flowing = threading.Event()
        self._flowing.set()
        self._closing = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.connections = 0

    def freeze(self) -> None:
        """From now on nothing read is passed on, and nothing more is read."""
        self._flowing.clear()

    def thaw(self) -> None:
        self._flowing.set()

    def __enter__(self) -> "FreezableProxy":
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True
        self._flowing.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
                upstream = socket.create_connection(self._target, timeout=5)
            except OSError:
                continue  # closing, or the controller not listening: the switch retries
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                self._flowing.wait()
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()  # read just as it froze: held until it thaws
                dst.sendall(data)
        except OSError:
            pass
        _close(dst)
        _close(src)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
