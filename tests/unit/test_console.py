"""The web console's assets (app/rest/console.py): served open with their content types and a
strict Content-Security-Policy, only by their known names, and complete (every asset the page
names exists); the page's script shows data as text only."""

import re
from html.parser import HTMLParser

import pytest
from webob import Request

from app.rest.console import CONSOLE_DIR, CONTENT_TYPES


def get(harness, path: str, headers=None):
    return Request.blank(path, headers=headers or {}).get_response(harness.api.wsgi)


@pytest.mark.parametrize("asset, content_type", sorted(CONTENT_TYPES.items()))
def test_every_asset_is_served_open_with_its_type_and_a_strict_policy(harness, asset, content_type):
    response = get(harness, f"/console/{asset}")
    assert response.status_code == 200
    assert response.content_type == content_type and response.charset == "utf-8"
    assert response.body == (CONSOLE_DIR / asset).read_bytes()
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "script-src 'self';" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"


@pytest.mark.parametrize("path", ["/console/", "/console"])
def test_the_console_path_is_the_page(harness, path):
    response = get(harness, path)
    assert response.status_code == 200 and response.content_type == "text/html"
    assert response.body == (CONSOLE_DIR / "index.html").read_bytes()


def test_an_unchanged_asset_is_not_sent_again(harness):
    etag = get(harness, "/console/app.js").headers["ETag"]
    assert get(harness, "/console/app.js", {"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    "path",
    [
        "/console/nothing.js",
        "/console/__init__.py",
        "/console/..%2Frest%2Fconsole.py",
        "/console/%2E%2E%2F%2E%2E%2Fsetup.py",
        "/console/app.js/x",
        "/console/../rest/console.py",
        "/console/APP.JS",
    ],
)
def test_only_the_known_names_are_served(harness, path):
    response = get(harness, path)
    assert response.status_code == 404
    assert response.content_type == "application/json"


def test_a_query_is_refused_as_everywhere_in_the_api(harness):
    assert get(harness, "/console/app.js?x=1").status_code == 400


class _References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0
        self.inline_styles = 0
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(values[name])
        self._in_script = tag == "script"
        self.inline_styles += "style" in values or tag == "style"
        self.inline_scripts += any(name.startswith("on") for name in values)

    def handle_data(self, data):
        self.inline_scripts += self._in_script and bool(data.strip())

    def handle_endtag(self, tag):
        self._in_script = False


def test_every_asset_the_page_references_exists_and_none_is_inline(harness):
    page = _References()
    page.feed((CONSOLE_DIR / "index.html").read_text())
    assert page.urls, "the page references its script and style"
    for url in page.urls:
        assert url.startswith("/console/"), url  # this origin only, no CDN
        assert get(harness, url).status_code == 200, url
    assert page.inline_scripts == 0 and page.inline_styles == 0


def test_every_element_the_script_looks_up_is_on_the_page():
    script = (CONSOLE_DIR / "app.js").read_text()
    looked_up = set(re.findall(r'getElementById\("([\w-]+)"\)', script))
    looked_up |= set(re.findall(r'fillBody\("([\w-]+)"', script))
    page = (CONSOLE_DIR / "index.html").read_text()
    assert looked_up and not {name for name in looked_up if f'id="{name}"' not in page}


def test_every_asset_file_is_served_and_shipped():
    assert {p.name for p in CONSOLE_DIR.iterdir()} == set(CONTENT_TYPES)


def test_the_script_shows_data_as_text_only():
    """Station- and tenant-given values (VM names, MACs, reasons) must never become markup."""
    script = (CONSOLE_DIR / "app.js").read_text()
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)


def test_the_page_reaches_only_this_api():
    script = (CONSOLE_DIR / "app.js").read_text()
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", script)
