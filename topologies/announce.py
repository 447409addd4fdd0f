"""QEMU's self-announcement after a live migration, sent from a VM's copy on the destination.

A migrated VM's copy is paused until the source has stopped: it sends nothing, so its interface
stays down. When it resumes, QEMU announces the VM's MAC (net/announce.c): RARP "request
reverse" broadcasts, 5 rounds, the first at once and each next one `initial + n * step` ms
after the previous one (defaults 50 and 100: at 0, 50, 200, 450, 800 ms).

Pre-started in the copy's netns so that resuming costs no process start:

    ip netns exec NS python -m topologies.announce IFNAME MAC

It prints "ready" on stderr; a line on stdin resumes the VM (interface up, then the rounds); it
prints the time.monotonic() of the first frame on stdout and exits after the last one.
"""

import argparse
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

from topologies.netns_io import set_link_up

REPO = Path(__file__).resolve().parent.parent

ETH_P_RARP = 0x8035
ARP_HTYPE_ETHERNET = 1
ARP_PTYPE_IPV4 = 0x0800
RARP_OP_REQUEST_REVERSE = 3
ETH_ZLEN = 60  # what QEMU pads the frame to (the minimum frame without FCS)
BROADCAST = b"\xff" * 6

# QEMU's announce parameters (-global migration.announce-*), in ms.
ANNOUNCE_ROUNDS = 5
ANNOUNCE_INITIAL_MS = 50
ANNOUNCE_STEP_MS = 100
ANNOUNCE_MAX_MS = 550


def rarp_frame(mac: str) -> bytes:
    """QEMU's announce_self_create: broadcast RARP, sender = target = the MAC, no IP, 60 bytes."""
    hw = bytes.fromhex(mac.replace(":", ""))
    frame = BROADCAST + hw + struct.pack("!H", ETH_P_RARP)
    frame += struct.pack(
        "!HHBBH", ARP_HTYPE_ETHERNET, ARP_PTYPE_IPV4, 6, 4, RARP_OP_REQUEST_REVERSE
    )
    frame += hw + bytes(4) + hw + bytes(4)
    return frame.ljust(ETH_ZLEN, b"\0")


def announce_offsets(
    rounds=ANNOUNCE_ROUNDS,
    initial=ANNOUNCE_INITIAL_MS,
    step=ANNOUNCE_STEP_MS,
    maximum=ANNOUNCE_MAX_MS,
) -> list[float]:
    """Seconds from the first frame to each frame, as qemu_announce_timer_step spaces them."""
    offsets, at = [0.0], 0
    for sent in range(1, rounds):
        at += min(initial + (sent - 1) * step, maximum)
        offsets.append(at / 1000)
    return offsets


class Announcer:
    """This module, pre-started in a VM copy's netns: resume() ends the pause."""

    def __init__(self, netns: str, mac: str, ifname: str = "eth0"):
        self._proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "topologies.announce"]
            + [ifname, mac],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self._proc.stderr.readline()
        if line.strip() != "ready":
            self.finish()
            raise RuntimeError(f"announcer in {netns} did not start: {line.strip()}")

    def resume(self) -> float:
        """Resume the VM; the time.monotonic() at which its first RARP left."""
        self._proc.stdin.write("resume\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        try:
            return float(line)
        except ValueError:
            raise RuntimeError(f"announcer failed: {line}{self.finish()}") from None

    def finish(self, timeout: float = 5.0) -> str:
        """Wait for the last round (or kill a stuck announcer); its stderr."""
        try:
            return self._proc.communicate(timeout=timeout)[1]
        except subprocess.TimeoutExpired:
            self._proc.kill()
            return self._proc.communicate()[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ifname")
    parser.add_argument("mac")
    args = parser.parse_args(argv)
    frame = rarp_frame(args.mac)
    offsets = announce_offsets()
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    sock.bind((args.ifname, 0))  # protocol 0: sends only, receives nothing
    print("ready", file=sys.stderr, flush=True)
    if not sys.stdin.readline():
        return 1  # never resumed: the migration was abandoned
    set_link_up(args.ifname)
    sock.send(frame)
    start = time.monotonic()
    print(start, flush=True)
    for offset in offsets[1:]:
        time.sleep(max(0.0, start + offset - time.monotonic()))
        sock.send(frame)
    return 0


if __name__ == "__main__":
    sys.exit(main())
