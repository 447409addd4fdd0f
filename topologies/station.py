"""lldpad as the real 802.1Qbg VDP station of a server, and a vdptool wrapper.

Facts this relies on (lldpad 1.1+git20221028, see /work/shared/interop/vdp22-wire-notes.md §6):
* one lldpad per netns, each in its own mount namespace with a private /dev/shm, because lldpad
  detects "already running" through POSIX shared memory;
* the EVB role must be in the config file before lldpad starts;
* VDP is usable only after the station received the bridge's EVB TLV; until then vdptool answers
  "VDP protocol not supported on interface". The log then shows "data_from_evb:IF ... evb:1".
* vdptool -W waits at most 5 s (hard-coded) for the bridge's response.
"""

import re
import subprocess
import time
from dataclasses import dataclass, field

from topologies.shell import CommandError, in_host, run

_CONFIG = """\
dcbx : {{ version = "1.0"; dcbx_version = 2; }};
nearest_customer_bridge : {{
  {ifname} : {{
    adminStatus = 3;
    tlvid0080c20d : {{
      enableTx = true; evbmode = "station"; evbrrcap = false; evbrrreq = {evbrrreq};
      evbgpid = {evbgpid}; ecpretries = {ecpretries}; ecprte = {ecprte};
      vdprwd = {vdprwd}; vdprka = {vdprka};
    }};
  }};
}};
"""
_FIELD = re.compile(r"^\t(\w+) = (.*)$")
_BRIDGE_STATUS = re.compile(r" vdp22_bridge_info:.* status:(0x[0-9a-f]+)")
_ERROR = re.compile(r"^\t(?:Error returned by Bridge|Internal Error) ?: (.*)$")


@dataclass
class VdpResult:
    ok: bool
    error: str | None  # vdptool's or the bridge's reason when not ok
    fields: dict = field(default_factory=dict)  # mode, mgrid2, typeid, ... of the response
    raw: str = ""
    status: int | None = None  # the bridge's status octet as lldpad logged it


def parse_vdptool(output, waited, returncode=0):
    """Parse `vdptool -T [-W]` output; waited tells whether -W was given (a response is due)."""
    error, fields, responded = None, {}, False
    for line in output.splitlines():
        if line.startswith("FAILED:"):
            error = line.removeprefix("FAILED:").strip()
        elif line == "Response from VDP":
            responded = True
        elif match := _ERROR.match(line):
            error = error or match.group(1)
        elif match := _FIELD.match(line):
            fields[match.group(1)] = match.group(2)
    if error is None and returncode != 0:
        error = output.strip().splitlines()[-1] if output.strip() else f"vdptool exit {returncode}"
    if error is None and waited and not responded:
        error = "no response from the bridge within vdptool's 5 s"
    return VdpResult(error is None, error, fields, output)


def parse_vsi_list(output):
    """Parse `vdptool -t` output into one dict per VSI block ("VSI  0:" + "\\tkey = value")."""
    vsis = []
    for line in output.splitlines():
        if line.startswith("VSI "):
            vsis.append({})
        elif vsis and (match := _FIELD.match(line)):
            vsis[-1][match.group(1)] = match.group(2)
    return vsis


