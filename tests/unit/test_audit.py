"""The intent audit (app/fabric/audit.py) on the fake demo fabric: what an operator's
`ovs-ofctl del-flows` or a switch bug does to a switch is found a piece at a time within the
budget, repaired with a barrier-checked batch and reported (audit.repaired)."""

from os_ken.ofproto import ofproto_v1_3 as ofp
from os_ken.ofproto import ofproto_v1_3_parser as parser

from app.fabric import audit
from app.fabric.audit import Piece
from app.flows import ofmsg
from app.flows.tables import COOKIE_MASK_KIND, CookieKind, Table, cookie, vm_meter_id
from tests.fakes.demo_fabric import AGG, EDGE1, EDGE2
from tests.unit.test_fabric_control import Bed

RATE = 10.0  # requests a second


def audited(**options) -> Bed:
    bed = Bed(fabric={"audit_rate": RATE, **options})
    bed.associate(EDGE1, 1, 0)
    bed.associate(EDGE2, 1, 1)
    return bed


def run(bed: Bed, start: float, seconds: float, step: float = 0.1) -> float:
    """Drives the background as the shim's loop does, every `step` s; returns the time."""
    now = start
    while now < start + seconds:
        now = round(now + step, 6)
        bed.wire.deliver(bed.core.background(now), now)
    return now


def pass_seconds() -> float:
    """One pass over the demo fabric: 3 switches x (meters + 5 tables), at RATE."""
    return 3 * (1 + len(Table)) / RATE


def tables(bed: Bed) -> dict:
    return {
        dpid: sorted(
            (f.table_id, f.priority, f.cookie, repr(sorted(f.match.items()))) for f in fake.flows
        )
        for dpid, fake in bed.wire.fabric.switches.items()
    }


def repaired(bed: Bed) -> list:
    return bed.log.recent("audit.repair")


def test_a_switch_in_sync_costs_requests_and_nothing_else():
    bed = audited()
    before = tables(bed)
    run(bed, 2.0, 2 * pass_seconds())
    assert tables(bed) == before and repaired(bed) == []
    assert bed.core.audit.requests > 2 * 3 * (1 + len(Table)) - 2


def test_a_deleted_vm_flow_is_repaired_within_a_pass_and_the_event_says_what_was_wrong():
    bed = audited()
    before = tables(bed)
    edge1 = bed.wire.fabric.switches[EDGE1]
    vm = next(f.cookie for f in edge1.flows if f.cookie >> 48 == 0xEB03)
    # ovs-ofctl del-flows edge1 cookie=0xeb03.../-1 table=2: the VM's unicast entry
    edge1.apply(
        [
            parser.OFPFlowMod(
                None,
                cookie=vm,
                cookie_mask=2**64 - 1,
                table_id=2,
                command=ofp.OFPFC_DELETE,
                out_port=ofp.OFPP_ANY,
                out_group=ofp.OFPG_ANY,
                match=parser.OFPMatch(),
            )
        ]
    )
    assert tables(bed) != before
    run(bed, 2.0, pass_seconds() + 0.5)
    assert tables(bed) == before
    (event,) = repaired(bed)
    assert event.kind == "audit.repaired" and event.switch == "edge1"
    assert event.detail["piece"] == "table FORWARD"
    assert event.detail["flows_missing"] == 1
    assert f"cookie={vm:#x}" in event.detail["examples"][0]


def test_an_altered_flow_is_replaced_in_place_and_a_stray_one_of_ours_deleted():
    bed = audited()
    before = tables(bed)
    edge2 = bed.wire.fabric.switches[EDGE2]
    trunk = next(f for f in edge2.flows if f.cookie == cookie(CookieKind.BASE, 101))
    trunk.instructions = []  # the trunk turned into a drop
    stray = ofmsg.flow(Table.FORWARD, 7, cookie(CookieKind.VSI, 999), eth_type=0x0800)
    foreign = ofmsg.flow(Table.FORWARD, 8, 0x1234, eth_type=0x0800)
    edge2.apply([ofmsg.add_flow(stray), ofmsg.add_flow(foreign)])
    run(bed, 2.0, pass_seconds() + 0.5)
    after = tables(bed)
    assert 0x1234 in {c for _, _, c, _ in after[EDGE2]}  # not ours: left alone
    after[EDGE2] = [f for f in after[EDGE2] if f[2] != 0x1234]
    assert after == before
    assert edge2.process(in_port=101, eth_type=0x0800).tables == [Table.CLASSIFY, Table.FORWARD]
    found = {}
    for event in repaired(bed):
        assert event.kind == "audit.repaired" and event.switch == "edge2"
        found.update({k: v for k, v in event.detail.items() if k.startswith("flows_")})
    assert found == {"flows_changed": 1, "flows_unexpected": 1}


def test_a_deleted_meter_and_the_flows_it_took_along_come_back():
    bed = audited()
    before = tables(bed)
    edge1 = bed.wire.fabric.switches[EDGE1]
    meter = next(m for m in edge1.meters if m > 0x10000)
    assert meter == vm_meter_id(meter - 0x10000)
    edge1.apply([ofmsg.meter_delete(meter)])  # OpenFlow: the flows that use it go too
    run(bed, 2.0, pass_seconds() + 0.5)
    assert meter in edge1.meters and tables(bed) == before
    kinds = [(e.detail["piece"], e.detail.get("meters_missing")) for e in repaired(bed)]
    assert kinds[0] == ("meters", 1)  # meters first: the flows name them


