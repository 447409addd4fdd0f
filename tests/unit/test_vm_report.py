"""The VM report's pages (app/vcenter/vm_report.py) and its body (ControllerService.vm_report)."""

from app.fabric.ports import PortRef
from app.vcenter.vm_report import ReportCursor
from tests.unit.test_fabric_control import EDGE1, EDGE2, MACS, service_bed  # noqa: F401

PORTS = [PortRef(1, 1), PortRef(1, 2), PortRef(2, 1), PortRef(2, 7)]
HELD = {PortRef(1, 1): 2, PortRef(1, 2): 1, PortRef(2, 1): 3, PortRef(2, 7): 1}


def test_pages_hold_whole_ports_up_to_the_limit_and_wrap_around():
    cursor = ReportCursor(max_vms=3)
    pages = [cursor.page(PORTS, HELD.__getitem__) for _ in range(4)]
    assert pages == [PORTS[:2], PORTS[2:3], PORTS[3:], PORTS[:2]]


def test_a_port_beyond_the_limit_goes_whole_and_gone_ports_are_skipped():
    cursor = ReportCursor(max_vms=1)
    assert cursor.page(PORTS, HELD.__getitem__) == [PortRef(1, 1)]
    fewer = [PortRef(2, 1), PortRef(2, 7)]  # the ports of edge1 lost their VMs
    assert cursor.page(fewer, HELD.__getitem__) == [PortRef(2, 1)]
    assert cursor.page([], HELD.__getitem__) == []
    assert cursor.page(fewer, HELD.__getitem__) == [PortRef(2, 1)]


def test_the_report_lists_each_vms_state_and_counters_and_its_servers_load(service_bed):  # noqa: F811
    bed, service, _ = service_bed
    cursor = ReportCursor(max_vms=1)
    assert service.vm_report(cursor) is None  # nothing held: nothing to report
    bed.associate(EDGE1, 1, 0)
    bed.associate(EDGE2, 1, 1)
    bed.wire.fabric.switches[EDGE1].process(in_port=1, eth_src=MACS[0], eth_dst=MACS[1])
    bed.wire.deliver(bed.core.stats_probes(5.0))
    first, second = service.vm_report(cursor), service.vm_report(cursor)
    assert first["kind"] == "vm.report" and not first["detail"]["round_complete"]
    (server,) = first["detail"]["servers"]
    assert (server["switch"], server["vms"], server["packets_in"]) == ("edge1", 1, 1)
    (vm,) = first["detail"]["vms"]
    assert (vm["state"], vm["tenant"], vm["packets_in"], vm["bytes_in"]) == (
        "associated",
        "blue",
        1,
        100,
    )
    assert vm["polled_at"] is not None
    assert second["detail"]["round_complete"]
    assert [v["switch"] for v in second["detail"]["vms"]] == ["edge2"]
