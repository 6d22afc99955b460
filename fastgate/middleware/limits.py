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

* Store trouble (Redis down or slow): the decision fails within the store's
  timeout and the request gets 503 — or passes, with ``limits_fail_open``.
  A decision is never retried, so it is never counted twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Coroutine
from typing import TYPE_CHECKING, Any

from fastgate._core import limiter as core_limiter
from fastgate.middleware.sessions import CachedSession, run_now
from fastgate.server.responses import error_response, json_response
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.server.gateway import Gateway

log = logging.getLogger("fastgate.limits")

RATE_EXCEEDED = "Rate Limit Exceeded"
API_RATE_EXCEEDED = "API Rate Limit Exceeded"
QUOTA_EXCEEDED = "Quota exceeded"
STORE_UNAVAILABLE = error_response(503, "Rate limit and quota store unavailable")

#: Seconds between worker heartbeats in local mode (the count of workers
#: sharing a key's rate follows within about this long).
HEARTBEAT = 5.0

Decision = tuple[bool, int, float, float]  # allowed, remaining, reset_after, retry_after
#: Decision + (quota_allowed, quota_remaining, renews_at)
Limits = tuple[bool, int, float, float, bool, int, float]


class Limiter:
    """Where a worker's rate and quota decisions are made (one per gateway)."""

    def __init__(self, gateway: Gateway) -> None:
        config = gateway.config
        self.store = gateway.store
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
        self.worker_id = uuid.uuid4().hex
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.split:
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()

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
        return self._store_call(self.store.rate_limit(key, rate, per))

    def limits(self, key: str, rate: float, per: float, quota_max: int,
               renewal: int) -> Limits | Awaitable[Limits]:
        """A request's rate limit and quota together."""
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


#: Float noise in computed times (per/rate is rarely an exact binary
#: fraction): 0.5000000000000004 s must not become a 1 s Retry-After.
_EPSILON = 1e-6


def _seconds(value: float) -> int:
    return math.ceil(value - _EPSILON)


def _limit_headers(limit: float, remaining: int, reset_at: float) -> bytes:
    return b"X-RateLimit-Limit: %d\r\nX-RateLimit-Remaining: %d\r\nX-RateLimit-Reset: %d\r\n" % (
        int(limit), max(remaining, 0), _seconds(reset_at))


def _refusal(status: int, message: str, limit: float, remaining: int, reset_at: float,
             retry_after: float) -> bytes:
    headers = (
        (b"Retry-After", b"%d" % max(1, _seconds(retry_after))),
        (b"X-RateLimit-Limit", b"%d" % int(limit)),
        (b"X-RateLimit-Remaining", b"%d" % max(remaining, 0)),
        (b"X-RateLimit-Reset", b"%d" % _seconds(reset_at)),
    )
    return json_response(status, {"error": message}, extra_headers=headers)


def limits_for(session: dict[str, Any], api_id: str) -> tuple[float, float, int, int, str]:
    """``(rate, per, quota_max, quota_renewal_rate, scope)`` of ``api_id`` for an
    effective session (policies applied)."""
    access = (session.get("access_rights") or {}).get(api_id)
    if isinstance(access, dict):
        limit = access.get("limit")
        if isinstance(limit, dict) and any(limit.get(f) for f in ("rate", "per", "quota_max")):
            return (float(limit.get("rate") or 0), float(limit.get("per") or 0),
                    int(limit.get("quota_max") or 0), int(limit.get("quota_renewal_rate") or 0),
                    str(access.get("allowance_scope") or api_id))
    return (float(session.get("rate") or 0), float(session.get("per") or 0),
            int(session.get("quota_max") or 0), int(session.get("quota_renewal_rate") or 0),
            str(session.get("allowance_scope") or ""))


