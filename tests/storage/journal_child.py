"""A process writing to a journalled memory store, for the crash and disk-full tests.

``python journal_child.py burst PATH``: 16 writers create sessions (and delete
every fifth one) as fast as they can, forever, churning a hot key so that the
journal compacts mid-burst. After each acknowledged change it prints, flushed,
``set KEY`` or ``del KEY`` (and ``compactions N`` when one completed); the
test SIGKILLs it at a moment of its choosing.

``python journal_child.py fsize PATH LIMIT``: with RLIMIT_FSIZE at LIMIT bytes
(a real write error, EFBIG), creates sessions until one fails; prints ``set
KEY`` per acknowledged one, then ``failed MESSAGE``, then whether a later
change is refused (``refused MESSAGE``) and whether reads still work.
"""

from __future__ import annotations

import asyncio
import json
import resource
import signal
import sys

import uvloop

from fastgate.storage import StoreError
from fastgate.storage.memory import MemoryStore


def session(key: str) -> bytes:
    return json.dumps({"org_id": "crash", "alias": key, "meta_data": {"pad": "p" * 200}}).encode()


async def burst(path: str) -> None:
    store = MemoryStore(path, compact_min_bytes=64 * 1024)
    await store.start()
    await store.set_policy("gold", b'{"rate":100}')
    out = sys.stdout
    out.write("policy gold\n")
    out.flush()

    seen = [0]

    async def writer(w: int) -> None:
        i = 0
        while True:
            key = f"w{w}-{i}"
            await store.set_session(key, session(key))
            out.write(f"set {key}\n")
            out.flush()
            if i % 5 == 0:
                await store.delete_session(key)
                out.write(f"del {key}\n")
                out.flush()
            await store.set_session(f"hot{w}", session(f"hot{w}-{i}"))
            if store.journal is not None and store.journal.compactions != seen[0]:
                seen[0] = store.journal.compactions
                out.write(f"compactions {seen[0]}\n")
                out.flush()
            i += 1

    await asyncio.gather(*(writer(w) for w in range(16)))


async def fsize(path: str, limit: int) -> None:
    store = MemoryStore(path)
    await store.start()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of dying
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    out = sys.stdout
    i = 0
    try:
        while True:
            key = f"k{i}"
            await store.set_session(key, session(key))
            out.write(f"set {key}\n")
            i += 1
    except StoreError as exc:
        out.write(f"failed {exc}\n")
    try:
        await store.set_session("after", b"{}")
        out.write("accepted\n")
    except StoreError as exc:
        out.write(f"refused {exc}\n")
    out.write(f"read {await store.get_session('k0') == session('k0')}\n")
    await store.close()


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "burst":
        uvloop.run(burst(path))
    else:
        uvloop.run(fsize(path, int(sys.argv[3])))


if __name__ == "__main__":
    main()
