"""Memory per cached session: ``python -m bench.memory [--keys N ...] [--json FILE]``.

For each N (default 10,000 and 1,000,000) a fresh interpreter:

1. stores N sessions in a ``MemoryStore`` through its own API (``set_session``, under
   the key's hash, as ``POST /tyk/keys/create`` with ``hash_keys`` stores them: a
   generated key, murmur32 of it as the storage key, the session as JSON bytes);
2. warms the session cache the way the auth-token path does for each key: the
   credential's candidate storage keys (``token_candidates``, derived once and
   remembered), then ``SessionCache.lookup`` (a miss: the store is read, policies
   applied, access rights compiled, the entry kept);
3. reports the resident set before and after each step and the bytes per key:
   **store** (sessions held by the memory store) and **cache** (what a cached
   session costs a worker: the entry plus the credential's remembered storage keys).

A second interpreter repeats step 2 under ``tracemalloc`` for the bytes Python
allocated per cached session (tracemalloc inflates the resident set, so the two are
measured apart).  The cache's default bounds (``MAX_ENTRIES``, ``MAX_NAMES``:
200,000 each) are raised to N here so that every key is cached; with the defaults a
worker keeps at most 200,000 sessions, and the figure per session stays the same.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_KEYS = (10_000, 1_000_000)
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Measurement:
    """One interpreter's figures for ``keys`` sessions (bytes; RSS from /proc)."""

    keys: int
    rss_start: int
    rss_stored: int
    rss_cached: int
    #: Bytes tracemalloc saw allocated (and still held) while warming the cache
    #: (None in the RSS run).
    traced_cache: int | None = None
    seconds_store: float = 0.0
    seconds_cache: float = 0.0
    #: Keys whose murmur32 storage key another key already had (32 bits: at 10^6
    #: keys about a hundred collide, Tyk's default as much as fastgate's); the
    #: cache then holds that many sessions fewer.
    collisions: int = 0

    @property
    def store_per_key(self) -> float:
        return per_key(self.rss_stored - self.rss_start, self.keys)

    @property
    def cache_per_key(self) -> float:
        return per_key(self.rss_cached - self.rss_stored, self.keys)

    @property
    def traced_per_key(self) -> float | None:
        return None if self.traced_cache is None else per_key(self.traced_cache, self.keys)

    def to_json(self) -> dict[str, Any]:
        """The raw figures and the per-key ones."""
        return {**asdict(self), "store_bytes_per_key": self.store_per_key,
                "cache_bytes_per_key": self.cache_per_key,
                "traced_cache_bytes_per_key": self.traced_per_key}


def per_key(delta_bytes: int, keys: int) -> float:
    """Bytes per key of a growth of ``delta_bytes`` over ``keys`` keys."""
    if keys < 1:
        raise ValueError("keys must be >= 1")
    return delta_bytes / keys


