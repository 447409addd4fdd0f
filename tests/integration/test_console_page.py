"""The console's page in headless chromium against the REST API of the tests' fake controller
(tests/unit/test_rest_harness.py) on loopback: no Mininet, so it runs with the fast tests. It
shows what the bed does not: a VM's counters as GET /v1/vms/{vsi_id}/stats gives them, and
values holding markup in every place the page shows them."""

import json
import threading
import time
from contextlib import contextmanager
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

from tests.integration.console_browser import NEEDS_BROWSER, Console, chromium
from tests.unit.test_rest_harness import ADMIN_TOKEN, VSI_A, VSI_B, Harness

pytestmark = NEEDS_BROWSER
HOSTILE = '<img src=x id=pwned onerror="document.title=1">'
STATS = {
    "vsi_id": VSI_A,
    "attachments": [
        {
            "switch": "edge1",
            "port": "edge1-s1",
            "packets_in": 120,
            "bytes_in": 12000,
            "packets_out": 110,
            "bytes_out": 11000,
            "acl_drops": 7,
            "meter_drops": 0,
            "polled_at": 1.0,
        }
    ],
}


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def _console(app):
    """``app`` served on loopback, and the console opened on it in chromium."""
    server = make_server("127.0.0.1", 0, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with chromium() as driver:
            yield Console(driver, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def harness(tmp_path):
    """The fake controller, with markup in a profile name and a refusal's reason."""
    harness = Harness(str(tmp_path / "evb.db"))
    harness.service.held[0]["attachments"][0]["profile"] = HOSTILE + "web"
    harness.events.emit(
        "vsi.refused", "edge2", "edge2-s2", vsi=VSI_B, macs=["52:00:00:00:00:0b"],
        error="invalid_vid_group_mac", reason=HOSTILE + "no", tenant="red",
    )  # fmt: skip
    yield harness
    harness.close()


@pytest.fixture
def page(harness):
    """The console on the fake controller, with a stats route for VSI A in the shape of
    docs/openapi.yaml's AttachmentStats."""

    def app(environ, start_response):
        if environ["PATH_INFO"] == f"/v1/vms/{VSI_A}/stats":
            start_response("200 OK", [("Content-Type", "application/json")])
            return [json.dumps(STATS).encode()]
        return harness.api.wsgi(environ, start_response)

    with _console(app) as console:
        yield console


def test_a_vms_counters_show_its_acl_drops(page):
    page.login(ADMIN_TOKEN)
    page.row("vms", VSI_A)
    page.click(f'#vms tr[data-vsi="{VSI_A}"]')
    counters = page.wait(
        lambda d: "12000" in page.text("detail-counters") and page.text("detail-counters"),
        message="no counters shown",
    )
    assert "ACL drops" in counters and "edge1/edge1-s1" in counters, counters
    dropped = page.driver.execute_script(
        "return [...document.querySelectorAll('#detail-counters .refused')]"
        ".map((e) => e.textContent)"
    )
    assert dropped == ["7"]  # the ACL drops stand out; no meter drop does


def test_markup_in_the_data_is_shown_as_text(page):
    page.login(ADMIN_TOKEN)
    assert HOSTILE + "web" in page.row("vms", VSI_A)
    assert HOSTILE + "no" in page.row("refused", VSI_B)
    time.sleep(1.2)  # another poll redraws nothing into markup either
    assert page.driver.execute_script("return document.getElementById('pwned')") is None
    assert page.driver.title == "evb-nms console"


def test_a_vm_the_stats_route_does_not_know_says_so(harness, page):
    harness.service.vm_stats = lambda vsi_id: None  # the route answers 404
    page.login(ADMIN_TOKEN)
    page.click(f'#vms tr[data-vsi="{VSI_B}"]')
    page.wait(lambda d: "no counters" in page.text("detail-counters"), message="counters shown")


def test_a_long_list_draws_one_page_and_a_mac_finds_a_vm_beyond_it(harness, page):
    held = harness.service.held
    extra = [{**held[0], "vsi_id": f"a1b2c3d4-0000-0000-0001-{n:012x}"} for n in range(600)]
    (attachment,) = held[0]["attachments"]
    far = {**attachment, "entries": [{"mac": "52:54:00:00:99:99", "vid": 100}]}
    extra[-1] = {**extra[-1], "attachments": [far]}
    held += extra
    last = extra[-1]["vsi_id"]
    page.login(ADMIN_TOKEN)
    more = page.wait(lambda d: "more VMs than shown" in page.text("vms") and page.text("vms"))
    assert "search for a MAC or VSI ID" in more
    rows = "return document.querySelectorAll('#vms tr[data-vsi]').length"
    assert page.driver.execute_script(rows) == 500
    assert page.driver.execute_script(rows.replace("tr[data-vsi]", f'tr[data-vsi="{last}"]')) == 0
    page.type("filter", "52:54:00:00:99:99")  # the 601st VM: found by the API, not the page
    assert "52:54:00:00:99:99" in page.row("vms", last)


def test_with_no_token_configured_an_empty_token_opens_it(tmp_path):
    """The open API (loopback only, docs/security.md): every caller is an admin."""
    harness = Harness(str(tmp_path / "open.db"), tokens=())
    try:
        with _console(harness.api.wsgi) as page:
            page.login("")
            assert VSI_A in page.row("vms", VSI_A) and VSI_B in page.row("vms", VSI_B)
            page.row("servers", "edge1/edge1-s1", "data-server")
    finally:
        harness.close()
