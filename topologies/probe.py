"""A fixed-rate ICMP echo probe: run inside a VM's netns, it sends echo requests to a target at
an exact rate (unlike ping, which slows down while replies are missing) until SIGINT/SIGTERM
(or 65,536 requests), then prints JSON: sent, received, lost, and the longest interval without a
reply (from the first request to the last).

    ip netns exec NS python -m topologies.probe TARGET [--rate 1000]
"""

import argparse
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

ICMP_ECHO_REQUEST, ICMP_ECHO_REPLY = 8, 0
REPLY_GRACE = 0.2  # seconds the receiver keeps listening after the last request
# Sequence numbers are 16 bits: one more request would alias the first one's reply.
MAX_REQUESTS = 0x10000


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def echo_request(ident: int, seq: int) -> bytes:
    header = struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, 0, ident, seq)
    return struct.pack("!BBHHH", ICMP_ECHO_REQUEST, 0, checksum(header), ident, seq)


def start_probe(netns: str, address: str, rate: float = 1000.0) -> subprocess.Popen:
    """This probe in netns (a VM), sending to address; returns once it is sending."""
    proc = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-m",
            "topologies.probe",
            address,
            "--rate",
            str(rate),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stderr.readline()  # "ready"
    return proc


def stop_probe(proc: subprocess.Popen) -> dict:
    """Stops a probe of start_probe; its result (sent, received, lost, max_gap_ms)."""
    proc.send_signal(signal.SIGINT)
    return json.loads(proc.communicate(timeout=10)[0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target")
    parser.add_argument("--rate", type=float, default=1000.0, help="requests per second")
    args = parser.parse_args(argv)
    stop_sending = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop_sending.set())
    signal.signal(signal.SIGTERM, lambda *_: stop_sending.set())
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.settimeout(0.05)
    ident = os.getpid() & 0xFFFF
    replies: dict[int, float] = {}
    # The receiver outlives the sender by REPLY_GRACE: a reply to the last requests is still
    # on its way when the signal comes, and must not be counted as lost.
    stop_receiving = threading.Event()

    def receive():
        while not stop_receiving.is_set():
            try:
                packet = sock.recv(2048)
            except TimeoutError:
                continue
            header = packet[(packet[0] & 0x0F) * 4 :][:8]
            kind, _, _, rid, seq = struct.unpack("!BBHHH", header)
            if kind == ICMP_ECHO_REPLY and rid == ident:
                replies.setdefault(seq, time.monotonic())

    receiver = threading.Thread(target=receive, daemon=True)
    receiver.start()
    print("ready", file=sys.stderr, flush=True)
    interval, sent = 1.0 / args.rate, 0
    start = time.monotonic()
    while not stop_sending.is_set() and sent < MAX_REQUESTS:
        sock.sendto(echo_request(ident, sent), (args.target, 0))
        sent += 1
        delay = start + sent * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    last_send = time.monotonic()
    time.sleep(REPLY_GRACE)
    stop_receiving.set()
    receiver.join()
    # From the first send to the last: silence at either end counts as a gap too.
    times = [start, *sorted(replies.values()), last_send]
    gaps = [b - a for a, b in pairwise(times)]
    print(
        json.dumps(
            {
                "sent": sent,
                "received": len(replies),
                "lost": sent - len(replies),
                "max_gap_ms": round(1000 * max(gaps), 2) if gaps else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
