"""What request smuggling starts with is refused: 400 (or 431), nothing reaches the
upstream, the connection is closed, and everyone else keeps being served.

Every attack is sent in one ``sendall``, so a gateway that parses before it
forwards has seen the whole request (body included) before it would contact the
upstream.
"""

from __future__ import annotations

import socket
import time

import pytest

H = b"Host: smuggle.test\r\n"

# (id, request bytes); every one of them must get 400.
BAD_REQUESTS = [
    # --- ambiguous or invalid body length (RFC 9112 §6.1, §6.3)
    ("cl-and-te", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
    ("te-and-cl", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nG"),
    ("two-different-cl", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("cl-list", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length: 1, 2\r\n\r\nab"),
    ("cl-plus", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello"),
    ("cl-minus", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n"),
    ("cl-hex", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length: 0x10\r\n\r\n" + b"x" * 16),
    ("cl-inner-space", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length: 1 0\r\n\r\n" + b"x" * 10),
    ("cl-empty", b"POST /a/s HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n"),
    ("cl-overflow", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Content-Length: 99999999999999999999999\r\n\r\n"),
    ("chunk-size-zz", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-overflow", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("chunk-size-negative", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk-missing-crlf", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("te-chunked-identity", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-xchunked", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-chunked-twice", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-chunked-chunked", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("te-unknown", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: gzip\r\n\r\nhello"),
    # --- header syntax (RFC 9112 §5)
    ("obs-fold", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n"),
    ("obs-fold-tab", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n"),
    ("obs-fold-te", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding:\r\n chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("bare-lf-everywhere", b"GET /a/s HTTP/1.1\n" + b"Host: smuggle.test\nX-A: b\n\n"),
    ("bare-lf-request-line", b"GET /a/s HTTP/1.1\n" + H + b"\r\n"),
    ("bare-lf-header", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A: b\nX-B: c\r\n\r\n"),
    ("bare-lf-end", b"GET /a/s HTTP/1.1\r\n" + H + b"\n"),
    ("bare-lf-chunk-size", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n"),
    ("name-with-space", b"GET /a/s HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n"),
    ("name-with-nul", b"GET /a/s HTTP/1.1\r\n" + H + b"X\x00A: b\r\n\r\n"),
    ("name-with-slash", b"GET /a/s HTTP/1.1\r\n" + H + b"X/A: b\r\n\r\n"),
    ("empty-name", b"GET /a/s HTTP/1.1\r\n" + H + b": v\r\n\r\n"),
    ("no-colon", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n"),
    ("space-before-colon", b"GET /a/s HTTP/1.1\r\nHost : smuggle.test\r\n\r\n"),
    ("space-before-colon-te", b"POST /a/s HTTP/1.1\r\n" + H
     + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello"),
    ("value-bare-cr", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n"),
    ("value-nul", b"GET /a/s HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n"),
    # --- request line
    ("garbage", b"GARBAGE\r\n\r\n"),
    ("binary-garbage", b"\x00\x01\x02\x03\xff\xfe\r\n\r\n"),
    ("extra-token", b"GET /a/s HTTP/1.1 extra\r\n" + H + b"\r\n"),
    ("no-version", b"GET /a/s\r\n" + H + b"\r\n"),
    ("space-in-target", b"GET /a/s x HTTP/1.1\r\n" + H + b"\r\n"),
    ("lowercase-version", b"GET /a/s http/1.1\r\n" + H + b"\r\n"),
]


@pytest.fixture(scope="module")
def gw(module_gateway_factory, echo, make_api):
    return module_gateway_factory(
        apis=[make_api("a", "/a/", echo.base_url)],
        http_server_options={"max_header_bytes": 8192},
    )


def check_refused(
    gw, echo, raw, http_get, data: bytes, status: int, *, allow_close: bool = False
) -> None:
    """``data`` gets ``status`` (or, with ``allow_close``, just a close), nothing is
    forwarded, the connection is closed, and the gateway serves others."""
    bystander = raw(gw.port)
    assert bystander.request(http_get("/a/before")).status == 200
    before = echo.count()

    conn = raw(gw.port)
    conn.send(data)
    conn.settimeout(5)
    try:
        resp = conn.read_response()
    except (EOFError, ConnectionResetError) as exc:
        if not allow_close:
            pytest.fail(f"connection closed without a response ({exc})")
    else:
        assert resp.status == status, f"got {resp.status} {resp.reason}: {resp.body[:200]!r}"
        assert conn.wait_closed(3), "connection left open after refusing the request"

    time.sleep(0.05)
    after = echo.count()
    assert after["requests"] == before["requests"], "something reached the upstream"
    assert after["parse_errors"] == before["parse_errors"], "garbage reached the upstream"

    # Everyone else is still served: an existing keep-alive connection and a new one.
    assert bystander.request(http_get("/a/after")).json()["path"] == "/after"
    assert raw(gw.port).request(http_get("/a/fresh")).status == 200


@pytest.mark.parametrize("data", [d for _, d in BAD_REQUESTS], ids=[i for i, _ in BAD_REQUESTS])
def test_bad_request_refused(gw, echo, raw, http_get, data):
    check_refused(gw, echo, raw, http_get, data, 400)


def test_bad_request_after_good_pipelined_one(gw, echo, raw):
    """The good request is answered; the bad one behind it is refused and not forwarded."""
    before = echo.count()
    conn = raw(gw.port)
    conn.send(
        b"GET /a/good HTTP/1.1\r\n" + H + b"\r\n"
        b"POST /a/evil HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    )
    assert conn.read_response().json()["path"] == "/good"
    assert conn.read_response().status == 400
    assert conn.wait_closed(3)
    assert echo.count()["requests"] == before["requests"] + 1


def test_tls_client_hello_is_refused(gw, echo, raw, http_get):
    hello = bytes.fromhex(
        "16030100c4010000c00303" + "ab" * 32 + "00" + "0002c02f" + "0100" + "0095"
        + "0000000e000c0000096c6f63616c686f7374"
    ) + bytes(120)
    check_refused(gw, echo, raw, http_get, hello, 400, allow_close=True)


def test_missing_host_in_http11_is_400(gw, echo, raw, http_get):
    """RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without Host."""
    check_refused(gw, echo, raw, http_get, b"GET /a/s HTTP/1.1\r\nX-A: b\r\n\r\n", 400)


def test_two_host_headers_is_400(gw, echo, raw, http_get):
    """RFC 9112 §3.2: more than one Host field line: 400."""
    check_refused(
        gw, echo, raw, http_get, b"GET /a/s HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400
    )


@pytest.mark.parametrize(
    "headers",
    [
        b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(20)),
        b"X-Huge: " + b"v" * 20000 + b"\r\n",
    ],
    ids=["many-headers", "one-huge-header"],
)
def test_headers_over_max_header_bytes_is_431(gw, echo, raw, http_get, headers):
    data = b"GET /a/s HTTP/1.1\r\n" + H + headers + b"\r\n"
    check_refused(gw, echo, raw, http_get, data, 431)


def test_headers_under_max_header_bytes_pass(gw, raw):
    headers = b"".join(b"X-Ok-%d: %s\r\n" % (i, b"v" * 500) for i in range(8))
    conn = raw(gw.port)
    resp = conn.request(b"GET /a/ok HTTP/1.1\r\n" + H + headers + b"\r\n")
    assert resp.status == 200


def test_identical_duplicate_content_length(gw, echo, raw):
    """RFC 9112 §6.3 allows a server to accept identical repeated lengths or refuse them;
    either way the body is not misread."""
    conn = raw(gw.port)
    resp = conn.request(
        b"POST /a/dup HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    )
    if resp.status == 200:
        assert resp.json()["body"] == "abc"
    else:
        assert resp.status == 400


def test_default_max_header_bytes_is_64_kib(gateway_factory, echo, make_api, raw):
    options = {"read_timeout": 30, "write_timeout": 30, "idle_timeout": 30}
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)], start=False)
    gw.config["http_server_options"] = options
    gw.start()
    fits = b"".join(b"X-Fit-%d: %s\r\n" % (i, b"v" * 1000) for i in range(50))
    resp = raw(gw.port).request(b"GET /a/fits HTTP/1.1\r\n" + H + fits + b"\r\n")
    assert resp.status == 200
    too_big = b"".join(b"X-Big-%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
    resp = raw(gw.port).request(b"GET /a/big HTTP/1.1\r\n" + H + too_big + b"\r\n")
    assert resp.status == 431


def _read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1])


def test_a_head_arriving_in_pieces_is_counted_once(gateway_factory, echo, make_api):
    # Regression: the raw bytes of a head's later pieces were added to the
    # parser's own count, so a 50 KB head sent in two pieces looked like 99 KB.
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)], start=False)
    gw.config["http_server_options"] = {"max_header_bytes": 65536}
    gw.start()
    fields = b"".join(b"X-Fit-%d: %s\r\n" % (i, b"v" * 1000) for i in range(50))
    head = b"GET /a/pieces HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head[:1000])
        time.sleep(0.2)
        sock.sendall(head[1000:])
        assert _read_status(sock) == 200


def test_a_large_body_behind_the_end_of_a_head_is_not_head(gateway_factory, echo, make_api):
    # The piece that ends the head may carry a big body (no Expect): only the
    # head counts against max_header_bytes.
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    body = b"b" * 200_000
    head = (b"POST /a/upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(head[:20])
        time.sleep(0.2)
        sock.sendall(head[20:] + body)
        assert _read_status(sock) == 200


def test_a_head_line_that_never_ends_is_refused(gateway_factory, echo, make_api):
    gw = gateway_factory(apis=[make_api("a", "/a/", echo.base_url)])
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(b"GET /a/x HTTP/1.1\r\nHost: x\r\nX-Long: ")
        time.sleep(0.1)
        try:
            for _ in range(40):
                sock.sendall(b"v" * 8192)
        except OSError:
            pass  # the gateway answered and closed while we were sending
        assert _read_status(sock) == 431
