"""Rate limits and quotas.

Theory of operation
-------------------
* **Rate limits** are GCRA (a token bucket with capacity ``rate`` refilled
  continuously at ``rate/per`` per second): a refused request consumes
  nothing, so a client hammering over its limit still gets its full share
  (Tyk's rolling limiter counts refusals, and clients under load never
  recover).  Two modes (gateway config ``rate_limiter``):

  - ``local``: buckets in worker memory (``fastgate._core.limiter``), no I/O.
    With the redis store each worker takes ``rate / N``, N being the workers
    alive on every node (heartbeats in the store, every few seconds), so the
    total across nodes is the configured rate when traffic spreads evenly —
    like Tyk's DRL, approximate when it does not.
  - ``redis``: one atomic Lua script per decision on the Redis server's
    clock: exact across every node and worker.  The store batches the
    decisions of one event-loop iteration into one pipeline.

* **Quotas**: ``quota_max`` requests per ``quota_renewal_rate`` seconds; the
  request numbered ``quota_max + 1`` is the first refused (403 "Quota
  exceeded"); one atomic script decides and renews (the memory store the same
  in process).  ``quota_max <= 0`` is unlimited; a renewal rate <= 0 never
  renews.

* Limits come from the effective session (policies applied): the API's entry
  in ``access_rights`` when it carries a ``limit`` (``per_api`` policies; its
  counters are then scoped by ``allowance_scope``), else the session's own
  ``rate``/``per``/``quota_*``.  The API-wide ``global_rate_limit`` applies to
  every caller, keyless APIs included (429 "API Rate Limit Exceeded").

* Headers: 429 and the quota 403 carry ``Retry-After`` (seconds) and
  ``X-RateLimit-Limit/Remaining/Reset`` (Reset: unix time) for the limit that
  refused; proxied responses carry the quota's values (Tyk's default) or,
  with ``rate_limit_response_headers: "rate_limits"``, the rate's.

* Leases (gateway config ``limit_leases``, ``rate_limiter: "redis"`` only):
  a hot key's decisions are spent from a block of its rate and quota leased
  in one atomic script, synchronously, still exact; slow keys are decided per
  request as above (:mod:`fastgate.limits.leases`, docs/leases.md).  With the
  memory store it is a no-op.

* Store trouble (Redis down or slow): the decision fails within the store's
  timeout and the request gets 503 — or passes, with ``limits_fail_open``.
  A decision is never retried, so it is never counted twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from fastgate._core import limiter as core_limiter
from fastgate.limits.leases import Leases
from fastgate.storage.base import StoreError, run_now

if TYPE_CHECKING:
    from fastgate.config import GatewayConfig
    from fastgate.storage.base import Store

__all__ = ["HEARTBEAT", "Decision", "Limiter", "Limits"]

log = logging.getLogger("fastgate.limits")

#: Seconds between worker heartbeats in local mode (the count of workers
#: sharing a key's rate follows within about this long).
HEARTBEAT = 5.0
_INF = float("inf")

Decision = tuple[bool, int, float, float]  # allowed, remaining, reset_after, retry_after
#: Decision + (quota_allowed, quota_remaining, renews_at)
Limits = tuple[bool, int, float, float, bool, int, float]


class Limiter:
    """Where a worker's rate and quota decisions are made (one per gateway)."""

    def __init__(self, config: GatewayConfig, store: Store) -> None:
        self.store = store
        self.local = config.rate_limiter == "local"
        self.rates = core_limiter.RateLimiter()
        #: Workers sharing each key's rate in local mode (all nodes).
        self.share = 1
        self.fail_open = config.limits_fail_open
        #: The store's coroutines complete without suspending (memory store).
        self.inline = not self.store.shared
        #: Rates decided in worker memory, split across the workers sharing a
        #: redis store ("local" mode); with the memory store the store's own
        #: in-process limiter decides (the same thing, one process).
        self.split = self.local and self.store.shared
        #: The store's callback form of ``limits`` (the Redis store's): no
        #: Task and no future chain per request.
        self.limits_with = None if self.split else getattr(self.store, "limits_with", None)
        self.limits_command = None if self.split else getattr(self.store, "limits_command",
                                                                None)
        #: The store's synchronous ``limits`` (the memory store's): no
        #: coroutine per request.
        self.decide_limits = getattr(self.store, "decide_limits", None) \
            if self.inline and not self.split else None
        self.worker_id = uuid.uuid4().hex
        self._heartbeat: asyncio.Task[None] | None = None
        leases = config.limit_leases
        #: Leased blocks (``limit_leases``), made at :meth:`start`; only with
        #: the redis limiter on a store that leases (not the memory store).
        self.leases: Leases | None = None
        self._lease_config = leases if (
            leases.enabled and not self.local and self.store.shared
            and hasattr(self.store, "lease_with")) else None
        if self._lease_config is not None:
            # Every decision goes through limits() (the leases' entry point).
            self.limits_with = None
            self.limits_command = None
            self.decide_limits = None

    def start(self) -> None:
        """Start the heartbeat (local mode) or the leases (``limit_leases``)."""
        if self.split:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        lease_config = self._lease_config
        if lease_config is not None and self.leases is None:
            loop = asyncio.get_running_loop()
            store: Any = self.store

            def call_at(when: float, callback: Any, *args: Any) -> None:
                loop.call_later(max(0.0, when - time.monotonic()), callback, *args)

            def limits_with(key: str, rate: float, per: float, quota_max: int, renewal: int,
                            done: Any) -> None:
                store.limits_with(key, rate, per, quota_max, renewal, done)

            self.leases = Leases(
                lifetime=lease_config.lifetime_ms / 1000.0, max_block=lease_config.max_block,
                clock=time.monotonic, call_at=call_at, new_future=loop.create_future,
                lease_with=store.lease_with, limits_with=limits_with,
                lease_return=store.lease_return)
            # The request path calls the leases straight away.
            self.limits = self.leases.limits  # type: ignore[method-assign]

    def stop(self) -> None:
        """Stop the heartbeat; give back the unspent quota of every leased
        block (queued at once: the store's close waits for them)."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        if self.leases is not None:
            self.leases.give_back_all()

    async def close(self) -> None:
        """:meth:`stop`, then wait (within the store's timeout) until the
        give-backs are answered.  Call before closing the store."""
        self.stop()
        if self.leases is not None and self.leases.returns:
            await asyncio.gather(*self.leases.returns, return_exceptions=True)

    async def _beat(self) -> None:
        while True:
            try:
                await self.store.register_worker(self.worker_id, HEARTBEAT * 3)
                self.share = max(1, await self.store.count_workers())
            except StoreError as exc:
                log.warning("worker heartbeat failed (rate share stays %d): %s",
                            self.share, exc)
            await asyncio.sleep(HEARTBEAT)

    def rate(self, key: str, rate: float, per: float) -> Decision | Awaitable[Decision]:
        """A rate-limit decision alone (the API-wide limit)."""
        if self.split:
            return self.rates.hit(key, rate / self.share, per, time.monotonic())
        leases = self.leases
        if leases is not None:
            if not (0.0 < rate < _INF and 0.0 < per < _INF):
                return (True, -1, 0.0, 0.0)
            decision = leases.limits(key, rate, per, 0, 0)
            if isinstance(decision, tuple):
                return decision[:4]
            return _rate_part(decision)
        return self._store_call(self.store.rate_limit(key, rate, per))

    def limits(self, key: str, rate: float, per: float, quota_max: int,
               renewal: int) -> Limits | Awaitable[Limits]:
        """A request's rate limit and quota together."""
        decide = self.decide_limits
        if decide is not None:
            decision: Limits = decide(key, rate, per, quota_max, renewal)
            return decision
        if self.split:
            return self._split_limits(key, rate, per, quota_max, renewal)
        return self._store_call(self.store.limits(key, rate, per, quota_max, renewal))

    def _split_limits(self, key: str, rate: float, per: float, quota_max: int,
                      renewal: int) -> Limits | Awaitable[Limits]:
        # Local rate, shared quota: the rate is decided first, in memory; a
        # request then refused by its quota has used a local token (local
        # mode is approximate by nature).
        allowed, remaining, reset_after, retry_after = (
            self.rates.hit(key, rate / self.share, per, time.monotonic())
            if rate > 0 and per > 0 else (True, -1, 0.0, 0.0))
        if not allowed or quota_max <= 0:
            return (allowed, remaining, reset_after, retry_after, True, -1, 0.0)
        return self._with_quota((allowed, remaining, reset_after, retry_after), key,
                                quota_max, renewal)

    async def _with_quota(self, rate: Decision, key: str, quota_max: int,
                          renewal: int) -> Limits:
        quota_allowed, quota_remaining, renews_at = await self.store.quota(key, quota_max,
                                                                           renewal)
        return (*rate, quota_allowed, quota_remaining, renews_at)

    def _store_call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return run_now(coro) if self.inline else coro


async def _rate_part(pending: Awaitable[Limits]) -> Decision:
    allowed, remaining, reset_after, retry_after, *_quota = await pending
    return allowed, remaining, reset_after, retry_after
