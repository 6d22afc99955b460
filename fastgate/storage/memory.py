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

Session lifetimes: ``set_session(key, value, ttl)`` gives the record a
deadline (a unix time, journalled with the record).  A record past its
deadline is never returned again, and a sweep every ``sweep_interval``
seconds (started by :meth:`MemoryStore.start`) deletes it -- journalled, so
the file does not keep it either -- and publishes a ``"session"`` event so
that every cache forgets it.  A journal replayed after a restart drops the
records whose deadline passed while the process was down.

Limits live in :mod:`fastgate._core.limiter` structures (never journalled: a
restart starts every rate limit and quota afresh) and never yield either:
rate limits on the monotonic clock, quotas on the wall clock (their renewal
time is a unix time). One process is the whole world here, so
:meth:`MemoryStore.count_workers` is 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time

from fastgate._core import limiter
from fastgate.storage.base import (
    EVENT_SESSION,
    Store,
    StoreError,
    check_event,
    check_table,
    check_value,
)
from fastgate.storage.journal import (
    DEFAULT_COMPACT_MIN_BYTES,
    DEFAULT_COMPACT_RATIO,
    Deadlines,
    Journal,
    Tables,
    encode_delete,
    encode_set,
)

__all__ = [
    "DEFAULT_MAX_LIMIT_KEYS",
    "DEFAULT_SWEEP_INTERVAL",
    "ORG_TABLE",
    "POLICY_TABLE",
    "SESSION_TABLE",
    "MemoryStore",
]

log = logging.getLogger("fastgate.storage")

