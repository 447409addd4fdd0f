"""Benchmark: time from a station's Associate request to the bridge's response, flows included.

Runs the controller and the default data center, lldpad on srv11, and N Associate /
De-Associate rounds with vdptool. Both frames are timestamped by tcpdump on the edge port
(edge1-s1), so the figure is what the station sees on the wire: decode, authorize, plan, the
flow batch and its barrier on every switch, then the response. Prints JSON.

    .venv/bin/python -m bench.associate [--rounds 100]
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from app.codec.errors import CodecError
from app.codec.frame import VdpFrame, decode_evb_frame
from app.codec.vdp import VdpTlvType
from bench.stats import percentile
from topologies.capture import Capture
from topologies.controller_process import ControllerProcess, free_port
from topologies.datacenter import datacenter


def latencies(timed_frames, station_mac):
    """Seconds from each station Associate request to the bridge's response for that VSI."""
    asked, result = {}, []
    for ts, data in timed_frames:
        try:
            frame = decode_evb_frame(data)
        except CodecError:
            continue
        if not isinstance(frame, VdpFrame):
            continue
        for _, tlv in frame.vdpdu.vsis_with_manager():
            if tlv.mode is not VdpTlvType.ASSOCIATE:
                continue
            if frame.src == station_mac and not tlv.is_response:
                asked.setdefault(tlv.vsi_id, ts)  # the first transmission, not a retransmission
            elif frame.src != station_mac and tlv.is_response and tlv.vsi_id in asked:
                result.append(ts - asked.pop(tlv.vsi_id))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-associate-"))
    with (
        ControllerProcess(work, of_port=free_port(), rest_port=free_port()) as ctl,
        datacenter(controller_port=ctl.of_port) as dc,
    ):
        station = dc.add_station("srv11")
        if not station.wait_vdp_ready(15):
            sys.exit("station never enabled VDP")
        station_mac = dc.server("srv11").defaultIntf().MAC()
        refused = 0
        with Capture("edge1-s1", "ether proto 0x8940", work / "edge1-s1.pcap") as cap:
            for n in range(1, args.rounds + 1):
                uuid = f"b0b0b0b0-0000-0000-0000-{n:012x}"
                mac = f"52:54:00:10:{n // 256:02x}:{n % 256:02x}"
                result = station.vdp("assoc", "mgr1", 5, 4, uuid, filters=[f"0-{mac}"])
                refused += not result.ok
                station.vdp("deassoc", "mgr1", 5, 4, uuid, filters=[f"100-{mac}"])
            time.sleep(0.5)
            timed = cap.timed_frames()
        ms = sorted(1000 * t for t in latencies(timed, station_mac))
    print(
        json.dumps(
            {
                "benchmark": "associate_response_latency",
                "rounds": args.rounds,
                "measured": len(ms),
                "refused": refused,
                "median_ms": round(statistics.median(ms), 2) if ms else None,
                "p95_ms": round(percentile(ms, 0.95), 2) if ms else None,
                "max_ms": round(ms[-1], 2) if ms else None,
                "min_ms": round(ms[0], 2) if ms else None,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
