"""Several controllers on the real bed (docs/ha.md): a 3-member etcd cluster, 3 evb-nms on one
prefix under the supervisor of evb-datacenter, every switch connected to each, lldpad stations
on the servers and a 1,000 packets/s probe between two VMs. One bed for the module; each test
leaves it whole (3 controllers, one leading, every switch MASTER to it and SLAVE to the others).

What each failure must leave: a leader killed (kill -9) or cut off (SIGSTOP) is replaced, the
switches' flows untouched and their VMs forwarding; a follower or an etcd member killed changes
nothing; a deposed leader's role claim and flow-mods are refused by the switch; the whole
cluster stopped and started keeps every association, registration and event. The times seen
are printed as JSON lines (pytest -s)."""

import itertools
import json
import os
import signal
import subprocess
import time
from datetime import datetime

import pytest
from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.flows.tables import CookieKind, cookie_kind
from app.ha.election import leader_key
from app.store.base import Fenced, IntentChanges
from app.store.etcd_intent import EtcdIntentStore
from app.store.etcd_kv import EtcdKv
from tests.etcd_cluster import require_etcd
from tests.integration.bed import MARKS, dump_flows, our_flows, wait_until
from tests.integration.conftest import wait_fabric_ready
from tests.integration.openflow_client import OpenFlowClient
from topologies.controller_process import free_base
from topologies.ha_cluster import PREFIX, ha_cluster, running
from topologies.migration import start_vm
from topologies.probe import start_probe, stop_probe

pytestmark = [*MARKS, pytest.mark.etcd]
CONTROLLERS = 3
BRIDGES = ("agg1", "edge1", "edge2")
LEASE_TTL = 2  # evb-nms's default --leader-lease-ttl
TEST_COOKIE = 0x7E57  # a flow no controller of ours writes
_PAIRS = itertools.count(1)


class CurrentLeader:
    """The controller leading now, as the shared bed fixtures want their `controller`: each
    attribute is the leading ControllerProcess's at the time it is read."""

    def __init__(self, controllers):
        self._controllers = controllers

    def __getattr__(self, name):
        leader = wait_until(self._controllers.leader, timeout=15, message="no leader")
        return getattr(self._controllers.members[leader], name)


class HaBed:
    def __init__(self, etcd, controllers, supervisor, reports):
        self.etcd, self.controllers, self.supervisor = etcd, controllers, supervisor
        self.reports = reports  # the supervisor's lines

    def member(self, name):
        return self.controllers.members[name]

    def leader(self):
        return wait_until(self.controllers.leader, timeout=15, message="no leader")

    def generation(self, name):
        return self.member(name).rest("/v1/ha")["leader"]["generation"]

    def whole(self, timeout=30):
        """Wait until every controller runs, one leads, and every switch is connected to each,
        MASTER to the leader and SLAVE to the others; the leader's name."""

        def settled():
            leader = self.controllers.leader()
            if leader is None or len(self.controllers.running()) != CONTROLLERS:
                return None
            want = {
                m.of_port: ("master" if name == leader else "slave", True)
                for name, m in self.controllers.members.items()
            }
            return leader if all(roles(b) == want for b in BRIDGES) else None

        try:
            return wait_until(settled, timeout=timeout, message="cluster not whole")
        except AssertionError:
            raise AssertionError(
                f"cluster not whole after {timeout} s: leader {self.controllers.leader()}, "
                f"running {list(self.controllers.running())}, "
                f"roles { {b: roles(b) for b in BRIDGES} }, supervisor {self.reports}"
            ) from None


def roles(bridge):
    """{controller port: (role, connected)} of a bridge, as Open vSwitch reports them."""
    listed = json.loads(
        _vsctl("--format=json", "--columns=_uuid,target,role,is_connected", "list", "controller")
    )
    mine = _vsctl("get", "bridge", bridge, "controller")
    found = {}
    for (_, uuid), target, role, connected in listed["data"]:
        if uuid in mine:
            found[int(target.rsplit(":", 1)[1])] = (role, connected)
    return found


