"""Where webhooks may go (app/vcenter/destinations.py): loopback, link-local, private and
special addresses refused unless allowed, after name resolution too; user information refused;
malformed URLs refused with a reason rather than accepted."""

import pytest

from app.vcenter.destinations import (
    DestinationPolicy,
    DestinationRefused,
    UnresolvedHost,
    parse_allow_entry,
    system_resolver,
)

PUBLIC_IP = "93.184.216.34"


def resolver(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise UnresolvedHost(f"cannot resolve {host!r}")
        return table[host]

    return resolve


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://127.0.0.1:22/x", "loopback"),
        ("http://127.1.2.3/x", "loopback"),
        ("http://127.1/x", "127.0.0.1 is a loopback"),
        ("http://2130706433:8080/x", "127.0.0.1 is a loopback"),
        ("http://0x7f.0.0.1/x", "127.0.0.1 is a loopback"),
        ("http://0251.0376.0251.0376/x", "169.254.169.254 is a link-local"),
        ("http://[::1]:8080/x", "loopback"),
        ("http://[::ffff:127.0.0.1]/x", "loopback"),
        ("http://localhost:8080/x", "loopback name"),
        ("http://api.localhost/x", "loopback name"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/x", "link-local"),
        ("http://10.0.0.5/x", "private"),
        ("http://192.168.1.1/x", "private"),
        ("http://172.16.0.1/x", "private"),
        ("http://[fd00::1]/x", "private"),
        ("http://0.0.0.0:6653/x", "unspecified"),
        ("http://224.0.0.1/x", "multicast"),
        ("http://user:pw@example.com/x", "user information"),
        ("http://example.com@127.0.0.1:6653/x", "user information"),
        ("http:///x", "host is missing"),
        ("http://:80/x", "host is missing"),
        ("http://example.com:99999/x", "expected http"),
        ("http://example.com:0/x", "port 0"),
        ("http://example.com", "path is missing"),
        ("ftp://example.com/x", "expected http"),
        ("http://example.com/x\nevent=switch.disconnected", "controls"),
        ("http://exa mple.com/x", "controls"),
    ],
)
def test_refused_by_default(url, reason):
    with pytest.raises(DestinationRefused, match=reason):
        DestinationPolicy().check_url(url)


def test_public_addresses_pass_by_default():
    target = DestinationPolicy().check_url(f"https://{PUBLIC_IP}/hook")
    assert (target.host, target.port) == (PUBLIC_IP, 443)
    assert DestinationPolicy().check_url("http://doctor.example.com:8000/x").port == 8000


def test_names_are_checked_after_resolution():
    """A name that resolves to a loopback or metadata address is refused at delivery."""
    policy = DestinationPolicy(
        resolver=resolver(
            {"evil.example": ["127.0.0.1"], "meta.example": ["169.254.169.254", "fe80::1"]}
        )
    )
    policy.check_url("http://evil.example/x")  # nothing to say without the network
    with pytest.raises(DestinationRefused, match="no allowed address.*127.0.0.1 is a loopback"):
        policy.resolve("http://evil.example/x")
    with pytest.raises(DestinationRefused, match="169.254.169.254 is a link-local"):
        policy.resolve("http://meta.example/x")


def test_the_address_to_connect_to_is_the_first_allowed_one():
    policy = DestinationPolicy(
        resolver=resolver({"mixed.example": ["10.0.0.1", PUBLIC_IP, "127.0.0.1"]})
    )
    target, address = policy.resolve("http://mixed.example:81/x")
    assert (target.host, target.port, address) == ("mixed.example", 81, PUBLIC_IP)


def test_an_unresolvable_name_is_worth_retrying():
    with pytest.raises(UnresolvedHost):
        DestinationPolicy(resolver=resolver({})).resolve("http://gone.example/x")
    with pytest.raises(UnresolvedHost):
        system_resolver("name.invalid", 80)


def test_networks_in_the_allow_list():
    policy = DestinationPolicy(["10.1.0.0/16", "127.0.0.1"])
    assert policy.resolve("http://10.1.2.3/x")[1] == "10.1.2.3"
    assert policy.resolve("http://127.0.0.1:8000/x")[1] == "127.0.0.1"
    with pytest.raises(DestinationRefused, match="private"):
        policy.check_url("http://10.2.0.1/x")
    with pytest.raises(DestinationRefused, match="loopback"):
        policy.check_url("http://127.0.0.2/x")
    # Without "public" in the list, public addresses are not allowed either.
    with pytest.raises(DestinationRefused, match="not in the webhook allow-list"):
        policy.check_url(f"http://{PUBLIC_IP}/x")
    assert DestinationPolicy(["public", "10.1.0.0/16"]).resolve(f"http://{PUBLIC_IP}/x")


def test_host_names_in_the_allow_list_are_trusted_with_their_addresses():
    policy = DestinationPolicy(
        ["hooks.internal", "*.corp.example"],
        resolver=resolver({"hooks.internal": ["10.9.9.9"], "a.corp.example": ["10.0.0.7"]}),
    )
    assert policy.resolve("http://hooks.internal/x")[1] == "10.9.9.9"
    assert policy.resolve("http://A.Corp.Example/x")[1] == "10.0.0.7"
    with pytest.raises(DestinationRefused):
        policy.resolve("http://other.internal/x")


@pytest.mark.parametrize(
    "entry, parsed",
    [
        ("public", None),
        ("10.1.0.0/16", "10.1.0.0/16"),
        ("127.0.0.1", "127.0.0.1/32"),
        ("Doctor.Example.com", "doctor.example.com"),
        ("*.example.com", "*.example.com"),
    ],
)
def test_allow_entries(entry, parsed):
    value = parse_allow_entry(entry)
    assert (None if value is None else str(value)) == parsed


@pytest.mark.parametrize("entry", ["", " ", "http://x/", "a..b", "10.0.0.0/33x", 7, None])
def test_bad_allow_entries(entry):
    with pytest.raises(ValueError, match="expected public"):
        parse_allow_entry(entry)
