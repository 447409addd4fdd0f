"""The web console (app/console) in a real browser on the real bed: Debian's chromium, headless,
driven by selenium through Debian's chromium-driver (nothing downloads a browser or a driver).
The controller has an admin and a tenant token: the page is opened as a user opens it.

With EVB_CONSOLE_SCREENSHOTS=DIR the main views are saved as DIR/console-*.png (docs/ holds
the committed ones)."""

import time

import pytest
import yaml

from tests.integration.bed import MARKS
from tests.integration.console_browser import NEEDS_BROWSER, Console, chromium
from topologies.migration import start_vm

ADMIN_TOKEN, BLUE_TOKEN = "console-admin-token-0001", "console-blue-token-0001"
DB = (6, 1)  # policies/default.yaml "db": tenant red, VLAN 200 (start_vm's default is blue's web)
BLUE_VSI = "a1b2c3d4-0000-0000-0000-000000000c01"
RED_VSI = "a1b2c3d4-0000-0000-0000-000000000c02"
ROGUE_VSI = "a1b2c3d4-0000-0000-0000-000000000c03"
GHOST_VSI, GHOST_MAC = "a1b2c3d4-0000-0000-0000-000000000c04", "52:54:00:00:0c:04"
# A VM's name is the VM manager's text: the page must show it, never run it.
HOSTILE_NAME = '<img src=x id=pwned onerror="document.title=1">web-1'


pytestmark = [*MARKS, NEEDS_BROWSER]


@pytest.fixture(scope="module")
def controller(tmp_path_factory):
    """conftest's controller, with tokens: the tenant token must see only its tenant."""
    from topologies.controller_process import ControllerProcess, free_port

    workdir = tmp_path_factory.mktemp("controller")
    config = workdir / "evb-nms.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "api_tokens": [
                    {"token": ADMIN_TOKEN, "tenant": "*"},
                    {"token": BLUE_TOKEN, "tenant": "blue"},
                ]
            }
        )
    )
    config.chmod(0o600)
    proc = ControllerProcess(
        workdir,
        of_port=free_port(),
        rest_port=free_port(),
        extra_args=("--config", str(config)),
        log_level="DEBUG",
        token=ADMIN_TOKEN,
    )
    with proc:
        yield proc
    print(proc.log_text()[-3000:])


@pytest.fixture(scope="module")
def browser():
    with chromium() as driver:
        yield driver


@pytest.fixture
def console(browser, controller):
    return Console(browser, f"http://127.0.0.1:{controller.rest_port}")


@pytest.fixture
def vms(bed, stations, controller):
    """A blue VM on srv11 that the VM manager registered with a name holding markup, a red one
    on srv21, a rogue refused on srv12 (VLAN 999 is not its type's) and a blue VM registered
    that no station associated."""
    registered = {BLUE_VSI: ("52:54:00:00:0c:01", HOSTILE_NAME), GHOST_VSI: (GHOST_MAC, "ghost")}
    for vsi, (mac, name) in registered.items():
        controller.call(
            "PUT", f"/v1/vms/{vsi}", {"type_id": 5, "type_version": 4, "macs": [mac], "name": name}
        )
    try:
        blue = start_vm(bed, stations, "cb", "srv11", "52:54:00:00:0c:01", "10.0.12.1/24", BLUE_VSI)
        red = start_vm(
            bed, stations, "cr", "srv21", "52:54:00:00:0c:02", "10.0.12.2/24", RED_VSI, vsi_type=DB
        )
        rogue = bed.add_vm("cx", "srv12", "52:54:00:00:0c:03", "10.0.12.3/24")
        refused = stations["srv12"].vdp(
            "assoc", "mgr1", 5, 4, ROGUE_VSI, filters=[f"999-{rogue.mac}"]
        )
        assert not refused.ok, refused.raw
        yield blue, red
    finally:
        for vsi in registered:
            controller.call("DELETE", f"/v1/vms/{vsi}")


