"""The per-worker session cache.

The store is the source of truth; every worker keeps the sessions it has
used, with policies already applied and access rights compiled, so that the
common request costs two dict probes.  Correctness comes from invalidation,
not from expiry: every change made through the REST API publishes a
``session`` event (a ``policies`` event for policy changes) that reaches every
worker and every node sharing the store, which drop the entry at once — Tyk
caches sessions for 10 s, and deleted keys keep working that long.  A
``resync`` event (the notification connection was lost and re-established)
drops everything, since changes may have been missed.

Unknown keys are cached too (as absent), so a client hammering with a bad key
costs no store round trip; creating that key publishes the event that drops
the negative entry.  Both maps are bounded: past ``max_entries`` the oldest
entries go first.

Credentials are hashed once: ``storage_key_of`` remembers the storage key of
each credential seen, so the hash (murmur or sha256) is not recomputed per
request.  The raw credential lives only in this process's memory; the store
and the logs see only its hash when ``hash_keys`` is on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.responses import error_response
from fastgate.session.access import compile_access
from fastgate.session.policy import PolicyError, apply_policies
from fastgate.stats import cache_stats
from fastgate.storage.base import run_now

if TYPE_CHECKING:
    from fastgate.session.access import AccessRights
    from fastgate.storage.base import Store

log = logging.getLogger("fastgate.sessions")

#: Cached entries at most (sessions, and separately credential -> storage key).
MAX_ENTRIES = 200_000


class CachedSession:
    """A session as the checks need it: policies applied, access compiled."""

    __slots__ = ("access", "basic_user", "effective", "expires", "inactive", "limits",
                 "live", "refusal", "session", "storage_key", "verdicts")

    def __init__(self, storage_key: str, session: dict[str, Any],
                 policies: dict[str, dict[str, Any]]) -> None:
        self.storage_key = storage_key
        self.session = session
        #: True while the cache holds this entry: whoever remembers the entry
        #: itself (a credential -> entry memo) checks it, since the cache sets
        #: it to False when it drops, evicts or replaces the entry.
        self.live = True
        #: Rate and quota settings per API id, worked out on first use
        #: (fastgate.middleware.limits.limits_for).
        self.limits: dict[str, Any] = {}
        #: Access-rights verdicts that do not depend on the request's path or
        #: method, per session-checks step (fastgate.middleware.session_checks).
        self.verdicts: dict[int, int] = {}
        #: A prepared refusal when the session cannot be used (bad policies).
        self.refusal: bytes | None = None
        try:
            self.effective = apply_policies(session, policies)
        except PolicyError as exc:
            self.effective = session
            self.refusal = error_response(403, str(exc))
        self.access: AccessRights = compile_access(self.effective)
        expires = self.effective.get("expires") or 0
        self.expires = float(expires) if isinstance(expires, int | float) else 0.0
        self.inactive = self.effective.get("is_inactive") is True
        #: A Basic-auth user (``basic_auth_data.password`` set): its name is no
        #: secret, so it is never an auth token.
        data = session.get("basic_auth_data")
        self.basic_user = isinstance(data, dict) and bool(data.get("password"))

    def expired(self, now: float) -> bool:
        return 0 < self.expires <= now


_ABSENT: Any = object()


class SessionCache:
    """Sessions this worker has used, by storage key."""

    def __init__(self, store: Store, policies: Callable[[], dict[str, dict[str, Any]]],
                 *, max_entries: int = MAX_ENTRIES) -> None:
        self.store = store
        self.policies = policies
        self.max_entries = max_entries
        # OrderedDicts: the oldest entry leaves in O(1) (a dict's first entry
        # after many deletions from its front is found by a linear scan).
        self.entries: OrderedDict[str, CachedSession] = OrderedDict()
        self.storage_keys: OrderedDict[bytes, str] = OrderedDict()
        self.generation = 0
        self._local = not store.shared
        #: Hits and misses, for the metrics.
        self.stats = cache_stats("session")

    # -- credentials ------------------------------------------------------------

    def storage_key_of(self, credential: bytes, derive: Callable[[bytes], str]) -> str:
        """The storage key of ``credential``, derived once and remembered."""
        key = self.storage_keys.get(credential)
        if key is None:
            key = derive(credential)
            if len(self.storage_keys) >= self.max_entries:
                self.storage_keys.popitem(last=False)
            self.storage_keys[credential] = key
        return key

    # -- lookups --------------------------------------------------------------------

    def lookup(self, storage_key: str) -> CachedSession | Awaitable[CachedSession | None] | None:
        """The session stored under ``storage_key``: the cached entry, None when
        there is none, or an awaitable when the store must be asked.

        The awaitable raises StoreError when the store fails.
        """
        entry = self.entries.get(storage_key)
        if entry is not None:
            self.stats.hits += 1
            return None if entry is _ABSENT else entry
        self.stats.misses += 1
        if self._local:
            return self._fill(storage_key, run_now(self.store.get_session(storage_key)),
                              self.generation)
        return self._fetch(storage_key)

    async def _fetch(self, storage_key: str) -> CachedSession | None:
        generation = self.generation
        data = await self.store.get_session(storage_key)
        return self._fill(storage_key, data, generation)

    def _fill(self, storage_key: str, data: bytes | None,
              generation: int) -> CachedSession | None:
        entry: CachedSession | None = None
        if data is not None:
            try:
                session = orjson.loads(data)
                if not isinstance(session, dict):
                    raise ValueError("not a JSON object")
                entry = CachedSession(storage_key, session, self.policies())
            except (ValueError, TypeError) as exc:
                # A corrupt record refuses the key; it does not crash the worker.
                log.error("stored session %s is unreadable: %s", _redact(storage_key), exc)
                entry = None
        if generation == self.generation:
            # Not invalidated while the store was being asked: cache it.
            entries = self.entries
            if len(entries) >= self.max_entries:
                _drop(entries.popitem(last=False)[1])
            _drop(entries.get(storage_key))  # two lookups of one key raced
            entries[storage_key] = entry if entry is not None else _ABSENT
        return entry

    # -- invalidation --------------------------------------------------------------

    async def save(self, storage_key: str, value: bytes, ttl: float = 0) -> None:
        """Writes a session to the store and makes every worker and node that
        shares it forget the old one (this worker first: that cannot fail).
        Raises StoreError."""
        await self.store.set_session(storage_key, value, ttl)
        self.invalidate(storage_key)
        await self.store.publish("session", storage_key)

    def invalidate(self, storage_key: str) -> None:
        """Forget one session (it changed or was deleted)."""
        _drop(self.entries.pop(storage_key, None))
        self.generation += 1

    def clear(self) -> None:
        """Forget every session (policies changed, or events may have been missed)."""
        for entry in self.entries.values():
            _drop(entry)
        self.entries.clear()
        self.generation += 1


def _drop(entry: CachedSession | None) -> None:
    """Mark an entry the cache no longer holds (see ``CachedSession.live``)."""
    if entry is not None and entry is not _ABSENT:
        entry.live = False


def _redact(storage_key: str) -> str:
    # Storage keys are hashes when hash_keys is on; otherwise they are the
    # credentials themselves, so logs show only a prefix.
    return storage_key[:6] + "..." if len(storage_key) > 8 else "***"
