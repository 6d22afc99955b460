"""The memory store keeps a session in about its own size: orjson's output
holds on to the buffer it grew (about 8 kB for a 1.2 kB session here), which
at a million keys is gigabytes; the store keeps a compact copy."""

from __future__ import annotations

import asyncio
import tracemalloc

import orjson

from fastgate.storage.memory import MemoryStore

SESSION = {
    "access_rights": {f"api{i}": {"api_id": f"api{i}", "versions": ["Default"]}
                      for i in range(20)},
    "meta_data": {"note": "y" * 200},
}


def test_a_stored_session_costs_about_its_size():
    data = orjson.dumps(SESSION)
    count = 2000

    async def fill() -> int:
        store = MemoryStore()
        tracemalloc.start()
        try:
            for index in range(count):
                await store.set_session(f"key{index}", orjson.dumps(SESSION), 0)
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    per_session = asyncio.run(fill()) / count
    # The data, its key and the table's bookkeeping; not the grown buffer.
    assert per_session < 2 * len(data), (per_session, len(data))