class Station:
    """lldpad in the station role on a server's uplink; files go to run_dir."""

    def __init__(
        self,
        server,
        run_dir,
        ifname=None,
        *,
        ecpretries=3,
        ecprte=14,
        vdprwd=20,
        vdprka=20,
        evbgpid=False,
        evbrrreq=True,
    ):
        self.server = server
        self.ifname = ifname or server.defaultIntf().name
        self.conf_path = run_dir / f"{server.name}.lldpad.conf"
        self.log_path = run_dir / f"{server.name}.lldpad.log"
        self._config = _CONFIG.format(
            ifname=self.ifname,
            ecpretries=ecpretries,
            ecprte=ecprte,
            vdprwd=vdprwd,
            vdprka=vdprka,
            evbgpid=_flag(evbgpid),
            evbrrreq=_flag(evbrrreq),
        )
        self._proc = None

    @property
    def pid(self):
        return self._proc.pid if self._proc else None

    def start(self):
        """Start lldpad; return self. Its first LLDP frame leaves about 1 s later."""
        self.conf_path.write_text(self._config)
        daemon = (
            f"mount -t tmpfs tmpfs /dev/shm && exec stdbuf -oL lldpad -p -f {self.conf_path} -V 7"
        )
        with open(self.log_path, "w") as log:
            # nsenter, unshare and sh all exec: the PID we hold is lldpad's own.
            self._proc = subprocess.Popen(
                in_host(self.server) + ["unshare", "--mount", "sh", "-c", daemon],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def returncode(self):
        """None while lldpad runs (or was never started); its exit status once it ended on its
        own (-11: it crashed)."""
        return self._proc.poll() if self._proc else None

    def stop(self):
        """Stop lldpad by its PID: terminate, then kill if it lingers."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def log(self):
        return self.log_path.read_text(errors="replace")

    def vdp_ready(self):
        """True once lldpad enabled VDP (it received the bridge's EVB TLV)."""
        ready = rf" data_from_evb:{re.escape(self.ifname)} .*\bevb:1\b"
        return re.search(ready, self.log()) is not None

    def wait_vdp_ready(self, timeout):
        """Wait until VDP is usable; False after timeout (always so with no bridge TLV)."""
        deadline = time.monotonic() + timeout
        while not self.vdp_ready():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    def vdp(
        self, mode, mgrid, typeid, typeidver, uuid, hints="none", filters=(), wait=True, timeout=15
    ):
        """Send one VDP request (mode: assoc|preassoc|preassoc-rr|deassoc; hints: none|to|from;
        filters: vdptool strings VID, VID-MAC, VID--GROUP or VID-MAC-GROUP); return a VdpResult.
        """
        argv = self.vdptool_argv(mode, mgrid, typeid, typeidver, uuid, hints, filters, wait)
        seen = len(self.bridge_statuses())
        proc = run(argv, timeout=timeout, check=False)
        result = parse_vdptool(proc.stdout + proc.stderr, waited=wait, returncode=proc.returncode)
        statuses = self.bridge_statuses()[seen:]
        result.status = statuses[-1] if statuses else None
        if result.ok and mode != "deassoc" and result.fields.get("mode") == "deassoc":
            # vdptool prints a refused VSI as de-associated; the status is only in lldpad's log.
            result.ok = False
            result.error = (
                f"refused by the bridge, status {result.status:#04x}"
                if result.status is not None
                else "refused by the bridge"
            )
        return result

    def vdptool_argv(
        self, mode, mgrid, typeid, typeidver, uuid, hints="none", filters=(), wait=True
    ):
        """The command line (run in the server's namespaces) of one vdptool request."""
        argv = ["vdptool", "-i", self.ifname, "-T"] + (["-W"] if wait else []) + ["-V", "assoc"]
        for key, value in (
            ("mode", mode),
            ("mgrid2", mgrid),
            ("typeid", typeid),
            ("typeidver", typeidver),
            ("uuid", uuid),
            ("hints", hints),
        ):
            argv += ["-c", f"{key}={value}"]
        for vsi_filter in filters:
            argv += ["-c", f"filter={vsi_filter}"]
        return in_host(self.server) + argv

    def bridge_statuses(self):
        """The status octet of every bridge response lldpad logged, oldest first (bits: 0x20
        KEEP, 0x10 HARD, low nibble the VDP error code; the response bit is not logged)."""
        return [int(m.group(1), 16) for m in _BRIDGE_STATUS.finditer(self.log())]

    def release_vsis(self):
        """De-associates every VSI the station holds, as lldpad does for libvirt when its VMs
        stop: the bridge refuses a VSI ID elsewhere while a station keeps it alive. Best
        effort: a station whose lldpad or link is gone leaves its VSIs to time out."""
        try:
            for vsi in self.query(timeout=3):
                if vsi.get("mode") != "deassoc" and {"mgrid2", "typeid", "typeidver"} <= set(vsi):
                    self.vdp(
                        "deassoc",
                        vsi["mgrid2"],
                        vsi["typeid"],
                        vsi["typeidver"],
                        vsi["uuid"],
                        filters=[vsi["filter"]] if vsi.get("filter") else (),
                        timeout=3,
                    )
        except (CommandError, subprocess.TimeoutExpired):
            pass

    def query(self, timeout=10, uuid=None):
        """The station's VSIs as dicts (mode, mgrid2, typeid, typeidver, uuid, hints, filter);
        with uuid only that VSI's. lldpad answers in one 4 KiB message (MAX_CLIF_MSGBUF): a
        station holding more than about 20 VSIs answers the query of all of them with nothing."""
        argv = ["vdptool", "-i", self.ifname, "-t", "-V", "assoc", "-c"]
        if uuid is not None:
            argv.append(f"uuid={uuid}")
        return parse_vsi_list(run(in_host(self.server) + argv, timeout=timeout).stdout)


def _flag(value):
    return "true" if value else "false"
