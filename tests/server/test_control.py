"""Health and control: /hello, /tyk/reload, SIGHUP, graceful SIGTERM."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable

import pytest
import requests


@pytest.fixture(scope="module")
def shared_gw(module_gateway_factory, echo, make_api):
    return module_gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])


def assert_json_error(resp: requests.Response, status: int) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict)
    return body


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


class Background:
    """Runs ``requests.get`` in a thread; ``result()`` returns the response or raises."""

    def __init__(self, url: str, timeout: float = 30) -> None:
        self._resp: requests.Response | None = None
        self._exc: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(url, timeout))
        self._thread.start()

    def _run(self, url: str, timeout: float) -> None:
        try:
            self._resp = requests.get(url, timeout=timeout)
        except BaseException as exc:  # handed to the test thread
            self._exc = exc

    def result(self, timeout: float = 30) -> requests.Response:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "background request still running"
        if self._exc is not None:
            raise self._exc
        assert self._resp is not None
        return self._resp


# ----------------------------------------------------------------------------- /hello


def test_hello(shared_gw):
    resp = requests.get(shared_gw.url("/hello"), timeout=5)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/json")
    assert "status" in resp.json()


# ----------------------------------------------------------------------------- /tyk/reload


@pytest.mark.parametrize(
    "secret",
    [None, "", "wrong", "test-secret-35", "test-secret-3520", "TEST-SECRET-352"],
    ids=["missing", "empty", "wrong", "prefix", "longer", "case"],
)
def test_reload_refused_without_the_secret(shared_gw, secret):
    headers = {} if secret is None else {"X-Tyk-Authorization": secret}
    resp = requests.get(shared_gw.url("/tyk/reload?block=true"), headers=headers, timeout=10)
    body = assert_json_error(resp, 403)
    assert body.get("error") or body.get("message")


def test_reload_with_the_secret(shared_gw):
    resp = shared_gw.reload()
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert requests.get(shared_gw.url("/a/x"), timeout=5).status_code == 200


def test_reload_non_blocking(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    gw.write_api(make_api("n", "/n/", echo.base_url))
    assert gw.reload(block=False).status_code == 200
    assert wait_until(lambda: requests.get(gw.url("/n/x"), timeout=5).status_code == 200)


def test_reload_serves_the_new_definition(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    assert requests.get(gw.url("/a/x"), timeout=5).json()["path"] == "/x"

    gw.write_api(make_api("a", "/b/", echo.base_url + "/moved"))
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/b/x"), timeout=5).json()["path"] == "/moved/x"
    assert requests.get(gw.url("/a/x"), timeout=5).status_code == 404

    gw.write_api(make_api("c", "/c/", echo.base_url))
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/c/y"), timeout=5).json()["path"] == "/y"

    gw.remove_api("c")
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/c/y"), timeout=5).status_code == 404

    gw.write_api(make_api("a", "/b/", echo.base_url, active=False))
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/b/x"), timeout=5).status_code == 404


BROKEN_FILES = [
    ("invalid-json", "broken.json", '{"api_id": "broken", "proxy": '),
    ("listen-path-type", "typed.json",
     '{"api_id": "typed", "name": "T", "org_id": "o", "active": true, "use_keyless": true,'
     ' "proxy": {"listen_path": 5, "target_url": "http://127.0.0.1:1"},'
     ' "version_data": {"not_versioned": true, "versions": {"Default": {"name": "Default"}}}}'),
]


@pytest.mark.parametrize(("filename", "text"), [(f, t) for _, f, t in BROKEN_FILES],
                         ids=[i for i, _, _ in BROKEN_FILES])
def test_broken_reload_keeps_old_config(gateway_factory, echo, make_api, filename, text):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    # A valid change and a broken file in the same reload: nothing of it is applied.
    gw.write_api(make_api("a", "/a2/", echo.base_url))
    gw.write_api_text(filename, text)
    resp = gw.reload()
    assert not 200 <= resp.status_code < 300, f"broken reload answered {resp.status_code}"
    assert resp.headers["content-type"].startswith("application/json")
    assert filename in resp.text, f"reload error does not name {filename}: {resp.text}"
    assert requests.get(gw.url("/a/x"), timeout=5).status_code == 200
    assert requests.get(gw.url("/a2/x"), timeout=5).status_code == 404

    (gw.app_dir / filename).unlink()
    assert gw.reload().status_code == 200
    assert requests.get(gw.url("/a2/x"), timeout=5).status_code == 200


def test_sighup_reloads(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    gw.write_api(make_api("h", "/hup/", echo.base_url))
    gw.signal(signal.SIGHUP)
    assert wait_until(lambda: requests.get(gw.url("/hup/x"), timeout=5).status_code == 200)
    assert requests.get(gw.url("/a/x"), timeout=5).status_code == 200


def test_sighup_with_broken_file_keeps_serving(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    gw.write_api_text("broken.json", "{")
    gw.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert gw.proc is not None and gw.proc.poll() is None, "gateway died on a bad SIGHUP reload"
    assert requests.get(gw.url("/a/x"), timeout=5).status_code == 200
    assert "broken.json" in gw.logs(), "the failed reload is not logged with the file name"


def test_in_flight_request_survives_reload(gateway_factory, echo, make_api, raw, http_get):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    idle = raw(gw.port)
    assert idle.request(http_get("/a/before")).status == 200
    slow = Background(gw.url("/a/delay/2"))
    time.sleep(0.3)
    gw.write_api(make_api("a", "/a/", echo.base_url + "/v2"))
    assert gw.reload().status_code == 200
    resp = slow.result()
    assert resp.status_code == 200
    assert resp.json()["path"] == "/delay/2"
    # The keep-alive connection opened before the reload is still served, by the new config.
    assert idle.request(http_get("/a/after")).json()["path"] == "/v2/after"


# ----------------------------------------------------------------------------- SIGTERM


def connect_refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


def test_sigterm_finishes_in_flight_request(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    slow = Background(gw.url("/a/delay/2"))
    time.sleep(0.3)
    gw.signal(signal.SIGTERM)
    assert wait_until(lambda: connect_refused(gw.port), timeout=1.5), (
        "new connections still accepted after SIGTERM"
    )
    assert gw.proc is not None and gw.proc.poll() is None, "exited before the in-flight request"
    resp = slow.result()
    assert resp.status_code == 200
    assert resp.json()["path"] == "/delay/2"
    assert gw.proc.wait(10) == 0


def test_sigterm_with_idle_connections_exits_promptly(gateway_factory, echo, make_api, raw,
                                                       http_get):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    conns = [raw(gw.port) for _ in range(3)]
    for conn in conns:
        assert conn.request(http_get("/a/x")).status == 200
    start = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.proc is not None
    assert gw.proc.wait(10) == 0
    assert time.monotonic() - start < 2.0
    for conn in conns:
        assert conn.wait_closed(1)


def test_sigterm_drain_is_bounded(gateway_factory, echo, make_api):
    gw = gateway_factory(
        apis=[make_api("a", "/a/", echo.base_url)], graceful_shutdown_timeout_duration=1
    )
    slow = Background(gw.url("/a/delay/6"), timeout=10)
    time.sleep(0.3)
    start = time.monotonic()
    gw.signal(signal.SIGTERM)
    assert gw.proc is not None
    assert gw.proc.wait(10) == 0
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"took {elapsed:.1f}s to exit with graceful_shutdown_timeout 1s"
    try:
        resp = slow.result()
    except requests.RequestException:
        pass  # cut off: expected
    else:
        assert resp.status_code != 200
