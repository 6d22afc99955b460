"""Session lifetimes (``set_session(key, value, ttl)``): the record is removed
when its lifetime ends and a ``"session"`` event is published for it, on
memory (with and without a journal, across restarts), Redis and Redis Cluster."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from fastgate.storage import StoreError
from fastgate.storage.memory import MemoryStore
from fastgate.storage.redis import SESSION_DEADLINES_KEY, SESSION_PREFIX, RedisStore

from .conftest import REDIS_ONLY, SHARED_KINDS, Recorder

SWEEP = 0.1  # seconds between sweeps in these tests


def fast_store(backend: Any) -> Any:
    """A started store on ``backend`` that sweeps every 0.1 s (closed at teardown)."""
    store: Any
    if backend.kind == "memory":
        store = MemoryStore(sweep_interval=SWEEP)
    else:
        store = RedisStore(backend.config, sweep_interval=SWEEP)
    backend.run(store.start())
    backend.stores.append(store)
    return store


def test_a_record_is_removed_when_its_lifetime_ends(store_backend, run):
    store = fast_store(store_backend)
    seen = Recorder()
    store.subscribe(seen)

    async def body() -> None:
        await store.set_session("short", b'{"rate":1}', ttl=0.5)
        await store.set_session("forever", b'{"rate":2}')
        await store.set_session("zero", b'{"rate":3}', ttl=0)
        assert await store.get_session("short") == b'{"rate":1}'
        assert sorted(await store.list_sessions()) == ["forever", "short", "zero"]
        started = time.monotonic()
        when = await seen.wait("session", "short", timeout=3.0)
        assert 0.45 <= when - started <= 1.5, when - started
        assert await store.get_session("short") is None
        assert sorted(await store.list_sessions()) == ["forever", "zero"]
        assert await store.get_session("forever") == b'{"rate":2}'
        assert await store.delete_session("short") is False
        await asyncio.sleep(0.3)
        assert [e for e in seen.events if e == ("session", "short")] == [("session", "short")]
        assert ("session", "forever") not in seen.events

    run(body())


def test_a_write_without_ttl_drops_the_lifetime_and_a_new_ttl_replaces_it(store_backend, run):
    store = fast_store(store_backend)

    async def body() -> None:
        await store.set_session("kept", b"1", ttl=0.3)
        await store.set_session("kept", b"2")  # for ever now
        await store.set_session("longer", b"1", ttl=0.3)
        await store.set_session("longer", b"2", ttl=30)
        await store.set_session("shorter", b"1", ttl=30)
        await store.set_session("shorter", b"2", ttl=0.3)
        await asyncio.sleep(0.8)
        assert await store.get_session("kept") == b"2"
        assert await store.get_session("longer") == b"2"
        assert await store.get_session("shorter") is None
        assert sorted(await store.list_sessions()) == ["kept", "longer"]

    run(body())


def test_deleting_a_record_with_a_lifetime(store_backend, run):
    store = fast_store(store_backend)

    async def body() -> None:
        await store.set_session("k", b"{}", ttl=0.3)
        assert await store.delete_session("k") is True
        await asyncio.sleep(0.6)  # its deadline passes: nothing breaks, nothing comes back
        assert await store.get_session("k") is None
        assert await store.list_sessions() == []

    run(body())


@SHARED_KINDS
def test_every_node_hears_the_end_of_a_lifetime_once(store_backend, run):
    one, other = fast_store(store_backend), fast_store(store_backend)
    heard_one, heard_other = Recorder(), Recorder()
    one.subscribe(heard_one)
    other.subscribe(heard_other)

    async def body() -> None:
        await one.set_session("shared", b"{}", ttl=0.3)
        assert await other.get_session("shared") == b"{}"
        await heard_one.wait("session", "shared", timeout=3.0)
        await heard_other.wait("session", "shared", timeout=3.0)
        assert await other.get_session("shared") is None
        await asyncio.sleep(0.4)
        # Both stores sweep; the deadline was handed to one of them.
        assert heard_other.events.count(("session", "shared")) == 1
        assert heard_one.events.count(("session", "shared")) == 1

    run(body())


# --------------------------------------------------------------------------- redis details


@REDIS_ONLY
def test_redis_records_carry_a_ttl_as_tyk_sets_one(store_backend, store, run, redis_server):
    run(store.set_session("with", b"{}", ttl=30))
    run(store.set_session("without", b"{}"))
    client = redis_server.client()
    assert 29_000 < client.pttl(SESSION_PREFIX + "with") <= 30_000
    assert client.pttl(SESSION_PREFIX + "without") == -1  # no expiry
    deadline = client.zscore(SESSION_DEADLINES_KEY, "with")
    assert deadline is not None and abs(deadline / 1000 - (time.time() + 30)) < 2
    run(store.set_session("with", b"{}"))  # written again without a lifetime
    assert client.pttl(SESSION_PREFIX + "with") == -1


@REDIS_ONLY
def test_a_deadline_filed_early_is_filed_again_not_announced(store_backend, run, redis_server):
    """A cluster node's clock ahead of the session's node: the record is still
    there when its deadline comes, so the sweep files it again instead of
    telling every cache to forget a live key."""
    store = fast_store(store_backend)
    seen = Recorder()
    store.subscribe(seen)
    client = redis_server.client()
    client.set(SESSION_PREFIX + "early", b"{}", px=1500)
    client.zadd(SESSION_DEADLINES_KEY, {"early": int(time.time() * 1000) - 5000})

    async def body() -> None:
        await asyncio.sleep(0.5)
        assert ("session", "early") not in seen.events
        score = client.zscore(SESSION_DEADLINES_KEY, "early")
        assert score is not None and score > time.time() * 1000  # filed again, later
        await seen.wait("session", "early", timeout=3.0)
        assert await store.get_session("early") is None

    run(body())


@REDIS_ONLY
def test_a_record_written_again_without_a_lifetime_is_not_announced(store_backend, run,
                                                                     redis_server):
    store = fast_store(store_backend)
    seen = Recorder()
    store.subscribe(seen)

    async def body() -> None:
        await store.set_session("k", b"1", ttl=0.2)
        await store.set_session("k", b"2")
        await asyncio.sleep(0.6)
        assert ("session", "k") not in seen.events
        assert redis_server.client().zscore(SESSION_DEADLINES_KEY, "k") is None  # swept
        assert await store.get_session("k") == b"2"

    run(body())


# --------------------------------------------------------------------------- memory details


def test_memory_never_returns_a_record_past_its_deadline_even_before_the_sweep(run):
    store = MemoryStore(sweep_interval=3600)

    async def body() -> None:
        await store.start()
        try:
            await store.set_session("k", b"{}", ttl=0.2)
            await asyncio.sleep(0.3)
            assert await store.get_session("k") is None
            assert await store.list_sessions() == []
            assert await store.delete_session("k") is False  # gone, as far as anyone can tell
        finally:
            await store.close()

    run(body())


def test_memory_sweep_deletes_and_announces(run):
    store = MemoryStore(sweep_interval=3600)
    seen = Recorder()
    store.subscribe(seen)

    async def body() -> None:
        await store.start()
        try:
            now = time.time()
            for i in range(5):
                await store.set_session(f"k{i}", b"{}", ttl=10 * (i + 1))
            await store.set_session("k0", b"{}", ttl=100)  # its first deadline is stale now
            assert await store.sweep(now + 25) == ["k1"]
            assert await store.sweep(now + 55) == ["k2", "k3", "k4"]
            assert sorted(await store.list_sessions()) == ["k0"]
            assert await store.sweep(now + 101) == ["k0"]
            await asyncio.sleep(0)
            assert seen.events == [("session", k) for k in ("k1", "k2", "k3", "k4", "k0")]
        finally:
            await store.close()

    run(body())


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "fastgate.journal"


def _open(path: Path, run: Any, **options: Any) -> MemoryStore:
    store = MemoryStore(str(path), sweep_interval=options.pop("sweep_interval", SWEEP),
                        **options)
    run(store.start())
    return store


def test_journal_keeps_deadlines_so_a_restart_after_expiry_does_not_resurrect(journal_path,
                                                                              run):
    store = _open(journal_path, run, sweep_interval=3600)

    async def fill() -> None:
        await store.set_session("short", b'{"a":1}', ttl=0.4)
        await store.set_session("long", b'{"a":2}', ttl=3600)
        await store.set_session("forever", b'{"a":3}')

    run(fill())
    run(store.close())  # the process stops before "short" ends (no sweep ran)
    records = [orjson.loads(line) for line in journal_path.read_bytes().splitlines()[1:]]
    deadlines = {r["k"]: r.get("x") for r in records}
    assert deadlines["forever"] is None
    assert abs(deadlines["long"] - (time.time() + 3600)) < 5
    time.sleep(0.5)

    again = _open(journal_path, run, sweep_interval=3600)
    assert sorted(run(again.list_sessions())) == ["forever", "long"]
    assert run(again.get_session("short")) is None
    # "long" kept its deadline across the restart.
    assert run(again.sweep(time.time() + 3601)) == ["long"]
    run(again.close())
    third = _open(journal_path, run)
    assert run(third.list_sessions()) == ["forever"]
    run(third.close())


def test_a_restart_before_expiry_keeps_the_lifetime_running(journal_path, run):
    store = _open(journal_path, run)
    run(store.set_session("k", b"{}", ttl=1.0))
    run(store.close())
    again = _open(journal_path, run)
    seen = Recorder()
    again.subscribe(seen)

    async def body() -> None:
        assert await again.get_session("k") == b"{}"
        await seen.wait("session", "k", timeout=3.0)
        assert await again.get_session("k") is None

    run(body())
    run(again.close())
    # The sweep journalled the deletion.
    assert journal_path.read_bytes().splitlines()[-1] == b'{"t":"session","op":"del","k":"k"}'


def test_compaction_keeps_deadlines(journal_path, run):
    store = _open(journal_path, run, compact_min_bytes=0, compact_ratio=0.5,
                  sweep_interval=3600)
    run(store.set_session("k", b"{}", ttl=3600))
    run(store.set_session("other", b"{}"))
    assert store.journal is not None and store.journal.compactions >= 1
    run(store.close())
    lines = journal_path.read_bytes().splitlines()
    assert any(b'"k":"k"' in line and b'"x":' in line for line in lines), lines
    again = _open(journal_path, run, sweep_interval=3600)
    assert run(again.sweep(time.time() + 3601)) == ["k"]
    run(again.close())


def test_journals_without_deadlines_load_unchanged(journal_path, run):
    past = time.time() - 10
    journal_path.write_bytes(
        b'{"fastgate-journal":1}\n'
        b'{"t":"session","op":"set","k":"old","v":"{}"}\n'
        b'{"t":"session","op":"set","k":"gone","v":"{}","x":%.3f}\n'
        b'{"t":"session","op":"set","k":"reset","v":"{}","x":%.3f}\n'
        b'{"t":"session","op":"set","k":"reset","v":"{\\"b\\":1}"}\n' % (past, past)
    )
    store = _open(journal_path, run, sweep_interval=3600)
    # "gone" ended while the process was down; "reset" was written again without one.
    assert sorted(run(store.list_sessions())) == ["old", "reset"]
    assert run(store.get_session("reset")) == b'{"b":1}'
    run(store.close())


@pytest.mark.parametrize("deadline", [b'"soon"', b"-5", b"true", b"0"])
def test_a_bad_deadline_is_corruption(journal_path, run, deadline):
    journal_path.write_bytes(
        b'{"fastgate-journal":1}\n'
        b'{"t":"session","op":"set","k":"k","v":"{}","x":' + deadline + b"}\n"
    )
    store = MemoryStore(str(journal_path))
    with pytest.raises(StoreError, match=r":2: corrupt journal record \('x' is not"):
        run(store.start())
    run(store.close())


@REDIS_ONLY
def test_a_record_expiring_the_moment_it_is_swept_is_still_announced(store_backend, run):
    """Redis drops a key only once its expiry time is past: a sweep that claims
    a deadline in the very millisecond the record expires sees PTTL 0, and
    must file it again rather than forget it.  Many lifetimes ending while a
    store sweeps every 2 ms make that millisecond come up."""
    store = RedisStore(store_backend.config, sweep_interval=0.002)
    store_backend.run(store.start())
    store_backend.stores.append(store)
    heard = Recorder()
    store.subscribe(heard)
    keys = [f"k{i}" for i in range(60)]

    async def body() -> None:
        for index, key in enumerate(keys):
            await store.set_session(key, b"{}", ttl=0.2 + index * 0.0013)
        for key in keys:
            await heard.wait("session", key, timeout=3.0)
        assert sorted(p for e, p in heard.events if e == "session") == sorted(keys)

    run(body())
