"""Rate limits, quotas and worker heartbeats, once per backend: memory, Redis,
Redis Cluster; exactness across nodes (two store instances on one Redis or one
cluster); scripts lost by the server (NOSCRIPT) and Redis faults.

Rate-limit tests that need many periods use a short ``per`` to stay fast; one
test uses a real 1-second period.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from fastgate.storage import StoreError
from fastgate.storage.redis import QUOTA_PREFIX, RATE_LIMIT_PREFIX, WORKERS_KEY

from .conftest import CLUSTER_ONLY, REDIS_ONLY, SHARED_KINDS
from .test_store import ODD_KEYS


def redis_nodes(store_backend: Any, request: pytest.FixtureRequest) -> list[Any]:
    """The RedisServer(s) behind a Redis backend."""
    if store_backend.kind == "redis":
        return [request.getfixturevalue("redis_server")]
    return list(request.getfixturevalue("redis_cluster").nodes)


async def hammer_rate(store: Any, key: str, rate: float, per: float, seconds: float,
                      tasks: int = 4) -> tuple[int, int, float]:
    """``tasks`` callers asking for ``key`` without pause for ``seconds``:
    (admitted, refused, elapsed from the first to the last decision)."""
    admitted = refused = 0
    first = time.monotonic()
    stop_at = first + seconds
    last = first

    async def caller() -> None:
        nonlocal admitted, refused, last
        while time.monotonic() < stop_at:
            allowed, *_ = await store.rate_limit(key, rate, per)
            last = time.monotonic()
            if allowed:
                admitted += 1
            else:
                refused += 1
            await asyncio.sleep(0)  # memory never yields: let the other callers in

    await asyncio.gather(*(caller() for _ in range(tasks)))
    return admitted, refused, last - first


async def gather_all(*awaitables: Any) -> list[Any]:
    """Every result or exception (``asyncio.gather`` must run inside the loop)."""
    return await asyncio.gather(*awaitables, return_exceptions=True)


def gcra_bounds(rate: float, per: float, elapsed: float) -> tuple[float, float]:
    """What a GCRA bucket of ``rate`` per ``per`` admits to callers hammering it for
    ``elapsed`` seconds: a full burst, then one request every ``per/rate``."""
    most = rate + elapsed * rate / per
    return most - 1 - 0.1 * most, most + 1


# --------------------------------------------------------------------------- rate limits


def test_a_burst_gets_exactly_the_rate_then_retry_after_then_recovers(store, run):
    async def body() -> None:
        burst = await asyncio.gather(*(store.rate_limit("k5", 5, 1) for _ in range(8)))
        assert [allowed for allowed, *_ in burst] == [True] * 5 + [False] * 3
        assert [remaining for _, remaining, *_ in burst] == [4, 3, 2, 1, 0, 0, 0, 0]
        for allowed, _, reset_after, retry_after in burst:
            assert 0.0 < reset_after <= 1.0
            if allowed:
                assert retry_after == 0.0
            else:
                assert 0.15 < retry_after <= 0.2, retry_after
        # One token comes back after 0.2 s; the whole bucket after 1 s.
        await asyncio.sleep(0.21)
        assert [a for a, *_ in [await store.rate_limit("k5", 5, 1) for _ in range(2)]] == [
            True, False]
        await asyncio.sleep(1.0)
        again = [await store.rate_limit("k5", 5, 1) for _ in range(6)]
        assert [a for a, *_ in again] == [True] * 5 + [False]

    run(body())


def test_identities_and_limits_do_not_share_a_bucket(store, run):
    async def body() -> None:
        assert (await store.rate_limit("a", 1, 10))[0] is True
        assert (await store.rate_limit("a", 1, 10))[0] is False
        assert (await store.rate_limit("b", 1, 10))[0] is True
        assert (await store.rate_limit("{hashtag}a", 1, 10))[0] is True

    run(body())


def test_refusals_consume_nothing(store, run):
    """A client hammering far over its limit still gets its full share."""
    rate, per = 10, 0.2  # 50 requests a second
    admitted, refused, elapsed = run(hammer_rate(store, "hammer", rate, per, 1.0))
    low, high = gcra_bounds(rate, per, elapsed)
    assert low <= admitted <= high, (admitted, low, high)
    assert refused > 5 * admitted, "not hammered hard enough to mean anything"


def test_fractional_rates_and_periods(store, run):
    async def body() -> None:
        # 2.5 per 0.5 s: a burst of 2 (a token bucket of 2.5 holds 2 whole ones).
        burst = [await store.rate_limit("f", 2.5, 0.5) for _ in range(3)]
        assert [a for a, *_ in burst] == [True, True, False]
        # Less than one request per period: still one at a time.
        assert (await store.rate_limit("slow", 0.5, 0.1))[0] is True
        allowed, remaining, _, retry_after = await store.rate_limit("slow", 0.5, 0.1)
        assert (allowed, remaining) == (False, 0)
        assert 0.1 < retry_after <= 0.2

    run(body())


@pytest.mark.parametrize(("rate", "per"), [(0, 1), (-1, 1), (5, 0), (5, -1), (float("nan"), 1)])
def test_no_rate_limit_is_unlimited_and_stores_nothing(store_backend, store, run, request,
                                                       rate, per):
    for _ in range(3):
        assert run(store.rate_limit("u", rate, per)) == (True, -1, 0.0, 0.0)
    if store_backend.kind != "memory":
        assert all(node.client().dbsize() == 0 for node in redis_nodes(store_backend, request))


# --------------------------------------------------------------------------- quotas


def test_quota_is_exact_and_renews(store, run):
    async def body() -> None:
        assert await store.quota_state("q", 10) is None
        before = time.time()
        results = [await store.quota("q", 10, 1) for _ in range(12)]
        assert [a for a, _, _ in results] == [True] * 10 + [False] * 2
        assert [r for _, r, _ in results] == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
        renews_at = results[0][2]
        assert before + 0.95 < renews_at < time.time() + 1.05
        assert {r for _, _, r in results} == {renews_at}
        assert await store.quota_state("q", 10) == (0, renews_at)
        await asyncio.sleep(max(0.0, renews_at - time.time()) + 0.05)
        assert await store.quota_state("q", 10) is None  # the period is over
        allowed, remaining, renews_again = await store.quota("q", 10, 1)
        assert (allowed, remaining) == (True, 9)
        assert renews_again >= renews_at + 1.0

    run(body())


def test_quota_refusals_count_nothing(store, run):
    async def body() -> None:
        assert [(await store.quota("q", 3, 60))[0] for _ in range(6)] == [True] * 3 + [False] * 3
        # Raising the limit mid-period: exactly the difference passes.
        assert [(await store.quota("q", 5, 60))[0] for _ in range(3)] == [True, True, False]
        assert (await store.quota_state("q", 5))[0] == 0
        assert (await store.quota_state("q", 8))[0] == 3

    run(body())


def test_quota_that_never_renews(store, run):
    async def body() -> None:
        results = [await store.quota("n", 2, 0) for _ in range(3)]
        assert results == [(True, 1, 0.0), (True, 0, 0.0), (False, 0, 0.0)]
        assert await store.quota_state("n", 2) == (0, 0.0)

    run(body())


def test_reset_quota_starts_a_new_period(store, run):
    async def body() -> None:
        for _ in range(4):
            await store.quota("r", 4, 3600)
        assert (await store.quota("r", 4, 3600))[0] is False
        await store.reset_quota("r")
        await store.reset_quota("never-used")
        assert await store.quota_state("r", 4) is None
        assert (await store.quota("r", 4, 3600))[:2] == (True, 3)
        assert (await store.quota_state("r", 4))[0] == 3

    run(body())


def test_no_quota_is_unlimited_and_stores_nothing(store_backend, store, run, request):
    for quota_max in (0, -1):
        assert run(store.quota("u", quota_max, 60)) == (True, -1, 0.0)
    if store_backend.kind != "memory":
        assert all(node.client().dbsize() == 0 for node in redis_nodes(store_backend, request))
    assert run(store.quota_state("u", 0)) is None
    run(store.quota("u", 5, 60))
    assert run(store.quota_state("u", 0)) is None  # unlimited now: nothing to report


def test_concurrent_quota_decisions_are_exact(store, run):
    async def body() -> list[tuple[bool, int, float]]:
        return await asyncio.gather(*(store.quota("c", 50, 60) for _ in range(80)))

    results = run(body())
    assert sum(a for a, _, _ in results) == 50
    assert sorted(r for a, r, _ in results if a) == list(range(50))


def test_limits_accept_every_kind_of_key(store, run):
    async def body() -> None:
        for key in ODD_KEYS:
            assert [(await store.quota(key, 2, 60))[0] for _ in range(3)] == [True, True, False]
            assert [(await store.rate_limit(key, 1, 60))[0] for _ in range(2)] == [True, False]
            assert (await store.quota_state(key, 2))[0] == 0
        await store.reset_quota(ODD_KEYS[4])
        assert await store.quota_state(ODD_KEYS[4], 2) is None
        assert (await store.quota_state(ODD_KEYS[5], 2))[0] == 0

    run(body())


@pytest.mark.parametrize("store_backend", ["memory"], indirect=True)
def test_memory_decisions_never_yield(store, run):
    """The hot path drives the memory store's coroutines with ``send(None)``."""

    def at_once(coro: Any) -> Any:
        try:
            coro.send(None)
        except StopIteration as done:
            return done.value
        coro.close()
        raise AssertionError("the coroutine suspended")

    async def body() -> None:  # on the loop, as in the gateway
        assert at_once(store.rate_limit("k", 2, 1))[:2] == (True, 1)
        assert at_once(store.quota("k", 2, 60))[:2] == (True, 1)
        assert at_once(store.quota_state("k", 2))[0] == 1
        assert at_once(store.count_workers()) == 1
        assert at_once(store.register_worker("w", 1)) is None
        assert at_once(store.reset_quota("k")) is None

    run(body())


