"""Redis faults, caused for real: a killed server, a frozen one (SIGSTOP), dropped
pub/sub connections. Every operation answers within its timeout (StoreError,
never a hang), and the store recovers by itself when Redis comes back."""

from __future__ import annotations

import asyncio
import time

import pytest

from fastgate.config import StorageConfig
from fastgate.storage import StoreError, create_store
from fastgate.storage.redis import RedisStore

from .conftest import CLUSTER_ONLY, REDIS_ONLY, SHARED_KINDS, Recorder

pytestmark = pytest.mark.redis


def every_operation(store):
    """(name, coroutine factory) for each Store operation."""
    return [
        ("get_session", lambda: store.get_session("k")),
        ("set_session", lambda: store.set_session("k", b"{}")),
        ("delete_session", lambda: store.delete_session("k")),
        ("list_sessions", lambda: store.list_sessions()),
        ("get_policies", lambda: store.get_policies()),
        ("set_policy", lambda: store.set_policy("p", b"{}")),
        ("delete_policy", lambda: store.delete_policy("p")),
        ("publish", lambda: store.publish("session", "k")),
    ]


def elapsed_failure(run, coro) -> tuple[float, StoreError]:
    start = time.monotonic()
    with pytest.raises(StoreError) as info:
        run(coro)
    return time.monotonic() - start, info.value


@REDIS_ONLY
def test_a_killed_redis_fails_every_operation_fast_and_the_store_recovers(
    store, run, redis_server
):
    heard = Recorder()
    store.subscribe(heard)
    run(store.set_session("k", b"before"))
    redis_server.stop()
    for name, op in every_operation(store):
        elapsed, error = elapsed_failure(run, op())
        assert elapsed < 1.0, (name, elapsed)
        assert f"127.0.0.1:{redis_server.port}" in str(error), error
    redis_server.start()
    # The first command after the restart already works (the dead pooled
    # connection is replaced at once), and the listener says it may have missed
    # notifications.
    run(store.set_session("k", b"after"))
    assert run(store.get_session("k")) == b"after"
    run(heard.wait("resync", "", timeout=3))
    run(store.publish("session", "after-restart"))
    run(heard.wait("session", "after-restart"))


@REDIS_ONLY
def test_a_frozen_redis_times_out_instead_of_hanging(store_backend, store, run, redis_server):
    quick = store_backend.new(timeout=0.2)
    run(store.set_session("k", b"v"))
    redis_server.pause()
    try:
        elapsed, error = elapsed_failure(run, store.get_session("k"))
        assert 0.9 < elapsed < 1.4, elapsed  # the default timeout: 1 s
        assert "no answer within 1s" in str(error)
        for name, op in every_operation(quick):
            elapsed, error = elapsed_failure(run, op())
            assert 0.15 < elapsed < 0.5, (name, elapsed)
    finally:
        redis_server.resume()
    assert run(store.get_session("k")) == b"v"
    assert run(quick.get_session("k")) == b"v"


@REDIS_ONLY
def test_many_callers_queue_for_connections_within_their_timeout(store, run):
    async def body():
        await asyncio.gather(*(store.set_session(f"k{i}", b"{}") for i in range(3000)))
        got = await asyncio.gather(*(store.get_session(f"k{i}") for i in range(3000)))
        assert got == [b"{}"] * 3000

    run(body())


@REDIS_ONLY
def test_traffic_survives_a_redis_restart(store, run, redis_server):
    heard = Recorder()
    store.subscribe(heard)

    async def client(i: int, stop_at: float, log: list[tuple[float, float, bool]]) -> None:
        n = 0
        while time.monotonic() < stop_at:
            start = time.monotonic()
            try:
                await store.set_session(f"t{i}", str(n).encode())
                assert await store.get_session(f"t{i}") == str(n).encode()
                ok = True
            except StoreError:
                ok = False
                await asyncio.sleep(0.005)
            log.append((start, time.monotonic() - start, ok))
            n += 1

    async def body() -> tuple[list[tuple[float, float, bool]], float]:
        log: list[tuple[float, float, bool]] = []
        stop_at = time.monotonic() + 1.5
        clients = [asyncio.create_task(client(i, stop_at, log)) for i in range(20)]
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, redis_server.restart)
        restarted = time.monotonic()
        await asyncio.gather(*clients)
        await heard.wait("resync", "", timeout=2)
        return log, restarted

    log, restarted = run(body())
    assert max(duration for _, duration, _ in log) < 1.3
    assert not all(ok for _, _, ok in log), "the restart went unnoticed: test is broken"
    late = [ok for start, _, ok in log if start > restarted + 0.1]
    assert late and all(late), "operations still failing after Redis came back"


