"""Runs a benchmark's coroutine so that Ctrl-C or SIGTERM cancels it: its cleanup (controllers
stopped, working directories removed) still happens."""

import asyncio
import signal
import sys


async def _until_signal(main_async, args):
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    return await main_async(args)


def run(main_async, args, name: str):
    """main_async(args)'s result; None when a signal cancelled it (said on stderr)."""
    try:
        return asyncio.run(_until_signal(main_async, args))
    except asyncio.CancelledError:
        print(f"{name}: interrupted", file=sys.stderr)
        return None