def test_the_budget_bounds_the_requests_and_one_is_outstanding_at_a_time():
    bed = audited()
    bed.wire.hold_barriers = False
    sent = []
    now = 2.0
    for _ in range(100):  # 10 s at a tick of 0.1 s
        now = round(now + 0.1, 6)
        out = bed.core.background(now)
        sent += [
            now
            for _, m in out
            if isinstance(m, parser.OFPFlowStatsRequest | parser.OFPMeterConfigStatsRequest)
        ]
        assert len(out) <= 1
        bed.wire.deliver(out, now)
    assert len(sent) <= RATE * 10 + 1
    unanswered = Bed(fabric={"audit_rate": 1000.0})
    first = unanswered.core.background(5.0)
    assert len(first) == 1  # never answered: nothing more until it times out
    assert unanswered.core.background(5.5) == []
    assert len(unanswered.core.background(5.0 + audit.REQUEST_TIMEOUT + 0.1)) == 1


def test_a_piece_that_changed_while_it_was_read_is_not_judged():
    bed = audited()
    run(bed, 2.0, 0.1)  # the meters of the first switch (edge1): a table of it is next
    request = bed.core.background(3.0)
    assert request and request[0][0] == EDGE1
    bed.associate(EDGE1, 2, 2)  # flows sent to edge1 while the request is out
    bed.wire.deliver(request, 3.0)
    assert bed.core.audit.raced == 1 and repaired(bed) == []


def test_a_large_table_is_read_in_cookie_slices(monkeypatch):
    monkeypatch.setattr(audit, "SLICE_FLOWS", 1)
    bed = audited()
    before = tables(bed)
    start = run(bed, 2.0, pass_seconds() + 0.05)  # a first pass: how large each table is
    assert bed.core.audit.resliced >= 1  # agg1's FORWARD, larger than planned: not judged
    agg = bed.wire.fabric.switches[AGG]
    agg.apply([ofmsg.delete_by_cookie(cookie(CookieKind.VSI), COOKIE_MASK_KIND)])
    requests = []
    now = start
    while now < start + 30:
        now = round(now + 0.1, 6)
        out = bed.core.background(now)
        requests += [m for d, m in out if d == AGG and isinstance(m, parser.OFPFlowStatsRequest)]
        bed.wire.deliver(out, now)
    assert tables(bed) == before
    masks = {(m.table_id, m.cookie_mask & 0xFF) for m in requests}
    assert (Table.FORWARD, 3) in masks  # 2 unicast entries and a flood flow: four slices
    assert {e.detail["piece"] for e in repaired(bed)} <= {
        "table FORWARD slice 0/2",
        "table FORWARD slice 1/2",
        "table FORWARD slice 0/4",
        "table FORWARD slice 1/4",
        "table FORWARD slice 2/4",
        "table FORWARD slice 3/4",
    }


def test_pieces_and_slices():
    assert audit._slices(0) == audit._slices(audit.SLICE_FLOWS) == 1
    assert audit._slices(audit.SLICE_FLOWS + 1) == 2
    assert audit._slices(10**9) == audit.MAX_SLICES
    piece = Piece(1, Table.FORWARD, 4, 3)
    assert piece.describe() == "table FORWARD slice 3/4"
    assert Piece(1, None).describe() == "meters"
    assert piece.holds(ofmsg.flow(Table.FORWARD, 1, cookie(CookieKind.VSI, 7)))
    assert not piece.holds(ofmsg.flow(Table.FORWARD, 1, cookie(CookieKind.VSI, 8)))
    assert not piece.holds(ofmsg.flow(Table.CLASSIFY, 1, cookie(CookieKind.VSI, 7)))


def test_flows_changed_while_a_table_is_read_are_left_out_and_the_rest_is_judged():
    bed = audited()
    now = 2.0
    while True:  # up to the request for the aggregation switch's FORWARD table
        now = round(now + 0.1, 6)
        request = bed.core.background(now)
        piece = bed.core.audit._pending.piece if request else None
        if piece is not None and (piece.dpid, piece.table) == (AGG, Table.FORWARD):
            break
        bed.wire.deliver(request, now)
    agg = bed.wire.fabric.switches[AGG]
    gone = next(f for f in agg.flows if f.cookie >> 48 == 0xEB03)
    agg.flows.remove(gone)  # deleted by hand
    bed.associate(EDGE2, 2, 2, type_id=6, version=1)  # its unicast entry goes to agg1 meanwhile
    bed.wire.deliver(request, now)
    assert bed.core.audit.raced == 0
    (event,) = repaired(bed)
    assert event.switch == "agg1" and event.detail["flows_missing"] == 1
    assert f"cookie={gone.cookie:#x}" in event.detail["examples"][0]


def test_a_switch_nobody_changed_is_judged_by_digests_and_a_change_behind_our_back_still_shows():
    bed = audited()
    now = run(bed, 2.0, pass_seconds() + 0.05)  # one pass: every piece found in sync
    asked = []
    intent = bed.core._intent
    bed.core._intent = lambda dpid, piece: asked.append(dpid) or intent(dpid, piece)
    now = run(bed, now, pass_seconds())
    assert asked == [] and repaired(bed) == []  # the digests matched: no intent computed
    edge2 = bed.wire.fabric.switches[EDGE2]
    unicast = next(f for f in edge2.flows if f.table_id == Table.FORWARD and f.priority == 35000)
    edge2.flows.remove(unicast)
    run(bed, now, pass_seconds())
    assert set(asked) == {EDGE2}
    (event,) = repaired(bed)
    assert event.switch == "edge2" and event.detail["flows_missing"] == 1