def _vsctl(*args):
    return subprocess.run(
        ["ovs-vsctl", "--timeout=10", *args], capture_output=True, text=True, check=True
    ).stdout


def tables():
    return {bridge: our_flows(bridge) for bridge in BRIDGES}


def measured(**fields):
    print(json.dumps({"ha_bed": fields}), flush=True)


def logged_after(member, marker, since):
    """Seconds from the wall-clock time `since` to the first line of member's log after it
    holding marker (the log's own timestamps, in milliseconds); None if there is none."""
    for line in member.log_text().splitlines():
        if marker in line:
            try:
                at = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            except ValueError:
                continue
            if at >= since - 0.001:
                return round(at - since, 3)
    return None


@pytest.fixture(scope="module")
def ha(tmp_path_factory):
    require_etcd()
    base = free_base(2 * CONTROLLERS)  # ports a controller started again gets back
    etcd, controllers = ha_cluster(
        tmp_path_factory.mktemp("ha"),
        range(base, base + CONTROLLERS),
        range(base + CONTROLLERS, base + 2 * CONTROLLERS),
        log_level="DEBUG",
    )
    reports = []
    with running(etcd, controllers, reports.append) as supervisor:
        yield HaBed(etcd, controllers, supervisor, reports)
    for name, member in controllers.members.items():  # shown by pytest when a test failed
        print(f"--- {name}\n{member.log_text()[-3000:]}")


@pytest.fixture(scope="module")
def controller(ha):
    """The shared fixtures' controller: whichever leads."""
    return CurrentLeader(ha.controllers)


@pytest.fixture(scope="module")
def fabric(ha, controller):
    """The default data center with every switch connected to every controller."""
    from topologies.datacenter import datacenter

    with datacenter(controller_port=ha.controllers.of_ports) as dc:
        ha.whole()
        wait_fabric_ready(controller, dc)
        yield dc


@pytest.fixture
def pair(bed, stations, ha, controller):
    """Two associated VMs on two edges that reach each other; the cluster whole."""
    ha.whole()
    wait_fabric_ready(controller, bed)
    n = next(_PAIRS)
    a, b = (
        start_vm(
            bed,
            stations,
            f"p{n}{side}",
            server,
            f"52:54:00:13:{n:02x}:{i:02x}",
            f"10.0.13.{2 * n + i}/24",
            f"a1b2c3d4-0000-0000-0013-{n:06x}{i:06x}",
        )
        for i, (side, server) in enumerate((("a", "srv11"), ("b", "srv21")))
    )
    assert a.vm.wait_reachable(b.vm.address, timeout=5)
    return a, b


def associations(controller):
    return {v["vsi_id"]: v["state"] for v in controller.rest("/v1/associations")}


def test_one_controller_leads_and_every_one_answers(ha, bed, controller):
    leader = ha.whole()
    views = {name: m.rest("/v1/ha") for name, m in ha.controllers.members.items()}
    assert {name: view["role"] for name, view in views.items()} == {
        name: "leader" if name == leader else "follower" for name in views
    }
    assert len({json.dumps(view["leader"], sort_keys=True) for view in views.values()}) == 1
    assert views[leader]["leader"]["url"] == f"http://127.0.0.1:{ha.member(leader).rest_port}"
    # A follower forwards what it is asked to the leader and passes its answer back.
    follower = ha.member(ha.controllers.followers()[0])
    assert follower.rest("/v1/switches") == ha.member(leader).rest("/v1/switches")


