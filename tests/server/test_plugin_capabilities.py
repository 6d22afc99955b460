"""What the proxy core lets a plugin change (``Exchange.set_path``,
``set_method``, ``set_body``, ``on_response``), over real sockets.

A gateway runs in this process (its own uvloop in a thread) with a test step
first in every API's chain: it runs the case the request names in ``X-Case``
(a function registered by the test), so each test says what its middleware
does in a few lines.  Clients are raw sockets (exact bytes, pipelining) and
requests; the upstream is the echo server, which reports the method, path,
headers and body it got, and serves chunked, close-delimited and bodiless
answers.  Run with and without ``FASTGATE_NO_EXTENSIONS=1``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fastgate import responses
from fastgate.config import load_gateway_config
from fastgate.echo import pattern

SECRET = "capabilities-secret-1"

#: The middleware cases, by X-Case value: ``case(req) -> Outcome``.
CASES: dict[str, Callable[[Any], Any]] = {}


class CaseStep:
    """A chain step running the case named by the request's ``X-Case``."""

    name = "test-case"

    def process(self, req: Any) -> Any:
        name = req.header(b"x-case")
        if name is None:
            return None
        return CASES[name.decode()](req)


def case(fn: Callable[[Any], Any]) -> str:
    """Register ``fn`` as a case; returns its name (for X-Case)."""
    CASES[fn.__name__] = fn
    return fn.__name__


def refusal(exc: Exception) -> bytes:
    """What a case answers when a capability raises: the exception's type."""
    return responses.error_response(500, type(exc).__name__)