# --------------------------------------------------------------------------- workers


def test_worker_heartbeats(store_backend, store, run):
    async def body() -> None:
        assert await store.count_workers() == 1
        await store.register_worker("w1", 0.3)
        await store.register_worker("w2", 5)
        if store_backend.kind == "memory":
            assert await store.count_workers() == 1
            return
        assert await store.count_workers() == 2
        await store.register_worker("w1", 0.3)  # a refresh is still one worker
        assert await store.count_workers() == 2
        await asyncio.sleep(0.35)
        assert await store.count_workers() == 1
        await store.register_worker("w1", 0.3)
        assert await store.count_workers() == 2

    run(body())


@SHARED_KINDS
def test_workers_of_every_node_are_counted_and_their_set_expires(store_backend, run, request):
    a, b = store_backend.new(), store_backend.new()

    async def body() -> None:
        await asyncio.gather(*(a.register_worker(f"a{i}", 0.3) for i in range(3)),
                             *(b.register_worker(f"b{i}", 0.3) for i in range(2)))
        assert await a.count_workers() == await b.count_workers() == 5
        await asyncio.sleep(0.35)
        assert await b.count_workers() == 1  # nobody: still "at least 1"

    run(body())
    if store_backend.kind == "redis":
        assert not request.getfixturevalue("redis_server").client().exists(WORKERS_KEY)
    else:
        assert not request.getfixturevalue("redis_cluster").client().exists(WORKERS_KEY)


