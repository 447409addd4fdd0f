"""VSI Manager IDs as routes to VM managers: the table's form (names, UUIDs, IPv4 and IPv6 as
VDP carries them), which manager a lookup goes to, the status of an unrouted Manager ID, and
which manager hears of which event and of which VMs of a report."""

import pytest

from app.codec.vdp import ManagerIdTlv, VdpError
from app.config import ConfigError, build_settings
from app.events import Event
from app.fabric.ports import PortRef
from app.policy.database import VsiTypeDatabase
from app.policy.profile import VsiTypeKey, manager_id_from_octets
from app.vcenter.managers import ManagerSpec, manager_id_key, parse_vm_managers
from app.vcenter.routes import ManagerNotifiers, ManagerRoutes
from app.vdp.authorizer import AuthRequest, Authorizer
from app.vdp.binding_index import BindingIndex

IPV4_MAPPED = bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 5])


def test_manager_ids_are_normalized_as_the_received_octets_are():
    assert manager_id_key("mgr1") == manager_id_from_octets(ManagerIdTlv.from_name("mgr1").mgrid)
    assert manager_id_key({"ipv4": "192.0.2.5"}) == manager_id_from_octets(IPV4_MAPPED)
    assert manager_id_key({"ipv6": "fd00::5"}) == manager_id_from_octets(
        bytes.fromhex("fd000000000000000000000000000005")
    )
    assert manager_id_key("6BA7B810-9DAD-11D1-80B4-00C04FD430C8") == (
        "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
    )
    for bad in ({"ipv4": "fd00::5"}, {"ipv6": "10.0.0.1"}, {"ipv4": "x"}, {"ip": "1.2.3.4"}, 5):
        with pytest.raises(ValueError):
            manager_id_key(bad)


def test_the_table_takes_each_managers_own_settings():
    (east, west) = parse_vm_managers(
        [
            {"manager_ids": ["mgr1", {"ipv4": "192.0.2.5"}], "url": "http://192.0.2.5:8090"},
            {
                "name": "west",
                "manager_ids": [{"ipv6": "fd00::5"}],
                "url": "https://west.example:8443",
                "timeout": 2.5,
                "ttl": 30,
                "negative_ttl": 1,
                "cache": 100,
                "webhook_url": "https://hooks.example/evb",
                "tenants": ["blue"],
            },
        ]
    )
    assert (east.name, east.timeout, east.cache, east.tenants) == ("mgr1", 1.0, 4096, frozenset())
    assert east.notifications_url == "http://192.0.2.5:8090/v1/notifications"
    assert (west.timeout, west.ttl, west.negative_ttl, west.cache) == (2.5, 30, 1, 100)
    assert west.notifications_url == "https://hooks.example/evb"
    assert west.refusal("blue") is None and "west" in west.refusal("red")


@pytest.mark.parametrize(
    "table, message",
    [
        ({}, r"expected a list"),
        ([{"url": "http://a:1"}], r"vm_managers\[0\]\.manager_ids: required"),
        ([{"manager_ids": ["m"]}], r"vm_managers\[0\]\.url: required"),
        ([{"manager_ids": [], "url": "http://a:1"}], r"manager_ids: expected a list of 1"),
        ([{"manager_ids": ["a b"], "url": "http://a:1"}], r"manager_ids\[0\]: expected a Manager"),
        ([{"manager_ids": ["m"], "url": "ftp://a"}], r"vm_managers\[0\]\.url: expected http"),
        ([{"manager_ids": ["m"], "url": "http://u@a:1"}], r"\.url: user information"),
        ([{"manager_ids": ["m"], "url": "http://a:1", "timeout": 0}], r"\.timeout: expected 0.05"),
        ([{"manager_ids": ["m"], "url": "http://a:1", "cache": 1.5}], r"\.cache: expected 1 to"),
        ([{"manager_ids": ["m"], "url": "http://a:1", "tenants": "blue"}], r"\.tenants: expected"),
        ([{"manager_ids": ["m"], "url": "http://a:1", "token": "x"}], r"\.token: unknown key"),
        (
            [
                {"manager_ids": ["m"], "url": "http://a:1"},
                {"manager_ids": ["n", "m"], "url": "http://b:1"},
            ],
            r"vm_managers\[1\]\.manager_ids\[1\]: Manager ID m is given at "
            r"vm_managers\[0\]\.manager_ids\[0\] already",
        ),
        (
            [
                {"manager_ids": ["m"], "url": "http://a:1", "name": "x"},
                {"manager_ids": ["n"], "url": "http://b:1", "name": "x"},
            ],
            r"vm_managers\[1\]\.name: 'x' names another manager",
        ),
    ],
)
def test_a_bad_table_is_refused_naming_the_entry_and_field(table, message):
    with pytest.raises(ValueError, match=message):
        parse_vm_managers(table)


