"""S-channels on the real bed: srv11 is a multichannel server (topologies/cdcp_station.py: the
station side of CDCP, one EVB/VDP station per S-channel, VMs behind its S-component) and asks
edge1 for two S-channels with CDCP; a web VM (tenant blue, VLAN 100) in one and a db VM (tenant
red, VLAN 200) in the other, both in one IP subnet. Peers of each tenant sit behind lldpad on
srv21 and srv22. Real S-tagged frames cross OVS both ways, and only within each tenant."""

import time

import pytest

from tests.integration.bed import MARKS, dump_flows, wait_until
from topologies.capture import Capture
from topologies.cdcp_station import ChannelVsi, MultichannelServer
from topologies.vm import ChannelVm

pytestmark = MARKS

SVIDS = (3000, 3009)
WEB, DB = (5, 4), (6, 1)  # policies/default.yaml
ASSOCIATED = 0x40  # a response, no error


@pytest.fixture(scope="module")
def controller_args():
    return ("--cdcp-svids", "{}-{}".format(*SVIDS))


def uuid(n):
    return f"cdc9c3d4-0000-0000-0000-{n:012x}"


@pytest.fixture
def peers(bed):
    """A web VM on srv21 and a db VM on srv22, associated by lldpad."""
    vms = {}
    for n, server, (typeid, version) in ((3, "srv21", WEB), (4, "srv22", DB)):
        station = bed.add_station(server)
        assert station.wait_vdp_ready(10), station.log()[-2000:]
        vm = bed.add_vm(f"vm{n}", server, f"52:54:00:cd:00:{n:02x}", f"10.0.0.{n}/24")
        result = station.vdp("assoc", "mgr1", typeid, version, uuid(n), filters=[f"0-{vm.mac}"])
        assert result.ok, result.raw
        vms[n] = vm
    return vms


def channel_server(bed, first):
    """srv11 with S-channel 2 (a web VM) and 3 (a db VM); VMs numbered from `first`."""
    web = bed.add_vm(f"vm{first}", "srv11", f"52:54:00:cd:00:{first:02x}", "10.0.0.1/24", ChannelVm)
    db = bed.add_vm(
        f"vm{first + 1}", "srv11", f"52:54:00:cd:00:{first + 1:02x}", "10.0.0.2/24", ChannelVm
    )
    channels = {2: [ChannelVsi(web, uuid(first), *WEB)], 3: [ChannelVsi(db, uuid(first + 1), *DB)]}
    return web, db, MultichannelServer(bed.server("srv11"), channels)


def s_tagged(frame, svid):
    return frame[12:14] == b"\x88\xa8" and int.from_bytes(frame[14:16], "big") & 0xFFF == svid


def test_cdcp_sets_up_two_s_channels_whose_vms_reach_their_own_tenant_only(
    bed, peers, controller, tmp_path
):
    web, db, server = channel_server(bed, 1)
    with Capture("edge1-s1", "", tmp_path / "edge1-s1.pcap") as capture:
        started = time.monotonic()
        server.start()
        try:
            # CDCP: the channels get the first S-VIDs of the range, in the order asked.
            wait_until(lambda: server.granted() == {2: 3000, 3: 3001}, 20, message="no channels")
            granted = time.monotonic()
            # Each channel's station agrees EVB and associates its VM, S-tagged.
            wait_until(lambda: None not in server.statuses().values(), 20, message="no VDP answers")
            # Shown with -s: the set-up as a station sees it (it speaks once a second).
            print(f"channels {granted - started:.2f} s, VMs {time.monotonic() - started:.2f} s")
            assert server.statuses() == {web.mac: ASSOCIATED, db.mac: ASSOCIATED}
            # Traffic: each VM reaches its tenant's peer, and nothing of the other tenant.
            assert web.ping(peers[3].address, count=3, wait=1) == (3, 3)
            assert db.ping(peers[4].address, count=3, wait=1) == (3, 3)
            assert web.ping(db.address, count=2, wait=0.5) == (2, 0)
            assert web.ping(peers[4].address, count=2, wait=0.5) == (2, 0)
            assert db.ping(peers[3].address, count=2, wait=0.5) == (2, 0)
            assert peers[4].ping(web.address, count=2, wait=0.5) == (2, 0)
            # The bridge's view: the port's channels, a station per channel, a VSI at each.
            stations = [s for s in controller.rest("/v1/stations") if s["port"] == "edge1-s1"]
            (port,) = [s for s in stations if not s["svid"]]
            assert port["channels"] == [{"scid": 2, "svid": 3000}, {"scid": 3, "svid": 3001}]
            assert sorted(s["svid"] for s in stations if s["agreement"]) == [3000, 3001]
            held = {
                a["svid"]: a["tenant"]
                for v in controller.rest("/v1/associations")
                if v["vsi_id"] in (uuid(1), uuid(2))
                for a in v["attachments"]
            }
            assert held == {3000: "blue", 3001: "red"}
            added = controller.rest("/v1/events?kind=cdcp.channel_added")
            assert {(e["port"], e["detail"]["svid"]) for e in added} >= {
                ("edge1-s1", 3000),
                ("edge1-s1", 3001),
            }
        finally:
            server.stop()
        frames = capture.frames()
    # Both ways on the wire, in each channel's S-tag: the VM's frames up, its peer's down.
    for vm, svid in ((web, 3000), (db, 3001)):
        mac = bytes.fromhex(vm.mac.replace(":", ""))
        assert any(s_tagged(f, svid) and f[6:12] == mac for f in frames), vm.name
        assert any(s_tagged(f, svid) and f[0:6] == mac for f in frames), vm.name
    # The flows: the S-tag is swapped for the VM's C-tag at admission and back at delivery.
    edge1 = dump_flows("edge1")
    admit = [f for f in edge1 if f.get("dl_src") == web.mac and f.get("dl_vlan") == "3000"]
    assert admit and "push_vlan:0x8100" in admit[0]["actions"], admit
    s_tag = f"push_vlan:0x88a8,set_field:{3000 | 0x1000}->vlan_vid"  # OVS writes VID | PRESENT
    assert any(s_tag in f["actions"] for f in edge1), [f["actions"] for f in edge1]


def test_a_channel_the_station_gives_up_takes_its_vm_off_the_network(bed, peers, controller):
    web, db, server = channel_server(bed, 5)
    server.start()
    try:
        # The channels are the bridge's already; the stations restarted (their shutdown came).
        wait_until(lambda: None not in server.statuses().values(), 10, message="no VDP answers")
        assert db.ping(peers[4].address, count=2, wait=1) == (2, 2)
        server.leave(3)
        wait_until(
            lambda: uuid(6) not in {v["vsi_id"] for v in controller.rest("/v1/associations")},
            20,
            message="the channel's VSI was kept",
        )
        removed = controller.rest("/v1/events?kind=cdcp.channel_removed")
        assert removed and removed[-1]["detail"]["scid"] == 3
        assert not [f for f in dump_flows("edge1") if f.get("dl_src") == db.mac]
        assert web.ping(peers[3].address, count=2, wait=1) == (2, 2)  # the other channel stays
    finally:
        server.stop()
