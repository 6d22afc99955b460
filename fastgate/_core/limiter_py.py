"""Pure-Python twin of fastgate._core.limiter (same interface, see limiter.pyi).

The theory of operation is at the top of ``limiter.pyx``.  This twin performs
the same IEEE double operations in the same order as the compiled module, so the
two return bit-identical floats: arguments are converted as Cython converts
them (``float`` arguments through ``__float__``/``__index__``, integer arguments
through ``__index__`` only, C ``long long`` range), and every expression below
has the same shape and evaluation order as its twin in ``limiter.pyx``.
"""

from __future__ import annotations

import math
from operator import index as _index

__all__ = ["QuotaCounter", "RateLimiter"]

#: Methods with a speed-up floor in bench/micro (classes themselves have none).
BENCHMARKED = ("RateLimiter.hit", "QuotaCounter.hit")

_INF = math.inf
_LLONG_MIN = -(2**63)
_LLONG_MAX = 2**63 - 1
_SSIZE_MAX = 2**63 - 1
_isfinite = math.isfinite
_floor = math.floor
_ldexp = math.ldexp


def _double(value: object) -> float:
    # Cython's conversion to a C double: PyFloat_AsDouble, which math.ldexp
    # applies to its first argument (so a str or None raises TypeError, an int
    # too large for a double OverflowError).
    if type(value) is float:
        return value
    return _ldexp(value, 0)  # type: ignore[arg-type]


def _long_long(value: object) -> int:
    # Integers only (a float is refused, not truncated), within C long long.
    number = value if type(value) is int else _index(value)  # type: ignore[arg-type]
    if not _LLONG_MIN <= number <= _LLONG_MAX:
        raise OverflowError("Python int too large to convert to C long long")
    return number


def _max_keys(value: object) -> int:
    number = _index(value)  # type: ignore[arg-type]
    if number > _SSIZE_MAX or number < -_SSIZE_MAX - 1:
        raise OverflowError("Python int too large to convert to C ssize_t")
    if number < 1:
        raise ValueError("max_keys must be at least 1")
    return number


