"""The base pipeline and reconciliation, applied to an in-memory switch."""

from dataclasses import replace

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric.switch_sync import SwitchSync, SyncState
from app.flows import ofmsg
from app.flows.base_pipeline import ETH_TYPE_ECP, ETH_TYPE_LLDP
from app.flows.tables import (
    CANARY_ETH_SRC,
    CANARY_ETH_TYPE,
    COOKIE_MASK_APP,
    PORT_PUNT_BURST_PKTS,
    PORT_PUNT_METER_BASE,
    PORT_PUNT_RATE_PPS,
    CookieKind,
    Meter,
    Priority,
    Table,
    cookie,
    cookie_kind,
    port_punt_meter_id,
)
from tests.fakes.drive import answer, connect, flow_mods
from tests.fakes.fake_switch import FakePort, FakeSwitch

SERVER, TRUNK = 1, 2
VM_MAC = "52:00:00:00:00:01"


def edge():
    return FakeSwitch(
        [
            FakePort(SERVER, b"edge1-s1"),
            FakePort(TRUNK, b"edge1-up1"),
            FakePort(ofp.OFPP_LOCAL, b"edge1"),
        ]
    )


def connected(fake=None):
    fake = fake or edge()
    sync = SwitchSync(0x1, ["*-up*"])
    connect(sync, fake)
    return sync, fake


def test_connect_installs_base_pipeline_and_becomes_ready():
    sync, fake = connected()
    assert sync.state is SyncState.READY
    assert sync.name == "edge1"
    assert {p.name: p.role.value for p in sync.ports.values()} == {
        "edge1-s1": "server",
        "edge1-up1": "trunk",
    }
    assert not fake.errors
    assert Meter.PUNT in fake.meters
    assert all(cookie_kind(f.cookie) is not None for f in fake.flows)


def test_evb_control_frames_are_punted_through_the_meter_from_any_port():
    """Server ports through their own meter and then the switch-wide one; trunks (link
    probes) through the switch-wide one."""
    _, fake = connected()
    for port, meters in ((SERVER, [port_punt_meter_id(SERVER), Meter.PUNT]), (TRUNK, [Meter.PUNT])):
        for eth_type in (ETH_TYPE_LLDP, ETH_TYPE_ECP):
            for dst in ("01:80:c2:00:00:00", "01:80:c2:00:00:0e"):
                verdict = fake.process(in_port=port, eth_type=eth_type, eth_dst=dst, eth_src=VM_MAC)
                assert verdict.outputs == [ofp.OFPP_CONTROLLER]
                assert verdict.meters == meters


def test_each_server_port_has_its_own_punt_meter_so_one_cannot_starve_another():
    """Issue 10: one punt meter per switch let one port's flood starve every other port."""
    fake = FakeSwitch(
        [FakePort(1, b"edge1-s1"), FakePort(2, b"edge1-s2"), FakePort(9, b"edge1-up1")]
    )
    connected(fake)
    assert set(fake.meters) == {
        Meter.PUNT,
        Meter.PROBE,
        PORT_PUNT_METER_BASE + 1,
        PORT_PUNT_METER_BASE + 2,
    }
    first, second = (
        fake.process(in_port=port, eth_type=ETH_TYPE_ECP, eth_dst="01:80:c2:00:00:00").meters[0]
        for port in (1, 2)
    )
    assert first != second
    bands = fake.meters[first].bands
    assert (bands[0].rate, bands[0].burst_size) == (PORT_PUNT_RATE_PPS, PORT_PUNT_BURST_PKTS)
    assert not fake.errors


def test_lldp_to_other_addresses_is_not_punted():
    _, fake = connected()
    verdict = fake.process(in_port=SERVER, eth_type=ETH_TYPE_LLDP, eth_dst="01:80:c2:00:00:03")
    assert verdict.dropped


def test_server_port_traffic_is_dropped_by_default_and_counted_per_port():
    _, fake = connected()
    verdict = fake.process(
        in_port=SERVER, eth_src=VM_MAC, eth_dst="ff:ff:ff:ff:ff:ff", eth_type=0x0806
    )
    assert verdict.dropped
    assert verdict.tables == [Table.CLASSIFY]
    hit = verdict.flows[0]
    assert hit.priority == Priority.PORT_ROLE and hit.cookie == cookie(CookieKind.BASE, SERVER)


def test_trunk_traffic_continues_to_forwarding():
    _, fake = connected()
    verdict = fake.process(
        in_port=TRUNK, eth_src=VM_MAC, eth_dst="52:00:00:00:00:02", eth_type=0x0800
    )
    assert verdict.tables == [Table.CLASSIFY, Table.FORWARD]
    assert verdict.dropped  # nothing is associated yet


