"""Benchmark: what one group registration (draft 5.3, ``POST /v1/groups``) costs the registry,
as the group grows. The registry holds its lock for the whole call, so every other change
(profile pushes, VM registrations) waits this long.

Each size registers one profile and that many VMs (one MAC each) in one group on a fresh
registry with a real SQLite store. The work should grow linearly: ``us_per_vm`` should stay flat
across sizes (it grew with the size while duplicates were searched VM by VM).
Prints JSON: per group size, the seconds and the microseconds per VM.

``--put``: what one ``PUT /v1/vms/{id}`` costs with that many VMs registered (issue 9: it
should not grow with them). Per size, the median of ``--repeat`` registrations of a new VM
plus the VDP look-up of its MAC that follows (the MAC index the authorizer reads).

    .venv/bin/python -m bench.group_registration [--sizes 1000 4000 19000]
    .venv/bin/python -m bench.group_registration --put [--sizes 1000 10000 50000]
"""

import argparse
import json
import platform
import statistics
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

    def association(self, vsi_id):
        return None  # the bridge holds nothing

    def lookup(self, mac):
        return None


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


def put_one(size: int, repeat: int, directory: Path) -> dict:
    """With ``size`` VMs registered (one group), ``repeat`` single PUTs of new VMs, each with
    the look-up of its MAC that the next VDP request makes; medians in microseconds."""
    store = SqliteStore(str(directory / f"put-{size}.db"))
    try:
        registry = Registry(load_policies(POLICIES), store, Service())  # type: ignore[arg-type]
        registry.register_group(group(size), None)
        puts, lookups = [], []
        for n in range(size, size + repeat):
            mac = f"52:00:00:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"
            body = {"type_id": 9, "type_version": 1, "macs": [mac]}
            start = time.perf_counter()
            registry.put_vm(f"b0000000-0000-0000-0000-{n:012x}", body, None)
            middle = time.perf_counter()
            assert registry.vm_by_mac(mac) is not None
            puts.append(middle - start)
            lookups.append(time.perf_counter() - middle)
        return {
            "registered": size,
            "put_us": round(1e6 * statistics.median(puts)),
            "first_mac_lookup_us": round(1e6 * statistics.median(lookups)),
        }
    finally:
        store.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+")
    parser.add_argument("--put", action="store_true", help="one PUT with --sizes VMs held")
    parser.add_argument("--repeat", type=int, default=20, help="PUTs per size (--put)")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.put:
            for size in args.sizes or [1000, 10000, 50000]:
                results.append(put_one(size, args.repeat, Path(tmp)))
        for size in [] if args.put else args.sizes or [1000, 2000, 4000]:
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
                "benchmark": "group_registration" + (" --put" if args.put else ""),
                "python": platform.python_version(),
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
