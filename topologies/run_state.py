"""What a bed run leaves on the machine, and how the next run removes it after a crash.

Everything is found by name: OVS bridges aggN/edgeN, their veth ports, netns named NETNS_PREFIX*,
and processes whose command line names a file under STATE_DIR (lldpad configs, tcpdump pcaps).
"""

import fcntl
import os
import re
import shutil
import signal
import time
from contextlib import contextmanager
from pathlib import Path

from topologies.shell import run
from topologies.vm import destroy_netns

STATE_DIR = Path("/run/evb-datacenter")
NETNS_PREFIX = "evbdc-"
_OWN_BRIDGE = re.compile(r"(agg|edge)\d+")
_OWN_LINK = re.compile(r"(agg\d+-dn\d+|edge\d+-(up|s)\d+)")


@contextmanager
def exclusive_run():
    """Hold the bed's lock: one run at a time on this machine; a second one fails at once."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another datacenter run holds {STATE_DIR / 'lock'}") from None
        yield


def remove_leftovers(keep_run_dir=None):
    """Remove processes, netns, bridges, links and run dirs of a previous run (call under the lock).

    Processes are ended by PID, and only those whose command line names a file under STATE_DIR.
    """
    _end(_pids_using(STATE_DIR))
    for netns in netns_names(NETNS_PREFIX):
        destroy_netns(netns)
    for bridge in run(["ovs-vsctl", "list-br"]).stdout.split():
        if _OWN_BRIDGE.fullmatch(bridge):
            run(["ovs-vsctl", "--if-exists", "del-br", bridge])
    for link in os.listdir("/sys/class/net"):
        if _OWN_LINK.fullmatch(link):
            run(["ip", "link", "del", link], check=False)
    for entry in STATE_DIR.iterdir():
        if entry.is_dir() and entry != keep_run_dir:
            shutil.rmtree(entry)


def netns_names(prefix):
    """Named network namespaces whose name starts with prefix."""
    return [
        line.split()[0]
        for line in run(["ip", "netns", "list"]).stdout.splitlines()
        if line.startswith(prefix)
    ]


def _pids_using(directory):
    marker = str(directory).encode() + b"/"
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            pids.append(int(entry.name))
    return pids


def _end(pids, grace=2.0):
    """Terminate pids, then kill those still alive after grace seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.1)


def _alive(pid):
    """Running and not a zombie (this machine's init does not reap orphans)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False
