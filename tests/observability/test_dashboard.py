"""The dashboard (``/dashboard/``): its static answers over HTTP, and the page
in a real headless Chromium against a real gateway (APIs listed, keys shown,
the rate chart rising under traffic, no console error, a screenshot)."""

from __future__ import annotations

import os
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.observability import cdp

SECURITY = {
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def check_security(resp: requests.Response) -> None:
    for name, value in SECURITY.items():
        assert resp.headers.get(name) == value, (name, resp.headers)
    csp = resp.headers["content-security-policy"]
    assert csp.startswith("default-src 'self'")
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "frame-ancestors 'none'" in csp


@pytest.fixture(scope="module")
def gw(module_gateway_factory: Any, make_api: Any, echo: Any) -> Any:
    return module_gateway_factory([make_api("open", "/open/", echo.base_url)])


@pytest.mark.parametrize(("path", "content_type", "marker"), [
    ("/dashboard/", "text/html; charset=utf-8", "<canvas id=\"chart-requests\""),
    ("/dashboard/app.js", "text/javascript; charset=utf-8", "window.fastgateDashboard"),
    ("/dashboard/style.css", "text/css; charset=utf-8", ".legend"),
])
def test_static_files_without_secret(gw: Any, path: str, content_type: str, marker: str) -> None:
    resp = requests.get(gw.url(path), timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == content_type
    assert marker in resp.text
    check_security(resp)
    head = requests.head(gw.url(path), timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(len(resp.content))


def test_redirect_404_405(gw: Any) -> None:
    resp = requests.get(gw.url("/dashboard"), allow_redirects=False, timeout=5)
    assert resp.status_code == 308 and resp.headers["location"] == "/dashboard/"
    check_security(resp)
    for path in ("/dashboard/nope", "/dashboard/app.js/", "/dashboard/index.html",
                 "/dashboard/x/app.js"):
        resp = requests.get(gw.url(path), timeout=5)
        assert resp.status_code == 404, path
        check_security(resp)
    for method in ("POST", "PUT", "DELETE"):
        resp = requests.request(method, gw.url("/dashboard/"), timeout=5)
        assert resp.status_code == 405 and resp.headers["allow"] == "GET, HEAD"
        check_security(resp)


class ShellAudit(HTMLParser):
    """Collects what the CSP would refuse: inline script, handlers, styles."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self.body_attrs: dict[str, str | None] = {}
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        if tag == "body":
            self.body_attrs = names
        if tag == "script":
            self._in_script = True
            if not names.get("src"):
                self.problems.append("inline <script>")
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.problems.append(f"<{tag} {name}=...>")

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False if tag == "script" else self._in_script

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.problems.append("script content")


def test_shell_has_no_inline_script_and_carries_settings(gw: Any) -> None:
    audit = ShellAudit()
    audit.feed(requests.get(gw.url("/dashboard/"), timeout=5).text)
    assert audit.problems == []
    assert audit.body_attrs["data-metrics-path"] == "/metrics"
    assert audit.body_attrs["data-hashed-keys"] == "true"


def test_settings_follow_the_configuration(gateway_factory: Any, make_api: Any,
                                           echo: Any) -> None:
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)], hash_keys=False,
                         prometheus={"path": "/prom&metrics"})
    audit = ShellAudit()
    text = requests.get(gw.url("/dashboard/"), timeout=5).text
    assert 'data-metrics-path="/prom&amp;metrics"' in text
    audit.feed(text)
    assert audit.body_attrs["data-metrics-path"] == "/prom&metrics"
    assert audit.body_attrs["data-hashed-keys"] == "false"


def test_on_the_control_port(gateway_factory: Any, make_api: Any, echo: Any,
                             free_port: Any) -> None:
    control = free_port()
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)], control_api_port=control)
    resp = requests.get(f"http://{gw.host}:{control}/dashboard/", timeout=5)
    assert resp.status_code == 200 and "fastgate dashboard" in resp.text
    check_security(resp)
    assert requests.get(gw.url("/dashboard/"), timeout=5).status_code == 404


# --------------------------------------------------------------------------- browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binary = cdp.chromium_binary()
    if binary is None:
        pytest.skip("chromium is not installed (tools/test installs Debian's chromium)")
    b = cdp.Browser(binary, tmp_path_factory.mktemp("chromium") / "profile")
    yield b
    b.close()


@pytest.fixture
def page(browser: Any) -> Any:
    p = browser.page()
    for domain in ("Runtime", "Log", "Page"):
        p.send(domain + ".enable")
    # A blank page (an earlier test's page may still poll its stopped
    # gateway), and nothing Log.enable replays of what it logged.
    p.navigate("about:blank")
    p.send("Log.clear")
    p.events.clear()
    yield p
    p.send("Page.navigate", url="about:blank")
    p.close()


def sign_in(page: Any, secret: str) -> None:
    page.wait_for("!document.getElementById('login-view').hidden")
    page.evaluate(
        "document.getElementById('secret').value = " + repr(secret) + ";"
        "document.getElementById('login').requestSubmit(); true")


def traffic(stop: threading.Event, gw: Any, key: str) -> None:
    with requests.Session() as s:
        while not stop.is_set():
            s.get(gw.url("/open/x"), timeout=5)
            s.get(gw.url("/tok/x"), headers={"Authorization": key}, timeout=5)
            s.get(gw.url("/tok/x"), headers={"Authorization": "not-a-key"}, timeout=5)
            time.sleep(0.005)


def test_dashboard_in_chromium(gateway_factory: Any, make_api: Any, echo: Any, page: Any,
                               tmp_path: Path) -> None:
    gw = gateway_factory([
        make_api("open", "/open/", echo.base_url, name="Open <b>API</b>"),
        make_api("tok", "/tok/", echo.base_url, name="Token API", use_keyless=False,
                 use_standard_auth=True, auth={"auth_header_name": "Authorization"}),
    ], enable_hashed_keys_listing=True)
    created = requests.post(gw.url("/tyk/keys/create"), headers={"X-Tyk-Authorization": gw.secret},
                            json={"org_id": "test-org", "quota_max": 1000, "rate": 1000, "per": 1,
                                  "alias": "alice", "access_rights": {"tok": {
                                      "api_id": "tok", "api_name": "Token API",
                                      "versions": ["Default"]}}}, timeout=5)
    assert created.status_code == 200, created.text
    key, key_hash = created.json()["key"], created.json()["key_hash"]

    page.navigate(gw.url("/dashboard/"))
    # A wrong secret: the form again, saying so.
    sign_in(page, "not-the-secret")
    page.wait_for("document.getElementById('login-error').textContent === 'wrong secret'")
    assert page.evaluate("document.getElementById('board').hidden") is True
    page.events.clear()  # the 403 above is logged by the browser as a failed load

    sign_in(page, gw.secret)
    page.wait_for("document.querySelectorAll('#apis tbody tr').length === 2")
    rows = page.evaluate("[...document.querySelectorAll('#apis tbody tr')].map("
                         "tr => [...tr.cells].map(td => td.textContent))")
    by_id = {row[1]: row for row in rows}
    # The name is text, not markup.
    assert by_id["open"][0] == "Open <b>API</b>" and by_id["open"][4] == "keyless"
    assert page.evaluate("document.querySelector('#apis b')") is None
    assert by_id["tok"][2] == "/tok/" and by_id["tok"][3] == echo.base_url
    assert by_id["tok"][4] == "auth token"
    keys = page.wait_for("window.fastgateDashboard.keys.length && window.fastgateDashboard.keys")
    assert keys[0]["key"] == key_hash and keys[0]["alias"] == "alice"
    assert keys[0]["quota_max"] == 1000 and keys[0]["quota"].endswith("/ 1000")
    assert key not in page.evaluate("document.body.textContent")

    stop = threading.Event()
    sender = threading.Thread(target=traffic, args=(stop, gw, key))
    sender.start()
    try:
        page.pump(3.0)
        rates = page.wait_for(
            "(() => { const r = window.fastgateDashboard.rates;"
            " return r.open && r.tok && r.open.some(p => p.v > 0)"
            " && r.tok.some(p => p.v > 0) && r; })()")
    finally:
        stop.set()
        sender.join(10)
    assert max(p["v"] for p in rates["open"]) > 1
    refusals = page.wait_for("(() => { const r = window.fastgateDashboard.refusals;"
                             " return r.tok && r.tok.some(p => p.v > 0) && r; })()")
    assert all(p["v"] == 0 for p in refusals.get("open", []))
    errors = page.wait_for("window.fastgateDashboard.errors.length"
                           " && window.fastgateDashboard.errors")
    assert any(e["api_id"] == "tok" and e["kind"] == "auth" for e in errors), errors
    latency = page.evaluate("window.fastgateDashboard.latency")
    assert latency["open"]["p99"] > 0
    page.wait_for("document.querySelector('#apis tbody tr td.num').textContent !== '—'")
    page.wait_for("document.querySelectorAll('#health dt').length >= 4")

    shot = page.screenshot(tmp_path / "dashboard.png")
    assert shot.startswith(b"\x89PNG")
    if os.environ.get("FASTGATE_ARTIFACTS"):
        root = Path(__file__).resolve().parents[2]
        (root / "test-artifacts").mkdir(exist_ok=True)
        (root / "test-artifacts" / "dashboard.png").write_bytes(shot)
    page.pump(1.5)
    assert page.problems() == []


def test_key_listing_refused_is_explained(gateway_factory: Any, make_api: Any, echo: Any,
                                          page: Any) -> None:
    gw = gateway_factory([make_api("open", "/open/", echo.base_url)])
    page.navigate(gw.url("/dashboard/"))
    sign_in(page, gw.secret)
    note = page.wait_for("window.fastgateDashboard.keysNote")
    assert "enable_hashed_keys_listing" in note
    assert page.evaluate("document.getElementById('keys-note').hidden") is False
    # The only problem: the browser's own line about the 404 it was answered.
    for event in page.problems():
        entry = event.get("params", {}).get("entry", {})
        assert entry.get("source") == "network" and "404" in entry.get("text", ""), event
