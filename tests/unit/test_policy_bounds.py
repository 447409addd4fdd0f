"""The work one profile costs is bounded, whoever sends it: lists have a most number of items
(checked before the costly parts), and a VLAN list costs its items plus 4094 however its ranges
overlap."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.policy import PolicyError, load_text
from app.policy.profile import parse_vlans, vlan_set
from app.policy.schema import ITEMS_MAX
from app.registry import InvalidInput
from app.registry.documents import parse_profile
from tests.unit.test_rest_harness import profile as document

spans = st.builds(
    lambda first, length: range(first, min(first + length, 4095)),
    st.integers(1, 4094),
    st.integers(1, 300),
)


@given(st.lists(spans, max_size=30))
def test_vlan_set_is_the_union_of_its_spans(ranges):
    assert vlan_set(ranges) == frozenset(vid for span in ranges for vid in span)


class CountingSet(set):
    inserted = 0

    def update(self, *iterables):
        for iterable in iterables:
            items = list(iterable)
            CountingSet.inserted += len(items)
            super().update(items)


def test_overlapping_ranges_insert_each_vlan_once(monkeypatch):
    """20,000 full ranges inserted 82 million VLAN IDs one range after the other."""
    monkeypatch.setattr("app.policy.profile.set", CountingSet, raising=False)
    CountingSet.inserted = 0
    assert parse_vlans(["1-4094"] * 4094) == frozenset(range(1, 4095))
    assert CountingSet.inserted == 4094


@pytest.mark.parametrize("name", sorted(ITEMS_MAX))
def test_a_pushed_list_over_its_most_items_is_refused_by_its_length(name):
    item = {
        "vlans": 100,
        "manager_ids": "mgr1",
        "ingress_acl": {"action": "deny"},
        "egress_acl": {"action": "deny"},
        "groups": {"id": 7, "vlan": 100},
    }[name]
    with pytest.raises(InvalidInput, match=f"at most {ITEMS_MAX[name]} items") as info:
        parse_profile(document(**{name: [item] * (ITEMS_MAX[name] + 1)}))
    assert info.value.field == name


def test_a_policy_file_over_the_most_rules_is_refused():
    rules = "".join(
        f"      - {{action: deny, ip_proto: tcp, tp_dst: {n}, eth_type: ipv4}}\n"
        for n in range(ITEMS_MAX["ingress_acl"] + 1)
    )
    text = (
        "vsi_types:\n"
        "  - type_id: 1\n    version: 1\n    name: a\n    tenant: blue\n    vlans: [10]\n"
        "    manager_ids: [m]\n    ingress_acl:\n" + rules
    )
    with pytest.raises(PolicyError, match="at most 256 items") as info:
        load_text(text, "x.yaml")
    assert info.value.field == "vsi_types[0].ingress_acl" and info.value.line == 9
