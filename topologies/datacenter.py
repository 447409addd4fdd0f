"""The default data center: agg1 above edge1..edgeN, each edge with its servers (hypervisors).

    describe()    the layout as data (names, dpids, OpenFlow port numbers) for controller tests
    datacenter()  context manager that runs it in Mininet and always tears it down

Switches are Open vSwitch bridges on the userspace datapath (no kernel module here). Port names tell
the role: edgeN-upK / agg1-dnN face each other, edgeN-sK faces server srvNK (uplink srvNK-eth0).
"""

import secrets
from contextlib import contextmanager
from dataclasses import dataclass

from mininet.link import Intf
from mininet.net import Mininet
from mininet.node import Host, OVSSwitch, RemoteController
from mininet.topo import Topo

from topologies.run_state import (
    NETNS_PREFIX,
    STATE_DIR,
    exclusive_run,
    netns_names,
    remove_leftovers,
)
from topologies.station import Station
from topologies.vm import Vm, destroy_netns

AGG_NAME = "agg1"
AGG_DPID = 0x100
EDGE_UPLINK_PORT_NO = 101  # OpenFlow port of edgeN-up1; server port edgeN-sK is port K
CONTROLLER_IP = "127.0.0.1"


@dataclass(frozen=True)
class ServerSpec:
    name: str  # srv11
    uplink: str  # srv11-eth0
    edge: str  # edge1
    edge_port: str  # edge1-s1
    edge_port_no: int


@dataclass(frozen=True)
class EdgeSpec:
    name: str
    dpid: int
    uplink: str  # edge1-up1
    uplink_no: int
    agg_port: str  # agg1-dn1, the other end of uplink
    agg_port_no: int
    servers: tuple


@dataclass(frozen=True)
class DatacenterSpec:
    agg: str
    agg_dpid: int
    edges: tuple

    @property
    def servers(self):
        return tuple(srv for edge in self.edges for srv in edge.servers)

    def edge(self, name):
        return next(edge for edge in self.edges if edge.name == name)

    def server(self, name):
        return next(srv for srv in self.servers if srv.name == name)


def describe(edges=2, servers_per_edge=2):
    """The layout: edge<e> has dpid e, servers srv<e><k> on edge<e>-s<k> (OpenFlow port k)."""
    if not (1 <= edges <= 9 and 1 <= servers_per_edge <= 9):
        raise ValueError("server names srv<edge><k> need 1..9 edges and 1..9 servers per edge")
    return DatacenterSpec(
        AGG_NAME,
        AGG_DPID,
        tuple(
            EdgeSpec(
                f"edge{e}",
                e,
                f"edge{e}-up1",
                EDGE_UPLINK_PORT_NO,
                f"{AGG_NAME}-dn{e}",
                e,
                tuple(
                    ServerSpec(f"srv{e}{k}", f"srv{e}{k}-eth0", f"edge{e}", f"edge{e}-s{k}", k)
                    for k in range(1, servers_per_edge + 1)
                ),
            )
            for e in range(1, edges + 1)
        ),
    )


class QuietIntf(Intf):
    """A link end that never speaks IPv6: no ND/MLD frame from a port's or server's own MAC
    reaches a switch, so the controller only sees VM traffic and the LLDP/ECP of stations."""

    def config(self, **params):
        # Before Intf.config brings the link up, which would start IPv6 autoconfiguration.
        self.cmd(f"sysctl -qw net.ipv6.conf.{self.name}.disable_ipv6=1")
        return super().config(**params)


class Server(Host):
    """A hypervisor: no IP of its own; its VMs are VEPA macvlans on its uplink."""

    def config(self, **params):
        result = super().config(**params)
        # The userspace datapath forwards frames as read from the veth: with TX checksum offload,
        # TCP segments of the VMs would leave with partial checksums and be dropped by receivers.
        # (The VMs' macvlans show tx-checksumming "on [fixed]"; the uplink does it in software.)
        self.cmd("ethtool -K", self.defaultIntf(), "tx off")
        return result


class DatacenterTopo(Topo):
    def build(self, spec, fail_mode):
        switch = dict(datapath="user", protocols="OpenFlow13", failMode=fail_mode)
        self.addSwitch(spec.agg, dpid=f"{spec.agg_dpid:016x}", **switch)
        for edge in spec.edges:
            self.addSwitch(edge.name, dpid=f"{edge.dpid:016x}", **switch)
            self.addLink(
                edge.name,
                spec.agg,
                port1=edge.uplink_no,
                port2=edge.agg_port_no,
                intfName1=edge.uplink,
                intfName2=edge.agg_port,
            )
            for srv in edge.servers:
                self.addHost(srv.name, ip=None)
                self.addLink(
                    srv.name,
                    edge.name,
                    port1=0,
                    port2=srv.edge_port_no,
                    intfName1=srv.uplink,
                    intfName2=srv.edge_port,
                )


class Datacenter:
    """A running bed: the Mininet net, its layout, and the VMs and stations started in it."""

    def __init__(self, net, spec, run_dir):
        self.net = net
        self.spec = spec
        self.run_dir = run_dir
        self._netns_prefix = f"{NETNS_PREFIX}{run_dir.name}-"
        self._stations = []

    def server(self, name):
        """The Mininet host of server name."""
        return self.net.get(name)

    def add_vm(self, name, server, mac, ip, kind=Vm):
        """Start VM name on server (a name) with mac and ip ("10.0.0.1/24"); kind Vm (a VEPA
        macvlan of the uplink) or ChannelVm (behind the server's S-component)."""
        return kind.create(name, self.server(server), mac, ip, self._netns_prefix + name)

    def destroy_vms(self):
        """Remove every VM of this run, whoever made it."""
        for netns in netns_names(self._netns_prefix):
            destroy_netns(netns)

    def add_station(self, server, **conf):
        """Start lldpad as the VDP station of server (a name); conf as for Station."""
        station = Station(self.server(server), self.run_dir, **conf).start()
        self._stations.append(station)
        return station

    def release_vsis(self):
        """Every station de-associates the VSIs it holds (its VMs stop)."""
        for station in self._stations:
            station.release_vsis()

    def stop_stations(self):
        for station in self._stations:
            station.stop()
        self._stations.clear()


@contextmanager
def datacenter(controller_port=6653, fail_mode="secure", edges=2, servers_per_edge=2):
    """Run the data center; yield a Datacenter; on exit remove it all, even after an error.

    controller_port: a port, or a list of them (several controllers, each switch connected to
    every one: docs/ha.md). None attaches no controller: with one configured but absent, a
    standalone OVS only falls back to normal switching after 3 inactivity probes (about 15 s).
    Only one run at a time: a second concurrent run fails at once.
    """
    spec = describe(edges, servers_per_edge)
    with exclusive_run():
        remove_leftovers()
        run_dir = STATE_DIR / secrets.token_hex(3)
        run_dir.mkdir()
        net = Mininet(
            topo=DatacenterTopo(spec, fail_mode),
            switch=OVSSwitch,
            host=Server,
            intf=QuietIntf,
            controller=None,
            autoSetMacs=False,
            build=False,
        )
        ports = [controller_port] if isinstance(controller_port, int) else controller_port or []
        for i, port in enumerate(ports):
            net.addController(f"c{i}", controller=RemoteController, ip=CONTROLLER_IP, port=port)
        dc = Datacenter(net, spec, run_dir)
        try:
            net.build()
            net.start()
            yield dc
        finally:
            dc.stop_stations()
            dc.destroy_vms()
            try:
                net.stop()
            finally:
                remove_leftovers(keep_run_dir=run_dir)
