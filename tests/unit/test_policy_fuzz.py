"""Whatever a policy file holds, loading it returns profiles or raises PolicyError, nothing else."""

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from app.policy import PolicyError, VsiTypeProfile, load_text, schema

FUZZ = settings(max_examples=150)

KEYS = (
    schema.TOP_KEYS + schema.PROFILE_KEYS + schema.RULE_KEYS + schema.QOS_KEYS + schema.LIMITS_KEYS
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.integers(),
    st.floats(),
    st.sampled_from(
        [
            "permit",
            "deny",
            "tcp",
            "udp",
            "ipv4",
            "ipv6",
            "arp",
            "mgr1",
            "10.0.0.0/8",
            "10.0.0.1/8",
            "2001:db8::/32",
            "02:00:00:00:00:01",
            "02:00:00:00:00:00/ff:00:00:00:00:00",
            "100-110",
            "8000-8080",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "",
        ]
    ),
    st.text(max_size=20),
)
nested = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=6
        ),
    ),
    max_leaves=40,
)


def load_or_policy_error(text: str) -> None:
    try:
        profiles = load_text(text, "fuzz.yaml")
    except PolicyError as err:
        assert err.file == "fuzz.yaml"
        assert err.errors and all(isinstance(e, PolicyError) for e in err.errors)
        str(err)
    else:
        assert all(isinstance(p, VsiTypeProfile) for p in profiles)


@FUZZ
@given(
    st.text(alphabet=st.sampled_from(list("vsi_types:-[]{},'\"!&*#|>\n\t 0123456789abx.~")))
    | st.text()
)
def test_random_text_loads_or_raises_policy_error(text):
    load_or_policy_error(text)


@FUZZ
@given(nested)
def test_random_data_loads_or_raises_policy_error(data):
    load_or_policy_error(yaml.safe_dump(data))


profile_entries = st.fixed_dictionaries(
    {
        "type_id": st.integers(-1, 0x1000000),
        "version": st.integers(-1, 256),
        "name": st.text(max_size=3),
        "tenant": st.sampled_from(["blue", ""]),
        "vlans": st.lists(st.integers(-1, 4096) | st.sampled_from(["1-3", "9-2", "x"]), max_size=3),
        "manager_ids": st.lists(st.sampled_from(["mgr1", "a b", "cafe"]), max_size=2),
    },
    optional={
        "default_vlan": st.integers(-1, 4096) | nested,
        "ingress_acl": st.lists(
            st.dictionaries(st.sampled_from(schema.RULE_KEYS), scalars, max_size=5), max_size=4
        ),
        "egress_acl": nested,
        "acl_default": scalars,
        "qos": st.dictionaries(st.sampled_from(schema.QOS_KEYS), st.integers(-1, 70), max_size=4),
        "limits": st.dictionaries(
            st.sampled_from(schema.LIMITS_KEYS), st.integers(-1, 5), max_size=2
        ),
    },
)


@FUZZ
@given(st.lists(profile_entries, max_size=3))
def test_near_valid_profiles_load_or_raise_policy_error(entries):
    load_or_policy_error(yaml.safe_dump({"vsi_types": entries}))
