"""The session cache marks the entries it no longer holds (``CachedSession.live``):
the auth token's credential memo trusts an entry only while it is live, so every
way out of the cache — invalidation, clearing, eviction, a racing refill — must
mark it, or a deleted or changed key would keep working from the memo."""

from __future__ import annotations

import asyncio

import orjson

from fastgate.session.cache import SessionCache
from fastgate.storage.memory import MemoryStore

SESSION = orjson.dumps({"access_rights": {"p": {"api_id": "p", "versions": ["Default"]}},
                        "rate": 0, "per": 0, "quota_max": -1})


def cache_with(keys: list[str], max_entries: int = 100) -> SessionCache:
    store = MemoryStore()

    async def fill() -> None:
        for key in keys:
            await store.set_session(key, SESSION, 0)

    asyncio.run(fill())
    return SessionCache(store, dict, max_entries=max_entries)


def test_invalidate_and_clear_mark_entries_dead():
    cache = cache_with(["a", "b", "c"])
    a, b, c = (cache.lookup(key) for key in "abc")
    assert a.live and b.live and c.live
    cache.invalidate("a")
    assert not a.live and b.live
    fresh = cache.lookup("a")
    assert fresh is not a and fresh.live
    cache.clear()
    assert not fresh.live and not b.live and not c.live


def test_eviction_marks_the_oldest_dead():
    cache = cache_with(["a", "b", "c"], max_entries=2)
    a = cache.lookup("a")
    b = cache.lookup("b")
    c = cache.lookup("c")  # evicts a
    assert not a.live and b.live and c.live
    assert "a" not in cache.entries


def test_a_racing_refill_marks_the_replaced_entry_dead():
    cache = cache_with(["a"])
    first = cache.lookup("a")
    # A second fill of the same key (two lookups that both missed) replaces it.
    second = cache._fill("a", SESSION, cache.generation)
    assert second is not None and second.live
    assert not first.live
    assert cache.entries["a"] is second
