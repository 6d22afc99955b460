"""Where sessions, policies and change notifications live: memory or Redis.

``create_store(config.storage)`` picks the implementation; both follow
:class:`~fastgate.storage.base.Store`.
"""

from __future__ import annotations

from fastgate.config import StorageConfig
from fastgate.storage.base import (
    EVENT_APIS,
    EVENT_POLICIES,
    EVENT_RESYNC,
    EVENT_SESSION,
    EventHandler,
    Store,
    StoreError,
)

__all__ = [
    "EVENT_APIS",
    "EVENT_POLICIES",
    "EVENT_RESYNC",
    "EVENT_SESSION",
    "EventHandler",
    "Store",
    "StoreError",
    "create_store",
]


def create_store(config: StorageConfig, *, timeout: float | None = None) -> Store:
    """The store ``config`` describes (not started: ``await store.start()``).

    ``timeout``: the bound on every Redis operation in seconds (default 1 s);
    the memory store ignores it.
    """
    if config.type == "memory":
        from fastgate.storage.memory import MemoryStore

        return MemoryStore(config.path)
    if config.type == "redis":
        from fastgate.storage.redis import DEFAULT_TIMEOUT, RedisStore

        return RedisStore(config, timeout=DEFAULT_TIMEOUT if timeout is None else timeout)
    raise ValueError(f"unknown storage.type {config.type!r} (expected 'memory' or 'redis')")
