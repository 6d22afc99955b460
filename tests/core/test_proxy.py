"""fastgate._core.proxy's functions: request-head rewriting, compiled and twin.

The protocol classes are exercised end to end over real sockets in
``tests/server/`` (run once on each implementation by ``tools/test``); here the
header rewriting is checked directly, and differentially on random heads.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def head(impl: Any, headers: list[tuple[bytes, bytes]], host: bytes | None = b"up:80") -> Any:
    triples = [(name.lower(), name, value) for name, value in headers]
    return impl.proxy.build_request_head(b"GET", b"/p?q=1", triples, host, b"10.0.0.1", b"http")


def fields(raw_head: bytes) -> list[tuple[bytes, bytes]]:
    lines = raw_head.split(b"\r\n")
    assert lines[-2:] == [b"", b""], "a head ends with an empty line"
    out = []
    for line in lines[1:-2]:
        name, _, value = line.partition(b": ")
        out.append((name, value))
    return out


def test_request_line_and_forwarding_fields(impl):
    raw, client_host, body, expect = head(impl, [(b"Host", b"gw.example"), (b"X-A", b"1")])
    assert raw.startswith(b"GET /p?q=1 HTTP/1.1\r\n")
    assert fields(raw) == [
        (b"X-A", b"1"),
        (b"Host", b"up:80"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"X-Forwarded-Proto", b"http"),
        (b"X-Forwarded-Host", b"gw.example"),
    ]
    assert (client_host, body, expect) == (b"gw.example", impl.proxy.BODY_NONE, False)


def test_preserve_host_keeps_the_clients(impl):
    raw, *_ = head(impl, [(b"Host", b"gw.example")], host=None)
    assert (b"Host", b"gw.example") in fields(raw)


@pytest.mark.parametrize(
    "name",
    [b"Connection", b"Keep-Alive", b"TE", b"Trailer", b"Upgrade", b"Proxy-Authorization",
     b"Proxy-Connection", b"Transfer-Encoding", b"Expect", b"X-Forwarded-Proto"],
)
def test_hop_by_hop_and_replaced_fields_are_not_copied(impl, name):
    value = b"100-continue" if name == b"Expect" else b"x"
    raw, *_ = head(impl, [(b"Host", b"h"), (name, value)])
    names = [n.lower() for n, _ in fields(raw)]
    if name == b"X-Forwarded-Proto":
        assert names.count(b"x-forwarded-proto") == 1
        assert (b"X-Forwarded-Proto", b"http") in fields(raw)
    elif name == b"Transfer-Encoding":
        assert (b"Transfer-Encoding", b"chunked") in fields(raw)  # re-framed, not copied
    else:
        assert name.lower() not in names


def test_fields_named_by_connection_are_dropped(impl):
    raw, *_ = head(impl, [(b"X-Secret", b"s"), (b"Host", b"h"), (b"connection", b"close, x-secret"),
                          (b"X-Kept", b"k")])
    names = [n for n, _ in fields(raw)]
    assert b"X-Secret" not in names and b"X-Kept" in names


def test_forwarded_for_is_appended_to_every_value(impl):
    raw, *_ = head(impl, [(b"Host", b"h"), (b"X-Forwarded-For", b"1.1.1.1"),
                          (b"x-forwarded-for", b"2.2.2.2, 3.3.3.3")])
    assert (b"X-Forwarded-For", b"1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.1") in fields(raw)


def test_framing_is_reported(impl):
    proxy = impl.proxy
    assert head(impl, [(b"Host", b"h"), (b"Content-Length", b"5")])[2] == proxy.BODY_LENGTH
    assert head(impl, [(b"Host", b"h"), (b"Content-Length", b"0")])[2] == proxy.BODY_NONE
    assert head(impl, [(b"Host", b"h"), (b"Transfer-Encoding", b"chunked")])[2] == \
        proxy.BODY_CHUNKED
    assert head(impl, [(b"Host", b"h"), (b"Expect", b"100-Continue")])[3] is True


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Host", b"a"), (b"Host", b"b")],
        [(b"Host", b"a"), (b"Expect", b"something-else")],
    ],
)
def test_unacceptable_heads_raise(impl, headers):
    with pytest.raises(impl.proxy.BadRequestHead):
        head(impl, headers)


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        (b"keep-alive", None),
        (b"Close", None),
        (b"close, X-Foo", {b"x-foo"}),
        (b" Upgrade ,, keep-alive,x-a", {b"upgrade", b"x-a"}),
    ],
)
def test_connection_tokens(impl, value, tokens):
    assert impl.proxy.connection_tokens(value) == tokens


_NAMES = st.sampled_from(
    [b"Host", b"host", b"Connection", b"X-Forwarded-For", b"Content-Length", b"Transfer-Encoding",
     b"Expect", b"Proxy-Foo", b"Keep-Alive", b"X-A", b"x-a", b"Upgrade", b"TE", b"Authorization"]
) | st.binary(min_size=1, max_size=12)
_VALUES = st.sampled_from(
    [b"", b"0", b"5", b"close", b"keep-alive, x-a", b"100-continue", b"chunked", b"X-A, Host"]
) | st.binary(max_size=20)


def _outcome(function: Callable[..., Any], *args: object) -> tuple[str, object]:
    try:
        return ("returned", function(*args))
    except Exception as exc:  # the exception type is part of the interface
        return ("raised", type(exc).__name__)


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(_NAMES, _VALUES), max_size=8),
       host=st.none() | st.just(b"up:8080"))
def test_compiled_and_twin_rewrite_heads_identically(
    both: Callable[[str], tuple[ModuleType, ModuleType]],
    headers: list[tuple[bytes, bytes]],
    host: bytes | None,
) -> None:
    compiled, twin = both("proxy")
    triples = [(n.lower(), n, v) for n, v in headers]
    args = (b"POST", b"/x", triples, host, b"127.0.0.1", b"http")
    assert _outcome(compiled.build_request_head, *args) == _outcome(
        twin.build_request_head, *args)
    for _, value in headers:
        assert _outcome(compiled.connection_tokens, value) == _outcome(
            twin.connection_tokens, value)


def test_twin_runs_without_cython_installed(tmp_path):
    """A wheel built elsewhere has no Cython at run time: the twin falls back
    to fastgate._core._cython_shim."""
    import os
    import subprocess
    import sys

    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'cython' or name.startswith('Cython'):\n"
        "            raise ImportError('no cython here')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import fastgate._core as core\n"
        "proxy = core.proxy\n"
        "assert proxy.__name__ == 'fastgate._core.proxy_py', proxy.__name__\n"
        "assert proxy.cython.__name__ == 'fastgate._core._cython_shim', proxy.cython\n"
        "head = proxy.build_request_head(b'GET', b'/', [(b'host', b'Host', b'h')], b'u', "
        "b'1.2.3.4', b'http')[0]\n"
        "assert head.startswith(b'GET / HTTP/1.1'), head\n"
        "print('ok')\n"
    )
    env = dict(os.environ, FASTGATE_NO_EXTENSIONS="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# -- upstream writes: one burst per loop iteration (rule 8) ------------------------------


class _Sink:
    """A real TCP server that records what each connection received, and EOFs."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.closed: list[bool] = []

    async def serve(self, reader: Any, writer: Any) -> None:
        index = len(self.received)
        self.received.append(bytearray())
        self.closed.append(False)
        while data := await reader.read(65536):
            self.received[index] += data
        writer.close()
        await writer.wait_closed()
        self.closed[index] = True


