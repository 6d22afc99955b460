"""Rate-limit and quota middleware: the caller's limits (Tyk's
RateLimitAndQuotaCheck) and the API-wide ``global_rate_limit``
(RateLimitForAPI).  The decisions themselves are the limiter's
(:mod:`fastgate.limits`, where the theory of operation is); here they become
answers: 429 "Rate Limit Exceeded" / "API Rate Limit Exceeded", 403 "Quota
exceeded", both with ``Retry-After`` and ``X-RateLimit-*``, and the limit
headers of proxied responses.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

from fastgate.limits import Decision, Limiter, Limits
from fastgate.responses import error_response, json_response
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Request, Services
    from fastgate.session.cache import CachedSession

log = logging.getLogger("fastgate.limits")

RATE_EXCEEDED = "Rate Limit Exceeded"
API_RATE_EXCEEDED = "API Rate Limit Exceeded"
QUOTA_EXCEEDED = "Quota exceeded"
STORE_UNAVAILABLE = error_response(503, "Rate limit and quota store unavailable")
#: In ``CachedSession.limits``: the session has neither a rate limit nor a
#: quota for the API (its requests skip this step at once).
_UNLIMITED: Any = object()

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

    name: ClassVar[str] = "session_limits"

    def __init__(self, spec: ApiSpec, services: Services) -> None:
        self.api_id = spec.api_id
        self.limiter: Limiter = services.limiter
        self.quota_headers = services.config.rate_limit_response_headers == "quotas"
        #: The gateway's loop, taken on first use: asyncio.get_running_loop()
        #: costs a getpid() system call per call on CPython 3.11.
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _future(self) -> asyncio.Future[bytes | None]:
        return self._running_loop().create_future()

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

    def process(self, ex: Request) -> bytes | Awaitable[bytes | None] | None:
        entry: CachedSession = ex.session  # type: ignore[assignment]  # set by auth
        limits = entry.limits.get(self.api_id)
        if limits is None:
            limits = self._limits(entry)
        elif limits is _UNLIMITED:
            return None
        rate, per, quota_max, renewal, key, command = limits
        if not (rate > 0 and per > 0) and quota_max <= 0:
            entry.limits[self.api_id] = _UNLIMITED
            return None
        limits_with = self.limiter.limits_with
        verdict: asyncio.Future[bytes | None]
        if limits_with is not None:
            # The Redis store calls back from the read that parsed its reply:
            # no Task, and one future (the chain's) per request.
            verdict = self._future()
            limits_with(key, rate, per, quota_max, renewal,
                        functools.partial(self._decided, verdict, ex, rate, quota_max), command)
            return verdict
        try:
            decision = self.limiter.limits(key, rate, per, quota_max, renewal)
        except StoreError as exc:
            return self._store_failed(exc)
        if isinstance(decision, tuple):
            return self._verdict(ex, decision, rate, quota_max)
        verdict = self._future()
        asyncio.ensure_future(decision, loop=self._running_loop()).add_done_callback(
            lambda done: self._decided(verdict, ex, rate, quota_max,
                                       done.exception() or done.result()))
        return verdict

    def _decided(self, verdict: asyncio.Future[bytes | None], ex: Request, rate: float,
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

    def _verdict(self, ex: Request, decision: Limits, rate: float, quota_max: int) -> bytes | None:
        (allowed, remaining, reset_after, retry_after,
         quota_allowed, quota_remaining, renews_at) = decision
        now = time.time()
        if not allowed:
            return _refusal(429, RATE_EXCEEDED, rate, remaining, now + reset_after, retry_after)
        if not quota_allowed:
            wait = renews_at - now if renews_at > 0 else 0.0
            return _refusal(403, QUOTA_EXCEEDED, quota_max, 0, renews_at, wait)
        if quota_max > 0 and (self.quota_headers or remaining < 0):
            ex.response_headers += _limit_headers(quota_max, quota_remaining, renews_at)
        elif remaining >= 0:
            ex.response_headers += _limit_headers(rate, remaining, now + reset_after)
        return None


class GlobalRateLimit:
    """The API-wide ``global_rate_limit`` (Tyk's RateLimitForAPI), before auth."""

    name: ClassVar[str] = "global_rate_limit"

    def __init__(self, spec: ApiSpec, services: Services) -> None:
        assert spec.global_rate_limit is not None
        self.rate, self.per = spec.global_rate_limit
        self.key = "apilimiter-" + spec.api_id
        self.limiter: Limiter = services.limiter

    def process(self, ex: Request) -> bytes | Awaitable[bytes | None] | None:
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
