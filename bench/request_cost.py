"""Benchmark: what one VDP Associate costs the control plane, in process, as VMs accumulate.

Drives `ControlPlane.handle_frame` + `flows_confirmed` the way the os-ken shim does, on a fabric
of E edges (P server ports each) below one aggregation switch, with a real intent store (SQLite,
synchronous=FULL, as the controller runs it; or, with --store etcd, an etcd cluster such as
scripts/etcd-cluster.sh starts, under a key prefix of its own removed at the end) and the
shipped policies. Every Associate is a new
VM; the time of each is measured with the VMs held so far. If the control plane's work grew
with the VMs held, the later checkpoints would be slower: they should match the first.
Prints JSON: per checkpoint of VMs held, the median / p99 milliseconds of the Associates around
it, and the flow-mods and meter-mods per Associate.

    .venv/bin/python -m bench.request_cost [--vms 10000] [--edges 8] [--ports 32]
        [--store etcd --etcd-endpoints http://127.0.0.1:2379,...]
"""

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from uuid import UUID

from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.codec.builders import build_ecp_ack, build_vdp_request
from app.codec.ecp import ETHERTYPE_ECP, EcpOp
from app.codec.ethernet import NEAREST_BRIDGE
from app.codec.evb_tlv import EvbMode, EvbTlv, RrStat
from app.codec.frame import LldpFrame, encode_evb_frame
from app.codec.lldp import ChassisId, LldpPdu, PortId
from app.codec.vdp import FilterEntry, FilterFormat, ManagerIdTlv, VdpTlvType, Vdpdu, VsiId, VsiTlv
from app.config import Settings, parse_endpoints
from app.control_plane import ControlPlane
from app.events import EventLog
from app.fabric import links
from app.fabric.ports import Port, PortRef, port_role
from app.policy.loader import load_policies
from app.store.base import IntentStorage
from app.store.opening import open_stores
from app.vdp.authorizer import Authorizer
from app.vdp.bridge import VdpBridge
from bench.stats import percentile

POLICIES = Path(__file__).resolve().parent.parent / "policies"
AGG = 0x100
UPLINK = 1000
MGR = ManagerIdTlv.from_name("mgr1")
ECP = ETHERTYPE_ECP.to_bytes(2, "big")
STATION = EvbTlv(
    mode=EvbMode.STATION, rrreq=False, rrstat=RrStat.UNKNOWN, r=3, rte=14, rwd=20, rka=24
)


def _port(number: int, name: str, mac: str) -> Port:
    return Port(number, name, mac, port_role(name))


