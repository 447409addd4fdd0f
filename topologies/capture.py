"""tcpdump on one interface of the bed, read back as raw frames while it runs."""

import struct
import subprocess
import time
from pathlib import Path

from topologies.shell import CommandError

_PCAP_HEADER = 24
_RECORD_HEADER = 16


class Capture:
    """Context manager: capture frames matching a BPF filter on ifname into pcap_path.

    ifname is in the root netns, where the switch-side ports (edge1-s1, edge1-up1, ...) live.
    """

    def __init__(self, ifname, bpf, pcap_path):
        self.pcap_path = Path(pcap_path)
        self._argv = ["tcpdump", "-U", "-n", "-i", ifname, "-w", str(pcap_path)] + bpf.split()
        self._proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        """Start tcpdump and return once it listens (frames sent before that are not seen)."""
        self._proc = subprocess.Popen(
            self._argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        # "listening on IF, ..." comes once the socket is bound and the pcap header written.
        line = self._proc.stderr.readline()
        if "listening on" not in line:
            self.stop()
            raise CommandError(f"{' '.join(self._argv)}: {line}")

    def stop(self):
        """Stop tcpdump (by its PID) and reap it."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc.stderr.close()
        self._proc = None

    def frames(self):
        """All complete frames written so far (raw Ethernet bytes)."""
        return [frame for _, frame in self.timed_frames()]

    def timed_frames(self):
        """(capture time in seconds, frame) of all complete frames written so far."""
        data = self.pcap_path.read_bytes()
        if len(data) < _PCAP_HEADER:
            return []
        # tcpdump writes in host byte order; the magic number tells which (and the resolution).
        order = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        unit = 1e-9 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e-6
        frames, offset = [], _PCAP_HEADER
        while offset + _RECORD_HEADER <= len(data):
            seconds, fraction, captured = struct.unpack_from(order + "III", data, offset)
            start = offset + _RECORD_HEADER
            if start + captured > len(data):
                break
            frames.append((seconds + fraction * unit, data[start : start + captured]))
            offset = start + captured
        return frames

    def wait_for(self, predicate, timeout):
        """First frame for which predicate(frame) is true, or None after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            found = next((f for f in self.frames() if predicate(f)), None)
            if found is not None or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)
