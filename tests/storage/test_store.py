"""Every Store operation, once per backend: memory, Redis, Redis Cluster.

Also the notifications: the publisher hears its own events, and on Redis every
store instance sharing the server (two instances = two gateway nodes) hears them
within 100 ms.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from fastgate.config import StorageConfig
from fastgate.storage import StoreError, create_store
from fastgate.storage.memory import MemoryStore
from fastgate.storage.redis import RedisStore, parse_addr

from .conftest import CLUSTER_ONLY, REDIS_ONLY, SHARED_KINDS, Recorder

# Storage keys as the gateway makes them (hashes, org+uuid, custom keys) plus
# characters that mean something to Redis (glob, hash tags) or to JSON.
ODD_KEYS = [
    "5e9d9544a1dcd60001d0ed20a3f9a5b4e8d14f8f8a8a5b1d1c9e2f3a4b5c6d7e",
    "org1" + "ab" * 16,
    "custom key with spaces",
    "glob*?[x]\\",
    "{hashtag}rest",
    "quote\"and:colon",
    "ünïcödé-ключ-鍵",
]


# --------------------------------------------------------------------------- sessions


def test_session_lifecycle(store, run):
    async def body():
        assert await store.get_session("k1") is None
        assert await store.list_sessions() == []
        await store.set_session("k1", b'{"org_id":"o","rate":1}')
        assert await store.get_session("k1") == b'{"org_id":"o","rate":1}'
        await store.set_session("k1", b'{"org_id":"o","rate":2}')
        assert await store.get_session("k1") == b'{"org_id":"o","rate":2}'
        assert await store.list_sessions() == ["k1"]
        assert await store.delete_session("k1") is True
        assert await store.delete_session("k1") is False
        assert await store.get_session("k1") is None
        assert await store.list_sessions() == []

    run(body())


def test_session_keys_and_values_round_trip_exactly(store, run):
    values = {
        key: f'{{"key":"{i}","meta_data":{{"note":"ü\\u00e9"}}}}'.encode() for i, key in
        enumerate(ODD_KEYS)
    }
    values["binary"] = bytes(range(256)) * 4  # not UTF-8: must survive anyway
    values["empty"] = b""
    values["large"] = b'{"blob":"' + b"x" * (1 << 20) + b'"}'

    async def body():
        for key, value in values.items():
            await store.set_session(key, value)
        for key, value in values.items():
            assert await store.get_session(key) == value, key
        assert sorted(await store.list_sessions()) == sorted(values)

    run(body())


def test_list_sessions_pages_through_many(store, run, monkeypatch):
    # Small SCAN pages so that listing takes many round trips per master.
    monkeypatch.setattr("fastgate.storage.redis.SCAN_COUNT", 37)
    keys = {f"key-{i:04d}" for i in range(1200)}

    async def body():
        await asyncio.gather(*(store.set_session(k, b"{}") for k in keys))
        listed = await store.list_sessions()
        assert len(listed) == len(keys)
        assert set(listed) == keys

    run(body())


def test_operations_run_concurrently(store, run):
    async def body():
        await asyncio.gather(*(store.set_session(f"c{i}", str(i).encode()) for i in range(300)))
        got = await asyncio.gather(*(store.get_session(f"c{i}") for i in range(300)))
        assert got == [str(i).encode() for i in range(300)]
        deleted = await asyncio.gather(*(store.delete_session(f"c{i}") for i in range(0, 300, 2)))
        assert all(deleted)
        assert len(await store.list_sessions()) == 150

    run(body())


def test_values_must_be_bytes(store, run):
    with pytest.raises(TypeError, match="bytes"):
        run(store.set_session("k", "a str"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="bytes"):
        run(store.set_policy("p", {"rate": 1}))  # type: ignore[arg-type]
    assert run(store.get_session("k")) is None
    assert run(store.get_policies()) == {}


# --------------------------------------------------------------------------- policies


def test_policy_lifecycle(store, run):
    async def body():
        assert await store.get_policies() == {}
        await store.set_policy("gold", b'{"rate":100}')
        await store.set_policy("silver", b'{"rate":10}')
        assert await store.get_policies() == {"gold": b'{"rate":100}', "silver": b'{"rate":10}'}
        await store.set_policy("gold", b'{"rate":1000}')
        assert (await store.get_policies())["gold"] == b'{"rate":1000}'
        assert await store.delete_policy("gold") is True
        assert await store.delete_policy("gold") is False
        assert await store.get_policies() == {"silver": b'{"rate":10}'}
        # Policies and sessions live apart.
        await store.set_session("silver", b"{}")
        assert await store.list_sessions() == ["silver"]
        assert await store.delete_session("silver") is True
        assert await store.get_policies() == {"silver": b'{"rate":10}'}

    run(body())


def test_policy_ids_round_trip(store, run):
    async def body():
        for i, pid in enumerate(ODD_KEYS):
            await store.set_policy(pid, str(i).encode())
        assert await store.get_policies() == {pid: str(i).encode() for i, pid in
                                              enumerate(ODD_KEYS)}

    run(body())


# --------------------------------------------------------------------------- notifications


def test_publisher_receives_its_own_events_in_order(store, run):
    before, after = Recorder(), Recorder()
    store.subscribe(before)  # registered after start(): must work too

    async def body():
        sent = [("session", f"k{i}") for i in range(20)] + [("policies", ""), ("apis", "")]
        for event, payload in sent:
            await store.publish(event, payload)
        await before.wait("apis", "")
        store.subscribe(after)
        await store.publish("session", "late")
        await after.wait("session", "late")
        assert before.events == [*sent, ("session", "late")]
        assert after.events == [("session", "late")]

    run(body())


def test_payload_may_contain_colons_and_be_empty(store, run):
    rec = Recorder()
    store.subscribe(rec)

    async def body():
        await store.publish("session", "a:b:c")
        await store.publish("policies", "")
        await rec.wait("session", "a:b:c")
        await rec.wait("policies", "")

    run(body())


def test_bad_event_names_are_refused(store, run):
    for event in ("", "a:b"):
        with pytest.raises(ValueError, match="event name"):
            run(store.publish(event, "x"))


def test_a_failing_handler_does_not_stop_the_others(store, run, caplog):
    rec = Recorder()

    def broken(event: str, payload: str) -> None:
        raise RuntimeError("handler bug")

    store.subscribe(broken)
    store.subscribe(rec)
    run(store.publish("session", "k"))
    run(rec.wait("session", "k"))
    assert "handler bug" in caplog.text


def test_subscribe_before_start(store_backend, run):
    store = create_store(store_backend.config)
    rec = Recorder()
    store.subscribe(rec)
    run(store.start())
    try:
        run(store.publish("session", "early"))
        run(rec.wait("session", "early"))
    finally:
        run(store.close())


def test_shared_says_whether_other_processes_see_the_data(store_backend, store):
    assert store.shared is (store_backend.kind != "memory")
    assert isinstance(store, MemoryStore if store_backend.kind == "memory" else RedisStore)


def test_memory_store_operations_never_suspend():
    """The session cache drives memory-store reads with ``coro.send(None)``."""
    store = MemoryStore()

    def now(coro):
        try:
            coro.send(None)
        except StopIteration as stop:
            return stop.value
        coro.close()
        raise AssertionError("the coroutine suspended")

    now(store.set_session("k", b"v"))
    assert now(store.get_session("k")) == b"v"
    assert now(store.list_sessions()) == ["k"]
    now(store.set_session("t", b"w", ttl=60))
    assert now(store.get_session("t")) == b"w"
    assert sorted(now(store.list_sessions())) == ["k", "t"]
    assert now(store.delete_session("t")) is True
    now(store.set_org_session("o", b"{}"))
    assert now(store.get_org_session("o")) == b"{}"
    assert now(store.list_org_sessions()) == ["o"]
    assert now(store.delete_org_session("o")) is True
    now(store.set_policy("p", b"{}"))
    assert now(store.get_policies()) == {"p": b"{}"}
    assert now(store.delete_policy("p")) is True
    assert now(store.delete_session("k")) is True


@SHARED_KINDS
def test_events_reach_every_node_within_100ms(store_backend, run):
    one, other = store_backend.new(), store_backend.new()
    heard_one, heard_other = Recorder(), Recorder()
    one.subscribe(heard_one)
    other.subscribe(heard_other)

    async def body():
        latencies = []
        for i in range(20):
            sent = time.monotonic()
            await one.publish("session", f"key{i}")
            latencies.append(await heard_other.wait("session", f"key{i}") - sent)
            await heard_one.wait("session", f"key{i}")
        await other.publish("policies", "")
        await heard_one.wait("policies", "")
        return latencies

    latencies = run(body())
    assert max(latencies) < 0.1, latencies


@SHARED_KINDS
def test_session_deleted_on_one_node_is_gone_on_the_other(store_backend, run):
    one, other = store_backend.new(), store_backend.new()

    async def body():
        await one.set_session("shared", b'{"rate":5}')
        assert await other.get_session("shared") == b'{"rate":5}'
        seen: asyncio.Future[bytes | None] = asyncio.get_running_loop().create_future()

        def on_event(event: str, payload: str) -> None:
            # What the other node's session cache does: drop, then re-read.
            if event == "session" and payload == "shared" and not seen.done():
                asyncio.ensure_future(other.get_session(payload)).add_done_callback(
                    lambda f: seen.set_result(f.result()))

        other.subscribe(on_event)
        start = time.monotonic()
        assert await one.delete_session("shared") is True
        await one.publish("session", "shared")
        assert await asyncio.wait_for(seen, 1.0) is None
        return time.monotonic() - start

    assert run(body()) < 0.1


@SHARED_KINDS
def test_policies_written_on_one_node_are_read_on_the_other(store_backend, run):
    one, other = store_backend.new(), store_backend.new()

    async def body():
        await one.set_policy("p1", b'{"rate":1}')
        assert await other.get_policies() == {"p1": b'{"rate":1}'}
        assert await other.delete_policy("p1") is True
        assert await one.get_policies() == {}

    run(body())


# --------------------------------------------------------------------------- Redis layout


@SHARED_KINDS
def test_redis_key_names_are_tyks(store_backend, store, run, request):
    """An existing Tyk Redis is readable: apikey-<key> strings; fastgate's own hash."""
    fixture = "redis_server" if store_backend.kind == "redis" else "redis_cluster"
    raw = request.getfixturevalue(fixture).client()
    run(store.set_session("abc123", b'{"org_id":"o"}'))
    assert raw.get("apikey-abc123") == b'{"org_id":"o"}'
    raw.set("apikey-fromtyk", b'{"org_id":"tyk"}')
    raw.set("quota-fromtyk", b"10")  # other Tyk keys are not sessions
    raw.set("apikeyfromtyk", b"x")
    assert run(store.get_session("fromtyk")) == b'{"org_id":"tyk"}'
    assert sorted(run(store.list_sessions())) == ["abc123", "fromtyk"]
    run(store.set_policy("p", b"{}"))
    assert raw.hgetall("fastgate-policies") == {b"p": b"{}"}