def test_an_unreadable_credential_file_stops_the_start(tmp_path):
    spec = ManagerSpec("m", ("m",), "http://a:1", token_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match=r"vm_managers\[0\]\.token_file: .*cannot read"):
        build_settings({"vm_managers": (spec,)}, {})


class FakeClient:
    def __init__(self, name):
        self.name = name
        self.asked = []

    def profile_lookup(self, database, manager_id, key):
        self.asked.append((manager_id, key))
        return None

    def stats(self):
        return {"url": self.name}

    def close(self):
        pass


def _spec(name, *ids, tenants=()):
    return ManagerSpec(name, tuple(ids), f"http://{name}:1", tenants=frozenset(tenants))


def test_a_lookup_goes_to_the_manager_of_its_manager_id_else_the_default():
    east, west, default = FakeClient("east"), FakeClient("west"), FakeClient("default")
    routes = ManagerRoutes(default, [(_spec("e", "mgr1"), east), (_spec("w", "mgr2"), west)])
    key = VsiTypeKey(42, 1)
    for manager_id in ("mgr1", "mgr2", "mgr3"):
        routes.profile_lookup(VsiTypeDatabase(), manager_id, key)
    assert (east.asked, west.asked, default.asked) == (
        [("mgr1", key)],
        [("mgr2", key)],
        [("mgr3", key)],
    )
    assert set(routes.stats()) == {"vm_manager", "vm_manager:e", "vm_manager:w"}


def test_an_unrouted_manager_id_without_a_default_gets_the_standard_status_hard():
    routes = ManagerRoutes(None, [(_spec("e", "mgr1"), FakeClient("east"))])
    authorizer = Authorizer(VsiTypeDatabase, lookup=routes.profile_lookup)
    request = AuthRequest.from_tlv(
        None, ManagerIdTlv.from_name("mgr9"), _vsi_tlv(type_id=42, version=1)
    )
    decision = authorizer.authorize(request, BindingIndex())
    assert (decision.error, decision.hard) == (VdpError.UNABLE_TO_CONTACT_VSI_MANAGER, True)
    assert "no VM manager is configured for Manager ID 'mgr9'" in decision.reason


def _vsi_tlv(type_id, version):
    from app.codec.vdp import FilterEntry, FilterFormat, VdpTlvType, VsiId, VsiTlv

    return VsiTlv(
        VdpTlvType.ASSOCIATE,
        0,
        type_id,
        version,
        VsiId.from_uuid("a1b2c3d4-0000-0000-0000-000000000001"),
        FilterFormat.MAC_VID,
        (FilterEntry(0, mac="52:00:00:00:00:01"),),
    )


class FakeHook:
    def __init__(self):
        self.events = []

    def __call__(self, event):
        self.events.append(event.kind)

    def notify(self, body):
        self.events.append(body)

    def stats(self):
        return {}


def test_each_event_goes_to_the_manager_its_vsi_named_and_of_its_tenants():
    default, east, blue_only = FakeHook(), FakeHook(), FakeHook()
    notifiers = ManagerNotifiers(
        default,
        [(_spec("e", "mgr1"), east), (_spec("b", "mgr2", tenants=["blue"]), blue_only)],
    )
    for kind, detail in (
        ("vsi.associated", {"manager": "mgr1", "tenant": "red"}),
        ("vsi.expired", {"manager": "mgr2", "tenant": "blue"}),
        ("vsi.refused", {"manager": "mgr2", "tenant": "red"}),  # not blue's: nobody
        ("vsi.refused", {"manager": "mgr2"}),  # the type was unknown: no tenant yet
        ("vsi.deassociated", {"manager": "mgr7", "tenant": "red"}),
        ("server.maintenance", {"vms": []}),
    ):
        notifiers(Event(kind, detail=detail))
    assert east.events == ["vsi.associated"]
    assert blue_only.events == ["vsi.expired", "vsi.refused"]
    assert default.events == ["vsi.deassociated", "server.maintenance"]


