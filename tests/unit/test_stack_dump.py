"""The SIGUSR1 stack dump (app/stack_dump.py) in a process of its own: a burst of signals while
threads run deep stacks ends in dumps, never in a crash."""

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BUSY = textwrap.dedent(
    """
    import logging, os, signal, sys, threading, time
    from app import stack_dump

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    stack_dump.install(signal.SIGUSR1)
    stop = threading.Event()

    def deep(n):  # frames made and freed all the time, as under load
        return deep(n - 1) if n else sum(range(100))

    def work():
        while not stop.is_set():
            deep(50)

    threads = [threading.Thread(target=work, name=f"busy-{i}") for i in range(3)]
    for thread in threads:
        thread.start()
    for _ in range(100):
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.002)
    time.sleep(0.5)
    stop.set()
    for thread in threads:
        thread.join()
    print("survived")
    """
)


def test_a_burst_of_signals_under_load_dumps_every_thread_and_crashes_nothing():
    done = subprocess.run(
        [sys.executable, "-c", BUSY], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "survived"
    dumps = done.stderr.count("stack dump: ")
    assert 1 <= dumps <= 100  # signals that come during a dump share the next one
    assert "busy-2 (most recent call first):" in done.stderr
    assert ", in deep" in done.stderr and "stack-dump (most recent call first):" in done.stderr