@CLUSTER_ONLY
def test_cluster_sessions_spread_over_masters_are_all_listed(store, run, redis_cluster):
    keys = [f"spread-{i}" for i in range(300)]

    async def body():
        await asyncio.gather(*(store.set_session(k, b"{}") for k in keys))
        return sorted(await store.list_sessions())

    assert run(body()) == sorted(keys)
    per_node = [node.client().dbsize() for node in redis_cluster.nodes]
    assert sum(per_node) == len(keys)
    assert all(n > 50 for n in per_node), per_node


@CLUSTER_ONLY
def test_cluster_pubsub_crosses_nodes(store_backend, run, redis_cluster):
    """Listeners on different nodes; a PUBLISH on a third node reaches both."""
    addrs = redis_cluster.addrs
    base = store_backend.config
    one = store_backend.new(dataclasses.replace(base, addrs=(addrs[0], addrs[1])))
    other = store_backend.new(dataclasses.replace(base, addrs=(addrs[1], addrs[0])))
    heard_one, heard_other = Recorder(), Recorder()
    one.subscribe(heard_one)
    other.subscribe(heard_other)
    numsub = [dict(node.client().pubsub_numsub("fastgate-events")) for node in
              redis_cluster.nodes]
    assert [n[b"fastgate-events"] for n in numsub] == [1, 1, 0]
    redis_cluster.nodes[2].client().publish("fastgate-events", "session:via-node-3")
    run(heard_one.wait("session", "via-node-3", timeout=1))
    run(heard_other.wait("session", "via-node-3", timeout=1))
    run(one.publish("apis", ""))
    run(heard_other.wait("apis", "", timeout=1))