def rss_bytes() -> int:
    """This process's resident set (``/proc/self/statm``), in bytes."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * PAGE_SIZE


def session_record(index: int) -> dict[str, Any]:
    """A session as ``POST /tyk/keys/create`` stores one for the bench API (the
    auth-token scenarios' session, parsed and filled in by fastgate's own code)."""
    from fastgate.session import parse_session

    return parse_session({
        "access_rights": {"bench": {"api_id": "bench", "api_name": "bench",
                                    "versions": ["Default"]}},
        "rate": 100_000, "per": 1, "quota_max": -1, "expires": 0,
        "alias": f"bench-{index:07d}",
    })


def measure(keys: int, traced: bool) -> Measurement:
    """Fill a memory store with ``keys`` sessions and warm a session cache with
    each (see the module docstring); tracemalloc around the warming if ``traced``."""
    import orjson

    from fastgate.auth.auth_token import token_candidates
    from fastgate.auth.identity import KeyNames
    from fastgate.session import generate_key, storage_key
    from fastgate.session.cache import SessionCache
    from fastgate.storage.base import run_now
    from fastgate.storage.memory import MemoryStore

    store = MemoryStore()
    template = session_record(0)
    # The keys first: what wrk would send, not part of either figure.
    credentials = [generate_key("", "") for _ in range(keys)]
    gc.collect()
    rss_start = rss_bytes()
    started = time.perf_counter()
    stored = set()
    for index, key in enumerate(credentials):
        record = dict(template, alias=f"bench-{index:07d}")
        skey = storage_key(key, hash_keys=True, hash_key_function="")
        stored.add(skey)
        # As the REST API stores a session (fastgate/admin/keys.py): orjson's bytes.
        run_now(store.set_session(skey, orjson.dumps(record)))
    collisions = keys - len(stored)
    del stored
    seconds_store = time.perf_counter() - started
    gc.collect()
    rss_stored = rss_bytes()

    cache = SessionCache(store, dict, max_entries=keys + 1)
    # The auth path's candidate names, bounded by MAX_NAMES by default: raised to N.
    # (KeyNames' derive function, without its default bound.)
    derive = token_candidates("", hash_keys=True, hash_function="")._derive
    names = KeyNames(derive, max_entries=keys + 1)
    if traced:
        tracemalloc.start()
        traced_before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    for key in credentials:
        # A new bytes object, as a request's header value is: the names map keeps it.
        entry = cache.lookup(names.of(key.encode())[0])
        if entry is None or not hasattr(entry, "access"):
            raise RuntimeError("a stored session was not found through the cache")
    seconds_cache = time.perf_counter() - started
    traced_cache = None
    if traced:
        gc.collect()
        traced_cache = tracemalloc.get_traced_memory()[0] - traced_before
        tracemalloc.stop()
    gc.collect()
    rss_cached = rss_bytes()
    if len(cache.entries) != keys - collisions:
        raise RuntimeError(f"{len(cache.entries)} sessions cached, not {keys - collisions}")
    return Measurement(keys, rss_start, rss_stored, rss_cached, traced_cache,
                       seconds_store, seconds_cache, collisions)


def run_child(keys: int, traced: bool) -> Measurement:
    """``measure`` in a fresh interpreter (a clean heap for each figure)."""
    argv = [sys.executable, "-m", "bench.memory", "--child", str(keys)]
    if traced:
        argv.append("--traced")
    done = subprocess.run(argv, capture_output=True, text=True, check=False,
                          cwd=Path(__file__).resolve().parent.parent)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr}")
    data = json.loads(done.stdout)
    fields = {name: data[name] for name in Measurement.__dataclass_fields__}
    return Measurement(**fields)


def report_lines(rss: Measurement, traced: Measurement) -> list[str]:
    """The figures of one N as printed."""
    return [
        f"{rss.keys:>9,} keys: store {rss.store_per_key:,.0f} B/key "
        f"({rss.seconds_store:.1f}s), session cache {rss.cache_per_key:,.0f} B/key RSS "
        f"({rss.seconds_cache:.1f}s, {rss.seconds_cache / rss.keys * 1e6:.1f} us per miss), "
        f"tracemalloc {traced.traced_per_key or 0:,.0f} B/session; "
        f"RSS {rss.rss_start / 2**20:.0f} -> {rss.rss_stored / 2**20:.0f} -> "
        f"{rss.rss_cached / 2**20:.0f} MB; {rss.collisions} murmur32 collisions",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.memory",
                                     description="Memory per cached session.")
    parser.add_argument("--keys", type=int, action="append", metavar="N",
                        help="sessions to create (repeatable; default 10,000 and 1,000,000)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the figures here")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--traced", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        print(json.dumps(asdict(measure(args.child, args.traced))))
        return 0
    results = []
    for keys in args.keys or DEFAULT_KEYS:
        if keys < 1:
            parser.error("--keys must be >= 1")
        rss, traced = run_child(keys, traced=False), run_child(keys, traced=True)
        for line in report_lines(rss, traced):
            print(line, flush=True)
        results.append({"rss": rss.to_json(), "traced": traced.to_json()})
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