def test_canary_matches_only_its_own_probe():
    _, fake = connected()
    verdict = fake.process(in_port=SERVER, eth_type=CANARY_ETH_TYPE, eth_src=CANARY_ETH_SRC)
    assert verdict.flows[0].cookie == cookie(CookieKind.CANARY)


def test_reconnect_changes_nothing_on_a_switch_that_is_in_sync():
    _, fake = connected()
    sync = SwitchSync(0x1, ["*-up*"])
    assert flow_mods(connect(sync, fake)) == []
    assert sync.last_sync["flows_added_or_changed"] == 0
    assert sync.state is SyncState.READY


def test_reconnect_removes_stale_flows_of_ours_adds_missing_ones_and_keeps_foreign_ones():
    _, fake = connected()
    stale = ofmsg.flow(Table.INGRESS_ACL, 7, cookie(CookieKind.VSI, 99), eth_type=0x0800)
    foreign = ofmsg.flow(Table.INGRESS_ACL, 8, 0x1234, eth_type=0x0800)
    fake.apply(
        [
            ofmsg.add_flow(stale),
            ofmsg.add_flow(foreign),
            ofmsg.delete_by_cookie(cookie(CookieKind.CANARY)),
        ]
    )
    sync = SwitchSync(0x1, ["*-up*"])
    connect(sync, fake)
    cookies = {f.cookie for f in fake.flows}
    assert cookie(CookieKind.VSI, 99) not in cookies
    assert 0x1234 in cookies
    assert cookie(CookieKind.CANARY) in cookies
    assert sync.last_sync == {
        "flows_on_switch": 20,
        "flows_added_or_changed": 1,
        "flows_removed": 1,
        "meters_changed": 0,
    }


def test_changed_instructions_are_replaced_in_place():
    _, fake = connected()
    trunk_flow = next(f for f in fake.flows if f.cookie == cookie(CookieKind.BASE, TRUNK))
    trunk_flow.instructions = []  # someone turned the trunk into a drop
    connect(SwitchSync(0x1, ["*-up*"]), fake)
    verdict = fake.process(in_port=TRUNK, eth_type=0x0800)
    assert verdict.tables == [Table.CLASSIFY, Table.FORWARD]


def test_a_changed_punt_meter_is_modified_not_re_added():
    _, fake = connected()
    fake.meters[Meter.PUNT].bands = [parser.OFPMeterBandDrop(rate=5, burst_size=1)]
    sent = connect(SwitchSync(0x1, ["*-up*"]), fake)
    meter_mods = [m for m in sent if isinstance(m, parser.OFPMeterMod)]
    assert [m.command for m in meter_mods] == [ofp.OFPMC_MODIFY]
    assert not fake.errors


def test_canary_present_means_nothing_to_do():
    sync, fake = connected()
    assert flow_mods(answer(sync, fake, sync.canary_probe())) == []


def test_lost_flows_are_noticed_by_the_canary_and_restored():
    sync, fake = connected()
    before = sorted((f.table_id, f.priority, f.cookie) for f in fake.flows)
    fake.flows.clear()
    fake.meters.clear()
    answer(sync, fake, sync.canary_probe())
    assert sorted((f.table_id, f.priority, f.cookie) for f in fake.flows) == before
    assert sync.state is SyncState.READY and not fake.errors


def test_no_canary_probe_before_the_switch_is_ready():
    sync = SwitchSync(0x1, ["*-up*"])
    sync.on_features()
    assert sync.canary_probe() == []


def test_new_server_port_gets_its_drop_and_a_removed_one_loses_it():
    sync, fake = connected()
    new_port = FakePort(3, b"edge1-s2")
    _, msgs = sync.on_port_status(ofp.OFPPR_ADD, new_port)
    fake.apply(msgs)
    assert fake.process(in_port=3, eth_type=0x0800).flows[0].cookie == cookie(CookieKind.BASE, 3)
    _, msgs = sync.on_port_status(ofp.OFPPR_DELETE, new_port)
    fake.apply(msgs)
    assert cookie(CookieKind.BASE, 3) not in {f.cookie for f in fake.flows}


def test_a_server_ports_punt_meter_comes_and_goes_with_the_port():
    sync, fake = connected()
    meter_id = port_punt_meter_id(3)
    _, msgs = sync.on_port_status(ofp.OFPPR_ADD, FakePort(3, b"edge1-s2"))
    fake.apply(msgs)
    assert meter_id in fake.meters and not fake.errors  # the meter went before its flows
    verdict = fake.process(in_port=3, eth_type=ETH_TYPE_LLDP, eth_dst="01:80:c2:00:00:0e")
    assert verdict.meters == [meter_id, Meter.PUNT]
    _, msgs = sync.on_port_status(ofp.OFPPR_DELETE, FakePort(3, b"edge1-s2"))
    fake.apply(msgs)
    assert meter_id not in fake.meters and not fake.errors
    assert set(fake.meters) == {Meter.PUNT, Meter.PROBE, port_punt_meter_id(SERVER)}
    # A port gone while the controller was away loses its meter at the next connect.
    fake.meters[meter_id] = replace(fake.meters[port_punt_meter_id(SERVER)], meter_id=meter_id)
    connect(SwitchSync(0x1, ["*-up*"]), fake)
    assert meter_id not in fake.meters and not fake.errors


