"""Shared test data: the captured frames and hypothesis strategies that generate valid codec
objects, and the REST tests' harness."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import strategies as st

from app.codec.cdcp_tlv import RESERVED_MASK as CDCP_RESERVED_MASK
from app.codec.cdcp_tlv import CdcpTlv, SChannel
from app.codec.errors import CodecError
from app.codec.ethernet import TPID_CTAG, TPID_STAG, VlanTag
from app.codec.evb_tlv import RESERVED_MASK as EVB_RESERVED_MASK
from app.codec.evb_tlv import EvbTlv
from app.codec.frame import EcpAckFrame, LldpFrame, VdpFrame
from app.codec.lldp import ChassisId, LldpPdu, LldpTlv, OrgTlv, PortId
from app.codec.tlv import IEEE_8021_OUI
from app.codec.vdp import (
    VSI_TLV_TYPES,
    FilterEntry,
    FilterFormat,
    ManagerIdTlv,
    VdpOrgTlv,
    Vdpdu,
    VsiId,
    VsiIdFormat,
    VsiTlv,
)
from tests.pcap_reader import read_pcap
from tests.unit.test_rest_harness import Harness

DATA_DIR = Path(__file__).resolve().parents[1] / "data"


def captured_frames() -> list[tuple[str, int, bytes]]:
    """(capture file name, 1-based frame number, frame) for every captured frame."""
    return [
        (path.name, number, frame)
        for path in sorted(DATA_DIR.glob("*.pcap"))
        for number, frame in enumerate(read_pcap(path), 1)
    ]


def capture(name: str) -> list[bytes]:
    return read_pcap(DATA_DIR / name)


@contextmanager
def codec_error(field: str) -> Iterator[None]:
    """Expect a CodecError naming ``field``."""
    with pytest.raises(CodecError) as info:
        yield
    assert info.value.field == field, str(info.value)
    assert str(info.value).startswith(field)


def uints(bits: int) -> st.SearchStrategy[int]:
    return st.integers(0, (1 << bits) - 1)


macs = st.binary(min_size=6, max_size=6).map(lambda raw: ":".join(f"{b:02x}" for b in raw))
vlan_tags = st.builds(
    VlanTag,
    vid=uints(12),
    pcp=uints(3),
    dei=st.booleans(),
    tpid=st.sampled_from([TPID_CTAG, TPID_STAG]),
)

# A PDU tail: (end_tlv, padding) pairs that decode back to themselves.
tails = st.one_of(
    st.just((False, 0)), st.just((False, 1)), st.tuples(st.just(True), st.integers(0, 40))
)

evb_tlvs = st.builds(
    EvbTlv,
    mode=uints(2),
    bgid=st.booleans(),
    rrcap=st.booleans(),
    rrctr=st.booleans(),
    sgid=st.booleans(),
    rrreq=st.booleans(),
    rrstat=uints(2),
    r=uints(3),
    rte=uints(5),
    rol_rwd=st.booleans(),
    rwd=uints(5),
    rol_rka=st.booleans(),
    rka=uints(5),
    reserved=uints(40).map(lambda bits: bits & EVB_RESERVED_MASK),
)
cdcp_tlvs = st.builds(
    CdcpTlv,
    role=uints(1),
    scomp=st.booleans(),
    chncap=uints(12),
    channels=st.lists(st.builds(SChannel, uints(12), uints(12)), max_size=30).map(tuple),
    reserved=uints(32).map(lambda bits: bits & CDCP_RESERVED_MASK),
)
lldp_tlvs = st.builds(LldpTlv, type=st.integers(4, 126), value=st.binary(max_size=40))
org_tlvs = (
    st.tuples(uints(24), uints(8), st.binary(max_size=40))
    .filter(lambda t: not (t[0] == IEEE_8021_OUI and t[1] in (0x0D, 0x0E)))
    .map(lambda t: OrgTlv(*t))
)
lldpdus = st.builds(
    lambda chassis, port, ttl, tlvs, tail: LldpPdu(chassis, port, ttl, tuple(tlvs), *tail),
    st.builds(ChassisId, uints(8), st.binary(min_size=1, max_size=32)),
    st.builds(PortId, uints(8), st.binary(min_size=1, max_size=32)),
    uints(16),
    st.lists(st.one_of(lldp_tlvs, org_tlvs, evb_tlvs, cdcp_tlvs), max_size=4),
    tails,
)


def filter_entries(filter_format: FilterFormat) -> st.SearchStrategy[FilterEntry]:
    with_mac = filter_format in (FilterFormat.MAC_VID, FilterFormat.GROUP_MAC_VID)
    with_group = filter_format in (FilterFormat.GROUP_VID, FilterFormat.GROUP_MAC_VID)
    return st.builds(
        FilterEntry,
        vid=uints(12),
        pcp=uints(3),
        ps=st.booleans(),
        mac=macs if with_mac else st.none(),
        group_id=uints(32) if with_group else st.none(),
    )


vsi_ids = st.builds(VsiId, st.sampled_from(VsiIdFormat), st.binary(min_size=16, max_size=16))
vsi_tlvs = st.sampled_from(FilterFormat).flatmap(
    lambda filter_format: st.builds(
        VsiTlv,
        mode=st.sampled_from(VSI_TLV_TYPES),
        status=uints(8),
        type_id=uints(24),
        type_version=uints(8),
        vsi_id=vsi_ids,
        filter_format=st.just(filter_format),
        filters=st.lists(filter_entries(filter_format), min_size=1, max_size=4).map(tuple),
    )
)
manager_ids = st.builds(ManagerIdTlv, st.binary(min_size=16, max_size=16))
vdp_org_tlvs = st.builds(VdpOrgTlv, uints(24), st.binary(max_size=30))
vdpdus = st.builds(
    lambda leading, groups, tail: Vdpdu(
        tuple(leading) + tuple(t for mgr, rest in groups for t in (mgr, *rest)), *tail
    ),
    st.lists(vdp_org_tlvs, max_size=1),
    st.lists(
        st.tuples(manager_ids, st.lists(st.one_of(vsi_tlvs, vdp_org_tlvs), max_size=3)), max_size=3
    ),
    tails,
)

_addressing = {"dst": macs, "vlan": st.none() | vlan_tags}
evb_frames = st.one_of(
    st.builds(LldpFrame, macs, lldpdus, **_addressing),
    st.builds(VdpFrame, macs, uints(16), vdpdus, **_addressing),
    st.builds(EcpAckFrame, macs, uints(16), st.integers(0, 46), **_addressing),
)


@pytest.fixture
def harness(tmp_path):
    """The REST tests' controller: tests/unit/test_rest_harness.py Harness on a fresh database."""
    harness = Harness(str(tmp_path / "evb.db"))
    yield harness
    harness.close()


@pytest.fixture(scope="session")
def etcd_endpoints(tmp_path_factory):
    """A one-member etcd for the session, started by scripts/etcd-cluster.sh (tests take a key
    prefix each); skipped, with the reason, where there is no etcd."""
    from tests.etcd_cluster import etcd_cluster

    with etcd_cluster(tmp_path_factory.mktemp("etcd"), 1) as cluster:
        yield cluster.endpoints