def test_a_follower_killed_changes_nothing_for_the_leaders_vms(ha, pair, controller):
    a, b = pair
    leader = ha.whole()
    generation = ha.generation(leader)
    victim = ha.controllers.followers()[0]
    before, held = tables(), associations(controller)
    probe = start_probe(a.vm.netns, b.vm.address)
    try:
        os.kill(ha.member(victim).proc.pid, signal.SIGKILL)
        ha.member(victim).proc.wait()
        time.sleep(LEASE_TTL + 1)  # a wrong takeover would show by now
        assert ha.controllers.leader() == leader and ha.generation(leader) == generation
        port = ha.member(leader).of_port
        assert all(roles(bridge)[port] == ("master", True) for bridge in BRIDGES)
    finally:
        result = stop_probe(probe)
    assert result["lost"] == 0, result
    assert tables() == before
    assert associations(controller) == held
    ha.member(victim).start()
    assert ha.whole() == leader


def test_the_leader_killed_a_follower_takes_over(ha, bed, stations, pair, controller):
    a, b = pair
    old = ha.whole()
    old_generation = ha.generation(old)
    before, held = tables(), associations(controller)
    probe = start_probe(a.vm.netns, b.vm.address)
    try:
        killed = time.time()
        os.kill(ha.member(old).proc.pid, signal.SIGKILL)
        new = wait_until(
            lambda: (leader := ha.controllers.leader()) not in (None, old) and leader,
            timeout=15,
            message="no follower took over",
        )
        wait_fabric_ready(controller, bed)
        port = ha.member(new).of_port
        wait_until(
            lambda: all(roles(bridge).get(port) == ("master", True) for bridge in BRIDGES),
            timeout=15,
            message="the switches did not take the new leader as master",
        )
    finally:
        result = stop_probe(probe)
    measured(
        test="leader_kill",
        # from the new leader's log: its election, and the last switch reconciled
        elected_s=logged_after(ha.member(new), "event=ha.elected", killed),
        switches_ready_s=max(
            logged_after(ha.member(new), f"event=switch.ready switch={bridge} ", killed)
            for bridge in BRIDGES
        ),
        probe=result,
    )
    assert ha.generation(new) > old_generation
    assert result["lost"] == 0, result
    # Reconciled without a flush: the same flows, the same associations.
    assert tables() == before
    assert associations(controller) == held
    synced = {s["name"]: s["last_sync"] for s in controller.rest("/v1/switches")}
    assert all(s["flows_added_or_changed"] == s["flows_removed"] == 0 for s in synced.values())
    # Keep-alives go on, and a new VM associates and forwards.
    assert a.request(stations["srv11"], "assoc").ok
    c = start_vm(
        bed,
        stations,
        "late",
        "srv12",
        "52:54:00:13:ff:01",
        "10.0.13.250/24",
        "a1b2c3d4-0000-0000-0013-0000000000ff",
    )
    assert c.vm.wait_reachable(b.vm.address, timeout=5)
    # The deposed generation is refused by the switch, and a SLAVE cannot write.
    for bridge in BRIDGES:
        assert_deposed_refused(bridge, old_generation, ha.generation(new))
    assert_store_fences(ha.etcd.endpoints, old_generation)
    ha.member(old).start()
    assert ha.whole() == new