def test_trunk_ports_and_ports_beyond_the_meter_range_have_no_port_meter():
    assert port_punt_meter_id(0xFEFF) == 0xFFFF
    assert port_punt_meter_id(0xFF00) is None
    fake = FakeSwitch([FakePort(0xFF00, b"edge1-s9"), FakePort(2, b"edge1-up1")])
    connected(fake)
    assert set(fake.meters) == {Meter.PUNT, Meter.PROBE}
    verdict = fake.process(in_port=0xFF00, eth_type=ETH_TYPE_ECP, eth_dst="01:80:c2:00:00:00")
    assert verdict.meters == [Meter.PUNT] and verdict.outputs == [ofp.OFPP_CONTROLLER]


def test_port_going_down_keeps_its_flows():
    sync, fake = connected()
    count = len(fake.flows)
    port, msgs = sync.on_port_status(
        ofp.OFPPR_MODIFY, FakePort(SERVER, b"edge1-s1", state=ofp.OFPPS_LINK_DOWN)
    )
    assert port.up is False and msgs == []
    assert len(fake.flows) == count


def test_local_port_status_is_ignored():
    sync, _ = connected()
    assert sync.on_port_status(ofp.OFPPR_MODIFY, FakePort(ofp.OFPP_LOCAL, b"edge1")) == (None, [])


def test_replies_are_routed_once_by_xid():
    sync = SwitchSync(0x1, ["*-up*"])
    request = sync.on_features()[-1]
    assert sync.purpose(request.xid) == "ports"
    assert sync.purpose(request.xid) is None


def test_the_bundle_probe_goes_before_the_port_list_and_leaves_nothing_open():
    sync, fake = connected()
    first, second, ports = fake.received[:3]
    assert (first.type, second.type) == (ofp.ONF_BCT_OPEN_REQUEST, ofp.ONF_BCT_DISCARD_REQUEST)
    assert first.bundle_id == second.bundle_id
    assert isinstance(ports, parser.OFPPortDescStatsRequest)
    assert sync.bundles and sync.no_bundles is None
    assert fake.bundles == {} and fake.committed == []


def test_a_switch_refusing_the_probe_gets_no_bundles_and_still_syncs():
    fake = edge()
    fake.refuse_bundles = True
    sync, _ = connected(fake)
    assert not sync.bundles
    assert sync.no_bundles.startswith("bundle probe refused: type 1 code")
    assert sync.state is SyncState.READY and Meter.PUNT in fake.meters


def test_a_probe_never_answered_means_no_bundles():
    sync = SwitchSync(0x1, ["*-up*"])
    *_, ports = sync.on_features()
    sync.purpose(ports.xid)
    sync.on_ports(edge().port_list())
    assert sync.no_bundles == "no answer to the bundle probe"


def test_every_flow_we_install_carries_our_cookie():
    _, fake = connected()
    assert all(
        f.cookie & COOKIE_MASK_APP == cookie(CookieKind.BASE) & COOKIE_MASK_APP for f in fake.flows
    )


def test_one_stats_poll_outstanding_until_answered_or_given_up():
    from app.fabric.switch_sync import STATS_TIMEOUT

    sync, _ = connected()
    first = sync.stats_probe(100.0)
    assert [type(m) for m in first] == [parser.OFPFlowStatsRequest, parser.OFPMeterStatsRequest]
    assert first[0].cookie_mask == 0xFFFF << 48  # the VSI flows only
    assert sync.stats_probe(101.0) == []
    again = sync.stats_probe(100.0 + STATS_TIMEOUT)  # never answered: given up
    assert len(again) == 2
    assert [sync.purpose(m.xid) for m in first] == [None, None]
    assert [sync.purpose(m.xid) for m in again] == ["stats_flows", "stats_meters"]
    assert len(sync.stats_probe(200.0)) == 2  # answered: the next poll goes at once


def test_a_switch_refusing_meter_stats_is_polled_for_flows_only():
    sync, _ = connected()
    flows, meters = sync.stats_probe(1.0)
    assert not sync.on_error(meters.xid, "bad request")  # reported, not swallowed
    assert sync.purpose(flows.xid) == "stats_flows"
    assert [type(m) for m in sync.stats_probe(2.0)] == [parser.OFPFlowStatsRequest]