def _vm(vsi, manager, tenant, port, packets):
    return {
        "vsi_id": vsi,
        "state": "associated",
        "tenant": tenant,
        "manager": manager,
        "switch": "edge1",
        "port": port,
        "packets_in": packets,
        "bytes_in": None if packets is None else 10 * packets,
        "packets_out": 0,
        "bytes_out": 0,
        "acl_drops": 0,
        "meter_drops": 0,
        "polled_at": None,
    }


def test_a_report_gives_each_manager_its_vms_and_their_sums_only():
    default, east = FakeHook(), FakeHook()
    notifiers = ManagerNotifiers(default, [(_spec("e", "mgr1"), east)])
    vms = [
        _vm("v1", "mgr1", "red", "edge1-s1", 3),
        _vm("v2", "mgr1", "red", "edge1-s1", None),
        _vm("v3", "mgr2", "blue", "edge1-s1", 5),
    ]
    servers = [{"switch": "edge1", "port": "edge1-s1", "vms": 3, "packets_in": 8}]
    body = {"kind": "vm.report", "detail": {"servers": servers, "vms": vms, "ports_held": 1}}
    notifiers.report(body)
    (to_east,) = east.events
    assert [vm["vsi_id"] for vm in to_east["detail"]["vms"]] == ["v1", "v2"]
    ((server),) = to_east["detail"]["servers"]
    assert (server["vms"], server["packets_in"], server["bytes_in"]) == (2, 3, 30)
    (to_default,) = default.events
    assert [vm["vsi_id"] for vm in to_default["detail"]["vms"]] == ["v3"]
    assert to_default["detail"]["servers"][0]["packets_in"] == 5
    alone = FakeHook()
    ManagerNotifiers(alone).report(body)
    assert alone.events == [body]  # one manager: the page as it is


def test_each_manager_is_asked_with_its_own_token_and_believed_only_for_its_tenants(tmp_path):
    """build(): real clients against two scripted managers; east lists tenant blue and answers
    a profile of tenant red, which the station is refused (other failure, hard)."""
    from app.vcenter import routes
    from tests.unit.test_vcenter_http import Scripted, served

    tokens = {}

    def answer_as(tenant):
        def answer(number, environ):
            tokens.setdefault(tenant, environ.get("HTTP_AUTHORIZATION"))
            body = {"type_id": 42, "version": 1, "name": "app", "tenant": tenant, "vlans": [300]}
            return 200, {**body, "manager_ids": ["mgr1", "mgr2"]}

        return answer

    for name in ("east", "west"):
        (tmp_path / name).write_text(f"{name}-token\n")
    with served(Scripted(answer_as("red"))) as east, served(Scripted(answer_as("blue"))) as west:
        settings = build_settings(
            {
                "vm_managers": parse_vm_managers(
                    [
                        {
                            "name": "east",
                            "manager_ids": ["mgr1"],
                            "url": east,
                            "tenants": ["blue"],
                            "token_file": str(tmp_path / "east"),
                        },
                        {
                            "name": "west",
                            "manager_ids": ["mgr2"],
                            "url": west,
                            "token_file": str(tmp_path / "west"),
                        },
                    ]
                )
            },
            {},
        )
        lookups, notifiers = routes.build(settings, lambda query, result: None, lambda p: None)
        try:
            authorizer = Authorizer(VsiTypeDatabase, lookup=lookups.profile_lookup)
            decisions = {}
            for manager in ("mgr1", "mgr2"):
                request = AuthRequest.from_tlv(
                    PortRef(1, 1), ManagerIdTlv.from_name(manager), _vsi_tlv(42, 1)
                )
                lookups.client_for(manager).lookup_profile(42, 1, manager)  # cached now
                decisions[manager] = authorizer.authorize(request, BindingIndex())
        finally:
            lookups.close()
            notifiers.close()
    refused = decisions["mgr1"]
    assert (refused.error, refused.hard) == (VdpError.OTHER_FAILURE, True)
    assert "VM manager east answers for tenants blue" in refused.reason
    assert decisions["mgr2"].ok, decisions["mgr2"]
    assert {stats["url"] for stats in lookups.stats().values()} == {east, west}
    assert tokens == {"red": "Bearer east-token", "blue": "Bearer west-token"}
