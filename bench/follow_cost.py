"""Benchmark: what following the store costs a controller (--store etcd; docs/ha.md, following
the store), on a real etcd such as scripts/etcd-cluster.sh starts (a key prefix of its own,
removed at the end).

A writer process stores what a leader stores: the intent of --vsis VSIs in saves of --batch (a
worker batch), as many VM registrations in groups of --batch, as many events (written behind).
This process follows (app/controller/store_following.py: the registry, the fault monitor, the
event index, the intent mirror) and waits until it caught up with each kind. Its CPU time over
each (the watch's stream, JSON, base64 and the tables; nothing else runs here meanwhile) per
change is what following costs. Then the intent mirror's memory per VSI (tracemalloc, with the
values decoded as dicts for comparison) and the takeover's read of it (`intent()`) against a
read of etcd (EtcdIntentStore.load). Prints JSON.

    .venv/bin/python -m bench.follow_cost --etcd-endpoints http://127.0.0.1:2379,...
        [--vsis 10000] [--batch 500]
"""

import argparse
import json
import multiprocessing
import os
import platform
import time
import tracemalloc
import uuid
from types import SimpleNamespace
from uuid import UUID

from app.codec.vdp import (
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpTlvType,
    Vdpdu,
    VsiId,
    VsiTlv,
    encode_vdpdu,
)
from app.config import Settings, parse_endpoints
from app.controller.store_following import follow_store
from app.events import Event, EventLog
from app.faults.monitor import FaultMonitor
from app.policy.loader import load_policies
from app.registry.registry import Registry
from app.registry.vms import VmRecord
from app.store.base import IntentChanges, RegistryWrite, compact_json, vsi_key
from app.store.etcd_intent import EtcdIntentStore
from app.store.etcd_kv import EtcdKv
from app.store.etcd_store import EtcdStore
from app.store.intent_mirror import IntentMirror
from bench.group_registration import POLICIES, Service
from bench.request_cost import _remove_prefix

MGR = ManagerIdTlv.from_name("mgr1")
CATCH_UP = 600.0  # seconds at most


def vsi_records(n: int) -> tuple[str, list[dict]]:
    """One VSI's key and records as VdpBridge.export_vsi writes them (an Associate of type 5/4)."""
    vsi = VsiTlv(
        VdpTlvType.ASSOCIATE,
        0,
        5,
        4,
        VsiId.from_uuid(str(UUID(int=n + 1))),
        FilterFormat.MAC_VID,
        (FilterEntry(100, mac=f"52:{n.to_bytes(5, 'big').hex(':')}"),),
    )
    octets = encode_vdpdu(Vdpdu((MGR, vsi))).hex()
    record = {
        "vsi_id": [int(vsi.vsi_id.format), vsi.vsi_id.value.hex()],
        "port": [1 + n % 8, 1 + n % 32],
        "handle": n + 1,
        "state": "associated",
        "suspended": False,
        "request": octets,
        "response": octets,
        "entries": [[f"52:{n.to_bytes(5, 'big').hex(':')}", 100]],
        "timeout": 1234.5,
        "standby": False,
        "activated": True,
        "superseded": False,
    }
    return vsi_key(*record["vsi_id"]), [record]


def vm(n: int) -> dict:
    mac = f"52:{(n + 1).to_bytes(5, 'big').hex(':')}"
    return VmRecord(str(UUID(int=n + 1)), "blue", 5, 4, (mac,), None, None, 1.0, 1.0).document()


def write(endpoints, prefix: str, kind: str, count: int, batch: int) -> None:
    """The writer process: `count` changes of `kind`."""
    kv = EtcdKv(endpoints, 30.0)
    if kind == "intent":
        intent = EtcdIntentStore(kv, prefix)
        for start in range(0, count, batch):
            intent.save(IntentChanges(dict(vsi_records(n) for n in range(start, start + batch))))
    elif kind == "vms":
        store = EtcdStore(kv, prefix)
        for start in range(0, count, batch):
            store.write_registry(
                RegistryWrite(vms=tuple(vm(n) for n in range(start, start + batch)))
            )
        store.close()
    else:
        store = EtcdStore(kv, prefix)
        for n in range(count):
            store.append_event(
                Event("vsi.associated", switch="edge1", port="edge1-s1", detail={"vsi": f"v{n}"})
            )
        store.close()  # writes what waits