# --------------------------------------------------------------------------- across nodes


@SHARED_KINDS
def test_quota_is_exact_across_nodes(store_backend, run):
    """Two gateway nodes, 50 callers each, several identities (spread over the
    masters of a cluster): exactly quota_max of each identity pass."""
    nodes = [store_backend.new(), store_backend.new()]
    identities = [f"user{i}" for i in range(6)]
    quota_max = 500

    async def caller(store: Any, start: int, admitted: dict[str, int]) -> None:
        open_keys = list(identities)
        i = start
        while open_keys:
            key = open_keys[i % len(open_keys)]
            i += 1
            allowed, _, _ = await store.quota(key, quota_max, 3600)
            if allowed:
                admitted[key] += 1
            else:
                open_keys.remove(key)

    async def body() -> dict[str, int]:
        admitted = dict.fromkeys(identities, 0)
        await asyncio.gather(*(caller(nodes[n % 2], n, admitted) for n in range(100)))
        return admitted

    admitted = run(body())
    assert admitted == dict.fromkeys(identities, quota_max)
    for key in identities:
        state = run(nodes[0].quota_state(key, quota_max))
        assert state is not None and state[0] == 0
        assert run(nodes[1].quota_state(key, quota_max)) == state


@SHARED_KINDS
def test_rate_limit_is_exact_across_nodes(store_backend, run):
    nodes = [store_backend.new(), store_backend.new()]
    rate, per = 20, 0.2  # 100 requests a second
    keys = ["r1", "r2", "r3"]

    async def body() -> list[tuple[int, int, float]]:
        return await asyncio.gather(*(
            hammer_rate(store, key, rate, per, 0.6, tasks=25) for key in keys for store in nodes
        ))

    results = run(body())
    for k, key in enumerate(keys):
        (a1, _, e1), (a2, _, e2) = results[2 * k], results[2 * k + 1]
        low, high = gcra_bounds(rate, per, max(e1, e2))
        assert low <= a1 + a2 <= high, (key, a1, a2, low, high)