@SHARED_KINDS
def test_listener_reconnects_after_its_connection_is_killed(
    store_backend, store, run, request
):
    heard = Recorder()
    store.subscribe(heard)
    if store_backend.kind == "redis":
        nodes = [request.getfixturevalue("redis_server")]
    else:
        nodes = request.getfixturevalue("redis_cluster").nodes
    killed = sum(node.client().client_kill_filter(_type="pubsub") for node in nodes)
    assert killed == 1
    run(heard.wait("resync", "", timeout=1))
    run(store.publish("session", "after-kill"))
    run(heard.wait("session", "after-kill"))


@REDIS_ONLY
def test_listener_notices_a_silently_dead_connection(store_backend, run, redis_server):
    """A frozen server keeps the TCP connection open: only the PING notices."""
    store = RedisStore(store_backend.config, timeout=0.2, ping_interval=0.2)
    heard = Recorder()
    store.subscribe(heard)
    run(store.start())
    try:
        redis_server.pause()
        run(asyncio.sleep(0.8))  # the listener's PING goes unanswered
        redis_server.resume()
        run(heard.wait("resync", "", timeout=2))
        run(store.publish("session", "alive"))
        run(heard.wait("session", "alive"))
    finally:
        redis_server.resume()
        run(store.close())


@pytest.mark.parametrize("cluster", [False, True], ids=["redis", "redis-cluster"])
def test_start_fails_fast_when_redis_is_down(run, free_port, cluster):
    dead = f"127.0.0.1:{free_port()}"
    config = StorageConfig(type="redis", enable_cluster=cluster, addrs=(dead,))
    store = create_store(config)
    start = time.monotonic()
    with pytest.raises(StoreError, match="cannot connect") as info:
        run(store.start())
    assert time.monotonic() - start < 1.5
    assert dead in str(info.value)
    run(store.close())
    with pytest.raises(StoreError, match="closed"):
        run(store.start())


@REDIS_ONLY
def test_start_times_out_on_a_frozen_redis(store_backend, run, redis_server):
    store = create_store(store_backend.config, timeout=0.3)
    redis_server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(StoreError, match="cannot connect"):
            run(store.start())
        assert time.monotonic() - start < 1.0
    finally:
        redis_server.resume()
        run(store.close())


@CLUSTER_ONLY
def test_a_frozen_cluster_node_fails_only_its_keys(store, run, redis_cluster):
    frozen = redis_cluster.nodes[1]
    owner = redis_cluster.client()

    def key_on(node_port: int, want: bool) -> str:
        for i in range(1000):
            key = f"key{i}"
            port = owner.get_node_from_key("apikey-" + key).port
            if (int(port) == node_port) is want:
                return key
        raise AssertionError("no such key")

    on_frozen, elsewhere = key_on(frozen.port, True), key_on(frozen.port, False)
    run(store.set_session(on_frozen, b"a"))
    run(store.set_session(elsewhere, b"b"))
    frozen.pause()
    try:
        elapsed, _ = elapsed_failure(run, store.get_session(on_frozen))
        assert elapsed < 1.4
        assert run(store.get_session(elsewhere)) == b"b"
    finally:
        frozen.resume()
    assert run(store.get_session(on_frozen)) == b"a"


@CLUSTER_ONLY
def test_a_killed_cluster_node_fails_fast_and_is_used_again_after_restart(
    store, run, redis_cluster
):
    victim = redis_cluster.nodes[2]
    owner = redis_cluster.client()
    keys = [f"key{i}" for i in range(60)]
    on_victim = next(k for k in keys if int(owner.get_node_from_key("apikey-" + k).port)
                     == victim.port)
    run(store.set_session(on_victim, b"v"))
    victim.stop()
    elapsed, _ = elapsed_failure(run, store.get_session(on_victim))
    assert elapsed < 1.0
    victim.start()
    redis_cluster.wait_ok()

    async def until_it_works() -> int:
        for attempt in range(20):
            try:
                await store.set_session(on_victim, b"again")
                return attempt
            except StoreError:
                await asyncio.sleep(0.05)
        raise AssertionError("the restarted node is never used again")

    assert run(until_it_works()) <= 1  # at most one failure while the client re-learns
    assert run(store.get_session(on_victim)) == b"again"