class SessionLimits:
    """The caller's rate limit, then its quota (Tyk's RateLimitAndQuotaCheck)."""

    name = "session_limits"

    def __init__(self, spec: ApiSpec, gateway: Gateway) -> None:
        self.api_id = spec.api_id
        self.limiter: Limiter = gateway.limiter
        self.quota_headers = gateway.config.rate_limit_response_headers == "quotas"

    def _limits(self, entry: CachedSession) -> tuple[float, float, int, int, str, bytes | None]:
        """This API's limits for the session, the store key of its counters
        and the Redis command deciding them — constant per identity, so worked
        out once and cached on the entry."""
        limits: tuple[float, float, int, int, str, bytes | None] | None = \
            entry.limits.get(self.api_id)
        if limits is None:
            rate, per, quota_max, renewal, scope = limits_for(entry.effective, self.api_id)
            # Per-API limits count apart from the key's own.
            key = entry.storage_key + "-" + scope if scope else entry.storage_key
            command = None
            if self.limiter.limits_command is not None:
                command = self.limiter.limits_command(key, rate, per, quota_max, renewal)
            limits = entry.limits[self.api_id] = (rate, per, quota_max, renewal, key, command)
        return limits

    def process(self, ex: Any) -> bytes | Awaitable[bytes | None] | None:
        entry: CachedSession = ex.session
        rate, per, quota_max, renewal, key, command = self._limits(entry)
        if not (rate > 0 and per > 0) and quota_max <= 0:
            return None
        limits_with = self.limiter.limits_with
        verdict: asyncio.Future[bytes | None]
        if limits_with is not None:
            # The Redis store calls back from the read that parsed its reply:
            # no Task, and one future (the chain's) per request.
            verdict = asyncio.get_running_loop().create_future()
            limits_with(key, rate, per, quota_max, renewal,
                        functools.partial(self._decided, verdict, ex, rate, quota_max), command)
            return verdict
        try:
            decision = self.limiter.limits(key, rate, per, quota_max, renewal)
        except StoreError as exc:
            return self._store_failed(exc)
        if isinstance(decision, tuple):
            return self._verdict(ex, decision, rate, quota_max)
        verdict = asyncio.get_running_loop().create_future()
        asyncio.ensure_future(decision).add_done_callback(
            lambda done: self._decided(verdict, ex, rate, quota_max,
                                       done.exception() or done.result()))
        return verdict

    def _decided(self, verdict: asyncio.Future[bytes | None], ex: Any, rate: float,
                 quota_max: int, decision: Any) -> None:
        if verdict.done():
            return
        if isinstance(decision, StoreError):
            verdict.set_result(self._store_failed(decision))
        elif isinstance(decision, BaseException):
            verdict.set_exception(decision)
        else:
            verdict.set_result(self._verdict(ex, decision, rate, quota_max))

    def _store_failed(self, exc: StoreError) -> bytes | None:
        log.warning("rate limit / quota decision failed: %s", exc)
        return None if self.limiter.fail_open else STORE_UNAVAILABLE

    def _verdict(self, ex: Any, decision: Limits, rate: float, quota_max: int) -> bytes | None:
        (allowed, remaining, reset_after, retry_after,
         quota_allowed, quota_remaining, renews_at) = decision
        now = time.time()
        if not allowed:
            return _refusal(429, RATE_EXCEEDED, rate, remaining, now + reset_after, retry_after)
        if not quota_allowed:
            wait = renews_at - now if renews_at > 0 else 0.0
            return _refusal(403, QUOTA_EXCEEDED, quota_max, 0, renews_at, wait)
        if quota_max > 0 and (self.quota_headers or remaining < 0):
            ex.response_headers = _limit_headers(quota_max, quota_remaining, renews_at)
        elif remaining >= 0:
            ex.response_headers = _limit_headers(rate, remaining, now + reset_after)
        return None


class GlobalRateLimit:
    """The API-wide ``global_rate_limit`` (Tyk's RateLimitForAPI), before auth."""

    name = "global_rate_limit"

    def __init__(self, spec: ApiSpec, gateway: Gateway) -> None:
        assert spec.global_rate_limit is not None
        self.rate, self.per = spec.global_rate_limit
        self.key = "apilimiter-" + spec.api_id
        self.limiter: Limiter = gateway.limiter

    def process(self, ex: Any) -> bytes | Awaitable[bytes | None] | None:
        decision = self.limiter.rate(self.key, self.rate, self.per)
        if isinstance(decision, tuple):
            return self._verdict(decision)
        return self._wait(decision)

    async def _wait(self, pending: Awaitable[Decision]) -> bytes | None:
        try:
            decision = await pending
        except StoreError as exc:
            log.warning("API rate limit decision failed: %s", exc)
            return None if self.limiter.fail_open else STORE_UNAVAILABLE
        return self._verdict(decision)

    def _verdict(self, decision: Decision) -> bytes | None:
        allowed, remaining, reset_after, retry_after = decision
        if allowed:
            return None
        return _refusal(429, API_RATE_EXCEEDED, self.rate, remaining,
                        time.time() + reset_after, retry_after)