# --------------------------------------------------------------------------- factory


def test_create_store_picks_the_backend():
    assert isinstance(create_store(StorageConfig(type="memory")), MemoryStore)
    assert isinstance(create_store(StorageConfig(type="redis")), RedisStore)
    with pytest.raises(ValueError, match=r"storage\.type"):
        create_store(StorageConfig(type="mongo"))


@pytest.mark.parametrize(("addr", "parsed"), [
    ("127.0.0.1:7000", ("127.0.0.1", 7000)),
    ("redis.internal", ("redis.internal", 6379)),
    ("[::1]:7001", ("::1", 7001)),
    ("[::1]", ("::1", 6379)),
])
def test_parse_addr(addr, parsed):
    assert parse_addr(addr) == parsed


@pytest.mark.parametrize("addr", [":7000", "host:port", "host:70000", "[::1", "[::1]x"])
def test_parse_addr_refuses(addr):
    with pytest.raises(ValueError, match="malformed"):
        parse_addr(addr)


def test_bad_addrs_are_a_store_error():
    with pytest.raises(StoreError, match=r"storage\.addrs"):
        RedisStore(StorageConfig(type="redis", enable_cluster=True, addrs=("a:b",)))


def test_close_waits_for_operations_in_flight(store_backend, run):
    store = store_backend.new()

    async def body():
        run_ops = [asyncio.ensure_future(store.set_session(f"k{i}", b"{}")) for i in range(200)]
        await asyncio.sleep(0)  # some are on the wire now
        await store.close()
        results = await asyncio.gather(*run_ops, return_exceptions=True)
        failures = [r for r in results if r is not None]
        assert all(isinstance(f, StoreError) and "closed" in str(f) for f in failures), failures
        await store.close()  # idempotent

    run(body())


