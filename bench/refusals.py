"""Benchmark: what a station's refused VDP requests cost the controller, in process.

A station sends VDPDUs of N Associate TLVs, each of an unknown VSI type, so every TLV is
refused. Drives `ControlPlane.handle_frame` as bench/request_cost.py does, with the event path of
the controller: the event log writing its lines to a log file and the SQLite store as a sink (its
writer thread included). Prints JSON: milliseconds per frame (median, p99), frames/s, the
event rows and log lines the refusals cost.

    .venv/bin/python -m bench.refusals [--frames 500] [--tlvs 40] [--tell-all]

``--tell-all`` tells every refusal as an event, as the controller did before refusal events were
summed up per port (app/refusal_events.py): the "before" of docs/security.md.
"""

import argparse
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from uuid import UUID

from app.codec.builders import build_vdp_request
from app.codec.vdp import FilterEntry, FilterFormat, VdpTlvType, Vdpdu, VsiId, VsiTlv
from app.fabric.ports import PortRef
from app.refusal_events import RefusalSummary
from app.store.intent_store import IntentStore
from app.store.sqlite_store import SqliteStore
from bench.request_cost import MGR, Fabric
from bench.stats import percentile

UNKNOWN_TYPE = 999


def refused_vdpdu(first: int, count: int) -> Vdpdu:
    """``count`` Associates of an unknown type, with distinct VSI IDs and MACs from ``first``."""
    return Vdpdu(
        (
            MGR,
            *(
                VsiTlv(
                    VdpTlvType.ASSOCIATE,
                    0,
                    UNKNOWN_TYPE,
                    1,
                    VsiId.from_uuid(str(UUID(int=n + 1))),
                    FilterFormat.MAC_VID,
                    (FilterEntry(0, mac=f"52:{n.to_bytes(5, 'big').hex(':')}"),),
                )
                for n in range(first, first + count)
            ),
        )
    )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=500)
    parser.add_argument("--tlvs", type=int, default=40, help="refused TLVs per frame")
    parser.add_argument("--tell-all", action="store_true", help="one event per refusal")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log = logging.getLogger("evb_nms")
        handler = logging.FileHandler(Path(tmp) / "evb-nms.log")
        log.addHandler(handler)
        level, log.level = log.level, logging.INFO
        store = SqliteStore(str(Path(tmp) / "evb-nms.db"))
        fabric = Fabric(1, 2, IntentStore(Path(tmp) / "intent.db"))
        fabric.plane.event_log.add_sink(store.append_event)
        if args.tell_all:
            fabric.plane.refusals = RefusalSummary(in_full=args.frames * args.tlvs)
        ref = PortRef(1, 1)
        port = fabric.ports[1][1]
        rows_before = len(store.events(limit=1_000_000))
        lines_before = handler.stream.tell()
        times = []
        started = time.perf_counter()
        for i in range(args.frames):
            frame = build_vdp_request(
                fabric.station_mac(ref), i % 0xFFFF + 1, refused_vdpdu(i * args.tlvs, args.tlvs)
            )
            t0 = time.perf_counter()
            fabric.run(fabric.plane.handle_frame(1, port, frame, time.monotonic()))
            times.append(time.perf_counter() - t0)
        store.flush_events()
        total = time.perf_counter() - started
        fabric.run(fabric.plane.tick(time.monotonic() + 3600))  # the last interval's summaries
        store.flush_events()
        rows = [r for r in store.events(limit=1_000_000)[rows_before:] if r["kind"] != "link.down"]
        handler.flush()
        log_bytes = handler.stream.tell() - lines_before
        store.close()
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()
    refused = args.frames * args.tlvs
    result = {
        "bench": "refusals",
        "tell_all": args.tell_all,
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "frames": args.frames,
        "tlvs_per_frame": args.tlvs,
        "refused_tlvs": refused,
        "frame_median_ms": round(statistics.median(times) * 1e3, 3),
        "frame_p99_ms": round(percentile(times, 0.99) * 1e3, 3),
        "frames_per_s": round(args.frames / total, 1),
        "event_rows": len(rows),
        "event_rows_by_kind": {
            kind: sum(row["kind"] == kind for row in rows)
            for kind in sorted({r["kind"] for r in rows})
        },
        "log_bytes_per_refused_tlv": round(log_bytes / refused, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
