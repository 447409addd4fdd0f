"""The flows and meters every switch holds before any VM is associated.

Pure: given the switch's ports, return what it should hold. docs/pipeline.md draws it.
"""

from collections.abc import Iterable

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.fabric.ports import Port, PortRole
from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec, flow
from app.flows.tables import (
    CANARY_ETH_SRC,
    CANARY_ETH_TYPE,
    PUNT_BURST_PKTS,
    PUNT_RATE_PPS,
    CookieKind,
    Meter,
    Priority,
    Table,
    cookie,
)

ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_ECP = 0x8940
# Nearest bridge and nearest customer bridge: the group addresses EVB stations send LLDP/ECP to.
EVB_GROUP_ADDRESSES = ("01:80:c2:00:00:00", "01:80:c2:00:00:0e")

BASE_COOKIE = cookie(CookieKind.BASE)
CANARY_COOKIE = cookie(CookieKind.CANARY)


def control_punt_flows() -> list[FlowEntry]:
    punt = (ofmsg.meter(Meter.PUNT), ofmsg.apply_actions(ofmsg.to_controller()))
    return [
        flow(
            Table.CLASSIFY, Priority.CONTROL_PUNT, BASE_COOKIE, punt, eth_type=eth_type, eth_dst=dst
        )
        for eth_type in (ETH_TYPE_LLDP, ETH_TYPE_ECP)
        for dst in EVB_GROUP_ADDRESSES
    ]


def canary_flow() -> FlowEntry:
    return flow(
        Table.CLASSIFY,
        Priority.CANARY,
        CANARY_COOKIE,
        eth_type=CANARY_ETH_TYPE,
        eth_src=CANARY_ETH_SRC,
    )


def port_role_flows(ports: Iterable[Port]) -> list[FlowEntry]:
    """Trunk ports continue to forwarding; server ports get a per-port counted drop."""
    flows = []
    for port in ports:
        port_cookie = cookie(CookieKind.BASE, port.number)
        instructions: tuple[object, ...]
        if port.role is PortRole.TRUNK:
            instructions = (ofmsg.goto(Table.FORWARD),)
        else:
            instructions = ()
        flows.append(
            flow(Table.CLASSIFY, Priority.PORT_ROLE, port_cookie, instructions, in_port=port.number)
        )
    return flows


def table_miss_flows() -> list[FlowEntry]:
    return [flow(table, Priority.TABLE_MISS, BASE_COOKIE) for table in Table]


def base_flows(ports: Iterable[Port]) -> list[FlowEntry]:
    return [*control_punt_flows(), canary_flow(), *port_role_flows(ports), *table_miss_flows()]


def base_meters() -> dict[int, MeterSpec]:
    return {Meter.PUNT: MeterSpec.pktps(PUNT_RATE_PPS, PUNT_BURST_PKTS)}


def is_local_port(number: int) -> bool:
    return number > ofp.OFPP_MAX