SESSION_TABLE = "session"
POLICY_TABLE = "policy"
ORG_TABLE = "orgkey"
CERT_TABLE = "cert"
#: Store.set_record's tables live in the journal as "record.<table>".
RECORD_TABLE_PREFIX = "record."
DEFAULT_MAX_LIMIT_KEYS = 1_000_000  # identities per limiter structure
DEFAULT_SWEEP_INTERVAL = 1.0  # seconds between two sweeps of expired records

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
    ``sweep_interval``: seconds between two sweeps of the records whose
    lifetime ended.
    """

    def __init__(
        self,
        path: str | None = None,
        *,
        compact_ratio: float = DEFAULT_COMPACT_RATIO,
        compact_min_bytes: int = DEFAULT_COMPACT_MIN_BYTES,
        max_limit_keys: int = DEFAULT_MAX_LIMIT_KEYS,
        sweep_interval: float = DEFAULT_SWEEP_INTERVAL,
    ) -> None:
        super().__init__()
        if sweep_interval <= 0:
            raise ValueError("sweep_interval must be positive")
        self._tables: Tables = {}
        self._deadlines: Deadlines = {}
        # (deadline, table, key), lazily: an entry whose record got another
        # deadline (or none) since is skipped when it comes up.
        self._expiry: list[tuple[float, str, str]] = []
        self._sweep_interval = sweep_interval
        self._sweeper: asyncio.Task[None] | None = None
        self._journal = (
            Journal(path, compact_ratio=compact_ratio, compact_min_bytes=compact_min_bytes)
            if path
            else None
        )
        self._bind_tables()
        self._rates = limiter.RateLimiter(max_limit_keys)
        self._quotas = limiter.QuotaCounter(max_limit_keys)
        # Replay guards (claim_once): key -> monotonic deadline, and the
        # deadlines in order, so expired claims leave as new ones come.
        self._claims: dict[str, float] = {}
        self._claim_expiry: list[tuple[float, str]] = []

    @property
    def shared(self) -> bool:
        return False

    @property
    def journal(self) -> Journal | None:
        return self._journal

    def _bind_tables(self) -> None:
        self._sessions = self._table(SESSION_TABLE)
        self._session_deadlines = self._deadline_table(SESSION_TABLE)
        self._policies = self._table(POLICY_TABLE)
        self._orgs = self._table(ORG_TABLE)
        self._certs = self._table(CERT_TABLE)

    # -- lifecycle --
    async def start(self) -> None:
        if self._journal is not None:
            self._tables = self._journal.open()
            self._deadlines = self._journal.deadlines
            self._expiry = [(deadline, name, key) for name, table in self._deadlines.items()
                            for key, deadline in table.items()]
            heapq.heapify(self._expiry)
            self._bind_tables()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="fastgate-memory-sweeper")

    async def close(self) -> None:
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
        if self._journal is not None:
            await self._journal.close()

    # -- generic tables --
    def _table(self, name: str) -> dict[str, bytes]:
        table = self._tables.get(name)
        if table is None:
            table = self._tables[name] = {}
        return table

    def _deadline_table(self, name: str) -> dict[str, float]:
        table = self._deadlines.get(name)
        if table is None:
            table = self._deadlines[name] = {}
        return table

    def _live(self, name: str, key: str, now: float | None = None) -> bytes | None:
        """The record ``key`` of table ``name``, unless its deadline has passed."""
        value = self._tables.get(name, {}).get(key)
        if value is None:
            return None
        deadline = self._deadlines.get(name, {}).get(key)
        if deadline is not None and deadline <= (time.time() if now is None else now):
            return None
        return value

    def _table_set(self, name: str, key: str, value: bytes,
                   deadline: float = 0.0) -> asyncio.Future[None] | None:
        """Store ``value`` (until ``deadline``, a unix time, when > 0); returns the
        journal's acknowledgement to await, if any."""
        check_value(value)
        table = self._table(name)
        deadlines = self._deadline_table(name)
        journal = self._journal
        ack = None
        if journal is not None:
            line = encode_set(name, key, value, deadline)
            old = table.get(key)
            old_line = (encode_set(name, key, old, deadlines.get(key, 0.0))
                        if old is not None else b"")
            # raises before the change when the journal failed
            ack = journal.append(line, len(line) - len(old_line))
        table[key] = value
        if deadline > 0:
            deadlines[key] = deadline
            heapq.heappush(self._expiry, (deadline, name, key))
            self._compact_expiry()
        else:
            deadlines.pop(key, None)
        return ack

    def _compact_expiry(self) -> None:
        # Records given a new deadline leave their old entry behind; a key
        # rewritten often must not grow the heap without bound.
        if len(self._expiry) > 1024:
            live = sum(len(table) for table in self._deadlines.values())
            if len(self._expiry) > 2 * live:
                self._expiry = [(deadline, name, key) for name, table in self._deadlines.items()
                                for key, deadline in table.items()]
                heapq.heapify(self._expiry)

    def _table_delete(self, name: str, key: str) -> tuple[bool, asyncio.Future[None] | None]:
        """Delete ``key``; returns (it existed, the journal's acknowledgement or None).

        A record past its deadline counts as not existing (it is removed all the same).
        """
        table = self._table(name)
        deadlines = self._deadline_table(name)
        journal = self._journal
        existed = self._live(name, key) is not None
        if journal is None or key not in table:
            table.pop(key, None)
            deadlines.pop(key, None)
            return existed, None
        delta = -len(encode_set(name, key, table[key], deadlines.get(key, 0.0)))
        ack = journal.append(encode_delete(name, key), delta)
        del table[key]
        deadlines.pop(key, None)
        return existed, ack

    # -- expiry --
    async def sweep(self, now: float | None = None) -> list[str]:
        """Delete every record whose deadline is not after ``now`` (default: the
        current time), journalled; publish a ``"session"`` event for each session
        deleted.  The storage keys of the sessions deleted.

        Raises StoreError when the journal refuses the deletions (the records
        then stay on disk but are never returned: their deadline has passed).
        """
        now = time.time() if now is None else now
        gone: list[tuple[str, str]] = []
        acks: list[asyncio.Future[None]] = []
        while self._expiry and self._expiry[0][0] <= now:
            deadline, name, key = heapq.heappop(self._expiry)
            if self._deadlines.get(name, {}).get(key) != deadline:
                continue  # stale: the record got another deadline since, or was deleted
            _existed, ack = self._table_delete(name, key)
            gone.append((name, key))
            if ack is not None:
                acks.append(ack)
        sessions = [key for name, key in gone if name == SESSION_TABLE]
        for key in sessions:
            await self.publish(EVENT_SESSION, key)
        if acks:
            results = await asyncio.gather(*acks, return_exceptions=True)
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return sessions

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._sweep_interval)
            try:
                await self.sweep()
            except StoreError as exc:
                log.error("deleting records whose lifetime ended failed: %s", exc)

    # -- sessions --
    async def get_session(self, key: str) -> bytes | None:
        value = self._sessions.get(key)
        if value is not None and self._session_deadlines:
            deadline = self._session_deadlines.get(key)
            if deadline is not None and deadline <= time.time():
                return None  # its lifetime ended: the sweep deletes it
        return value

    async def set_session(self, key: str, value: bytes, ttl: float = 0) -> None:
        # A copy the size of the data: orjson's output keeps the buffer it
        # grew (16 kB for a 1.2 kB session), which a million keys would hold.
        value = bytes(memoryview(value))
        ack = self._table_set(SESSION_TABLE, key, value,
                              time.time() + ttl if ttl > 0 else 0.0)
        if ack is not None:
            await ack

    async def delete_session(self, key: str) -> bool:
        existed, ack = self._table_delete(SESSION_TABLE, key)
        if ack is not None:
            await ack
        return existed

    async def list_sessions(self) -> list[str]:
        if not self._session_deadlines:
            return list(self._sessions)
        now = time.time()
        return [key for key in self._sessions if self._live(SESSION_TABLE, key, now) is not None]

    # -- organisation sessions --
    async def get_org_session(self, org_id: str) -> bytes | None:
        return self._orgs.get(org_id)

    async def set_org_session(self, org_id: str, value: bytes) -> None:
        ack = self._table_set(ORG_TABLE, org_id, value)
        if ack is not None:
            await ack

    async def delete_org_session(self, org_id: str) -> bool:
        existed, ack = self._table_delete(ORG_TABLE, org_id)
        if ack is not None:
            await ack
        return existed

    async def list_org_sessions(self) -> list[str]:
        return list(self._orgs)

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

    # -- certificates --
    async def get_certificate(self, cert_id: str) -> bytes | None:
        return self._certs.get(cert_id)

    async def add_certificate(self, cert_id: str, value: bytes) -> bool:
        if cert_id in self._certs:
            return False
        ack = self._table_set(CERT_TABLE, cert_id, value)
        if ack is not None:
            await ack
        return True

    async def delete_certificate(self, cert_id: str) -> bool:
        existed, ack = self._table_delete(CERT_TABLE, cert_id)
        if ack is not None:
            await ack
        return existed

    async def list_certificates(self) -> list[str]:
        return list(self._certs)

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
        return self.decide_limits(key, rate, per, quota_max, renewal_rate)

    def decide_limits(self, key: str, rate: float, per: float, quota_max: int,
                      renewal_rate: int) -> tuple[bool, int, float, float, bool, int, float]:
        """:meth:`limits`, synchronously (the limiter's hot path calls it
        directly: no coroutine per request)."""
        # The same order as limits.lua: the rate decides first; nothing is
        # counted unless both allow (a refused hit changes nothing).
        rates = self._rates
        rate_on = 0.0 < rate < _INF and 0.0 < per < _INF
        if rate_on:
            now = time.monotonic()
            if rates.peek(key, rate, per, now)[0] < 1:
                # No token: this hit is a refusal, and a refusal changes nothing.
                return (*rates.hit(key, rate, per, now), True, -1, 0.0)
        if quota_max > 0:
            wall = time.time()
            remaining_q, renews_at = self._quotas.state(key, quota_max, wall)
            if remaining_q == 0:
                return (True, 0, 0.0, 0.0, False, 0, renews_at)
            quota_allowed, quota_remaining, renews_at = self._quotas.hit(
                key, quota_max, renewal_rate, wall)
        else:
            quota_allowed, quota_remaining, renews_at = _UNLIMITED_QUOTA
        allowed, remaining, reset_after, retry_after = \
            rates.hit(key, rate, per, now) if rate_on else _UNLIMITED_RATE
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

    # -- records (journalled like every table) --
    async def get_record(self, table: str, key: str) -> bytes | None:
        check_table(table)
        return self._live(RECORD_TABLE_PREFIX + table, key)

    async def set_record(self, table: str, key: str, value: bytes, ttl: float = 0) -> None:
        check_table(table)
        ack = self._table_set(RECORD_TABLE_PREFIX + table, key, value,
                              time.time() + ttl if ttl > 0 else 0.0)
        if ack is not None:
            await ack

    async def take_record(self, table: str, key: str) -> bytes | None:
        check_table(table)
        name = RECORD_TABLE_PREFIX + table
        value = self._live(name, key)
        if value is None:
            return None
        _existed, ack = self._table_delete(name, key)  # before any await: atomic here
        if ack is not None:
            await ack
        return value

    async def delete_record(self, table: str, key: str) -> bool:
        check_table(table)
        existed, ack = self._table_delete(RECORD_TABLE_PREFIX + table, key)
        if ack is not None:
            await ack
        return existed

    async def list_records(self, table: str, prefix: str = "") -> list[str]:
        check_table(table)
        name = RECORD_TABLE_PREFIX + table
        now = time.time()
        return [key for key in self._tables.get(name, {})
                if key.startswith(prefix) and self._live(name, key, now) is not None]

    async def claim_once(self, key: str, ttl: float) -> bool:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        now = time.monotonic()
        claims = self._claims
        heap = self._claim_expiry
        while heap and heap[0][0] <= now:
            deadline, old = heapq.heappop(heap)
            if claims.get(old) == deadline:
                del claims[old]
        held = claims.get(key)
        if held is not None and held > now:
            return False
        deadline = now + ttl
        claims[key] = deadline
        heapq.heappush(heap, (deadline, key))
        return True

    async def register_worker(self, worker_id: str, ttl: float) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")

    async def count_workers(self) -> int:
        return 1

    # -- notifications --
    async def publish(self, event: str, payload: str) -> None:
        check_event(event)
        asyncio.get_running_loop().call_soon(self._dispatch, event, payload)

