"""``TykGateway``: what a Python plugin may ask of the gateway.

* ``log(message, level)`` and ``log_error(message)`` -- the gateway's log
  (logger ``fastgate.plugins``);
* ``store_data(key, value, ttl)`` and ``get_data(key)`` -- Tyk's plugin data
  in the gateway's store (Tyk keeps it in Redis under ``coprocess-data:``;
  fastgate in the store's records, table ``coprocess-data``, so every node
  of a cluster sees it); ``get_data`` answers "" for a key not set;
* ``trigger_event(name, payload)`` -- logged (fastgate has no event handlers).

The store is asynchronous.  A hook on the event loop gets the answer at
once when the store can give it without waiting (the memory store); with
Redis, a synchronous hook must run in the thread pool (``run_in_thread``)
to wait for it -- else ``get_data`` raises RuntimeError saying so, rather
than stall every request -- and an ``async`` hook awaits
``TykGateway.get_data_async`` / ``store_data_async``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastgate.storage.base import Store

__all__ = ["DATA_TABLE", "PluginHost", "TykGateway", "current_host"]

log = logging.getLogger("fastgate.plugins")

#: The store's record table holding the plugins' data.
DATA_TABLE = "coprocess-data"
#: How long a hook in the thread pool waits for the store (seconds).
STORE_WAIT = 10.0
_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "warn": logging.WARNING, "error": logging.ERROR, "fatal": logging.CRITICAL}


class PluginHost:
    """The gateway a hook runs in (its store and event loop)."""

    __slots__ = ("loop", "store", "thread")

    def __init__(self, store: Store) -> None:
        self.store = store
        #: The gateway's event loop (known from the first hook call on it).
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.get_ident()

    def run(self, work: Coroutine[Any, Any, Any]) -> Any:
        """``work``'s result, from a synchronous hook."""
        if threading.get_ident() != self.thread and self.loop is not None:
            return asyncio.run_coroutine_threadsafe(work, self.loop).result(STORE_WAIT)
        # On the loop: only a coroutine that never waits can finish here.
        try:
            work.send(None)
        except StopIteration as done:
            return done.value
        work.close()
        raise RuntimeError("the store must be waited for (Redis): run this hook with "
                           "\"run_in_thread\": true, or make it async and await "
                           "TykGateway.get_data_async / store_data_async")


_current: contextvars.ContextVar[PluginHost] = contextvars.ContextVar("fastgate_plugin_host")


def current_host() -> contextvars.ContextVar[PluginHost]:
    """The context variable holding the host of the hook being run."""
    return _current


def _host() -> PluginHost:
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("TykGateway is available to hooks the gateway runs") from None


class TykGateway:
    """Tyk's ``gateway.TykGateway``: static functions for plugins."""

    @staticmethod
    def log(message: object, level: str = "info") -> None:
        """Log ``message`` at Tyk's ``level`` (debug, info, warning, error, fatal)."""
        log.log(_LEVELS.get(str(level).lower(), logging.INFO), "%s", message)

    @staticmethod
    def log_error(message: object) -> None:
        """Log ``message`` as an error."""
        log.error("%s", message)

    @staticmethod
    def store_data(key: str, value: str, ttl: int = 0) -> None:
        """Keep ``value`` under ``key`` for ``ttl`` seconds (0: no expiry)."""
        host = _host()
        host.run(host.store.set_record(DATA_TABLE, str(key), str(value).encode("utf-8"),
                                       max(0, int(ttl))))

    @staticmethod
    def get_data(key: str) -> str:
        """The value kept under ``key`` ("" for none)."""
        host = _host()
        value = host.run(host.store.get_record(DATA_TABLE, str(key)))
        return value.decode("utf-8", "replace") if value is not None else ""

    @staticmethod
    async def store_data_async(key: str, value: str, ttl: int = 0) -> None:
        """``store_data`` for an async hook."""
        await _host().store.set_record(DATA_TABLE, str(key), str(value).encode("utf-8"),
                                       max(0, int(ttl)))

    @staticmethod
    async def get_data_async(key: str) -> str:
        """``get_data`` for an async hook."""
        value = await _host().store.get_record(DATA_TABLE, str(key))
        return value.decode("utf-8", "replace") if value is not None else ""

    @staticmethod
    def trigger_event(event_name: str, payload: str) -> None:
        """Tyk fires a gateway event; fastgate logs it."""
        log.info("plugin event %s: %s", event_name, payload)
