"""The demo data center's switches as fakes: edge1 and edge2 below agg1 (dpids and port numbers
as in topologies/datacenter.py), optionally with a direct edge1-edge2 trunk."""

from os_ken.ofproto import ofproto_v1_3 as ofp

from tests.fakes.fake_switch import FakeFabric, FakePort, FakeSwitch

EDGE1, EDGE2, AGG = 1, 2, 0x100
UPLINK, CROSS = 101, 102


def demo_ports(dpid: int, cross: bool = False) -> list[FakePort]:
    if dpid == AGG:
        return [
            FakePort(1, b"agg1-dn1", "02:00:00:00:ff:01"),
            FakePort(2, b"agg1-dn2", "02:00:00:00:ff:02"),
            FakePort(ofp.OFPP_LOCAL, b"agg1"),
        ]
    name = f"edge{dpid}"
    ports = [
        FakePort(1, f"{name}-s1".encode(), f"02:00:00:00:{dpid:02x}:01"),
        FakePort(2, f"{name}-s2".encode(), f"02:00:00:00:{dpid:02x}:02"),
        FakePort(UPLINK, f"{name}-up1".encode(), f"02:00:00:00:{dpid:02x}:65"),
        FakePort(ofp.OFPP_LOCAL, name.encode()),
    ]
    if cross:
        ports.append(FakePort(CROSS, f"{name}-trunk".encode(), f"02:00:00:00:{dpid:02x}:66"))
    return ports


def demo_fabric(cross: bool = False) -> FakeFabric:
    links = [((EDGE1, UPLINK), (AGG, 1)), ((EDGE2, UPLINK), (AGG, 2))]
    if cross:
        links.append(((EDGE1, CROSS), (EDGE2, CROSS)))
    return FakeFabric(
        {dpid: FakeSwitch(demo_ports(dpid, cross)) for dpid in (EDGE1, EDGE2, AGG)}, links
    )
