"""Answers sent before the request was read, and the bounds on clients that hold
connections: lingering close, the request-head deadline, the connection cap.

Without lingering, a gateway that writes a refusal and closes with unread request
bytes in its socket makes the kernel send a TCP reset, and the client sees
"connection reset" instead of the refusal.  Every test here has the client finish
sending before it reads, as simple clients do.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time

import pytest
import requests

from .clients import send_all_then_read

MiB = 1024 * 1024
SECRET_HEADER = "X-Tyk-Authorization"


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api):
    keyed = make_api("k", "/k/", echo.base_url, use_keyless=False, use_standard_auth=True)
    return module_gateway_factory(apis=[make_api("a", "/a/", echo.base_url), keyed])


# -- the refusal reaches the client ---------------------------------------------------


def test_431_for_a_1m_head_is_read_not_reset(gw, raw):
    conn = raw(gw.port)
    head = b"GET /a/x HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 1_000_000 + b"\r\n\r\n"
    resp = send_all_then_read(conn, head)
    assert resp.status == 431
    assert resp.json() == {"error": "Request header fields too large"}
    assert resp.header("connection") == "close"


def test_431_with_requests(gw):
    resp = requests.get(gw.url("/a/x"), headers={"X-Big": "a" * 200_000}, timeout=10)
    assert resp.status_code == 431


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_431_with_curl(gw, tmp_path):
    headers = tmp_path / "headers"
    headers.write_text("X-Big: " + "a" * 200_000 + "\n")
    done = subprocess.run(["curl", "-sS", "-m", "10", "-o", "/dev/null", "-w", "%{http_code}",
                           "-H", f"@{headers}", gw.url("/a/x")],
                          capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"431"


def test_400_on_ambiguous_framing_with_a_large_body(gw, raw):
    conn = raw(gw.port)
    body = os.urandom(MiB)
    request = (b"POST /a/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" % len(body)) + body
    resp = send_all_then_read(conn, request)
    assert resp.status == 400
    assert "Malformed request" in resp.json()["error"]


def test_400_on_a_bad_request_line_with_more_behind(gw, raw):
    conn = raw(gw.port)
    resp = send_all_then_read(conn, b"GET /a/x HTTP/1.1\r\nHost h\r\n\r\n" + b"x" * MiB)
    assert resp.status == 400


@pytest.mark.parametrize("size", [MiB, 8 * MiB])
def test_401_on_a_large_post_without_a_key(gw, raw, size):
    conn = raw(gw.port)
    body = os.urandom(size)
    request = b"POST /k/up HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % size + body
    resp = send_all_then_read(conn, request)
    assert resp.status == 401
    assert resp.json() == {"error": "Authorization field missing"}


def test_401_on_a_large_post_that_asks_to_close(gw, raw):
    """``Connection: close``: the gateway closes after the refusal, the body unread."""
    conn = raw(gw.port)
    body = os.urandom(4 * MiB)
    request = (b"POST /k/up HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
               b"Content-Length: %d\r\n\r\n" % len(body)) + body
    resp = send_all_then_read(conn, request)
    assert resp.status == 401
    assert resp.header("connection") == "close"


@pytest.mark.parametrize("size", [MiB, 5 * MiB])
def test_403_on_a_large_post_with_requests(gw, size):
    resp = requests.post(gw.url("/k/up"), data=os.urandom(size),
                         headers={"Authorization": "no-such-key"}, timeout=10)
    assert resp.status_code == 403
    assert resp.json() == {"error": "Access to this API has been disallowed"}


def test_refusal_before_100_continue_closes_after_the_answer(gw, raw):
    """The client announced a body and got a final answer instead of 100: it may
    or may not send the body, so the gateway closes after the answer."""
    conn = raw(gw.port)
    conn.send(b"POST /k/up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n"
              b"Expect: 100-continue\r\n\r\n")
    resp = conn.read_response()
    assert resp.status == 401
    assert resp.header("connection") == "close"
    conn.send(b"x" * 1000)  # sent anyway, as curl does after its timeout
    assert conn.wait_closed(5)


def test_keep_alive_survives_a_refused_body(gw, raw):
    """A refusal with the whole body sent keeps the connection (the body is discarded)."""
    conn = raw(gw.port)
    resp = conn.request(b"POST /k/up HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    assert resp.status == 401
    assert resp.header("connection") is None
    assert conn.request(b"GET /a/next HTTP/1.1\r\nHost: h\r\n\r\n").status == 200


def test_413_for_an_admin_body_over_the_limit_declared(gw, raw):
    conn = raw(gw.port)
    started = time.monotonic()
    conn.send(b"POST /tyk/apis HTTP/1.1\r\nHost: h\r\n%s: %s\r\nContent-Length: %d\r\n\r\n"
              % (SECRET_HEADER.encode(), gw.secret.encode(), 20 * MiB))
    resp = conn.read_response()  # at once: the body need not be sent
    assert resp.status == 413
    assert time.monotonic() - started < 2
    assert "8 MiB" in resp.json()["error"]


def test_413_for_a_chunked_admin_body_over_the_limit(gw, raw):
    conn = raw(gw.port)
    piece = b"x" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for _ in range(9 * 16))
    request = (b"POST /tyk/apis HTTP/1.1\r\nHost: h\r\n%s: %s\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" % (SECRET_HEADER.encode(),
                                                         gw.secret.encode())) + chunks
    resp = send_all_then_read(conn, request)
    assert resp.status == 413


@pytest.mark.parametrize("size", [300 * 1024, MiB, 5 * MiB])
def test_admin_bodies_over_256k_get_an_answer(gw, size):
    """They hung: reading paused at the buffering threshold and never resumed."""
    body = b"[" + b" " * (size - 2) + b"]"  # valid JSON, not an object
    resp = requests.post(gw.url("/tyk/apis"), data=body, timeout=10,
                         headers={SECRET_HEADER: gw.secret})
    assert resp.status_code == 400
    assert resp.json()["status"] == "error"


def test_a_large_api_definition_is_accepted(gw, echo, make_api):
    api = make_api("big", "/big/", echo.base_url, description="d" * (2 * MiB))
    resp = requests.post(gw.url("/tyk/apis"), json=api, timeout=10,
                         headers={SECRET_HEADER: gw.secret})
    assert resp.status_code == 200, resp.text
    assert requests.get(gw.url("/big/x"), timeout=5).status_code == 200
    assert requests.delete(gw.url("/tyk/apis/big"), timeout=10,
                           headers={SECRET_HEADER: gw.secret}).status_code == 200


# -- bounds -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bounded(module_gateway_factory, echo, make_api):
    return module_gateway_factory(
        apis=[make_api("a", "/a/", echo.base_url)],
        http_server_options={"lingering_time": 2, "lingering_timeout": 1,
                             "lingering_max_bytes": MiB, "read_header_timeout": 2,
                             "read_timeout": 30})


def _refused_then_flooded(port: int, rate: int | None) -> tuple[bytes, float]:
    """Send a malformed request, read the answer to its end (the gateway's FIN),
    and keep sending meanwhile; returns (the answer, seconds until sending
    failed: the gateway really closed)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"GET /a/x HTTP/1.1\r\nHost h\r\n\r\n")
    started = time.monotonic()
    failed_at: list[float] = []

    def keep_sending() -> None:
        piece = b"x" * 16384
        try:
            while time.monotonic() - started < 10:
                sock.sendall(piece)
                if rate is not None:
                    time.sleep(len(piece) / rate)
        except OSError:
            failed_at.append(time.monotonic())

    sender = threading.Thread(target=keep_sending, daemon=True)
    sender.start()
    got = b""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break  # the answer is complete: the gateway shut its side down
            got += data
    except ConnectionResetError:
        pass
    sender.join(12)
    sock.close()
    assert failed_at, "the gateway never closed the connection"
    return got, failed_at[0] - started