def test_concurrent_lookups_are_answered_each_with_its_own_value(store, run):
    async def body():
        await store.set_session("a", b"A")
        await store.set_session("b", b"B")
        asked = ["a", "missing", "b", "a", "b", "missing", *(f"x{i}" for i in range(1200))]
        got = await asyncio.gather(*(store.get_session(k) for k in asked))
        assert got[:6] == [b"A", None, b"B", b"A", b"B", None]
        assert got[6:] == [None] * 1200

    run(body())


@REDIS_ONLY
def test_concurrent_lookups_share_round_trips(store, run, redis_server):
    raw = redis_server.client()
    run(store.set_session("k", b"{}"))
    raw.config_resetstat()

    async def body():
        return await asyncio.gather(*(store.get_session("k") for _ in range(300)))

    assert run(body()) == [b"{}"] * 300
    stats = raw.info("commandstats")
    assert "cmdstat_get" not in stats
    assert stats["cmdstat_mget"]["calls"] == 1


# --------------------------------------------------------------------------- replay guards


def test_claim_once_first_claim_wins_until_its_ttl(store, run):
    async def body():
        assert await store.claim_once("sig-a", 0.3) is True
        assert await store.claim_once("sig-a", 0.3) is False  # a replay inside the window
        assert await store.claim_once("sig-b", 0.3) is True  # another key is independent
        for key in ODD_KEYS:
            assert await store.claim_once(key, 5) is True
            assert await store.claim_once(key, 5) is False
        await asyncio.sleep(0.45)
        assert await store.claim_once("sig-a", 0.3) is True  # the window passed
        with pytest.raises(ValueError):
            await store.claim_once("sig-c", 0)

    run(body())


def test_claim_once_races_have_one_winner(store, run):
    async def body():
        results = await asyncio.gather(*(store.claim_once("race", 5) for _ in range(20)))
        assert results.count(True) == 1

    run(body())


# --------------------------------------------------------------------------- records


