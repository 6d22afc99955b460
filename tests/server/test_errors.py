"""Upstream failures (502/504) and client timeouts (read, idle)."""

from __future__ import annotations

import time

import pytest
import requests


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api, free_port):
    dead_port = free_port()
    return module_gateway_factory(
        apis=[
            make_api("a", "/a/", echo.base_url),
            make_api("dead", "/dead/", f"http://127.0.0.1:{dead_port}"),
        ],
        http_server_options={"read_timeout": 1, "idle_timeout": 1, "write_timeout": 5},
        proxy_default_timeout=1,
    )


def assert_json_error(resp: requests.Response, status: int) -> None:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body, dict)
    assert isinstance(body.get("error"), str)
    assert body["error"]


def test_upstream_refused_is_502(gw):
    assert_json_error(requests.get(gw.url("/dead/x"), timeout=10), 502)


def test_upstream_refused_keeps_client_connection(gw, raw, http_get):
    conn = raw(gw.port)
    assert conn.request(http_get("/dead/x")).status == 502
    assert conn.request(http_get("/a/ok")).status == 200


def test_upstream_reset_is_502(gw):
    assert_json_error(requests.get(gw.url("/a/reset"), timeout=10), 502)


def test_upstream_reset_then_pool_recovers(gw):
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(gw.url("/a/reset"), timeout=10).status_code == 502
            assert session.get(gw.url("/a/ok"), timeout=10).status_code == 200


def test_upstream_timeout_is_504(gw):
    start = time.monotonic()
    resp = requests.get(gw.url("/a/delay/3"), timeout=10)
    elapsed = time.monotonic() - start
    assert_json_error(resp, 504)
    assert 0.8 <= elapsed < 2.8, f"answered after {elapsed:.2f}s with proxy_default_timeout 1"


def test_upstream_within_timeout_is_fine(gw):
    assert requests.get(gw.url("/a/delay/0.3"), timeout=10).status_code == 200


def test_client_read_timeout_on_partial_request_line(gw, raw):
    conn = raw(gw.port)
    conn.send(b"GET /a/slow HT")
    start = time.monotonic()
    assert conn.wait_closed(4), "connection still open 4s after a partial request line"
    elapsed = time.monotonic() - start
    assert elapsed < 3.0, f"closed after {elapsed:.2f}s with read_timeout 1"


def test_client_read_timeout_on_partial_headers(gw, raw):
    conn = raw(gw.port)
    conn.send(b"GET /a/slow HTTP/1.1\r\nHost: c\r\nX-Partial: ")
    assert conn.wait_closed(3.5)


def test_client_read_timeout_on_partial_body(gw, raw):
    conn = raw(gw.port)
    conn.send(b"POST /a/slow HTTP/1.1\r\nHost: c\r\nContent-Length: 100\r\n\r\nonly some")
    assert conn.wait_closed(4.5)


def test_slow_but_steady_request_is_not_cut(gw, raw):
    """read_timeout bounds reading one request, not the life of a connection."""
    conn = raw(gw.port)
    for i in range(3):
        assert conn.request(f"GET /a/r{i} HTTP/1.1\r\nHost: c\r\n\r\n".encode()).status == 200
        time.sleep(0.5)


def test_idle_keep_alive_connection_closed(gw, raw, http_get):
    conn = raw(gw.port)
    assert conn.request(http_get("/a/idle")).status == 200
    start = time.monotonic()
    assert conn.wait_closed(4), "idle keep-alive connection still open after 4s (idle_timeout 1)"
    assert time.monotonic() - start >= 0.5


def test_idle_connection_without_any_request_closed(gw, raw):
    conn = raw(gw.port)
    assert conn.wait_closed(4)


def test_gateway_serves_after_timeouts(gw):
    assert requests.get(gw.url("/a/still-up"), timeout=10).json()["path"] == "/still-up"
