"""The embedded store: dicts in this process, optionally journalled to disk.

Without a journal every operation completes inside its coroutine without
yielding to the event loop (a caller may drive it with ``coro.send(None)``).
With ``path`` set, reads still never yield; a change is applied to memory at
once but its coroutine returns only after the change is fsync'd to the journal
(see :mod:`fastgate.storage.journal`), so an acknowledged change survives a
crash.

Notifications stay in the process: :meth:`MemoryStore.publish` schedules the
subscribers with ``loop.call_soon``, so they run on a later loop iteration, in
publication order.

Limits live in :mod:`fastgate._core.limiter` structures (never journalled: a
restart starts every rate limit and quota afresh) and never yield either:
rate limits on the monotonic clock, quotas on the wall clock (their renewal
time is a unix time). One process is the whole world here, so
:meth:`MemoryStore.count_workers` is 1.
"""

from __future__ import annotations

import asyncio
import time

from fastgate._core import limiter
from fastgate.storage.base import Store, check_event, check_value
from fastgate.storage.journal import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COMPACT_RATIO,
    Journal,
    Tables,
    encode_delete,
    encode_set,
)

__all__ = ["DEFAULT_MAX_LIMIT_KEYS", "POLICY_TABLE", "SESSION_TABLE", "MemoryStore"]

SESSION_TABLE = "session"
POLICY_TABLE = "policy"
DEFAULT_MAX_LIMIT_KEYS = 1_000_000  # identities per limiter structure

_INF = float("inf")
_UNLIMITED_RATE = (True, -1, 0.0, 0.0)
_UNLIMITED_QUOTA = (True, -1, 0.0)


class MemoryStore(Store):
    """Sessions and policies in process memory; see the module docstring.

    ``path``: the journal file (absolute; its directory must exist). The
    journal is generic over named tables; later features add their own table
    through :meth:`_table_set` / :meth:`_table_delete` / :meth:`_table`.
    ``max_limit_keys``: identities kept by each limiter structure (see
    :mod:`fastgate._core.limiter` for what happens beyond).
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
        max_limit_keys: int = DEFAULT_MAX_LIMIT_KEYS,
    ) -> None:
        super().__init__()
        self._tables: Tables = {}
        self._journal = (
            Journal(path, compact_ratio=compact_ratio, compact_min_bytes=compact_min_bytes)
            if path
            else None
        )
        self._sessions = self._table(SESSION_TABLE)
        self._policies = self._table(POLICY_TABLE)
        self._rates = limiter.RateLimiter(max_limit_keys)
        self._quotas = limiter.QuotaCounter(max_limit_keys)

    @property
    def shared(self) -> bool:
        return False

    @property
    def journal(self) -> Journal | None:
        return self._journal

    # -- lifecycle --
    async def start(self) -> None:
        if self._journal is not None:
            self._tables = self._journal.open()
            self._sessions = self._table(SESSION_TABLE)
            self._policies = self._table(POLICY_TABLE)

    async def close(self) -> None:
        if self._journal is not None:
            await self._journal.close()

    # -- generic tables --
    def _table(self, name: str) -> dict[str, bytes]:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = {}
        return table

    def _table_set(self, name: str, key: str, value: bytes) -> asyncio.Future[None] | None:
        """Store ``value``; returns the journal's acknowledgement to await, if any."""
        check_value(value)
        table = self._table(name)
        journal = self._journal
        if journal is None:
            table[key] = value
            return None
        line = encode_set(name, key, value)
        old = table.get(key)
        delta = len(line) - (len(encode_set(name, key, old)) if old is not None else 0)
        ack = journal.append(line, delta)  # raises before the change when the journal failed
        table[key] = value
        return ack

    def _table_delete(self, name: str, key: str) -> tuple[bool, asyncio.Future[None] | None]:
        """Delete ``key``; returns (it existed, the journal's acknowledgement or None)."""
        table = self._table(name)
        journal = self._journal
        if journal is None or key not in table:
            return table.pop(key, None) is not None, None
        delta = -len(encode_set(name, key, table[key]))
        ack = journal.append(encode_delete(name, key), delta)
        del table[key]
        return True, ack

    # -- sessions --
    async def get_session(self, key: str) -> bytes | None:
        return self._sessions.get(key)

    async def set_session(self, key: str, value: bytes) -> None:
        ack = self._table_set(SESSION_TABLE, key, value)
        if ack is not None:
            await ack

    async def delete_session(self, key: str) -> bool:
        existed, ack = self._table_delete(SESSION_TABLE, key)
        if ack is not None:
            await ack
        return existed

    async def list_sessions(self) -> list[str]:
        return list(self._sessions)

    # -- policies --
    async def get_policies(self) -> dict[str, bytes]:
        return dict(self._policies)

    async def set_policy(self, policy_id: str, value: bytes) -> None:
        ack = self._table_set(POLICY_TABLE, policy_id, value)
        if ack is not None:
            await ack

    async def delete_policy(self, policy_id: str) -> bool:
        existed, ack = self._table_delete(POLICY_TABLE, policy_id)
        if ack is not None:
            await ack
        return existed

    # -- limits (never yield: the hot path drives these with coro.send(None)) --
    async def rate_limit(self, key: str, rate: float, per: float) -> tuple[bool, int, float, float]:
        if not (0.0 < rate < _INF and 0.0 < per < _INF):
            return _UNLIMITED_RATE
        return self._rates.hit(key, rate, per, time.monotonic())

    async def quota(self, key: str, quota_max: int, renewal_rate: int) -> tuple[bool, int, float]:
        if quota_max <= 0:
            return _UNLIMITED_QUOTA
        return self._quotas.hit(key, quota_max, renewal_rate, time.time())

    async def limits(self, key: str, rate: float, per: float, quota_max: int,
                     renewal_rate: int) -> tuple[bool, int, float, float, bool, int, float]:
        # The same order as limits.lua: the rate decides first; nothing is
        # counted unless both allow (a refused hit changes nothing).
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        if rate_on and self._rates.peek(key, rate, per, time.monotonic())[0] < 1:
            # No token: this hit is a refusal, and a refusal changes nothing.
            refused = self._rates.hit(key, rate, per, time.monotonic())
            return (*refused, True, -1, 0.0)
        if quota_max > 0:
            remaining_q, renews_at = self._quotas.state(key, quota_max, time.time())
            if remaining_q == 0:
                return (True, 0, 0.0, 0.0, False, 0, renews_at)
        allowed, remaining, reset_after, retry_after = await self.rate_limit(key, rate, per)
        quota_allowed, quota_remaining, renews_at = await self.quota(key, quota_max,
                                                                     renewal_rate)
        return (allowed, remaining, reset_after, retry_after, quota_allowed, quota_remaining,
                renews_at)

    async def quota_state(self, key: str, quota_max: int) -> tuple[int, float] | None:
        if quota_max <= 0:
            return None
        remaining, renews_at = state = self._quotas.state(key, quota_max, time.time())
        # (quota_max, 0.0) is how QuotaCounter says "no period" -- and also the
        # state of a never-renewing period whose quota_max was raised by at
        # least its use; that rare one is reported as "no period" too.
        if renews_at == 0.0 and remaining == quota_max:
            return None
        return state

    async def reset_quota(self, key: str) -> None:
        self._quotas.reset(key)

    async def register_worker(self, worker_id: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")

    async def count_workers(self) -> int:
        return 1

    # -- notifications --
    async def publish(self, event: str, payload: str) -> None:
        check_event(event)
        asyncio.get_running_loop().call_soon(self._dispatch, event, payload)