def _low_water(max_keys: int) -> int:
    # A sweep brings the table down to this size at most, so the next one is
    # at least max_keys // 16 insertions away: eviction stays O(1) amortised.
    return max_keys - max(1, max_keys // 16)


def _whole(count: float) -> int:
    # floor(count) as an int, 0 below 1 (a rate lowered on a live key can
    # leave it more in debt than its new capacity).
    if count < 1.0:
        return 0
    return _floor(count)


def _check_rate(rate: float, per: float, now: float) -> None:
    if rate != rate or per != per or per == _INF or not _isfinite(now):
        raise ValueError("rate and per must not be NaN, per and now must be finite")


class _Bucket:
    __slots__ = ("full_at", "level", "stamp")

    def __init__(self, level: float, stamp: float, full_at: float) -> None:
        self.level = level
        self.stamp = stamp
        self.full_at = full_at


class RateLimiter:
    """Local (in-process) rate limits: GCRA; see limiter.pyi."""

    __slots__ = ("_buckets", "_low_water", "_max_keys")

    def __init__(self, max_keys: int = 1_000_000) -> None:
        self._max_keys = _max_keys(max_keys)
        self._low_water = _low_water(self._max_keys)
        self._buckets: dict[str, _Bucket] = {}

    def hit(self, key: str, rate: float, per: float, now: float) -> tuple[bool, int, float, float]:
        """(allowed, remaining, reset_after, retry_after) for one request at ``now``."""
        rate = _double(rate)
        per = _double(per)
        now = _double(now)
        _check_rate(rate, per, now)
        if rate <= 0.0 or per <= 0.0 or rate == _INF:
            return (True, -1, 0.0, 0.0)
        cap = rate if rate > 1.0 else 1.0
        bucket = self._buckets.get(key)
        if bucket is None:
            level = 0.0
            stamp = now
        else:
            level = bucket.level
            stamp = bucket.stamp
            if now > stamp:
                level = level - (now - stamp) * rate / per
                if level < 0.0:
                    level = 0.0
                stamp = now
        if level + 1.0 > cap:
            return (False, 0, level * per / rate, (level + 1.0 - cap) * per / rate)
        level = level + 1.0
        reset_after = level * per / rate
        if bucket is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            self._buckets[key] = _Bucket(level, stamp, stamp + reset_after)
        else:
            bucket.level = level
            bucket.stamp = stamp
            bucket.full_at = stamp + reset_after
        return (True, _whole(cap - level), reset_after, 0.0)

    def peek(self, key: str, rate: float, per: float, now: float) -> tuple[int, float]:
        """(remaining, reset_after) without taking a request."""
        rate = _double(rate)
        per = _double(per)
        now = _double(now)
        _check_rate(rate, per, now)
        if rate <= 0.0 or per <= 0.0 or rate == _INF:
            return (-1, 0.0)
        cap = rate if rate > 1.0 else 1.0
        bucket = self._buckets.get(key)
        if bucket is None:
            return (_whole(cap), 0.0)
        level = bucket.level
        if now > bucket.stamp:
            level = level - (now - bucket.stamp) * rate / per
            if level < 0.0:
                level = 0.0
        return (_whole(cap - level), level * per / rate)

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (its next request finds it full)."""
        self._buckets.pop(key, None)

    def __len__(self) -> int:
        return len(self._buckets)

    def _evict(self, now: float) -> None:
        # Buckets already full again (irrelevant: forgetting one changes
        # nothing), in insertion order, where the idle ones gather; when there
        # are too few of them, the live ones that would be full soonest
        # (forgetting them forgives the least).  Down to low water.
        buckets = self._buckets
        more = len(buckets) - self._low_water
        live: list[float] = []
        stale: list[str] = []
        for key, bucket in buckets.items():
            if bucket.full_at <= now:
                stale.append(key)
                if len(stale) == more:
                    break
            else:
                live.append(bucket.full_at)
        for key in stale:
            del buckets[key]
        more -= len(stale)
        if more <= 0:
            return
        live.sort()
        cut = live[more - 1]
        victims: list[str] = []
        for key, bucket in buckets.items():
            if bucket.full_at < cut:
                victims.append(key)
        for key, bucket in buckets.items():
            if len(victims) >= more:
                break
            if bucket.full_at == cut:
                victims.append(key)
        for key in victims:
            del buckets[key]


class _Period:
    __slots__ = ("renews_at", "started", "used")

    def __init__(self, used: int, started: float, renews_at: float) -> None:
        self.used = used
        self.started = started
        self.renews_at = renews_at


class QuotaCounter:
    """Local quotas; see limiter.pyi."""

    __slots__ = ("_low_water", "_max_keys", "_periods")

    def __init__(self, max_keys: int = 1_000_000) -> None:
        self._max_keys = _max_keys(max_keys)
        self._low_water = _low_water(self._max_keys)
        self._periods: dict[str, _Period] = {}

    def hit(
        self, key: str, quota_max: int, renewal_rate: float, now: float
    ) -> tuple[bool, int, float]:
        """Count one request for ``key`` at ``now``: (allowed, remaining, renews_at)."""
        renewal_rate = _double(renewal_rate)
        now = _double(now)
        quota_max = _long_long(quota_max)
        if renewal_rate != renewal_rate or not _isfinite(now):
            raise ValueError("renewal_rate must not be NaN, now must be finite")
        if quota_max <= 0:
            return (True, -1, 0.0)
        period = self._periods.get(key)
        if period is None or 0.0 < period.renews_at <= now:
            # This request opens a period (Tyk creates the quota key, with a
            # TTL of renewal_rate, at the first request after the last expired).
            renews_at = now + renewal_rate if 0.0 < renewal_rate < _INF else 0.0
            if period is None:
                if len(self._periods) >= self._max_keys:
                    self._evict(now)
                self._periods[key] = _Period(1, now, renews_at)
            else:
                period.used = 1
                period.started = now
                period.renews_at = renews_at
            return (True, quota_max - 1, renews_at)
        used = period.used
        if used >= quota_max:
            return (False, 0, period.renews_at)
        period.used = used + 1
        return (True, quota_max - used - 1, period.renews_at)

    def state(self, key: str, quota_max: int, now: float) -> tuple[int, float]:
        """(remaining, renews_at) without counting."""
        now = _double(now)
        quota_max = _long_long(quota_max)
        if not _isfinite(now):
            raise ValueError("now must be finite")
        if quota_max <= 0:
            return (-1, 0.0)
        period = self._periods.get(key)
        if period is None or 0.0 < period.renews_at <= now:
            return (quota_max, 0.0)
        used = period.used
        return (quota_max - used if used < quota_max else 0, period.renews_at)

    def reset(self, key: str) -> None:
        """Drop ``key``'s period: its next request opens a new one with a full quota."""
        self._periods.pop(key, None)

    def __len__(self) -> int:
        return len(self._periods)

    def _evict(self, now: float) -> None:
        # Periods already over (irrelevant), in insertion order; when there
        # are too few of them, the periods that started first.  Down to low water.
        periods = self._periods
        more = len(periods) - self._low_water
        live: list[float] = []
        stale: list[str] = []
        for key, period in periods.items():
            if 0.0 < period.renews_at <= now:
                stale.append(key)
                if len(stale) == more:
                    break
            else:
                live.append(period.started)
        for key in stale:
            del periods[key]
        more -= len(stale)
        if more <= 0:
            return
        live.sort()
        cut = live[more - 1]
        victims: list[str] = []
        for key, period in periods.items():
            if period.started < cut:
                victims.append(key)
        for key, period in periods.items():
            if len(victims) >= more:
                break
            if period.started == cut:
                victims.append(key)
        for key in victims:
            del periods[key]
