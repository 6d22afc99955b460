"""Bodies and connection handling: framing both ways, HEAD, 100-continue, keep-alive,
pipelining, 204/304."""

from __future__ import annotations

import hashlib
import os
import threading
import time

import httpx
import pytest
import requests

from fastgate.echo import pattern

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api):
    return module_gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class RssSampler:
    """Samples a process's RSS in a thread; ``peak`` in KiB."""

    def __init__(self, read) -> None:
        self._read = read
        self.base = read()
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._read())

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ----------------------------------------------------------------------------- requests


@pytest.mark.parametrize("size", [0, 1, 1000, 65536, 65537, 3 * MiB + 1])
def test_content_length_body(gw, size):
    body = os.urandom(size)
    resp = requests.post(gw.url("/a/up"), data=body, timeout=30)
    assert resp.status_code == 200
    data = resp.json()
    assert data["body_length"] == size
    assert data["body_sha256"] == sha(body)


def test_chunked_body_raw(gw, raw):
    conn = raw(gw.port)
    chunks = [b"hello", b" ", b"x" * 70000, b"\x00\xff", b"end"]
    wire = b"".join(b"%x;ext=v\r\n%s\r\n" % (len(c), c) for c in chunks)
    resp = conn.request(
        b"POST /a/chunks HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
        + wire
        + b"0\r\nX-Trailer: t\r\n\r\n"
    )
    data = resp.json()
    body = b"".join(chunks)
    assert data["body_length"] == len(body)
    assert data["body_sha256"] == sha(body)
    # The connection is still in sync afterwards.
    assert conn.request(b"GET /a/next HTTP/1.1\r\nHost: c\r\n\r\n").json()["path"] == "/next"


def test_chunked_body_sent_slowly(gw, raw):
    conn = raw(gw.port)
    conn.send(b"POST /a/slow HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n")
    for piece in (b"3\r\nab", b"c\r\n", b"2\r", b"\nde\r\n0\r", b"\n\r\n"):
        time.sleep(0.05)
        conn.send(piece)
    assert conn.read_response().json()["body"] == "abcde"


def test_chunked_body_with_requests_generator(gw):
    parts = [os.urandom(n) for n in (1, 100, 100000, 7)]
    resp = requests.post(gw.url("/a/gen"), data=iter(parts), timeout=30)
    data = resp.json()
    assert data["body_sha256"] == sha(b"".join(parts))


