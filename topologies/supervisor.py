"""Restarts a controller that exits with status 3: a deposed leader (docs/ha.md) starts again as
a follower, as systemd's RestartForceExitStatus=3 would have it. Any other exit is reported and
left alone: a crash or a kill is for the operator (or the test) to look at."""

import threading

from app.ha import EXIT_DEPOSED as DEPOSED
from topologies.controller_process import ControllerProcess

POLL_S = 0.2


class Supervisor:
    """Watches `members` (name -> ControllerProcess) from a thread of its own; `report` gets a
    line for every exit it sees and every restart."""

    def __init__(self, members: dict[str, ControllerProcess], report=print):
        self.members, self.report = members, report
        self.restarts: dict[str, int] = dict.fromkeys(members, 0)
        self._seen: set[int] = set()  # PIDs whose exit was handled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="supervisor", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (a stop of the controllers afterwards restarts nothing)."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.check()

    def check(self) -> None:
        """One look at every member: an exit not seen before is reported, a deposed one
        started again."""
        for name, member in self.members.items():
            proc = member.proc
            if proc is None or proc.poll() is None or proc.pid in self._seen:
                continue
            self._seen.add(proc.pid)
            if proc.returncode != DEPOSED:
                self.report(f"{name} exited with status {proc.returncode}")
                continue
            self.report(f"{name} deposed (exit status 3): starting it again as a follower")
            try:
                member.start()
            except (RuntimeError, TimeoutError) as err:
                self.report(f"{name} did not start again: {err}")
                continue
            self.restarts[name] += 1
            self.report(f"{name} started again, PID {member.proc.pid}")