@SHARED_KINDS
def test_decisions_of_one_loop_iteration_share_one_round_trip(store_backend, store, run,
                                                                 monkeypatch):
    """Limit decisions go over the lean pipelined connection (one per node):
    those of one loop iteration leave in one write per node."""
    from fastgate.storage import pipe

    writes: list[int] = []
    flush = pipe._Connection._flush

    def counting(self: Any) -> None:
        if self.out:
            writes.append(len(self.out))
        flush(self)

    monkeypatch.setattr(pipe._Connection, "_flush", counting)

    async def body() -> None:
        # Open the connection to every node first (keys spread over the masters).
        await asyncio.gather(*(store.quota(f"warm-up-{i}", 5, 60) for i in range(60)))
        writes.clear()
        await asyncio.gather(*(store.quota(f"b{i}", 5, 60) for i in range(200)),
                             *(store.rate_limit(f"b{i}", 5, 1) for i in range(200)))

    run(body())
    masters = 1 if store_backend.kind == "redis" else 3
    assert sum(writes) == 400
    assert len(writes) <= masters, writes


@SHARED_KINDS
def test_scripts_flushed_from_the_server_are_sent_again_and_counted_once(
    store_backend, store, run, request
):
    nodes = redis_nodes(store_backend, request)

    async def body() -> None:
        for _ in range(3):
            await store.quota("ns", 100, 60)
        for node in nodes:
            node.client().script_flush()
        # Alone (one EVALSHA), then batched (a pipeline): each counted once.
        assert await store.quota("ns", 100, 60) == (True, 96, pytest.approx(time.time() + 60,
                                                                              abs=1))
        for node in nodes:
            node.client().script_flush()
        batch = await asyncio.gather(*(store.quota(f"ns{i}", 100, 60) for i in range(20)),
                                     store.quota("ns", 100, 60))
        assert [r for _, r, _ in batch] == [99] * 20 + [95]
        for node in nodes:
            node.client().script_flush()
        assert [(await store.rate_limit("nsr", 2, 60))[0] for _ in range(3)] == [
            True, True, False]
        assert (await store.quota_state("ns", 100))[0] == 95

    run(body())


@REDIS_ONLY
def test_a_restarted_redis_gets_the_scripts_again(store, run, redis_server):
    assert run(store.quota("rs", 10, 60))[:2] == (True, 9)
    redis_server.restart()  # no persistence: the counters and the script cache are gone
    # A serving gateway's loop runs while Redis restarts and sees its pooled
    # connection close; this one was stopped, so let it look once.
    run(asyncio.sleep(0.05))
    results = [run(store.quota("rs", 10, 60)) for _ in range(3)]
    assert [r[:2] for r in results] == [(True, 9), (True, 8), (True, 7)]
    assert run(store.rate_limit("rs", 1, 60))[0] is True


# --------------------------------------------------------------------------- faults


