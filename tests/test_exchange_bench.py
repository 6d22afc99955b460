"""The whole-exchange regression gate (``bench/micro/exchange.py``): every case
takes the path it names, a case that does not is never timed, and a path that
gets slower, or needs a Task, fails.

These run the real gateway objects in process on whichever ``_core`` this
process has (compiled, or the twins under ``FASTGATE_NO_EXTENSIONS=1``).
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop
from fastgate._core.proxy import Route, Router

import fastgate._core as core
from bench.micro import exchange
from bench.micro.exchange import ExchangeBench, ExchangeResult, Mode

TINY = Mode(sample_seconds=0.002, rounds=5)


@pytest.fixture
def bench() -> Iterator[ExchangeBench]:
    loop = uvloop.new_event_loop()
    with tempfile.TemporaryDirectory(prefix="fastgate-micro-test-") as root:
        made = ExchangeBench.create(loop, Path(root))
        try:
            yield made
        finally:
            made.close()
            loop.close()


def test_every_case_takes_the_path_it_names(bench: ExchangeBench) -> None:
    assert bench.verify() == []
    # The answers as the client reads them: proxied 200s with the upstream's body.
    for name in bench.cases:
        got = bench.exchange(name)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n"), (name, got)
        assert got.endswith(b'\r\n\r\n{"orders": [42]}'), (name, got)
    assert b"\r\nX-RateLimit-Remaining: " in bench.exchange("auth-token-rate")
    # The upstream got the rewritten head: the gateway's X-Forwarded-For added.
    head = bench.connections["auth-token"].upstream_transport.last
    assert head.startswith(b"GET /token/orders?page=2 HTTP/1.1\r\n"), head
    assert b"\r\nX-Forwarded-For: 203.0.113.7\r\n" in head, head


def test_every_case_has_a_ceiling(bench: ExchangeBench) -> None:
    assert list(bench.cases) == list(exchange.CEILINGS) == list(exchange.TWIN_CEILINGS)
    assert exchange.ceilings() is (exchange.TWIN_CEILINGS if core.NO_EXTENSIONS
                                   else exchange.CEILINGS)


def test_a_refused_credential_is_reported_not_timed(bench: ExchangeBench) -> None:
    # The key deleted through the REST API: the "auth-token" request is now
    # refused, and a benchmark of that refusal would be a lie.
    bench.admin_call("DELETE", "/tyk/keys/" + bench.token)
    problems = bench.verify()
    assert any(p.startswith("auth-token: answered b'HTTP/1.1 403") for p in problems), problems
    assert not any(p.startswith("keyless") for p in problems), problems
    with pytest.raises(RuntimeError,
                       match=r"auth-token: 16 answers to 16 requests, the last b'HTTP/1\.1 403 "):
        bench.sample("auth-token", 16)


def _with_chain(bench: ExchangeBench, api_id: str,
                wrap: Callable[[Any], Callable[[Any], Any]]) -> None:
    """Put ``wrap(chain)`` in service as the chain of API ``api_id`` (a real
    new router, as a reload makes one)."""
    gateway = bench.gateway
    routes = []
    for r in gateway.router.routes:
        chain = wrap(r.chain) if r.spec.api_id == api_id else r.chain
        routes.append(Route(r.spec, r.listen_path, r.strip, r.target_path, r.host_header,
                            r.pool, r.refusal, chain))
    gateway.router = Router(routes)


def test_a_slower_path_fails_its_ceiling(bench: ExchangeBench) -> None:
    assert bench.verify() == []
    keyless = bench.sample("keyless", 200)

    def slower(chain: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(ex: Any) -> Any:
            # Work costing about three keyless exchanges, then the real chain.
            deadline = time.thread_time() + 3 * keyless
            while time.thread_time() < deadline:
                hashlib.sha256(b"x").digest()
            return chain(ex)
        return run

    _with_chain(bench, "token", slower)
    assert bench.verify() == []  # still the right path, only slower
    results = {r.name: r for r in exchange.measure(bench, TINY, ["auth-token"])}
    assert set(results) == {"keyless", "auth-token"}
    assert results["keyless"].ratio == 1.0
    slow = results["auth-token"]
    assert slow.ratio > slow.ceiling + 0.5
    assert not slow.ok


def test_a_task_on_the_fast_path_is_caught(bench: ExchangeBench) -> None:
    def awaiting(chain: Callable[[Any], Any]) -> Callable[[Any], Any]:
        async def later(ex: Any) -> Any:
            await asyncio.sleep(0)
            return chain(ex)
        return later

    _with_chain(bench, "token", awaiting)
    # The exchange still works when the loop runs ...
    assert bench.exchange("auth-token").startswith(b"HTTP/1.1 200 ")
    # ... but the timed batch runs in one callback: no answer without the loop.
    with pytest.raises(RuntimeError, match="auth-token: 0 answers"):
        bench.sample("auth-token", 16)


def test_measure_gives_ratios_to_keyless(bench: ExchangeBench) -> None:
    results = exchange.measure(bench, TINY)
    assert [r.name for r in results] == list(exchange.CEILINGS)
    keyless = results[0]
    assert keyless.name == "keyless" and keyless.ratio == 1.0 and keyless.ok
    for result in results:
        assert result.us > 0 and result.keyless_us == keyless.us
        assert result.ceiling == exchange.ceilings()[result.name]
        # Authentication costs something: no case is cheaper than keyless
        # (a case that skipped its work would be).
        assert result.ratio > 1.0 or result is keyless, result


def test_above_ceiling_is_reported() -> None:
    fine = ExchangeResult("auth-token", us=12.0, keyless_us=8.0, ceiling=1.6)
    slow = ExchangeResult("auth-token", us=14.0, keyless_us=8.0, ceiling=1.6)
    assert fine.ok and fine.ratio == 1.5 and fine.added_us == 4.0
    assert not slow.ok
    table = exchange.format_table([fine, slow])
    assert "1.50x" in table and "1.75x" in table and "+6.00" in table
    assert "ABOVE CEILING" in table
