"""``Store.limits``: a request's rate limit and quota in one decision, the same
on the memory store, Redis and Redis Cluster — the rate decides first, and
nothing is counted unless both allow."""

from __future__ import annotations

import asyncio
import time

import pytest

from .conftest import SHARED_KINDS


def test_both_allow_then_the_rate_refuses_first(store, run):
    async def body() -> None:
        decisions = [await store.limits("both", 2, 10, 2, 60) for _ in range(3)]
        assert [(d[0], d[4]) for d in decisions[:2]] == [(True, True), (True, True)]
        assert [d[5] for d in decisions[:2]] == [1, 0]  # quota remaining
        assert [d[1] for d in decisions[:2]] == [1, 0]  # rate remaining
        # Both exhausted: the rate refuses (a 429), the quota is not decided.
        assert decisions[2][0] is False
        assert decisions[2][4] is True

    run(body())


def test_a_quota_refusal_takes_no_rate_token(store, run):
    async def body() -> None:
        for _ in range(2):
            allowed, *_rest = await store.limits("qfirst", 5, 60, 2, 60)
            assert allowed
        for _ in range(10):
            decision = await store.limits("qfirst", 5, 60, 2, 60)
            assert decision[0] is True and decision[4] is False
            assert decision[6] > 0  # renews_at
        # The ten quota refusals took no rate token: 3 of 5 are left.
        allowed, remaining, *_ = await store.rate_limit("qfirst", 5, 60)
        assert allowed and remaining == 2

    run(body())


def test_no_limits_touch_nothing(store, run):
    async def body() -> None:
        assert await store.limits("free", 0, 0, 0, 0) == (True, -1, 0.0, 0.0, True, -1, 0.0)
        assert await store.quota_state("free", 10) is None

    run(body())


@SHARED_KINDS
def test_limits_survive_a_script_flush_and_count_once(store_backend, store, run, request):
    """NOSCRIPT (a flushed or restarted Redis) means the script did not run:
    it is loaded again and the decision counted exactly once — through the
    coroutine path and through the request path's callback form."""
    nodes = ([request.getfixturevalue("redis_server")] if store_backend.kind == "redis"
             else list(request.getfixturevalue("redis_cluster").nodes))

    def flush_scripts() -> None:
        for node in nodes:
            node.client().script_flush()

    async def body() -> None:
        assert (await store.limits("nsk", 0, 0, 5, 60))[5] == 4
        flush_scripts()
        assert (await store.limits("nsk", 0, 0, 5, 60))[5] == 3
        flush_scripts()
        if hasattr(store, "limits_with"):
            loop = asyncio.get_running_loop()
            got: asyncio.Future[object] = loop.create_future()
            store.limits_with("nsk", 0, 0, 5, 60, got.set_result)
            decision = await got
            assert isinstance(decision, tuple) and decision[5] == 2, decision
        # Counted once each: three decisions, two left.
        assert await store.quota_state("nsk", 5) == (2, pytest.approx(time.time() + 60, abs=2))

    run(body())