def every_limit_operation(store: Any) -> list[tuple[str, Any]]:
    return [
        ("rate_limit", lambda: store.rate_limit("k", 5, 1)),
        ("quota", lambda: store.quota("k", 5, 60)),
        ("quota_state", lambda: store.quota_state("k", 5)),
        ("reset_quota", lambda: store.reset_quota("k")),
        ("register_worker", lambda: store.register_worker("w", 1)),
        ("count_workers", lambda: store.count_workers()),
    ]


@REDIS_ONLY
def test_a_killed_redis_fails_every_decision_fast_and_they_work_after_restart(
    store, run, redis_server
):
    run(store.quota("k", 5, 60))
    redis_server.stop()
    try:
        for name, op in every_limit_operation(store):
            start = time.monotonic()
            with pytest.raises(StoreError) as info:
                run(op())
            assert time.monotonic() - start < 1.0, name
            assert f"127.0.0.1:{redis_server.port}" in str(info.value)
        # A batch fails as a whole, each caller with its own StoreError.
        start = time.monotonic()
        batch = run(gather_all(*(store.quota(f"k{i}", 5, 60) for i in range(10))))
        assert time.monotonic() - start < 1.0
        assert all(isinstance(r, StoreError) for r in batch)
    finally:
        redis_server.start()
    assert run(store.quota("k", 5, 60))[:2] == (True, 4)  # data gone with the restart
    assert run(store.rate_limit("k", 5, 1))[:2] == (True, 4)


@REDIS_ONLY
def test_a_decision_in_flight_when_redis_stalls_is_counted_once(store_backend, run,
                                                                redis_server):
    """The server is frozen while decisions are in flight: the callers get a
    StoreError within the timeout; when the server wakes up it runs the commands
    it had received, once -- the store never sends them again."""
    store = store_backend.new(timeout=0.3)
    for _ in range(3):
        run(store.quota("f", 100, 60))
    # Two pooled connections, so that both sends below reach the frozen server
    # (a new connection would hang in its handshake and send nothing at all).
    run(gather_all(store.client.ping(), store.client.ping()))

    async def in_flight() -> list[Any]:
        alone = asyncio.ensure_future(store.quota("f", 100, 60))  # one EVALSHA
        await asyncio.sleep(0.01)
        batch = gather_all(*(store.quota("f", 100, 60) for _ in range(5)))  # a pipeline
        return await gather_all(alone, batch)

    redis_server.pause()
    try:
        start = time.monotonic()
        alone, batch = run(in_flight())
        assert time.monotonic() - start < 0.6
        assert isinstance(alone, StoreError)
        assert all(isinstance(r, StoreError) for r in batch)
    finally:
        redis_server.resume()

    async def settled() -> int:
        for _ in range(100):
            state = await store.quota_state("f", 100)
            assert state is not None
            if state[0] == 91:
                return state[0]
            await asyncio.sleep(0.01)
        return state[0]

    assert run(settled()) == 91  # 3 + 1 + 5, each once
    assert run(store.quota("f", 100, 60))[:2] == (True, 90)


@CLUSTER_ONLY
def test_a_frozen_cluster_node_fails_only_its_own_decisions(store_backend, run,
                                                            redis_cluster):
    store = store_backend.new(timeout=0.3)
    frozen = redis_cluster.nodes[0]
    owner = redis_cluster.client()

    def on_frozen(key: str) -> bool:
        return int(owner.get_node_from_key(QUOTA_PREFIX + "{" + key + "}").port) == frozen.port

    keys = [f"id{i}" for i in range(30)]
    stuck = [k for k in keys if on_frozen(k)]
    free = [k for k in keys if not on_frozen(k)]
    assert stuck and free
    assert all(
        on_frozen(k) == (int(owner.get_node_from_key(RATE_LIMIT_PREFIX + "{" + k + "}").port)
                         == frozen.port) for k in keys
    ), "a rate key and a quota key of one identity live on different nodes"
    frozen.pause()
    try:
        results = run(gather_all(*(store.quota(k, 5, 60) for k in stuck + free)))
    finally:
        frozen.resume()
    assert all(isinstance(r, StoreError) for r in results[: len(stuck)])
    assert [r[:2] for r in results[len(stuck):]] == [(True, 4)] * len(free)