def test_a_client_that_never_stops_is_cut_off_by_bytes(bounded):
    got, elapsed = _refused_then_flooded(bounded.port, rate=None)
    assert got.startswith(b"HTTP/1.1 400 ")
    assert elapsed < 2, "lingering_max_bytes (1 MiB) should end it long before lingering_time"


def test_a_client_that_never_stops_is_cut_off_by_time(bounded):
    got, elapsed = _refused_then_flooded(bounded.port, rate=100_000)  # 100 KB/s: < 1 MiB in 2 s
    assert got.startswith(b"HTTP/1.1 400 ")
    assert 1.5 <= elapsed < 4, f"lingering_time is 2 s; closed after {elapsed:.1f} s"


def test_a_client_that_goes_silent_is_cut_off_by_the_lingering_timeout(bounded, raw):
    conn = raw(bounded.port)
    conn.send(b"GET /a/x HTTP/1.1\r\nHost h\r\n\r\n")
    started = time.monotonic()
    assert conn.read_response().status == 400
    assert conn.wait_closed(4)
    assert time.monotonic() - started < 2.5


def test_slowloris_head_is_cut_off_after_read_header_timeout(bounded, raw):
    conn = raw(bounded.port)
    started = time.monotonic()
    conn.send(b"GET /a/x HTTP/1.1\r\nHost: h\r\n")
    answer = b""
    try:
        for i in range(20):  # one header line every 0.5 s: never idle for read_timeout
            time.sleep(0.5)
            conn.send(b"X-Slow-%d: 1\r\n" % i)
    except OSError:
        pass
    conn.settimeout(5)
    try:
        while True:
            data = conn.sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, TimeoutError):
        pass
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert elapsed < 6


