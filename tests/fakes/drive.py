"""Runs one SwitchSync alone against a FakeSwitch, answering its requests as FabricControl routes
them (tests/fakes/wire.py drives a whole FabricControl)."""

from os_ken.ofproto import ofproto_v1_3_parser as parser

from tests.fakes.fake_switch import FakeSwitch


def answer(sync, fake: FakeSwitch, msgs) -> list:
    """Applies `msgs` to the fake, answers every request in them, and returns what was sent."""
    sent = list(msgs)
    pending = list(msgs)
    while pending:
        msg = pending.pop(0)
        fake.apply([msg])
        answers, fake.answers = fake.answers, []
        for answer in answers:
            if answer.code is None:
                sync.on_bundle_reply(answer.xid, answer.kind)
            else:
                sync.on_error(answer.xid, f"type {answer.kind} code {answer.code}")
        purpose = sync.purpose(msg.xid) if msg.xid is not None else None
        if purpose == "ports":
            more = sync.on_ports(fake.port_list())
        elif purpose == "meters":
            more = sync.on_meters(fake.meter_configs())
        elif purpose == "flows":
            more = sync.on_flows(fake.flow_stats(msg))
        elif purpose == "canary":
            more = sync.on_canary(fake.flow_stats(msg))
        elif purpose == "barrier":
            sync.on_barrier()
            more = []
        else:
            more = []
        sent.extend(more)
        pending.extend(more)
    return sent


def connect(sync, fake: FakeSwitch) -> list:
    return answer(sync, fake, sync.on_features())


def flow_mods(msgs) -> list:
    return [m for m in msgs if isinstance(m, (parser.OFPFlowMod, parser.OFPMeterMod))]