def test_large_upload_is_streamed(gw):
    size = 50 * MiB
    piece = os.urandom(MiB)
    digest = hashlib.sha256()

    def body():
        for _ in range(size // MiB):
            digest.update(piece)
            yield piece

    with RssSampler(gw.rss_kib) as rss:
        resp = requests.post(gw.url("/a/big"), data=body(), timeout=60)
    data = resp.json()
    assert data["body_length"] == size
    assert data["body_sha256"] == digest.hexdigest()
    growth = rss.peak - rss.base
    assert growth < 16 * 1024, f"gateway RSS grew {growth} KiB during a 50 MiB upload"


def test_large_upload_with_content_length(gw):
    size = 20 * MiB
    body = os.urandom(size)
    resp = requests.post(gw.url("/a/bigcl"), data=body, timeout=60)
    assert resp.json()["body_sha256"] == sha(body)


# ----------------------------------------------------------------------------- responses


@pytest.mark.parametrize("kind", ["bytes", "chunked", "close"])
@pytest.mark.parametrize("size", [0, 1, 1000, 300_000, 5 * MiB + 3])
def test_response_bodies(gw, raw, kind, size):
    conn = raw(gw.port)
    resp = conn.request(f"GET /a/{kind}/{size} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
    assert resp.status == 200
    assert len(resp.body) == size
    assert resp.body == pattern(size)
    if kind != "close":
        # Framed responses keep the client connection alive.
        assert conn.request(b"GET /a/n HTTP/1.1\r\nHost: c\r\n\r\n").status == 200


def test_response_with_httpx_stream(gw):
    size = 8 * MiB
    digest = hashlib.sha256()
    with httpx.stream("GET", gw.url(f"/a/chunked/{size}"), timeout=30) as resp:
        for block in resp.iter_bytes():
            digest.update(block)
    assert digest.hexdigest() == sha(pattern(size))


# ----------------------------------------------------------------------------- HEAD


@pytest.mark.parametrize("path", ["/a/", "/a/bytes/1000", "/a/chunked/1000", "/a/status/404",
                                  "/a/bytes/2000000"])
def test_head_then_get_on_one_connection(gw, raw, path):
    conn = raw(gw.port)
    head = conn.request(f"HEAD {path} HTTP/1.1\r\nHost: c\r\n\r\n".encode(), head=True)
    get = conn.request(f"GET {path} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
    assert head.status == get.status
    if "/bytes/" in path:
        assert head.header("content-length") == path.rsplit("/", 1)[1]
    after = conn.request(b"GET /a/after-head HTTP/1.1\r\nHost: c\r\n\r\n")
    assert after.json()["path"] == "/after-head"


def test_head_is_forwarded_as_head(gw, raw):
    conn = raw(gw.port)
    resp = conn.request(b"HEAD /a/h HTTP/1.1\r\nHost: c\r\n\r\n", head=True)
    assert resp.status == 200
    assert resp.header("content-type") == "application/json"


# ----------------------------------------------------------------------------- Expect


def test_expect_100_continue(gw, raw):
    conn = raw(gw.port)
    conn.send(
        b"POST /a/continue HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\n"
        b"Content-Length: 10\r\n\r\n"
    )
    conn.settimeout(3)
    interim = conn.read_response()
    assert interim.status == 100
    conn.send(b"0123456789")
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.json()["body"] == "0123456789"
    assert conn.request(b"GET /a/after HTTP/1.1\r\nHost: c\r\n\r\n").status == 200


def test_expect_100_continue_not_needed_for_404(gw, raw):
    """No route: the final status may come at once, without reading the body."""
    conn = raw(gw.port)
    conn.send(
        b"POST /nowhere HTTP/1.1\r\nHost: c\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n"
    )
    conn.settimeout(3)
    resp = conn.read_response()
    if resp.status == 100:
        conn.send(b"0123456789")
        resp = conn.read_response()
    assert resp.status == 404


# ----------------------------------------------------------------------------- keep-alive


def test_keep_alive_many_requests(gw, raw):
    conn = raw(gw.port)
    for i in range(20):
        method = "POST" if i % 2 else "GET"
        body = f"b{i}".encode() if i % 2 else b""
        resp = conn.request(
            f"{method} /a/k/{i} HTTP/1.1\r\nHost: c\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        data = resp.json()
        assert data["path"] == f"/k/{i}"
        assert data["body_length"] == len(body)


def test_keep_alive_with_requests_session(gw):
    with requests.Session() as session:
        for i in range(10):
            assert session.get(gw.url(f"/a/s/{i}"), timeout=10).json()["path"] == f"/s/{i}"


def test_connection_close_from_client(gw, raw):
    conn = raw(gw.port)
    resp = conn.request(b"GET /a/bye HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n")
    assert resp.status == 200
    assert conn.wait_closed(3)


def test_http10_client(gw, raw):
    conn = raw(gw.port)
    resp = conn.request(b"GET /a/old HTTP/1.0\r\nHost: c\r\n\r\n")
    assert resp.status == 200
    assert resp.json()["path"] == "/old"
    assert conn.wait_closed(3)


def test_http10_client_chunked_upstream(gw, raw):
    """An HTTP/1.0 client cannot read chunked: the gateway must deframe it."""
    conn = raw(gw.port)
    resp = conn.request(b"GET /a/chunked/5000 HTTP/1.0\r\nHost: c\r\n\r\n")
    assert resp.status == 200
    assert resp.header("transfer-encoding") is None
    assert resp.body == pattern(5000)


# ----------------------------------------------------------------------------- pipelining


def test_pipelining_three_requests(gw, raw):
    conn = raw(gw.port)
    conn.send(
        b"GET /a/one HTTP/1.1\r\nHost: c\r\n\r\n"
        b"GET /a/two HTTP/1.1\r\nHost: c\r\n\r\n"
        b"GET /a/three HTTP/1.1\r\nHost: c\r\n\r\n"
    )
    assert [conn.read_response().json()["path"] for _ in range(3)] == ["/one", "/two", "/three"]


def test_pipelining_keeps_order_when_first_is_slow(gw, raw):
    conn = raw(gw.port)
    conn.send(
        b"GET /a/delay/0.5 HTTP/1.1\r\nHost: c\r\n\r\n"
        b"POST /a/two HTTP/1.1\r\nHost: c\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /a/bytes/300000 HTTP/1.1\r\nHost: c\r\n\r\n"
        b"HEAD /a/four HTTP/1.1\r\nHost: c\r\n\r\n"
        b"GET /nowhere HTTP/1.1\r\nHost: c\r\n\r\n"
        b"GET /a/six HTTP/1.1\r\nHost: c\r\n\r\n"
    )
    assert conn.read_response().json()["path"] == "/delay/0.5"
    assert conn.read_response().json()["body"] == "abc"
    assert conn.read_response().body == pattern(300000)
    assert conn.read_response(head=True).status == 200
    assert conn.read_response().status == 404
    assert conn.read_response().json()["path"] == "/six"


def test_pipelining_many(gw, raw):
    conn = raw(gw.port)
    n = 100
    conn.send(b"".join(b"GET /a/m/%d HTTP/1.1\r\nHost: c\r\n\r\n" % i for i in range(n)))
    for i in range(n):
        assert conn.read_response().json()["path"] == f"/m/{i}"


# ----------------------------------------------------------------------------- 204 / 304


@pytest.mark.parametrize("code", [204, 304])
def test_no_body_statuses(gw, raw, code):
    conn = raw(gw.port)
    resp = conn.request(f"GET /a/status/{code} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
    assert resp.status == code
    assert resp.header("transfer-encoding") is None
    # Nothing but the next response follows on the wire.
    after = conn.request(b"GET /a/after HTTP/1.1\r\nHost: c\r\n\r\n")
    assert after.json()["path"] == "/after"


@pytest.mark.parametrize("code", [201, 301, 400, 404, 418, 500, 503])
def test_upstream_status_passed_through(gw, code):
    resp = requests.get(gw.url(f"/a/status/{code}"), timeout=10, allow_redirects=False)
    assert resp.status_code == code
    assert resp.json() == {"status": code}


# ----------------------------------------------------------------------------- upstream pool


def test_upstream_connections_are_reused(gw, echo):
    requests.get(gw.url("/a/warm"), timeout=10)
    before = echo.count()["connections"]
    with requests.Session() as session:
        for i in range(20):
            assert session.get(gw.url(f"/a/pool/{i}"), timeout=10).status_code == 200
    for i in range(10):
        assert requests.get(gw.url(f"/a/pool/new-client/{i}"), timeout=10).status_code == 200
    opened = echo.count()["connections"] - before - 1  # the count() call's own connection
    assert opened <= 2, f"{opened} upstream connections for 30 sequential requests"


@pytest.mark.parametrize(
    "path", ["/a/headers-out?Connection=close", "/a/close/10", "/a/close/300000"]
)
def test_upstream_closing_connection_is_not_reused(gw, raw, path):
    conn = raw(gw.port)
    for i in range(3):
        first = conn.request(f"GET {path} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
        assert first.status == 200
        if conn.eof:
            conn = raw(gw.port)
        nxt = conn.request(f"GET /a/next/{i} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
        assert nxt.json()["path"] == f"/next/{i}"