def test_the_page_lists_the_vms_shows_the_rogue_refused_and_a_vms_detail(console, vms):
    console.login(ADMIN_TOKEN)
    blue = console.row("vms", BLUE_VSI)
    red = console.row("vms", RED_VSI)
    assert "associated" in blue and "blue" in blue and "100" in blue, blue
    assert "edge1/edge1-s1" in blue and "52:54:00:00:0c:01" in blue, blue
    assert "red" in red and "200" in red and "edge2/edge2-s1" in red, red
    rogue = console.row("refused", ROGUE_VSI)
    assert "refused" in rogue and "edge1/edge1-s2" in rogue, rogue
    assert ROGUE_VSI not in console.text("vms")
    assert HOSTILE_NAME in blue, blue
    assert console.driver.execute_script("return document.getElementById('pwned')") is None
    ghost = console.row("vms", GHOST_VSI)
    assert "registered, not associated" in ghost and GHOST_MAC in ghost, ghost
    console.row("servers", "edge1/edge1-s1", attribute="data-server")
    console.shot("overview")
    console.shot("vms", "vms-view")
    console.shot("fabric", "fabric-view")

    console.click(f'#vms tr[data-vsi="{BLUE_VSI}"]')
    detail = console.wait(
        lambda d: "vsi.associated" in console.text("vm-detail") and console.text("vm-detail"),
        message="the VM's detail shows no vsi.associated event",
    )
    assert "edge1/edge1-s1" in detail and "Counters" in detail, detail
    assert f'registered as "{HOSTILE_NAME}"' in detail, detail
    console.shot("vm-detail", "vm-detail")


def test_an_alarm_shows_within_2_s_of_a_server_port_going_down(console, bed, stations, controller):
    start_vm(bed, stations, "ca", "srv11", "52:54:00:00:0c:11", "10.0.12.11/24", BLUE_VSI)
    console.login(ADMIN_TOKEN)
    console.row("vms", BLUE_VSI)
    server, uplink = bed.server("srv11"), bed.spec.server("srv11").uplink
    try:
        server.cmd("ip link set", uplink, "down")
        down = time.monotonic()
        alarm = console.row("alarms", "port.down:edge1/edge1-s1", "data-alarm", timeout=2)
        took = time.monotonic() - down
        assert BLUE_VSI in alarm, alarm
        console.wait(
            lambda d: "down" in console.row("servers", "edge1/edge1-s1", "data-server"),
            message="the server port is not shown down",
        )
        console.shot("alarms", "alarms-view")
        console.shot("fabric-port-down", "fabric-view")
    finally:
        server.cmd("ip link set", uplink, "up")
    assert took <= 2.0, took
    console.wait(
        lambda d: "port.down:edge1/edge1-s1" not in console.text("alarms"),
        message="the alarm stays",
    )


def test_a_tenant_token_sees_only_its_tenants_vms(console, vms):
    console.login(BLUE_TOKEN)
    console.row("vms", BLUE_VSI)
    console.wait(lambda d: "admin only" in console.text(), message="the fabric is not refused")
    time.sleep(1.5)  # a further poll: red's VM would be listed by now
    page = console.driver.page_source
    assert RED_VSI not in page and "52:54:00:00:0c:02" not in page
    assert "tenant token" in console.text("who")
    console.shot("tenant")


def test_an_admin_puts_a_server_in_maintenance_and_back(console, bed, controller):
    from selenium.webdriver.support import expected_conditions

    def shown():
        return console.row("servers", "edge1/edge1-s2", "data-server")

    def held():
        [server] = [s for s in controller.rest("/v1/servers") if s["port"] == "edge1-s2"]
        return server["maintenance"]

    button = '#servers tr[data-server="edge1/edge1-s2"] button'
    console.login(ADMIN_TOKEN)
    shown()
    try:
        console.click(button)
        prompt = console.wait(expected_conditions.alert_is_present(), 5, "no reason asked")
        prompt.send_keys("console drill")
        prompt.accept()
        console.wait(lambda d: "console drill" in shown(), message="maintenance not shown")
        assert held()["reason"] == "console drill"
        console.click(button)
        console.wait(lambda d: "console drill" not in shown(), message="maintenance still shown")
        assert held() is None
    finally:
        if held() is not None:
            controller.call("DELETE", "/v1/servers/edge1/edge1-s2/maintenance")
