"""The verified-token cache: what a token that passed verification means,
kept by the token's bytes.

An entry holds the caller's value (for the JWT middleware: the token's
session plan), the key that verified the token and a deadline (the token's
``exp`` plus the allowed skew; +inf without ``exp``).  :meth:`TokenCache.get`
answers only while the deadline is ahead and the key is not retired (it left
its JWKS, or the JWKS cache was flushed) -- so a cached token still expires on
time and stops at once with its key.  The cache is bounded: past
``max_entries`` the oldest entry goes first.

Keyed by the exact bytes: ``fastgate._core.jws`` accepts one spelling per
token (strict base64url), so a token cannot be re-spelled around the cache.
A hit is one dict probe and two comparisons (well under a microsecond).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from fastgate.stats import CacheStats, cache_stats

if TYPE_CHECKING:
    from fastgate.auth.jwt.keys import VerifyKey

__all__ = ["TokenCache"]


class TokenCache:
    """Verified tokens by their bytes (see the module docstring)."""

    __slots__ = ("_entries", "max_entries", "stats")

    def __init__(self, max_entries: int = 50_000, stats: CacheStats | None = None) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        #: Hits and misses, for the metrics (``fastgate.stats``).
        self.stats = stats or cache_stats("jwt")
        # An OrderedDict: the oldest entry leaves in O(1) (a dict's first entry
        # after many deletions from its front is found by a linear scan).
        self._entries: OrderedDict[bytes, tuple[Any, VerifyKey, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, raw: bytes, now: float) -> Any:
        """The value kept for ``raw``, or None (absent, past its deadline, or its
        key retired -- the entry is then dropped)."""
        entry = self._entries.get(raw)
        if entry is None:
            self.stats.misses += 1
            return None
        if now < entry[2] and not entry[1].retired:
            self.stats.hits += 1
            return entry[0]
        del self._entries[raw]
        self.stats.misses += 1
        return None

    def put(self, raw: bytes, value: Any, key: VerifyKey, deadline: float) -> None:
        """Remember ``value`` for ``raw`` until ``deadline`` (or ``key`` retires)."""
        entries = self._entries
        if raw not in entries and len(entries) >= self.max_entries:
            entries.popitem(last=False)
        entries[raw] = (value, key, deadline)

    def clear(self) -> None:
        self._entries.clear()
