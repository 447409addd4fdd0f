"""The flows and meters every switch holds before any VM is associated.

Pure: given the switch's ports, return what it should hold. docs/pipeline.md draws it.
"""

from collections.abc import Iterable

from os_ken.ofproto import ofproto_v1_3 as ofp

from app.codec.probe import ETHERTYPE_PROBE
from app.fabric.ports import Port, PortRole
from app.flows import ofmsg
from app.flows.ofmsg import FlowEntry, MeterSpec, flow
from app.flows.tables import (
    CANARY_ETH_SRC,
    CANARY_ETH_TYPE,
    PORT_PUNT_BURST_PKTS,
    PORT_PUNT_RATE_PPS,
    PROBE_BURST_PKTS,
    PROBE_RATE_PPS,
    PUNT_BURST_PKTS,
    PUNT_RATE_PPS,
    CookieKind,
    Meter,
    Priority,
    Table,
    cookie,
    port_punt_meter_id,
)

ETH_TYPE_LLDP = 0x88CC
ETH_TYPE_ECP = 0x8940
# Nearest bridge and nearest customer bridge: the group addresses EVB stations send LLDP/ECP to.
EVB_GROUP_ADDRESSES = ("01:80:c2:00:00:00", "01:80:c2:00:00:0e")

BASE_COOKIE = cookie(CookieKind.BASE)
CANARY_COOKIE = cookie(CookieKind.CANARY)


def _punt_matches() -> list[dict]:
    return [
        {"eth_type": eth_type, "eth_dst": dst}
        for eth_type in (ETH_TYPE_LLDP, ETH_TYPE_ECP)
        for dst in EVB_GROUP_ADDRESSES
    ]


def _punt() -> tuple:
    return (ofmsg.meter(Meter.PUNT), ofmsg.apply_actions(ofmsg.to_controller()))


def control_punt_flows() -> list[FlowEntry]:
    """EVB control frames from any port (trunks: link probes) through the switch-wide meter, and
    the PUNT table that frames from server ports reach after their own meter."""
    return [
        *(
            flow(Table.CLASSIFY, Priority.CONTROL_PUNT, BASE_COOKIE, _punt(), **match)
            for match in _punt_matches()
        ),
        flow(Table.PUNT, Priority.CONTROL_PUNT, BASE_COOKIE, _punt()),
    ]


def _server_punt_meters(ports: Iterable[Port]) -> dict[int, int]:
    """Port number -> punt meter id, for the server ports that have one."""
    meters = {}
    for port in ports:
        meter_id = port_punt_meter_id(port.number)
        if port.role is PortRole.SERVER and meter_id is not None:
            meters[port.number] = meter_id
    return meters


def port_punt_flows(ports: Iterable[Port]) -> list[FlowEntry]:
    """A server port's control frames pass its own meter, then the switch-wide one (one meter
    per flow in OpenFlow 1.3, so the second is in the PUNT table): a flooding station exhausts
    its port's share, not the switch's."""
    return [
        flow(
            Table.CLASSIFY,
            Priority.PORT_PUNT,
            cookie(CookieKind.BASE, number),
            (ofmsg.meter(meter_id), ofmsg.goto(Table.PUNT)),
            in_port=number,
            **match,
        )
        for number, meter_id in _server_punt_meters(ports).items()
        for match in _punt_matches()
    ]


def canary_flow() -> FlowEntry:
    return flow(
        Table.CLASSIFY,
        Priority.CANARY,
        CANARY_COOKIE,
        eth_type=CANARY_ETH_TYPE,
        eth_src=CANARY_ETH_SRC,
    )


def probe_flows(ports: Iterable[Port]) -> list[FlowEntry]:
    """The data-plane probes' way (app/fabric/probes.py): a probe the controller sends into a
    switch's tables goes straight to FORWARD, as if it had come up a trunk; at the edge of the
    VM it is addressed to, it leaves EGRESS_ACL for the controller (through its own meter)
    instead of the VM. Frames of the probe EtherType from a server port are dropped: a VM can
    neither inject a probe nor fill the probes' meter."""
    return [
        flow(
            Table.CLASSIFY,
            Priority.PROBE_INJECT,
            BASE_COOKIE,
            (ofmsg.goto(Table.FORWARD),),
            in_port=ofp.OFPP_CONTROLLER,
            eth_type=ETHERTYPE_PROBE,
        ),
        flow(
            Table.EGRESS_ACL,
            Priority.PROBE_PUNT,
            BASE_COOKIE,
            (ofmsg.meter(Meter.PROBE), ofmsg.apply_actions(ofmsg.to_controller())),
            eth_type=ETHERTYPE_PROBE,
        ),
        *(
            flow(
                Table.CLASSIFY,
                Priority.PROBE_GUARD,
                cookie(CookieKind.BASE, port.number),
                (),
                in_port=port.number,
                eth_type=ETHERTYPE_PROBE,
            )
            for port in ports
            if port.role is PortRole.SERVER
        ),
    ]


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
    ports = list(ports)
    return [
        *control_punt_flows(),
        *port_punt_flows(ports),
        canary_flow(),
        *probe_flows(ports),
        *port_role_flows(ports),
        *table_miss_flows(),
    ]


def base_meters(ports: Iterable[Port]) -> dict[int, MeterSpec]:
    """The switch-wide punt meter, the probes' and one per server port."""
    port_meter = MeterSpec.pktps(PORT_PUNT_RATE_PPS, PORT_PUNT_BURST_PKTS)
    return {
        Meter.PUNT: MeterSpec.pktps(PUNT_RATE_PPS, PUNT_BURST_PKTS),
        Meter.PROBE: MeterSpec.pktps(PROBE_RATE_PPS, PROBE_BURST_PKTS),
        **dict.fromkeys(_server_punt_meters(ports).values(), port_meter),
    }


def is_local_port(number: int) -> bool:
    return number > ofp.OFPP_MAX