def test_record_lifecycle(store, run):
    async def body():
        assert await store.get_record("oauth-client", "api1.c1") is None
        await store.set_record("oauth-client", "api1.c1", b'{"id":"c1"}')
        await store.set_record("oauth-client", "api1.c2", b"two")
        await store.set_record("oauth-client", "api2.c1", b"other api")
        await store.set_record("oauth-code", "api1.c1", b"a code")  # another table
        assert await store.get_record("oauth-client", "api1.c1") == b'{"id":"c1"}'
        assert sorted(await store.list_records("oauth-client", "api1.")) == ["api1.c1", "api1.c2"]
        assert sorted(await store.list_records("oauth-client")) == ["api1.c1", "api1.c2",
                                                                    "api2.c1"]
        await store.set_record("oauth-client", "api1.c1", b"replaced")
        assert await store.get_record("oauth-client", "api1.c1") == b"replaced"
        assert await store.delete_record("oauth-client", "api1.c1") is True
        assert await store.delete_record("oauth-client", "api1.c1") is False
        assert await store.get_record("oauth-client", "api1.c1") is None
        assert await store.get_record("oauth-code", "api1.c1") == b"a code"
        for key in ODD_KEYS:
            await store.set_record("odd", key, key.encode())
            assert await store.get_record("odd", key) == key.encode()
        assert sorted(await store.list_records("odd")) == sorted(ODD_KEYS)
        assert await store.list_records("odd", "glob*") == ["glob*?[x]\\"]

    run(body())


def test_record_ttl_and_take(store, run):
    async def body():
        await store.set_record("codes", "short", b"x", ttl=0.3)
        await store.set_record("codes", "kept", b"y", ttl=30)
        assert await store.get_record("codes", "short") == b"x"
        await asyncio.sleep(0.45)
        assert await store.get_record("codes", "short") is None
        assert await store.list_records("codes") == ["kept"]
        assert await store.take_record("codes", "short") is None
        assert await store.take_record("codes", "kept") == b"y"
        assert await store.take_record("codes", "kept") is None  # single use
        await store.set_record("codes", "kept", b"z", ttl=0.2)
        await store.set_record("codes", "kept", b"z2")  # a plain set keeps it for good
        await asyncio.sleep(0.3)
        assert await store.get_record("codes", "kept") == b"z2"

    run(body())


def test_take_record_races_have_one_winner(store, run):
    async def body():
        await store.set_record("codes", "race", b"the code", ttl=5)
        results = await asyncio.gather(*(store.take_record("codes", "race") for _ in range(20)))
        assert [r for r in results if r is not None] == [b"the code"]

    run(body())


def test_record_table_names_and_values_are_checked(store, run):
    async def body():
        for table in ("", "Upper", "with space", "a:b", "x" * 33):
            with pytest.raises(ValueError):
                await store.get_record(table, "k")
        with pytest.raises(TypeError):
            await store.set_record("codes", "k", "not bytes")  # type: ignore[arg-type]

    run(body())


def test_records_survive_a_restart_of_a_journalled_memory_store(tmp_path, run):
    async def body():
        path = str(tmp_path / "journal")
        first = MemoryStore(path)
        await first.start()
        await first.set_record("oauth-client", "api.c", b"client")
        await first.set_record("oauth-code", "gone", b"x", ttl=0.1)
        await first.close()
        await asyncio.sleep(0.2)
        second = MemoryStore(path)
        await second.start()
        try:
            assert await second.get_record("oauth-client", "api.c") == b"client"
            assert await second.get_record("oauth-code", "gone") is None
        finally:
            await second.close()

    run(body())


@SHARED_KINDS
def test_records_written_on_one_node_are_read_on_the_other(store_backend, run):
    one, two = store_backend.new(), store_backend.new()

    async def body():
        await one.set_record("oauth-refresh", "tok", b"r", ttl=30)
        assert await two.get_record("oauth-refresh", "tok") == b"r"
        taken = await asyncio.gather(one.take_record("oauth-refresh", "tok"),
                                     two.take_record("oauth-refresh", "tok"))
        assert sorted(taken, key=lambda v: v is None) == [b"r", None]

    run(body())
