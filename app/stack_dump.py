"""`kill -USR1 PID`: every thread's stack in the log, safe under any load.

faulthandler's dump runs inside the signal handler and walks the other threads' frames
without the GIL while they run: under load it crashed the controller (a segmentation fault in
the middle of a dump). Here the signal only makes Python's C-level handler write the signal's
number to a pipe (signal.set_wakeup_fd: one write(2), async-signal-safe); a thread of its own
reads the pipe and formats the stacks with the GIL held, as any Python code does
(sys._current_frames). Signals that arrive during a dump are served by one dump after it: a
burst of them costs one dump each time the thread comes round, never a queue.
"""

import logging
import os
import signal
import sys
import threading
import traceback

LOG = logging.getLogger("evb_nms.stack_dump")


def install(signum: int = signal.SIGUSR1) -> threading.Thread:
    """From the main thread (Python's rule for signal handlers), once, before the signal may
    come. The process's wakeup fd is ours from then on: nothing else in it may set one."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # a full pipe drops the byte: a dump is pending anyway
    signal.signal(signum, _nothing)  # a Python handler, so the C handler writes the fd
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    thread = threading.Thread(target=_serve, args=(read_fd, signum), name="stack-dump", daemon=True)
    thread.start()
    return thread


def _nothing(signum, frame) -> None:
    """The dump is the reader thread's work, not the main thread's."""


def _serve(read_fd: int, signum: int) -> None:
    # Every signal with a Python handler (SIGHUP, SIGTERM, ...) writes its number here too.
    while data := os.read(read_fd, 4096):
        if signum in data:
            try:
                dump()
            except Exception:  # a dump must never end the thread that serves the next one
                LOG.exception("stack dump failed")


def dump() -> None:
    """One log record: each thread's name and stack, most recent call first (as faulthandler
    writes them)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    frames = sys._current_frames()
    parts = []
    for ident, frame in frames.items():
        lines = traceback.format_stack(frame)[::-1]
        parts.append(f"Thread 0x{ident:x} {names.get(ident, '?')} (most recent call first):")
        parts += [line.rstrip("\n") for line in lines]
    del frames  # frames hold their threads' locals alive
    record = LOG.makeRecord(
        LOG.name, logging.WARNING, __file__, 0, "stack dump: %d threads", (len(names),), None,
        sinfo="\n".join(parts),
    )  # fmt: skip
    LOG.handle(record)