class InProcessGateway:
    def __init__(self, root: Path, port: int) -> None:
        import uvloop

        from fastgate.server.gateway import Gateway

        self.port = port
        self.records: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.loop = uvloop.new_event_loop()
        self.gateway = Gateway(load_gateway_config(str(root / "gateway.json")), self.loop)
        self.gateway.add_exchange_hook(self._record)
        self.gateway.load_tls()
        self.gateway.load()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.gateway.start(), self.loop).result(10)

    def _record(self, ex: Any) -> None:
        with self.lock:
            self.records.append({"path": ex.path, "status": ex.status,
                                 "bytes_out": ex.bytes_out, "complete": ex.complete})

    def take(self, n: int, timeout: float = 5.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.records) >= n:
                    got = list(self.records)
                    self.records.clear()
                    return got
            time.sleep(0.01)
        raise AssertionError(f"{len(self.records)} exchanges finished, not {n}")

    def clear(self) -> None:
        with self.lock:
            self.records.clear()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.gateway.shutdown(), self.loop).result(15)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, echo: Any, make_api: Any,
       free_port: Any) -> Iterator[InProcessGateway]:
    import fastgate.server.gateway as gateway_module
    from fastgate.middleware.chain import Chain

    original = gateway_module.build_chain

    def with_case_step(spec: Any, services: Any) -> Chain:
        chain = original(spec, services)
        return Chain([CaseStep(), *(chain.steps if chain is not None else ())])

    root = tmp_path_factory.mktemp("capabilities")
    (root / "apps").mkdir()
    for api in (make_api("strip", "/s/", echo.base_url),
                make_api("nostrip", "/n/", echo.base_url, strip_listen_path=False),
                make_api("target", "/t/", echo.base_url + "/base")):
        (root / "apps" / f"{api['api_id']}.json").write_text(json.dumps(api))
    port = free_port()
    (root / "gateway.json").write_text(json.dumps({
        "listen_address": "127.0.0.1", "listen_port": port, "secret": SECRET,
        "app_path": "apps", "storage": {"type": "memory"},
        "graceful_shutdown_timeout_duration": 1}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gateway_module, "build_chain", with_case_step)
        gateway = InProcessGateway(root, port)
    yield gateway
    gateway.stop()


def request(path: str, name: str, *, method: str = "GET", body: bytes | None = None,
            extra: str = "", chunked: bool = False) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: example.test\r\nX-Case: {name}\r\n{extra}"
    if body is None:
        return (head + "\r\n").encode()
    if chunked:
        pieces = [body[i:i + 1000] for i in range(0, len(body), 1000)]
        framed = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        return (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + framed
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def echoed(resp: Any) -> dict[str, Any]:
    assert resp.status == 200, (resp.status, resp.body[:300])
    got: dict[str, Any] = resp.json()
    return got


def sent_header(got: dict[str, Any], name: str) -> list[str]:
    return [v for k, v in got["headers"] if k.lower() == name]


def upstream_connections(echo: Any) -> int:
    """The echo server's connection count (the call itself opens one)."""
    return int(echo.count()["connections"])


# ---------------------------------------------------------------- set_path


@case
def rewrite_in_listen_path(req: Any) -> None:
    req.set_path(req.path.replace(b"/old/", b"/new/"))
    assert req.path.endswith(b"/new/x")


@case
def rewrite_outside_listen_path(req: Any) -> None:
    req.set_path(b"/elsewhere/x%20y")


@pytest.mark.parametrize(("listen", "name", "upstream_path"), [
    ("/s/", "rewrite_in_listen_path", "/new/x"),
    ("/s/", "rewrite_outside_listen_path", "/elsewhere/x%20y"),
    ("/n/", "rewrite_in_listen_path", "/n/new/x"),
    ("/n/", "rewrite_outside_listen_path", "/elsewhere/x%20y"),
    ("/t/", "rewrite_in_listen_path", "/base/new/x"),
    ("/t/", "rewrite_outside_listen_path", "/base/elsewhere/x%20y"),
])
def test_set_path(gw: InProcessGateway, raw: Any, listen: str, name: str,
                  upstream_path: str) -> None:
    conn = raw(gw.port)
    got = echoed(conn.request(request(f"{listen}old/x?q=1", name)))
    assert got["url"] == upstream_path + "?q=1"
    # The next request on the connection is untouched.
    assert echoed(conn.request(request(f"{listen}old/x", "none")))["path"].endswith("/old/x")


CASES["none"] = lambda req: None

BAD_PATHS = [b"relative", b"", b"/a b", b"/a\r\nX: y", b"/a\x00", b"/a?b", b"/a#b",
             b"/a/../admin", b"/a/%2e%2E/admin", b"/a/./b", b"/caf\xc3\xa9", b"/a\x7f",
             b"/a\tb"]


@case
def bad_paths(req: Any) -> bytes:
    before = req.path
    refused = []
    for path in BAD_PATHS:
        try:
            req.set_path(path)
        except ValueError:
            refused.append(path)
    assert req.path == before
    return responses.json_response(200, {"refused": len(refused)})


def test_set_path_refuses_what_is_not_a_clean_path(gw: InProcessGateway, raw: Any) -> None:
    resp = raw(gw.port).request(request("/s/x", "bad_paths"))
    assert resp.status == 200 and resp.json() == {"refused": len(BAD_PATHS)}


# ---------------------------------------------------------------- set_method


@case
def to_post(req: Any) -> None:
    req.set_method(b"POST")
    assert req.method == b"POST"


@case
def bad_methods(req: Any) -> bytes:
    refused = 0
    for method in (b"", b"GE T", b"GET\r\n", b"G(ET", b"\xff"):
        try:
            req.set_method(method)
        except ValueError:
            refused += 1
    return responses.json_response(200, {"refused": refused, "method": req.method.decode()})


@case
def to_head(req: Any) -> None:
    req.set_method(b"HEAD")


@case
def to_get(req: Any) -> None:
    req.set_method(b"GET")


def test_set_method(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    assert echoed(conn.request(request("/s/m", "to_post")))["method"] == "POST"
    resp = conn.request(request("/s/m", "bad_methods", method="PUT"))
    assert resp.json() == {"refused": 5, "method": "PUT"}


def test_client_get_sent_as_head_gets_an_empty_body(gw: InProcessGateway, raw: Any,
                                                    echo: Any) -> None:
    conn = raw(gw.port)
    conn.request(request("/s/warm", "none"))
    before = upstream_connections(echo)
    for _ in range(3):
        resp = conn.request(request("/s/bytes/1000", "to_head"))
        assert resp.status == 200 and resp.header("content-length") == "0"
        assert resp.body == b""
    assert echoed(conn.request(request("/s/after", "none")))["path"] == "/after"
    # The upstream connection was reused throughout (HEAD answers end at the head).
    assert upstream_connections(echo) == before + 1


def test_client_head_sent_as_get_gets_the_head_only(gw: InProcessGateway, raw: Any,
                                                    echo: Any) -> None:
    conn = raw(gw.port)
    conn.request(request("/s/warm", "none"))
    before = upstream_connections(echo)
    for path in ("/s/bytes/1000", "/s/chunked/5000"):
        resp = conn.request(request(path, "to_get", method="HEAD"), head=True)
        assert resp.status == 200
        if "bytes" in path:
            assert resp.header("content-length") == "1000"
    got = echoed(conn.request(request("/s/after", "none")))
    assert got["path"] == "/after"
    # The bodies were read off the upstream connection, which served on.
    assert upstream_connections(echo) == before + 1


# ---------------------------------------------------------------- set_body


def replace_body(new: bytes) -> Callable[[Any], Any]:
    def replace(req: Any) -> Any:
        return replaced(req, req.read_body())  # read_body: from process() itself

    async def replaced(req: Any, reading: Any) -> bytes | None:
        original = await reading
        if original is None:
            try:
                req.set_body(new)
            except RuntimeError as exc:
                return refusal(exc)
            return None
        req.set_body(new + b"|" + str(len(original)).encode())
        assert await req.read_body() == req.header(b"x-expect").replace(b"'", b"")
        return None
    return replace


CASES["replace"] = replace_body(b"replaced")


@case
def to_empty(req: Any) -> Any:
    async def empty(reading: Any) -> None:
        assert await reading is not None
        req.set_body(b"")
        assert await req.read_body() == b""
    return empty(req.read_body())


@case
def empty_no_read(req: Any) -> Any:
    try:
        req.set_body(b"")
    except RuntimeError as exc:
        return refusal(exc)
    return None


@case
def body_for_get(req: Any) -> None:
    req.set_body(b"a body for a GET")


@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
@pytest.mark.parametrize("size", [1, 200 * 1024], ids=["small", "large"])
def test_set_body(gw: InProcessGateway, raw: Any, chunked: bool, size: int) -> None:
    conn = raw(gw.port)
    body = b"o" * size
    expect = f"replaced|{size}"
    got = echoed(conn.request(request("/s/b", "replace", method="POST", body=body,
                                      chunked=chunked, extra=f"X-Expect: '{expect}'\r\n")))
    assert got["body"] == expect and got["body_length"] == len(expect)
    assert sent_header(got, "content-length") == [str(len(expect))]
    assert sent_header(got, "transfer-encoding") == []
    # The connection goes on at the right place of the client's stream.
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_set_body_empty(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    for chunked in (True, False):
        got = echoed(conn.request(request("/s/b", "to_empty", method="POST", body=b"x" * 5000,
                                          chunked=chunked)))
        assert got["body_length"] == 0 and sent_header(got, "content-length") == ["0"]
        assert sent_header(got, "transfer-encoding") == []
    # With no body at all: sync, on a request without one.
    got = echoed(conn.request(request("/s/b", "body_for_get")))
    assert got["body"] == "a body for a GET" and got["method"] == "GET"
    assert sent_header(got, "content-length") == ["16"]


def test_set_body_with_expect_continue(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    head = request("/s/b", "replace", method="POST",
                   extra="X-Expect: 'replaced|3'\r\nExpect: 100-continue\r\nContent-Length: 3\r\n")
    conn.send(head)
    assert conn.read_response().status == 100
    conn.send(b"abc")
    got = echoed(conn.read_response())
    assert got["body"] == "replaced|3" and sent_header(got, "expect") == []


def test_set_body_needs_the_whole_body(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    # Without read_body: the body is not known.
    resp = conn.request(request("/s/b", "empty_no_read", method="POST", body=b"abc"))
    assert (resp.status, resp.json()) == (500, {"error": "RuntimeError"})
    conn = raw(gw.port)
    # Larger than MAX_BUFFERED: read_body resolved to None.
    resp = conn.request(request("/s/b", "replace", method="POST", body=b"z" * (300 * 1024)))
    assert (resp.status, resp.json()) == (500, {"error": "RuntimeError"})
    # Without a body, set_body needs no read_body.
    assert echoed(raw(gw.port).request(request("/s/b", "empty_no_read")))["body_length"] == 0


# ---------------------------------------------------------------- on_response, body=True


def tag_response(status: int, headers: list[tuple[bytes, bytes]], body: bytes | None
                 ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    assert body is not None
    assert all(name.lower() not in (b"connection", b"transfer-encoding")
               for name, _ in headers)
    return 201, [*headers, (b"X-Hooked", b"%d" % len(body))], body + b"+"


@case
def tag(req: Any) -> None:
    req.on_response(tag_response, True)


@case
def unchanged(req: Any) -> None:
    req.response_headers = b"X-Limit: 7\r\n"
    req.on_response(lambda status, headers, body: None, True)


@case
def whole_bytes(req: Any) -> None:
    req.on_response(lambda status, headers, body: b"HTTP/1.1 418 I'm a teapot\r\n"
                    b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nshort", True)


@case
def raising(req: Any) -> None:
    def hook(status: int, headers: Any, body: Any) -> None:
        raise KeyError("broken plugin")
    req.on_response(hook, True)


@case
def not_a_response(req: Any) -> None:
    req.on_response(lambda status, headers, body: b"garbage", True)


@case
def header_injection(req: Any) -> None:
    req.on_response(lambda status, headers, body: (200, [(b"X-A", b"1\r\nX-B: 2")]), True)


def test_response_hook_changes_status_headers_and_body(gw: InProcessGateway, raw: Any
                                                        ) -> None:
    gw.clear()
    conn = raw(gw.port)
    resp = conn.request(request("/s/bytes/100", "tag"))
    assert resp.status == 201 and resp.header("x-hooked") == "100"
    assert resp.body == pattern(100) + b"+" and resp.header("content-length") == "101"
    (rec,) = gw.take(1)
    assert rec["status"] == 201 and rec["complete"]
    assert rec["bytes_out"] == len(resp.head) + len(resp.body)


def test_chunked_upstream_response_collected_and_reframed(gw: InProcessGateway, raw: Any
                                                           ) -> None:
    conn = raw(gw.port)
    resp = conn.request(request("/s/chunked/5000", "unchanged"))
    assert resp.status == 200 and resp.body == pattern(5000)
    assert resp.header("content-length") == "5000" and resp.chunk_sizes == []
    assert resp.header("x-limit") == "7"  # the gateway's own headers added
    # Close-delimited upstream answers too.
    resp = conn.request(request("/s/close/3000", "tag"))
    assert resp.status == 201 and resp.body == pattern(3000) + b"+"
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_response_hook_answering_bytes(gw: InProcessGateway, raw: Any) -> None:
    gw.clear()
    conn = raw(gw.port)
    resp = conn.request(request("/s/x", "whole_bytes"))
    assert (resp.status, resp.body, resp.header("content-type")) == (418, b"short",
                                                                      "text/plain")
    (rec,) = gw.take(1)
    assert rec["status"] == 418 and rec["bytes_out"] == len(resp.head) + 5
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


@pytest.mark.parametrize("name", ["raising", "not_a_response", "header_injection"])
def test_failing_response_hook_answers_500(gw: InProcessGateway, raw: Any, name: str,
                                           caplog: pytest.LogCaptureFixture) -> None:
    conn = raw(gw.port)
    with caplog.at_level("ERROR", logger="fastgate.proxy"):
        resp = conn.request(request("/s/x", name))
    assert (resp.status, resp.json()) == (500, {"error": "Middleware error"})
    assert "response middleware" in caplog.text
    if name == "raising":
        assert "KeyError: 'broken plugin'" in caplog.text  # the traceback
    # The gateway (and this connection) serve on.
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_head_and_bodiless_answers_with_a_hook(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    resp = conn.request(request("/s/bytes/100", "tag", method="HEAD"), head=True)
    assert resp.status == 201 and resp.header("x-hooked") == "0"
    resp = conn.request(request("/s/status/204", "tag"))
    assert resp.status == 201 and resp.body == b"+"  # the hook made it a 201 with a body
    resp = conn.request(request("/s/status/304", "unchanged"))
    assert resp.status == 304 and resp.header("x-limit") == "7"
    resp = conn.request(request("/s/status/204", "unchanged"))
    assert resp.status == 204 and resp.header("content-length") is None
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_upstream_connection_reused_after_collected_responses(gw: InProcessGateway,
                                                               raw: Any, echo: Any) -> None:
    conn = raw(gw.port)
    conn.request(request("/s/warm", "none"))
    before = upstream_connections(echo)
    for path in ("/s/bytes/10", "/s/chunked/3000", "/s/x", "/s/status/204"):
        assert conn.request(request(path, "tag")).status == 201
    assert upstream_connections(echo) == before + 1


@case
def slow_first(req: Any) -> None:
    delay = float(req.header(b"x-delay"))

    async def hook(status: int, headers: Any, body: bytes | None) -> tuple[int, Any]:
        await asyncio.sleep(delay)
        return status, [*headers, (b"X-Order", req.path)]
    req.on_response(hook, True)


def test_pipelined_requests_with_async_hooks_stay_in_order(gw: InProcessGateway,
                                                            raw: Any) -> None:
    conn = raw(gw.port)
    conn.send(b"".join(request(f"/s/p{i}", "slow_first", extra=f"X-Delay: {d}\r\n")
                       for i, d in enumerate((0.3, 0.0, 0.1, 0.0))))
    got = [conn.read_response() for _ in range(4)]
    assert [r.header("x-order") for r in got] == [f"/s/p{i}" for i in range(4)]
    assert [r.json()["path"] for r in got] == [f"/p{i}" for i in range(4)]


def test_response_over_the_buffer_limit(gw: InProcessGateway, raw: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    conn = raw(gw.port)
    with caplog.at_level("WARNING", logger="fastgate.proxy"):
        resp = conn.request(request("/s/bytes/300000", "tag"))
        assert resp.status == 502
        assert resp.json() == {"error": "Upstream response too large for the response "
                                        "middleware"}
        assert conn.request(request("/s/bytes/300000", "tag")).status == 502
    assert caplog.text.count("cannot be shown to its response middleware") <= 1
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


# ---------------------------------------------------------------- on_response, body=False


@case
def head_only(req: Any) -> None:
    def hook(status: int, headers: list[tuple[bytes, bytes]], body: Any) -> Any:
        assert body is None
        return 203, [(n, v) for n, v in headers if n.lower() != b"content-type"] + [
            (b"X-Head-Hook", b"yes"), (b"Content-Length", b"1"), (b"Connection", b"close")]
    req.on_response(hook, False)


@case
def head_only_async(req: Any) -> None:
    async def hook(status: int, headers: Any, body: Any) -> Any:
        await asyncio.sleep(0.05)
        return None if req.header(b"x-keep") else (200, [(b"X-Async", b"1")])
    req.response_headers = b"X-Limit: 3\r\n"
    req.on_response(hook, False)


@case
def head_bytes(req: Any) -> None:
    req.on_response(lambda status, headers, body: responses.error_response(403, "no"), False)


@case
def head_raising(req: Any) -> None:
    def hook(status: int, headers: Any, body: Any) -> Any:
        raise ValueError("head hook")
    req.on_response(hook, False)


@pytest.mark.parametrize("path", ["/s/bytes/300000", "/s/chunked/300000", "/s/bytes/10"])
def test_head_hook_body_streams_unchanged(gw: InProcessGateway, raw: Any, path: str) -> None:
    gw.clear()
    conn = raw(gw.port)
    n = int(path.rsplit("/", 1)[1])
    resp = conn.request(request(path, "head_only"))
    assert resp.status == 203 and resp.header("x-head-hook") == "yes"
    assert resp.header("content-type") is None and resp.body == pattern(n)
    # The upstream's framing, not the hook's; the proxy decides the connection.
    assert resp.header("connection") is None
    if "bytes" in path:
        assert resp.header("content-length") == str(n)
    else:
        assert resp.header("transfer-encoding") == "chunked"
    (rec,) = gw.take(1)
    assert rec["status"] == 203 and rec["complete"]
    assert rec["bytes_out"] >= len(resp.head) + n
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_async_head_hook(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    resp = conn.request(request("/s/chunked/200000", "head_only_async"))
    assert resp.header("x-async") == "1" and resp.body == pattern(200000)
    assert resp.header("x-limit") == "3"
    resp = conn.request(request("/s/bytes/50", "head_only_async", extra="X-Keep: 1\r\n"))
    assert resp.header("x-async") is None and resp.header("x-limit") == "3"
    assert resp.body == pattern(50)
    resp = conn.request(request("/s/bytes/50", "head_only_async", method="HEAD"), head=True)
    assert resp.status == 200 and resp.header("x-async") == "1"
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_head_hook_answering_bytes_or_raising(gw: InProcessGateway, raw: Any) -> None:
    conn = raw(gw.port)
    resp = conn.request(request("/s/bytes/300000", "head_bytes"))
    assert (resp.status, resp.json()) == (403, {"error": "no"})
    resp = conn.request(request("/s/chunked/1000", "head_raising"))
    assert (resp.status, resp.json()) == (500, {"error": "Middleware error"})
    assert echoed(conn.request(request("/s/next", "none")))["path"] == "/next"


def test_requests_client(gw: InProcessGateway) -> None:
    """A real client library sees the hooked answers as any other."""
    resp = requests.get(gw.url("/s/bytes/64"), headers={"X-Case": "tag"}, timeout=5)
    assert resp.status_code == 201 and resp.content == pattern(64) + b"+"
    resp = requests.post(gw.url("/s/b"), data=b"q" * 10, timeout=5,
                         headers={"X-Case": "replace", "X-Expect": "'replaced|10'"})
    assert resp.json()["body"] == "replaced|10"
