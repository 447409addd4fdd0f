"""EVB settings per port pattern on the real bed (evb_ports, docs/evb-timers.md): lldpad on
srv11 (edge1-s1, a rule: RKA 18, RWD 17, reflective relay denied) and on srv21 (edge2-s1, the
bridge-wide values) negotiate different timers; srv11's station refreshes its VSI at the
negotiated keep-alive period and, once silent, loses it at the negotiated timeout; a VM manager
slower than the negotiated RWD gets the station its answer in time ("unable to contact",
not hard), and the retry is granted from the manager's late answer."""

import itertools
import os
import signal

import pytest

from app.session.evb_negotiation import bridge_keepalive_timeout
from tests.integration.bed import MARKS, wait_until
from tests.integration.managers import start_manager, stop_manager, told
from topologies.controller_process import free_port

pytestmark = MARKS
# Both stations ask for less than either bridge value: what they agree on is the bridge's.
LOW = dict(vdprka=16, vdprwd=16)
RULE_RKA, RULE_RWD = 18, 17
MANAGER_DELAY = 4.0  # the manager's every answer; the station waits ~3.7 s at RWD 17
CONFIG = f"""\
evb_rka: 23
evb_ports:
  - {{switch: edge1, port: edge1-s1, rka: {RULE_RKA}, rwd: {RULE_RWD}, rr: deny}}
"""
PROFILES = """\
vsi_types:
  - {type_id: 42, version: 1, name: green-web, tenant: green, vlans: [300], manager_ids: [mgr1]}
"""


@pytest.fixture(scope="module")
def manager_port():
    return free_port()


@pytest.fixture(scope="module")
def controller_args(tmp_path_factory, manager_port):
    """evb_ports, and a VM manager that may take longer than RWD."""
    config = tmp_path_factory.mktemp("evb-settings") / "evb-nms.yaml"
    config.write_text(CONFIG)
    return (
        "--config",
        str(config),
        "--vcenter-url",
        f"http://127.0.0.1:{manager_port}",
        "--vcenter-timeout",
        "8",
    )


def _station(bed, server):
    station = bed.add_station(server, **LOW)
    assert station.wait_vdp_ready(10), station.log()[-2000:]
    return station


def test_each_port_negotiates_the_settings_of_its_pattern(bed, controller):
    ruled_station = _station(bed, "srv11")
    _station(bed, "srv21")

    def agreed():
        ports = {s["port"]: s for s in controller.rest("/v1/stations")}
        ready = all(ports.get(p, {}).get("agreement") for p in ("edge1-s1", "edge2-s1"))
        return ports if ready else None

    ports = wait_until(agreed, timeout=10, message="no agreement on both ports")
    ruled, wide = ports["edge1-s1"], ports["edge2-s1"]
    assert (ruled["agreement"]["rka"], ruled["agreement"]["rwd"]) == (RULE_RKA, RULE_RWD)
    assert ruled["agreement"]["rr_granted"] is False  # lldpad asks, the rule denies
    assert (ruled["bridge_settings"]["rka"], ruled["bridge_settings"]["rr"]) == (RULE_RKA, "deny")
    assert (wide["agreement"]["rka"], wide["agreement"]["rwd"]) == (23, 20)
    assert wide["agreement"]["rr_granted"] is True
    assert wide["bridge_settings"]["rr"] == "grant"
    # lldpad took them: its own values are lower, so it uses the bridge's.
    assert wait_until(lambda: f"rwd:{RULE_RWD} rka:{RULE_RKA}" in ruled_station.log(), timeout=10)


def test_the_negotiated_keepalive_is_kept_by_the_station_and_enforced_by_the_bridge(
    bed, controller
):
    station = _station(bed, "srv11")
    bed.add_vm("vm1", "srv11", "52:54:00:00:0e:01", "10.0.14.1/24")
    uuid = "a1b2c3d4-0000-0000-0000-000000000e01"
    result = station.vdp("assoc", "mgr1", 5, 4, uuid, filters=["0-52:54:00:00:0e:01"])
    assert result.ok, result.raw
    timeout = bridge_keepalive_timeout(3, 14, RULE_RKA)  # 5.65 s, not 127.5 s at RKA 23
    seen = []

    def refreshed_three_times():
        (attachment,) = controller.rest(f"/v1/associations/{uuid}")["attachments"]
        seen.append(attachment["expires_in"])
        return sum(later > earlier for earlier, later in itertools.pairwise(seen)) >= 3

    wait_until(refreshed_three_times, timeout=30, interval=0.2, message="no keep-alives")
    assert max(seen) <= timeout + 0.1  # the bridge's deadline is the negotiated one (rounded)
    os.kill(station.pid, signal.SIGSTOP)  # silent, without an LLDP shutdown
    try:

        def expired():
            return controller.rest(f"/v1/events?kind=vsi.expired&vsi={uuid}")

        (event,) = wait_until(expired, timeout=30, message="the VSI did not expire")
        assert event["detail"]["reason"] == f"no keep-alive for {timeout:g} s"
    finally:
        os.kill(station.pid, signal.SIGCONT)


def test_a_manager_slower_than_the_rwd_still_gets_the_station_an_answer_in_time(
    bed, controller, manager_port, tmp_path
):
    manager = start_manager(tmp_path, manager_port, PROFILES, delay=MANAGER_DELAY)
    try:
        station = _station(bed, "srv11")
        bed.add_vm("vm2", "srv11", "52:54:00:00:0e:02", "10.0.14.2/24")
        uuid = "a1b2c3d4-0000-0000-0000-000000000e02"
        ask = ("assoc", "mgr1", 42, 1, uuid)
        result = station.vdp(*ask, filters=["0-52:54:00:00:0e:02"])
        # Answered before lldpad's response timer (~3.7 s at RWD 17), not left to time out.
        assert not result.ok and result.status == 0x03, result
        (refused,) = controller.rest(f"/v1/events?kind=vsi.refused&vsi={uuid}")
        assert "did not answer within" in refused["detail"]["reason"]

        def granted():
            again = station.vdp(*ask, filters=["0-52:54:00:00:0e:02"])
            return again if again.ok else None

        again = wait_until(granted, timeout=30, interval=1, message="never granted")
        assert again.fields["filter"].startswith("300-")
        # The manager holds every answer, the notifications' too: the refusals go first.
        wait_until(lambda: told(manager_port, uuid), timeout=90, message="the manager not told")
    finally:
        stop_manager(manager)