def follower(settings: Settings) -> SimpleNamespace:
    store = EtcdStore(EtcdKv(settings.etcd_endpoints, 30.0), settings.etcd_prefix)
    app = SimpleNamespace(
        settings=settings,
        store=store,
        registry=Registry(load_policies(POLICIES), store, Service()),
        monitor=FaultMonitor(EventLog(), store, lambda where: []),
    )
    app.following = follow_store(app)
    return app


def follow(app, endpoints, prefix: str, kind: str, count: int, batch: int) -> dict:
    writer = multiprocessing.get_context("spawn").Process(
        target=write, args=(endpoints, prefix, kind, count, batch)
    )
    cpu, wall = time.process_time(), time.perf_counter()
    writer.start()
    writer.join()
    written = time.perf_counter()
    assert writer.exitcode == 0, f"the writer of {kind} failed"
    assert app.following.mirror.wait_for(app.store._kv.revision(), CATCH_UP), "not caught up"
    cpu = time.process_time() - cpu
    return {
        "changes": count,
        "follower_cpu_us_per_change": round(cpu / count * 1e6, 1),
        "behind_writer_ms": round((time.perf_counter() - written) * 1e3, 1),
        "writer_s": round(written - wall, 2),
    }


def mirror_memory(count: int) -> dict:
    """Bytes per VSI held by a mirror of `count` VSIs, and by the same records as dicts."""
    tracemalloc.start()
    mirror = IntentMirror()
    mirror.apply(
        ("vsis/" + key, compact_json(records).encode())
        for key, records in map(vsi_records, range(count))
    )
    held = tracemalloc.get_traced_memory()[0]
    decoded = mirror.intent()
    as_dicts = tracemalloc.get_traced_memory()[0] - held
    tracemalloc.stop()
    del decoded
    return {
        "mirror_bytes_per_vsi": round(held / count),
        "decoded_bytes_per_vsi": round(as_dicts / count),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--etcd-endpoints", type=parse_endpoints, required=True, metavar="URL,...")
    parser.add_argument("--vsis", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args(argv)
    settings = Settings(
        store="etcd",
        etcd_endpoints=args.etcd_endpoints,
        etcd_prefix=f"/evb-bench/{uuid.uuid4().hex}",
    ).validated()
    app = follower(settings)
    try:
        following = {
            kind: follow(
                app, args.etcd_endpoints, settings.etcd_prefix, kind, args.vsis, args.batch
            )
            for kind in ("intent", "vms", "events")
        }
        started = time.perf_counter()
        intent = app.following.mirror.intent()
        from_mirror = time.perf_counter() - started
        reader = EtcdIntentStore(EtcdKv(args.etcd_endpoints, 30.0), settings.etcd_prefix)
        started = time.perf_counter()
        loaded = reader.load()
        from_etcd = time.perf_counter() - started
        reader.close()
        assert intent == loaded and len(app.registry.state.vms) == args.vsis
        assert app.following.dropped == 0 and app.following.feed.failed == 0
    finally:
        app.following.stop()
        app.monitor.close()
        app.store.close()
        _remove_prefix(settings)
    print(
        json.dumps(
            {
                "bench": "follow_cost",
                "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                "etcd_members": len(args.etcd_endpoints),
                "vsis": args.vsis,
                "batch": args.batch,
                "following": following,
                "takeover_intent_ms": {
                    "mirror": round(from_mirror * 1e3, 1),
                    "etcd_load": round(from_etcd * 1e3, 1),
                },
                **mirror_memory(args.vsis),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
