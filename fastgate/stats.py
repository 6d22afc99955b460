"""Counters the hot path's parts keep for the metrics (a leaf: imports nothing).

The caches (sessions, verified JWTs, JWK Sets, introspection results) and
the Redis connections count into process-wide objects here; the metrics
exporter (:mod:`fastgate.observability.metrics`) reads them when scraped.
Counting is an integer increment on an attribute: no lock (one event loop
per process), no label lookup per event.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["CACHES", "REDIS", "REDIS_BUCKETS", "CacheStats", "RedisStats", "cache_stats"]


class CacheStats:
    """Hits and misses of one cache."""

    __slots__ = ("hits", "misses", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.hits = 0
        self.misses = 0


#: Every cache that counts, by name (``session``, ``jwt``, ``jwks``,
#: ``introspection``).
CACHES: dict[str, CacheStats] = {}


def cache_stats(name: str) -> CacheStats:
    """The counters of the cache called ``name`` (made on first use)."""
    stats = CACHES.get(name)
    if stats is None:
        stats = CACHES[name] = CacheStats(name)
    return stats


#: Upper bounds (seconds) of the Redis round-trip histogram.
REDIS_BUCKETS: tuple[float, ...] = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                    0.025, 0.05, 0.1, 0.25, 1.0)


class RedisStats:
    """What this process's Redis connections did.

    * ``decisions`` -- limit-script calls sent on the request path
      (:mod:`fastgate.storage.pipe`); ``commands`` -- other store calls.
    * ``errors`` -- calls that failed (error reply, timeout, lost connection).
    * the round trip of each write of pipelined calls to its last reply,
      as a histogram over :data:`REDIS_BUCKETS` (``rtt_counts`` per bucket,
      the last one past the largest bound; ``rtt_sum`` in seconds).
    """

    __slots__ = ("commands", "decisions", "errors", "rtt_counts", "rtt_sum")

    def __init__(self) -> None:
        self.decisions = 0
        self.commands = 0
        self.errors = 0
        self.rtt_counts = [0] * (len(REDIS_BUCKETS) + 1)
        self.rtt_sum = 0.0

    def observe(self, seconds: float) -> None:
        """One round trip of ``seconds``."""
        self.rtt_counts[bisect_left(REDIS_BUCKETS, seconds)] += 1
        self.rtt_sum += seconds


#: This process's Redis counters.
REDIS = RedisStats()
