"""The echo upstream (``fastgate.echo``) over real sockets."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import socket
import threading
import time

import httpx
import pytest
import requests

from fastgate.echo import pattern, serve_echo

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------- default


def test_default_echoes_request(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(
        b"POST /some/path?b=2&a=1 HTTP/1.1\r\nHost: h.test\r\nX-Mixed-Case: One\r\n"
        b"X-Dup: a\r\nx-dup: b\r\nContent-Length: 5\r\n\r\nhello"
    )
    assert resp.status == 200
    assert resp.header("content-type") == "application/json"
    data = resp.json()
    assert data == {
        "method": "POST",
        "url": "/some/path?b=2&a=1",
        "path": "/some/path",
        "query": "b=2&a=1",
        "http_version": "1.1",
        "headers": [
            ["Host", "h.test"],
            ["X-Mixed-Case", "One"],
            ["X-Dup", "a"],
            ["x-dup", "b"],
            ["Content-Length", "5"],
        ],
        "body_length": 5,
        "body_sha256": sha(b"hello"),
        "body": "hello",
    }


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b"", ""),
        ("héllo wörld".encode(), "héllo wörld"),
        (b"\xff\xfe binary", None),
        (b"x" * (64 * 1024), "x" * (64 * 1024)),
        (b"x" * (64 * 1024 + 1), None),
        (bytes(range(256)) * 4096, None),
    ],
    ids=["empty", "utf8", "binary", "64KiB", "64KiB+1", "1MiB"],
)
def test_default_body_hash_and_text(echo, body, text):
    resp = requests.post(echo.url("/x"), data=body, timeout=10)
    data = resp.json()
    assert data["body_length"] == len(body)
    assert data["body_sha256"] == sha(body)
    assert data["body"] == text


def test_chunked_request_body(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(
        b"PUT /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    data = resp.json()
    assert data["method"] == "PUT"
    assert data["body"] == "hello world"
    assert data["body_sha256"] == sha(b"hello world")


def test_large_upload_streams_with_flat_memory(echo_factory):
    server = echo_factory()
    before = server.rss_kib()
    size = 50 * MiB
    piece = bytes(range(256)) * 1024
    digest = hashlib.sha256()

    def body():
        for _ in range(size // len(piece)):
            digest.update(piece)
            yield piece

    resp = requests.post(server.url("/upload"), data=body(), timeout=60)
    data = resp.json()
    assert data["body_length"] == size
    assert data["body_sha256"] == digest.hexdigest()
    assert data["body"] is None
    assert server.rss_kib() - before < 10 * 1024


# ----------------------------------------------------------------------------- generated


@pytest.mark.parametrize("n", [0, 1, 255, 1000, 65536, 65537, 256 * 1024 + 1, 3 * MiB + 7])
def test_bytes(echo, raw, n):
    conn = raw(echo.port)
    resp = conn.request(f"GET /bytes/{n} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert resp.status == 200
    assert resp.header("content-length") == str(n)
    assert resp.header("transfer-encoding") is None
    assert resp.body == pattern(n)
    # The connection stays usable.
    assert conn.request(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n").json()["path"] == "/after"


def test_pattern_is_byte_index_mod_256():
    assert pattern(5) == b"\x00\x01\x02\x03\x04"
    assert pattern(3, offset=254) == b"\xfe\xff\x00"
    big = pattern(200_000, offset=7)
    assert all(big[i] == (i + 7) % 256 for i in range(0, 200_000, 997))


@pytest.mark.parametrize("n", [0, 1, 10, 1000, 300_000, 2 * MiB + 3])
def test_chunked(echo, raw, n):
    conn = raw(echo.port)
    resp = conn.request(f"GET /x/chunked/{n} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert resp.status == 200
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.header("content-length") is None
    assert resp.body == pattern(n)
    if n >= 4:
        assert len(resp.chunk_sizes) >= 2
    assert conn.request(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n").status == 200


@pytest.mark.parametrize("n", [0, 10, 300_000])
def test_close_delimited(echo, raw, n):
    conn = raw(echo.port)
    resp = conn.request(f"GET /close/{n} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert resp.status == 200
    assert resp.header("content-length") is None
    assert resp.header("transfer-encoding") is None
    assert resp.header("connection") == "close"
    assert resp.body == pattern(n)
    assert conn.eof


@pytest.mark.parametrize("path", ["/bytes/abc", "/bytes/-1", "/status/99", "/status/x",
                                  "/status/600", "/delay/-1", "/delay/nan", "/delay/1e9"])
def test_bad_arguments_are_400(echo, path):
    resp = requests.get(echo.url(path), timeout=5)
    assert resp.status_code == 400
    assert "error" in resp.json()


# ----------------------------------------------------------------------------- status, HEAD


@pytest.mark.parametrize("code", [200, 201, 204, 301, 304, 400, 404, 418, 429, 500, 502, 599])
def test_status(echo, raw, code):
    conn = raw(echo.port)
    resp = conn.request(f"GET /prefix/status/{code} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    assert resp.status == code
    if code in (204, 304):
        assert resp.body == b""
        assert resp.header("content-length") is None
    else:
        assert resp.json() == {"status": code}
    assert conn.request(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n").status == 200


@pytest.mark.parametrize(
    "path", ["/", "/bytes/1000", "/bytes/5000000", "/chunked/1000", "/chunked/5000000",
             "/status/404", "/status/204", "/delay/0.05", "/headers-out?X-A=1"]
)
def test_head_has_headers_and_no_body(echo, raw, path):
    conn = raw(echo.port)
    get = conn.request(f"GET {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
    head = conn.request(f"HEAD {path} HTTP/1.1\r\nHost: h\r\n\r\n".encode(), head=True)
    assert head.status == get.status
    assert head.header_names() == get.header_names()
    generated = path.startswith(("/bytes", "/chunked", "/status"))
    if generated:  # the echo endpoints' bodies name the method, so their lengths differ
        assert head.header("content-length") == get.header("content-length")
    # Nothing else is on the wire: the next request's answer comes next.
    after = conn.request(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n")
    assert after.json()["path"] == "/after"


def test_head_close_delimited_closes(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(b"HEAD /close/100 HTTP/1.1\r\nHost: h\r\n\r\n", head=True)
    assert resp.status == 200
    assert conn.wait_closed(2)


# ----------------------------------------------------------------------------- delay


def test_delay(echo):
    start = time.monotonic()
    resp = requests.get(echo.url("/api/delay/0.3?q=1"), timeout=5)
    assert time.monotonic() - start >= 0.3
    assert resp.status_code == 200
    assert resp.json()["path"] == "/api/delay/0.3"


# ----------------------------------------------------------------------------- headers-out


def test_headers_out(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(
        b"GET /headers-out?Connection=foo,%20close-me&Foo=x&Keep-Alive=timeout%3D5"
        b"&Trailer=X-T&Upgrade=h2c&Proxy-Connection=keep-alive&X-Dup=1&X-Dup=2"
        b"&Content-Length=999&Transfer-Encoding=gzip HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert resp.status == 200
    assert resp.header("connection") == "foo, close-me"
    assert resp.header("foo") == "x"
    assert resp.header("keep-alive") == "timeout=5"
    assert resp.header("trailer") == "X-T"
    assert resp.header("upgrade") == "h2c"
    assert resp.header("proxy-connection") == "keep-alive"
    assert resp.header_all("x-dup") == ["1", "2"]
    assert resp.header("transfer-encoding") is None
    assert resp.header_all("content-length") == [str(len(resp.body))]
    # "close-me" is not "close": the connection stays open.
    assert conn.request(b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n").status == 200


def test_headers_out_connection_close_is_honoured(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(b"GET /headers-out?Connection=close HTTP/1.1\r\nHost: h\r\n\r\n")
    assert resp.status == 200
    assert conn.wait_closed(2)


def test_headers_out_refuses_injection(echo):
    resp = requests.get(echo.url("/headers-out?X-A=a%0d%0aX-B:%20b"), timeout=5)
    assert resp.status_code == 400
    assert "x-b" not in resp.headers


# ----------------------------------------------------------------------------- reset, count


def test_reset_aborts_without_answer(echo, raw):
    conn = raw(echo.port)
    conn.send(b"GET /reset HTTP/1.1\r\nHost: h\r\n\r\n")
    with pytest.raises(ConnectionResetError):
        conn.sock.recv(100)


def test_count_counts_requests_but_not_itself(echo):
    before = echo.count()
    again = echo.count()
    assert again["requests"] == before["requests"]
    assert again["connections"] == before["connections"] + 1
    requests.get(echo.url("/one"), timeout=5)
    requests.get(echo.url("/two"), timeout=5)
    after = echo.count()
    assert after["requests"] == before["requests"] + 2
    assert after["parse_errors"] == before["parse_errors"]


def test_count_sees_partial_requests(echo, raw):
    before = echo.count()
    conn = raw(echo.port)
    conn.send(b"GET /partial HTT")
    time.sleep(0.1)
    assert echo.count()["requests"] == before["requests"] + 1


# ----------------------------------------------------------------------------- connection


def test_keep_alive_many_requests(echo, raw):
    conn = raw(echo.port)
    for i in range(20):
        resp = conn.request(f"GET /k/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        assert resp.json()["path"] == f"/k/{i}"
    with httpx.Client() as client:
        for i in range(5):
            assert client.get(echo.url(f"/h/{i}")).json()["path"] == f"/h/{i}"


def test_http10_closes_unless_keep_alive(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(b"GET /old HTTP/1.0\r\n\r\n")
    assert resp.json()["http_version"] == "1.0"
    assert conn.wait_closed(2)
    conn = raw(echo.port)
    resp = conn.request(b"GET /old HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    assert resp.header("connection") == "keep-alive"
    assert conn.request(b"GET /again HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").status == 200


def test_connection_close_request(echo, raw):
    conn = raw(echo.port)
    resp = conn.request(b"GET /bye HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert resp.header("connection") == "close"
    assert conn.wait_closed(2)


def test_pipelining_answers_in_order(echo, raw):
    conn = raw(echo.port)
    conn.send(
        b"GET /p/delay/0.2 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /p/2 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /bytes/300000 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /p/4 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
        b"GET /chunked/5 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"HEAD /p/6 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"GET /p/7 HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert conn.read_response().json()["path"] == "/p/delay/0.2"
    assert conn.read_response().json()["path"] == "/p/2"
    assert conn.read_response().body == pattern(300000)
    assert conn.read_response().json()["body"] == "abc"
    assert conn.read_response().body == pattern(5)
    assert conn.read_response(head=True).body == b""
    assert conn.read_response().json()["path"] == "/p/7"


def test_many_pipelined_requests(echo, raw):
    conn = raw(echo.port)
    n = 500
    conn.send(b"".join(f"GET /m/{i} HTTP/1.1\r\nHost: h\r\n\r\n".encode() for i in range(n)))
    for i in range(n):
        assert conn.read_response().json()["path"] == f"/m/{i}"


def test_expect_100_continue(echo, raw):
    conn = raw(echo.port)
    conn.send(b"POST /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    interim = conn.read_response()
    assert interim.status == 100
    conn.send(b"data")
    resp = conn.read_response()
    assert resp.status == 200
    assert resp.json()["body"] == "data"


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nX A: b\r\n\r\n",
    ],
    ids=["garbage", "tls", "double-cl", "bad-name"],
)
def test_bad_request_is_400_and_closed(echo, raw, data):
    before = echo.count()["parse_errors"]
    conn = raw(echo.port)
    resp = conn.request(data)
    assert resp.status == 400
    assert resp.header("connection") == "close"
    assert conn.wait_closed(2)
    assert echo.count()["parse_errors"] == before + 1


def test_bad_request_after_good_pipelined_one(echo, raw):
    conn = raw(echo.port)
    conn.send(b"GET /good HTTP/1.1\r\nHost: h\r\n\r\nBAD\x00\r\n\r\n")
    assert conn.read_response().json()["path"] == "/good"
    assert conn.read_response().status == 400
    assert conn.wait_closed(2)


# ----------------------------------------------------------------------------- back-pressure


@pytest.mark.parametrize("kind", ["bytes", "chunked"])
def test_slow_reader_of_200_mib_keeps_memory_flat(echo_factory, kind):
    server = echo_factory()
    size = 200 * MiB
    base = server.rss_kib()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(f"GET /{kind}/{size} HTTP/1.1\r\nHost: h\r\n\r\n".encode())
        got = 0
        while got < MiB:
            got += len(sock.recv(65536))
        peak = base
        for _ in range(10):
            time.sleep(0.1)
            peak = max(peak, server.rss_kib())
        assert peak - base < 10 * 1024, f"echo RSS grew {peak - base} KiB while the reader slept"
        buf = bytearray(1 << 20)
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            got += n
            if got >= size:
                break
    assert got >= size  # (framing included)


# ----------------------------------------------------------------------------- process


def test_sigterm_exits_zero(echo_factory):
    server = echo_factory()
    assert requests.get(server.url("/"), timeout=5).status_code == 200
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(10) == 0


def test_sigint_exits_zero(echo_factory):
    server = echo_factory()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(10) == 0


def test_serve_echo_in_process():
    """``serve_echo`` is usable from any running loop (the CLI and benchmarks use it)."""

    async def main() -> dict:
        server = await serve_echo("127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /in-process HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
        data = await reader.read()
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        return json.loads(body)

    assert asyncio.run(main())["path"] == "/in-process"


def test_concurrent_clients(echo):
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            with requests.Session() as session:
                for j in range(20):
                    resp = session.post(echo.url(f"/c/{i}/{j}"), data=b"z" * j, timeout=10)
                    assert resp.json()["body_length"] == j
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
