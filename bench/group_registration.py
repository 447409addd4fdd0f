"""Benchmark: what one group registration (draft 5.3, ``POST /v1/groups``) costs the registry,
as the group grows. The registry holds its lock for the whole call, so every other change
(profile pushes, VM registrations) waits this long.

Each size registers one profile and that many VMs (one MAC each) in one group on a fresh
registry with a real SQLite store. The work should grow linearly: ``us_per_vm`` should stay flat
across sizes (it grew with the size while duplicates were searched VM by VM).
Prints JSON: per group size, the seconds and the microseconds per VM.

    .venv/bin/python -m bench.group_registration [--sizes 1000 4000 19000]
"""

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from app.policy.loader import load_policies
from app.registry import Registry
from app.store.sqlite_store import SqliteStore

POLICIES = Path(__file__).resolve().parent.parent / "policies"


class Service:
    """What the registry hands its changes to: nothing to apply here."""

    def apply_profiles(self, database):
        return {"updated": 0, "deassociated": []}

    def deassociate(self, vsi_id, reason):
        return False


def group(size: int) -> dict:
    profile = {
        "type_id": 9,
        "version": 1,
        "name": "bench",
        "tenant": "blue",
        "vlans": [110],
        "manager_ids": ["mgr1"],
    }
    vms = [
        {
            "vsi_id": f"b0000000-0000-0000-0000-{n:012x}",
            "macs": [f"52:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"],
        }
        for n in range(size)
    ]
    return {"group": "bench", "profiles": [profile], "vms": vms}


def register(size: int, directory: Path) -> float:
    store = SqliteStore(str(directory / f"group-{size}.db"))
    try:
        registry = Registry(load_policies(POLICIES), store, Service())  # type: ignore[arg-type]
        body = group(size)
        start = time.perf_counter()
        registry.register_group(body, None)
        return time.perf_counter() - start
    finally:
        store.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000])
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            seconds = register(size, Path(tmp))
            results.append(
                {
                    "vms": size,
                    "seconds": round(seconds, 3),
                    "us_per_vm": round(1e6 * seconds / size),
                }
            )
    print(
        json.dumps(
            {
                "benchmark": "group_registration",
                "python": platform.python_version(),
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