class Fabric:
    """The control plane and what the shim would do around it, for one process."""

    def __init__(self, edges: int, ports: int, store: IntentStorage):
        self.store = store
        policies = load_policies(POLICIES)
        self.plane = ControlPlane(
            EventLog(capacity=1000), VdpBridge(Authorizer(lambda: policies)), save=self.store.save
        )
        self.ports: dict[int, dict[int, Port]] = {}
        agg_ports = {}
        for e in range(1, edges + 1):
            switch = {
                p: _port(p, f"e{e}-s{p}", f"02:00:{e >> 8:02x}:{e & 255:02x}:00:{p:02x}")
                for p in range(1, ports + 1)
            }
            switch[UPLINK] = _port(UPLINK, f"e{e}-up1", f"02:00:{e >> 8:02x}:{e & 255:02x}:ff:01")
            self.ports[e] = switch
            agg_ports[e] = _port(e, f"agg1-dn{e}", f"02:ff:00:{e >> 8:02x}:{e & 255:02x}:01")
        self.ports[AGG] = agg_ports
        self.flow_mods = self.meter_mods = 0
        for dpid, switch in self.ports.items():
            self.run(self.plane.switch_ports(dpid, f"sw{dpid}", switch, 0.0))
        for e in range(1, edges + 1):  # the link probes cross edge -> agg
            frame = links.build_probe(PortRef(e, UPLINK), self.ports[e][UPLINK].hw_addr)
            self.run(self.plane.handle_frame(AGG, agg_ports[e], frame, 0.0))
        self.sequence: dict[PortRef, int] = {}
        for e in range(1, edges + 1):
            for p in range(1, ports + 1):
                self.hello(PortRef(e, p))

    def run(self, reaction) -> None:
        for batch in reaction.batches:
            self.flow_mods += sum(isinstance(m, parser.OFPFlowMod) for m in batch.msgs)
            self.meter_mods += sum(isinstance(m, parser.OFPMeterMod) for m in batch.msgs)
        for dpid, port_no, frame in reaction.packets:  # the station acknowledges our PDUs
            if frame[12:14] == ECP and frame[14] >> 2 & 3 == EcpOp.REQUEST:
                ack = build_ecp_ack(
                    self.station_mac(PortRef(dpid, port_no)), int.from_bytes(frame[16:18], "big")
                )
                self.run(
                    self.plane.handle_frame(dpid, self.ports[dpid][port_no], ack, time.monotonic())
                )
        if reaction.ticket is not None:  # every barrier answers at once
            self.run(self.plane.flows_confirmed(reaction.ticket, {}, time.monotonic()))

    def hello(self, ref: PortRef) -> None:
        lldp = LldpFrame(
            self.station_mac(ref),
            LldpPdu(ChassisId(4, bytes(6)), PortId(3, bytes(6)), 120, (STATION,)),
            dst=NEAREST_BRIDGE,
        )
        self.run(
            self.plane.handle_frame(
                ref.dpid, self.ports[ref.dpid][ref.port_no], encode_evb_frame(lldp), 0.0
            )
        )

    @staticmethod
    def station_mac(ref: PortRef) -> str:
        return f"02:aa:{ref.dpid >> 8:02x}:{ref.dpid & 255:02x}:00:{ref.port_no:02x}"

    def associate(self, ref: PortRef, n: int) -> None:
        self.sequence[ref] = self.sequence.get(ref, 0) % 0xFFFF + 1
        vsi = VsiTlv(
            VdpTlvType.ASSOCIATE,
            0,
            5,
            4,
            VsiId.from_uuid(str(UUID(int=n + 1))),
            FilterFormat.MAC_VID,
            (FilterEntry(0, mac=f"52:{n.to_bytes(5, 'big').hex(':')}"),),
        )
        frame = build_vdp_request(self.station_mac(ref), self.sequence[ref], Vdpdu((MGR, vsi)))
        self.run(
            self.plane.handle_frame(
                ref.dpid, self.ports[ref.dpid][ref.port_no], frame, time.monotonic()
            )
        )


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=10000)
    parser.add_argument("--edges", type=int, default=8)
    parser.add_argument("--ports", type=int, default=32)
    parser.add_argument("--store", choices=("sqlite", "etcd"), default="sqlite")
    parser.add_argument(
        "--etcd-endpoints",
        type=parse_endpoints,
        default=Settings.etcd_endpoints,
        metavar="URL,...",
        help="with --store etcd (default %(default)s)",
    )
    args = parser.parse_args(argv)
    checkpoints = sorted({c for c in (100, 1000, 10000, 50000, 100000, args.vms) if c <= args.vms})
    window = 50
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            store=args.store,
            db_path=str(Path(tmp) / "evb.db"),
            etcd_endpoints=args.etcd_endpoints,
            etcd_prefix=f"/evb-bench/{uuid.uuid4().hex}",
        ).validated()
        store, intent = open_stores(settings)
        store.close()  # only the intent is saved per Associate
        fabric = Fabric(args.edges, args.ports, intent)
        ports = [PortRef(e, p) for e in range(1, args.edges + 1) for p in range(1, args.ports + 1)]
        times, mods = [], []
        started = time.perf_counter()
        for n in range(args.vms):
            before = fabric.flow_mods + fabric.meter_mods
            t0 = time.perf_counter()
            fabric.associate(ports[n % len(ports)], n)
            times.append(time.perf_counter() - t0)
            mods.append(fabric.flow_mods + fabric.meter_mods - before)
        total = time.perf_counter() - started
        held = len(fabric.plane.bridge.bindings())
        intent.close()
        if args.store == "etcd":
            _remove_prefix(settings)
    result = {
        "bench": "request_cost",
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "store": args.store,
        **({"etcd_members": len(args.etcd_endpoints)} if args.store == "etcd" else {}),
        "edges": args.edges,
        "ports": args.ports,
        "vms": args.vms,
        "granted": held,
        "associates_per_s": round(args.vms / total, 1),
        "checkpoints": {
            str(c): {
                "median_ms": round(statistics.median(times[max(0, c - window) : c]) * 1e3, 3),
                "p99_ms": round(percentile(times[max(0, c - window) : c], 0.99) * 1e3, 3),
                "mods_per_associate": statistics.median(mods[max(0, c - window) : c]),
            }
            for c in checkpoints
        },
    }
    print(json.dumps(result, indent=2))


def _remove_prefix(settings: Settings) -> None:
    from app.store.etcd_kv import EtcdKv, delete, prefix_end

    kv = EtcdKv(settings.etcd_endpoints, settings.etcd_timeout)
    kv.txn([delete(settings.etcd_prefix + "/", prefix_end(settings.etcd_prefix + "/"))])
    kv.close()


if __name__ == "__main__":
    main()