def test_a_connection_that_says_nothing_is_closed_after_read_header_timeout(bounded, raw):
    conn = raw(bounded.port)
    started = time.monotonic()
    assert conn.wait_closed(5)
    assert 1.5 <= time.monotonic() - started < 4


def test_keep_alive_idle_is_not_the_head_deadline(bounded, raw):
    """Between requests idle_timeout governs (30 s here), not read_header_timeout."""
    conn = raw(bounded.port)
    assert conn.request(b"GET /a/1 HTTP/1.1\r\nHost: h\r\n\r\n").status == 200
    time.sleep(3)
    assert conn.request(b"GET /a/2 HTTP/1.1\r\nHost: h\r\n\r\n").status == 200


def test_connection_cap_closes_idle_connections_first(gateway_factory, echo, make_api, raw):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)],
                         http_server_options={"max_connections": 8})
    idle = [raw(gw.port) for _ in range(8)]
    for conn in idle:
        assert conn.request(b"GET /a/x HTTP/1.1\r\nHost: h\r\n\r\n").status == 200
    fresh = raw(gw.port)
    assert fresh.request(b"GET /a/y HTTP/1.1\r\nHost: h\r\n\r\n").status == 200
    closed = sum(conn.wait_closed(0.5) for conn in idle)
    assert closed == 1, "exactly one idle connection made room"


def test_connection_cap_refuses_when_none_is_idle(gateway_factory, echo, make_api, raw):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)],
                         http_server_options={"max_connections": 8})
    busy = [raw(gw.port) for _ in range(8)]
    for conn in busy:
        conn.send(b"GET /a/x HTTP/1.1\r\n")  # a head in progress: not idle
    time.sleep(0.3)
    extra = raw(gw.port)
    resp = extra.read_response()
    assert resp.status == 503
    assert resp.json() == {"error": "Too many connections"}
    for conn in busy:  # the held connections still work
        assert conn.request(b"Host: h\r\n\r\n").status == 200
    assert raw(gw.port).request(b"GET /a/z HTTP/1.1\r\nHost: h\r\n\r\n").status == 200
    assert "max_connections (8) reached" in gw.stderr_path.read_text()


def test_sigterm_is_not_held_by_a_stuck_upload(gateway_factory, echo, make_api, raw):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)],
                         graceful_shutdown_timeout_duration=2)
    conn = raw(gw.port)
    conn.send(b"POST /tyk/apis HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n"
              + b"x" * 400_000)
    time.sleep(0.3)
    started = time.monotonic()
    assert gw.stop() == 0
    assert time.monotonic() - started < 4
