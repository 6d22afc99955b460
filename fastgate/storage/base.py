"""The Store interface: where sessions, policies and change notifications live.

Two implementations sit behind it: :class:`~fastgate.storage.memory.MemoryStore`
(one process, optionally journalled to disk) and
:class:`~fastgate.storage.redis.RedisStore` (standalone Redis or Redis Cluster,
shared by every worker and node). Callers address sessions by *storage key*:
the key's hash when ``hash_keys`` is on (the raw key never reaches the store
then), else the key itself.

A session may be given a lifetime (``set_session(key, value, ttl)``, Tyk's
key lifetime): its record is removed from the store ``ttl`` seconds later,
and the store then publishes a ``"session"`` event for it (within about a
second), so that caches forget it too.

Organisation sessions (Tyk's ``/tyk/org/keys``) are stored apart from keys,
by org id.

Notifications tell every worker and node sharing the store that something
changed so that their caches drop it: ``publish(event, payload)`` reaches every
subscriber of every store instance sharing the data, the publisher's own
subscribers included. Events: ``"session"`` (payload: the storage key),
``"policies"``, ``"apis"``, ``"api-cache"`` (payload: an API id, from
``DELETE /tyk/cache/{api_id}``), and ``"resync"`` (emitted by a store itself
after it may have missed notifications, e.g. when its Redis listener
reconnected: flush every cache).

Limits: :meth:`Store.rate_limit` and :meth:`Store.quota` make one decision each
and return plain tuples (they run for every request). A store shared by
several processes decides atomically on the server, so a limit holds exactly
across every node and worker; a decision that failed (:class:`StoreError`) was
counted at most once -- stores never retry one that may have run.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = [
    "EVENT_APIS",
    "EVENT_POLICIES",
    "EVENT_RESYNC",
    "EVENT_SESSION",
    "EventHandler",
    "Store",
    "StoreError",
    "run_now",
]

log = logging.getLogger("fastgate.storage")

EVENT_SESSION = "session"
EVENT_POLICIES = "policies"
EVENT_APIS = "apis"
EVENT_RESYNC = "resync"

EventHandler = Callable[[str, str], None]


T = TypeVar("T")


def run_now(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends (the memory store's) to completion
    without an event loop round trip; RuntimeError if it tries to suspend."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError("coroutine suspended; it needs the event loop")


class StoreError(Exception):
    """The store failed or is unreachable (e.g. Redis down); the message says which and why."""


def check_event(event: str) -> None:
    """Refuse event names that could not travel as ``event:payload``."""
    if not event or ":" in event:
        raise ValueError(f"invalid store event name {event!r}: non-empty, no ':'")


def check_table(table: str) -> None:
    """Refuse record-table names that are not short lower-case words."""
    if not (0 < len(table) <= 32 and all(c in _TABLE_CHARS for c in table)):
        raise ValueError(f"invalid record table name {table!r}: a-z, 0-9 and '-' only")


_TABLE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-")


def check_value(value: bytes) -> None:
    """Refuse values that are not bytes (a str would be silently encoded by some stores)."""
    if not isinstance(value, bytes):
        raise TypeError(f"store values are bytes, not {type(value).__name__}")


class Store(abc.ABC):
    """Sessions, policies and change notifications; see the module docstring."""

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []

    # -- lifecycle --
    @abc.abstractmethod
    async def start(self) -> None:
        """Connect and start the notification listener; raises :class:`StoreError`."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection, file and task; the store is unusable afterwards."""

    # -- sessions, by storage key --
    @abc.abstractmethod
    async def get_session(self, key: str) -> bytes | None:
        """The session JSON stored under ``key``, or None."""

    @abc.abstractmethod
    async def set_session(self, key: str, value: bytes, ttl: float = 0) -> None:
        """Create or replace the session under ``key``.

        ``ttl`` > 0: the record is removed ``ttl`` seconds from now (and a
        ``"session"`` event with ``key`` is published then); otherwise it is
        kept until deleted -- a lifetime it had before is dropped.
        """

    @abc.abstractmethod
    async def delete_session(self, key: str) -> bool:
        """Delete the session under ``key``; True if it existed."""

    @abc.abstractmethod
    async def list_sessions(self) -> list[str]:
        """Every storage key that holds a session (in no particular order)."""

    # -- organisation sessions (Tyk's org keys), by org id --
    @abc.abstractmethod
    async def get_org_session(self, org_id: str) -> bytes | None:
        """The organisation session JSON of ``org_id``, or None."""

    @abc.abstractmethod
    async def set_org_session(self, org_id: str, value: bytes) -> None:
        """Create or replace the organisation session of ``org_id``."""

    @abc.abstractmethod
    async def delete_org_session(self, org_id: str) -> bool:
        """Delete the organisation session of ``org_id``; True if it existed."""

    @abc.abstractmethod
    async def list_org_sessions(self) -> list[str]:
        """Every org id that has an organisation session (in no particular order)."""

    # -- policies managed through the REST API --
    @abc.abstractmethod
    async def get_policies(self) -> dict[str, bytes]:
        """Every stored policy: id -> policy JSON."""

    @abc.abstractmethod
    async def set_policy(self, policy_id: str, value: bytes) -> None:
        """Create or replace a policy."""

    @abc.abstractmethod
    async def delete_policy(self, policy_id: str) -> bool:
        """Delete a policy; True if it existed."""

    # -- certificates (/tyk/certs) --
    @abc.abstractmethod
    async def get_certificate(self, cert_id: str) -> bytes | None:
        """A stored certificate record (PEM), or None."""

    @abc.abstractmethod
    async def add_certificate(self, cert_id: str, value: bytes) -> bool:
        """Store a certificate unless one with that id exists (atomically, on
        every node); True when it was stored."""

    @abc.abstractmethod
    async def delete_certificate(self, cert_id: str) -> bool:
        """Delete a certificate; True if it existed."""

    @abc.abstractmethod
    async def list_certificates(self) -> list[str]:
        """Every stored certificate id (in no particular order)."""

    # -- notifications --
    @abc.abstractmethod
    async def publish(self, event: str, payload: str) -> None:
        """Send ``(event, payload)`` to the subscribers of every store sharing the data.

        The publisher's own subscribers receive it too. ``event`` must be
        non-empty and free of ``':'`` (ValueError otherwise).
        """

    def subscribe(self, handler: EventHandler) -> None:
        """Call ``handler(event, payload)`` on the event loop for every notification.

        May be called before or after :meth:`start`. A handler must not block;
        an exception it raises is logged and does not stop other handlers.
        """
        self._handlers.append(handler)

    # -- limits --
    @abc.abstractmethod
    async def rate_limit(self, key: str, rate: float, per: float) -> tuple[bool, int, float, float]:
        """One rate-limit decision for ``key``: ``(allowed, remaining, reset_after, retry_after)``.

        GCRA with capacity ``rate`` requests per ``per`` seconds, refilled
        continuously; a refused request consumes nothing. ``remaining``: the
        requests that would still pass right now; ``reset_after``: seconds
        until the bucket is full again; ``retry_after``: seconds until a
        refused request would pass (0.0 when allowed) -- as
        ``fastgate._core.limiter.RateLimiter.hit`` defines them. ``rate <= 0``
        or ``per <= 0``: unlimited, ``(True, -1, 0.0, 0.0)`` without touching
        the store. Raises :class:`StoreError`.
        """

    @abc.abstractmethod
    async def quota(self, key: str, quota_max: int, renewal_rate: int) -> tuple[bool, int, float]:
        """One quota decision for ``key``: ``(allowed, remaining, renews_at)``.

        ``renews_at``: unix time when the period ends (0.0: never). The period
        starts with its first request and lasts ``renewal_rate`` seconds
        (``<= 0``: forever). The request numbered ``quota_max + 1`` in a period
        is the first refused; refusals count nothing. ``quota_max <= 0``:
        unlimited, ``(True, -1, 0.0)`` without touching the store. Raises
        :class:`StoreError`.
        """

    @abc.abstractmethod
    async def limits(self, key: str, rate: float, per: float, quota_max: int,
                     renewal_rate: int) -> tuple[bool, int, float, float, bool, int, float]:
        """One request's rate limit and quota together, atomically:
        ``(rate_allowed, remaining, reset_after, retry_after, quota_allowed,
        quota_remaining, renews_at)`` with the meanings of :meth:`rate_limit`
        and :meth:`quota`.  Nothing is counted unless both allow the request
        (a request refused by its quota takes no rate token either); a
        refused rate limit reports ``quota_allowed`` True without deciding it.
        One round trip on Redis.  Raises :class:`StoreError`.
        """

    @abc.abstractmethod
    async def quota_state(self, key: str, quota_max: int) -> tuple[int, float] | None:
        """``(remaining, renews_at)`` of ``key``'s current period, or None when there is
        none (never used, reset, or the period ended). Raises :class:`StoreError`."""

    @abc.abstractmethod
    async def reset_quota(self, key: str) -> None:
        """Forget ``key``'s quota period: its next request starts a new one."""

    # -- records: the features' own small tables --
    @abc.abstractmethod
    async def get_record(self, table: str, key: str) -> bytes | None:
        """The record ``key`` of ``table``, or None (none, or its lifetime ended).

        Records hold what a feature keeps beside sessions (OAuth clients,
        authorization codes, refresh tokens, cached introspection results).
        ``table`` is a short lower-case name (letters, digits, ``-``;
        ValueError otherwise); ``key`` is any string the caller chooses.
        """

    @abc.abstractmethod
    async def set_record(self, table: str, key: str, value: bytes, ttl: float = 0) -> None:
        """Create or replace a record; ``ttl`` > 0: it is gone ``ttl`` seconds
        from now, otherwise it is kept until deleted."""

    @abc.abstractmethod
    async def take_record(self, table: str, key: str) -> bytes | None:
        """Read and delete a record in one atomic step: of every caller on
        every node sharing the store, exactly one gets it (single-use codes)."""

    @abc.abstractmethod
    async def delete_record(self, table: str, key: str) -> bool:
        """Delete a record; True if it existed."""

    @abc.abstractmethod
    async def list_records(self, table: str, prefix: str = "") -> list[str]:
        """The keys of ``table``'s live records starting with ``prefix`` (in no
        particular order; on Redis a SCAN, so for the admin API, not per request)."""

    # -- replay protection --
    @abc.abstractmethod
    async def claim_once(self, key: str, ttl: float) -> bool:
        """Remember ``key`` for ``ttl`` seconds; True when it was not already
        remembered (the first claim wins, atomically on every node sharing the
        store: Redis ``SET NX PX``).  For replay guards: ``key`` is a short
        opaque name (a digest of the nonce or signature), never a secret.
        ValueError unless ``ttl`` > 0."""

    @abc.abstractmethod
    async def register_worker(self, worker_id: str, ttl: float) -> None:
        """Heartbeat: ``worker_id`` counts as live for ``ttl`` seconds from now."""

    @abc.abstractmethod
    async def count_workers(self) -> int:
        """How many workers (of every node) share this store and are live; at least 1."""

    @property
    @abc.abstractmethod
    def shared(self) -> bool:
        """True when other processes may share the data (Redis); False for memory."""

    # -- for implementations --
    def _dispatch(self, event: str, payload: str) -> None:
        for handler in self._handlers:
            try:
                handler(event, payload)
            except Exception:
                log.exception("store event handler %r failed on %r", handler, event)