async def _connections(impl: Any, count: int) -> tuple[_Sink, Any, list[Any], Any]:
    import asyncio
    import functools

    loop = asyncio.get_running_loop()
    sink = _Sink()
    server = await asyncio.start_server(sink.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = impl.proxy.UpstreamPool(loop, "http", "127.0.0.1", port, 8)
    conns = []
    for _ in range(count):
        _, conn = await loop.create_connection(
            functools.partial(impl.proxy.UpstreamConnection, pool), "127.0.0.1", port)
        conns.append(conn)
    while len(sink.received) < count:
        await asyncio.sleep(0.001)
    return sink, server, conns, loop


async def _shut(sink: _Sink, server: Any, conns: list[Any]) -> None:
    for conn in conns:
        conn.close()
    await _until(lambda: all(sink.closed))
    server.close()
    await server.wait_closed()


async def _until(predicate: Callable[[], bool]) -> None:
    import asyncio

    for _ in range(2000):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("timed out")


def test_small_upstream_writes_wait_for_the_iterations_burst(impl):
    import asyncio

    async def run() -> None:
        sink, server, conns, loop = await _connections(impl, 3)
        done = loop.create_future()

        def one_callback() -> None:
            # Three requests handed over within one callback: nothing is written
            # before the callback returns, all of it right after.
            for n, conn in enumerate(conns):
                conn.queue([b"GET /%d HTTP/1.1\r\n" % n, b"Host: x\r\n\r\n"], 0)
            done.set_result([list(conn.queued) for conn in conns])

        loop.call_soon(one_callback)
        held = await done
        assert [b"".join(q) for q in held] == [
            b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(3)]
        await _until(lambda: all(bytes(r).endswith(b"\r\n\r\n") for r in sink.received))
        assert [bytes(r) for r in sink.received] == [
            b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(3)]
        assert all(conn.queued == [] for conn in conns)
        await _shut(sink, server, conns)

    asyncio.run(run())


def test_a_body_streaming_in_is_written_at_once(impl):
    """Flow control needs the bytes in the transport: a large body, or a second
    hand-over before the burst, is written on the spot, after what was queued."""
    import asyncio

    async def run() -> None:
        sink, server, conns, _ = await _connections(impl, 2)
        big, small = conns
        body = b"x" * (impl.proxy.BATCHED_WRITE_MAX + 1)
        big.queue([body], len(body))
        assert big.queued == []
        small.queue([b"head;"], 0)
        assert small.queued == [b"head;"]
        small.queue([b"body"], 4)
        assert small.queued == []
        await _until(lambda: len(sink.received[0]) == len(body) and sink.received[1] != b"")
        assert bytes(sink.received[1]) == b"head;body"
        await _shut(sink, server, conns)

    asyncio.run(run())


def test_closing_writes_what_was_queued_and_aborting_drops_it(impl):
    import asyncio

    async def run() -> None:
        sink, server, conns, _ = await _connections(impl, 2)
        closing, aborting = conns
        closing.queue([b"last words"], 0)
        closing.close()
        aborting.queue([b"never sent"], 0)
        aborting.abandon()
        await _until(lambda: all(sink.closed))
        assert [bytes(r) for r in sink.received] == [b"last words", b""]
        await _shut(sink, server, [])

    asyncio.run(run())