def assert_deposed_refused(bridge, old_generation, generation):
    """A connection claiming MASTER with the old generation gets OFPRRFC_STALE; as SLAVE, its
    flow-mod gets OFPBRC_IS_SLAVE; the bridge's flows stay as they were."""
    before = our_flows(bridge)
    with OpenFlowClient(bridge) as deposed:
        stale = deposed.role(ofp.OFPCR_ROLE_MASTER, old_generation)
        assert isinstance(stale, parser.OFPErrorMsg), stale
        assert (stale.type, stale.code) == (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
        slave = deposed.role(ofp.OFPCR_ROLE_SLAVE, generation)
        assert isinstance(slave, parser.OFPRoleReply), slave
        refused = deposed.add_flow(0, 1, TEST_COOKIE)
        assert isinstance(refused, parser.OFPErrorMsg), refused
        assert (refused.type, refused.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
    assert our_flows(bridge) == before
    assert not any(f["cookie"] == TEST_COOKIE for f in dump_flows(bridge))


def assert_store_fences(endpoints, old_generation):
    """An intent save fenced with the old generation, as the deposed leader's were, is refused
    by etcd (Fenced), and the intent stays as it was."""
    store = EtcdIntentStore(EtcdKv(endpoints, 5), PREFIX)
    try:
        store.fence(leader_key(PREFIX), old_generation)
        intent = store.load()
        with pytest.raises(Fenced):
            store.save(IntentChanges(links=[]))  # would forget every link
        assert store.load() == intent
    finally:
        store.close()


def test_a_leader_cut_off_is_replaced_then_deposed(ha, bed, stations, pair, controller):
    """SIGSTOP: the leader stops renewing its lease; a follower takes over at the lease's end.
    SIGCONT: the old leader finds itself deposed, exits with status 3 and the supervisor starts
    it again as a follower; meanwhile the switches refused its writes."""
    a, b = pair
    old = ha.whole()
    restarts = ha.supervisor.restarts[old]
    before, held = tables(), associations(controller)
    probe = start_probe(a.vm.netns, b.vm.address)
    pid = ha.member(old).proc.pid
    try:
        stopped = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            new = wait_until(
                lambda: (leader := ha.controllers.leader()) not in (None, old) and leader,
                timeout=15,
                message="nobody replaced the leader cut off",
            )
        finally:
            resumed = time.time()
            os.kill(pid, signal.SIGCONT)
        wait_until(
            lambda: ha.supervisor.restarts[old] > restarts,
            timeout=20,
            message=f"the old leader was not deposed and restarted: {ha.reports}",
        )
    finally:
        result = stop_probe(probe)
    measured(
        test="leader_cut_off",
        elected_after_stop_s=logged_after(ha.member(new), "event=ha.elected", stopped),
        deposed_after_resume_s=logged_after(ha.member(old), "event=ha.deposed", resumed),
        probe=result,
    )
    assert "event=ha.deposed" in ha.member(old).log_text()
    assert ha.whole() == new
    assert result["lost"] == 0, result
    assert tables() == before
    assert associations(controller) == held


def _raft_leader(endpoints):
    """The endpoint of the member etcd's raft elected, as the members at endpoints say; None
    while they have none (or do not answer)."""
    out = subprocess.run(
        ["etcdctl", "--endpoints", ",".join(endpoints), "endpoint", "status", "-w", "json"],
        capture_output=True,
        text=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )
    try:
        answers = json.loads(out.stdout)
    except ValueError:
        return None
    if out.returncode or len(answers) != len(endpoints):
        return None
    leaders = {answer["Status"].get("leader", 0) for answer in answers}  # 0: none (omitted)
    for answer in answers:
        if {answer["Status"]["header"]["member_id"]} == leaders:
            return answer["Endpoint"]
    return None


def test_an_etcd_member_killed_keeps_the_controllers_working(ha, bed, stations, pair, controller):
    """etcd's raft leader killed: two members of three keep the quorum, and elect another
    raft leader meanwhile. The controllers go on: the same leader, the fabric held, the VMs
    forwarding, a new VM associated, a registration written."""
    a, b = pair
    leader = ha.whole()
    generation = ha.generation(leader)
    before, held = tables(), associations(controller)
    probe = start_probe(a.vm.netns, b.vm.address)
    member = ha.etcd.endpoints.index(_raft_leader(ha.etcd.endpoints))
    alive = [e for i, e in enumerate(ha.etcd.endpoints) if i != member]
    ha.etcd.kill(member)
    try:
        wait_until(lambda: _raft_leader(alive), timeout=15, message="etcd elected no leader")
        # Past a lease after etcd's election: a leader wrongly deposed for the keep-alives etcd
        # could not answer meanwhile would show by now.
        time.sleep(LEASE_TTL + 0.5)
        assert ha.whole() == leader and ha.generation(leader) == generation
        wait_fabric_ready(controller, bed)
        assert associations(controller) == held
        c = start_vm(
            bed,
            stations,
            "quorum",
            "srv22",
            "52:54:00:13:fe:01",
            "10.0.13.251/24",
            "a1b2c3d4-0000-0000-0013-0000000000fe",
        )
        assert c.vm.wait_reachable(a.vm.address, timeout=5)
        vm = "a1b2c3d4-0000-0000-0013-0000000000fd"
        registered = controller.call(
            "PUT", f"/v1/vms/{vm}", {"type_id": 5, "type_version": 4, "macs": ["52:54:00:13:fd:01"]}
        )
        assert registered["created"], registered
        controller.call("DELETE", f"/v1/vms/{vm}")
    finally:
        result = stop_probe(probe)
        ha.etcd.start()  # the killed member again, from its data
    measured(test="etcd_leader_kill", probe=result)
    assert result["lost"] == 0, result
    # Every flow kept, but the VLAN's flood flows, which the new VM's port joined.
    after = tables()
    for bridge in BRIDGES:
        kept = {f for f in before[bridge] if cookie_kind(f[0]) != CookieKind.VLAN}
        assert kept <= set(after[bridge]), (bridge, kept - set(after[bridge]))
    assert ha.whole() == leader


def test_the_whole_cluster_stopped_and_started_loses_nothing(ha, bed, stations, pair, controller):
    a, b = pair
    ha.whole()
    vm = "a1b2c3d4-0000-0000-0013-0000000000fc"
    controller.call(
        "PUT", f"/v1/vms/{vm}", {"type_id": 5, "type_version": 4, "macs": ["52:54:00:13:fc:01"]}
    )
    before, held = tables(), associations(controller)
    registry = controller.rest("/v1/vms")
    events = controller.rest("/v1/events?limit=1000")
    probe = start_probe(a.vm.netns, b.vm.address)
    try:
        ha.controllers.stop()
        ha.etcd.stop()
        ha.etcd.start()
        ha.controllers.start()
        ha.whole()
        wait_fabric_ready(controller, bed)
    finally:
        result = stop_probe(probe)
    measured(test="cluster_restart", probe=result)
    assert associations(controller) == held
    assert controller.rest("/v1/vms") == registry
    kept = {e["id"]: e for e in controller.rest("/v1/events?limit=1000")}
    assert all(kept.get(e["id"]) == e for e in events), "events lost or changed"
    assert tables() == before
    assert result["lost"] == 0, result  # the switches forwarded on their own meanwhile
    assert a.request(stations["srv11"], "assoc").ok
    controller.call("DELETE", f"/v1/vms/{vm}")


def test_open_vswitch_refuses_a_demoted_masters_writes():
    """What the fencing relies on, on a plain bridge: a MASTER claim with a newer generation
    demotes the old master to SLAVE, whose flow-mods are refused, and its claim with its old
    generation too."""
    bridge = "evbha-br1"
    _vsctl(
        "--may-exist", "add-br", bridge, "--", "set", "bridge", bridge, "datapath_type=netdev",
        "protocols=OpenFlow13", "fail-mode=secure",
    )  # fmt: skip
    try:
        with OpenFlowClient(bridge) as old, OpenFlowClient(bridge) as new:
            assert isinstance(old.role(ofp.OFPCR_ROLE_MASTER, 41), parser.OFPRoleReply)
            assert old.add_flow(0, 1, TEST_COOKIE) is None
            assert isinstance(new.role(ofp.OFPCR_ROLE_MASTER, 42), parser.OFPRoleReply)
            refused = old.add_flow(0, 2, TEST_COOKIE)
            assert (refused.type, refused.code) == (ofp.OFPET_BAD_REQUEST, ofp.OFPBRC_IS_SLAVE)
            stale = old.role(ofp.OFPCR_ROLE_MASTER, 41)
            assert (stale.type, stale.code) == (ofp.OFPET_ROLE_REQUEST_FAILED, ofp.OFPRRFC_STALE)
        written = [(f["cookie"], f["priority"]) for f in dump_flows(bridge)]
        assert written == [(TEST_COOKIE, 1)], written
    finally:
        _vsctl("--if-exists", "del-br", bridge)
