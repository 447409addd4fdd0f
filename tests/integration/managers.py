"""The reference VM manager (evb-vcenter, app/vcenter/reference.py) as the bed tests run it: a
child process serving a policy file's profiles, maybe slow, maybe asking for the controller's
credentials; and what it was told."""

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from topologies.controller_process import wait_for_listen

REPO = Path(__file__).resolve().parents[2]


def text_file(workdir: Path, name: str, value: str) -> str:
    """``value`` and a newline in the file ``name`` of ``workdir``; its path."""
    path = workdir / name
    path.write_text(value + "\n")
    return str(path)


def start_manager(workdir: Path, port: int, profiles: str, *, delay=0.0, token=None, secret=None):
    """evb-vcenter on 127.0.0.1:``port`` serving ``profiles`` (a policy file's text), each
    answer held ``delay`` seconds; with ``token``/``secret`` it requires the controller's."""
    path = workdir / f"manager-{port}.yaml"
    path.write_text(profiles)
    argv = [sys.executable, "-m", "app.vcenter.reference", "--listen", f"127.0.0.1:{port}"]
    argv += ["--profiles", str(path), "--delay", str(delay)]
    if token is not None:
        argv += ["--token-file", text_file(workdir, f"token-{port}", token)]
    if secret is not None:
        argv += ["--notification-secret-file", text_file(workdir, f"secret-{port}", secret)]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_listen("127.0.0.1", port, 10, proc)
    return proc


def stop_manager(proc) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def told(port: int, uuid: str, token: str | None = None, kind: str = "vsi.associated") -> bool:
    """Whether the manager on ``port`` stored a notification of ``kind`` about ``uuid``."""
    url = f"http://127.0.0.1:{port}/v1/notifications?kind={kind}"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as answer:
        return uuid in json.dumps(json.loads(answer.read()))
