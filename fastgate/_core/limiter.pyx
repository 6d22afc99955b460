"""Local rate limits (GCRA) and quotas; the contract is in limiter.pyi.

Theory of operation
-------------------
Rate limits.  GCRA with emission interval T = per / rate: a request arriving at
t is allowed when its theoretical arrival time, pushed back by T, lies no more
than ``per`` after t; that is a token bucket of capacity ``rate`` refilled at
``rate / per`` tokens a second, so exactly ``rate`` requests pass at once after
``per`` seconds idle and then one every T.  Instead of the TAT in seconds, each
key stores it relative to the last time it was updated, counted in emission
intervals:

    TAT = stamp + level * T        level = requests still "owed" (0 when full)

At ``now`` (never before ``stamp``: time does not run backwards for a bucket):

    level' = max(0, level - (now - stamp) * rate / per)
    allowed      iff  level' + 1 <= cap,   cap = max(rate, 1)
    then         level = level' + 1, stamp = now
    remaining    = floor(cap - level)                      (0 when refused)
    reset_after  = level * per / rate                      (until level is 0)
    retry_after  = (level' + 1 - cap) * per / rate         (0.0 when allowed)

A refused request changes nothing, so refusals cost a client nothing.  Counting
in emission intervals keeps a burst exact: level goes 0, 1, 2, ... in exact
integer steps, whereas a TAT in seconds accumulates the rounding of
t + T + T + ... and refuses the last request of a burst for about a third of
the small integer rates (5 per second at t = 1.7e9, or 3 per second at t =
1000, admit one less).  ``cap = max(rate, 1)``: a rate below one request
per ``per`` still admits one request every T (a bucket of capacity 0.5 would
admit nothing, ever).  Decisions are exact in the requests counted; time enters
only through ``now - stamp``, as exactly as the caller's clock gives it.

Quotas.  A period opens at the first request (Tyk creates the quota key with a
TTL of renewal_rate at first use) and ends at renews_at = start + renewal_rate;
the first request at or after renews_at opens the next one.  ``used`` counts
the allowed requests of the period; the request is allowed iff used <
quota_max, so quota_max pass and a refused one does not count; remaining =
quota_max - used is computed against the quota_max of each call (Tyk: a
changed quota_max applies to the live period at once).

Memory.  At most max_keys entries.  Inserting one more into a full table
frees max_keys // 16 slots (at least one), so sweeps are rare: first entries
whose state no longer matters (bucket full again, quota period over), taken in
insertion order, where idle keys gather, so the scan usually stops early; when
there are too few of those, the live entries that matter least (buckets that
would be full soonest, quota periods that started first; ties in insertion
order).  Forgetting a live entry forgives its key: a full bucket or quota.

Floats: every expression has the same shape and order in the twin
(limiter_py.py), and none has the form a * b + c, so a compiler cannot fuse
one into an FMA: both return bit-identical results.
"""

from cpython.long cimport PyLong_FromDouble, PyLong_FromLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.number cimport PyNumber_Index
from libc.math cimport INFINITY, floor, isfinite

__all__ = ["QuotaCounter", "RateLimiter"]

#: Methods with a speed-up floor in bench/micro (classes themselves have none).
BENCHMARKED = ("RateLimiter.hit", "QuotaCounter.hit")

cdef double INF = INFINITY
cdef double LLONG_LIMIT = 9223372036854775808.0  # 2**63


cdef inline object _whole(double count):
    # floor(count) as a Python int (math.floor's value), 0 below 1.
    if count < 1.0:
        return 0
    if count < LLONG_LIMIT:
        return PyLong_FromLongLong(<long long>count)
    return PyLong_FromDouble(floor(count))


cdef inline long long _long_long(object value) except? -1:
    # Integers only: Cython's own coercion would truncate a float.
    if type(value) is not int:
        value = PyNumber_Index(value)
    return value


cdef Py_ssize_t _max_keys(object value) except -1:
    cdef Py_ssize_t number = PyNumber_Index(value)
    if number < 1:
        raise ValueError("max_keys must be at least 1")
    return number


cdef inline Py_ssize_t _low_water(Py_ssize_t max_keys) noexcept:
    cdef Py_ssize_t slack = max_keys // 16
    return max_keys - (slack if slack > 1 else 1)


cdef double _kth_smallest(double *values, Py_ssize_t n, Py_ssize_t k) noexcept nogil:
    # The k-th smallest (from 0) of values[:n], which it reorders: Wirth's
    # selection, expected O(n), with a median-of-three pivot.  The twin sorts;
    # both find the same value, and the victims are chosen by value.
    cdef Py_ssize_t lo = 0, hi = n - 1, i, j
    cdef double pivot, a, b, c, swap
    while lo < hi:
        a = values[lo]
        b = values[lo + (hi - lo) // 2]
        c = values[hi]
        if a > b:
            a, b = b, a
        pivot = b if b < c else (c if c > a else a)
        i = lo
        j = hi
        while i <= j:
            while values[i] < pivot:
                i += 1
            while pivot < values[j]:
                j -= 1
            if i <= j:
                swap = values[i]
                values[i] = values[j]
                values[j] = swap
                i += 1
                j -= 1
        if j < k:
            lo = i
        if k < i:
            hi = j
    return values[k]


cdef inline int _check_rate(double rate, double per, double now) except -1:
    if rate != rate or per != per or per == INF or not isfinite(now):
        raise ValueError("rate and per must not be NaN, per and now must be finite")
    return 0


cdef class _Bucket:
    cdef double level
    cdef double stamp
    cdef double full_at


cdef class RateLimiter:
    cdef dict _buckets
    cdef Py_ssize_t _max_keys
    cdef Py_ssize_t _low_water

    def __init__(self, max_keys=1_000_000):
        self._max_keys = _max_keys(max_keys)
        self._low_water = _low_water(self._max_keys)
        self._buckets = {}

    def hit(self, key, double rate, double per, double now):
        cdef _Bucket bucket
        cdef object found
        cdef double cap, level, stamp, reset_after
        _check_rate(rate, per, now)
        if rate <= 0.0 or per <= 0.0 or rate == INF:
            return (True, -1, 0.0, 0.0)
        cap = rate if rate > 1.0 else 1.0
        found = self._buckets.get(key)
        if found is None:
            level = 0.0
            stamp = now
        else:
            bucket = <_Bucket>found
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
        if found is None:
            if len(self._buckets) >= self._max_keys:
                self._evict(now)
            bucket = _Bucket.__new__(_Bucket)
            self._buckets[key] = bucket
        bucket.level = level
        bucket.stamp = stamp
        bucket.full_at = stamp + reset_after
        return (True, _whole(cap - level), reset_after, 0.0)

    def peek(self, key, double rate, double per, double now):
        cdef _Bucket bucket
        cdef object found
        cdef double cap, level
        _check_rate(rate, per, now)
        if rate <= 0.0 or per <= 0.0 or rate == INF:
            return (-1, 0.0)
        cap = rate if rate > 1.0 else 1.0
        found = self._buckets.get(key)
        if found is None:
            return (_whole(cap), 0.0)
        bucket = <_Bucket>found
        level = bucket.level
        if now > bucket.stamp:
            level = level - (now - bucket.stamp) * rate / per
            if level < 0.0:
                level = 0.0
        return (_whole(cap - level), level * per / rate)

    def forget(self, key):
        self._buckets.pop(key, None)

    def __len__(self):
        return len(self._buckets)

    cdef int _evict(self, double now) except -1:
        # The twin's algorithm (see its comments), with a selection in C
        # instead of a sort: the same victims, in O(n).
        cdef dict buckets = self._buckets
        cdef Py_ssize_t more = len(buckets) - self._low_water
        cdef Py_ssize_t count = 0
        cdef double *live = <double *>PyMem_Malloc(len(buckets) * sizeof(double))
        cdef list stale = []
        cdef list victims = []
        cdef double cut = 0.0
        cdef _Bucket bucket
        if live is NULL:
            raise MemoryError()
        try:
            for key, value in buckets.items():
                bucket = <_Bucket>value
                if bucket.full_at <= now:
                    stale.append(key)
                    if len(stale) == more:
                        break
                else:
                    live[count] = bucket.full_at
                    count += 1
            for key in stale:
                del buckets[key]
            more -= len(stale)
            if more <= 0:
                return 0
            cut = _kth_smallest(live, count, more - 1)
        finally:
            PyMem_Free(live)
        for key, value in buckets.items():
            if (<_Bucket>value).full_at < cut:
                victims.append(key)
        for key, value in buckets.items():
            if len(victims) >= more:
                break
            if (<_Bucket>value).full_at == cut:
                victims.append(key)
        for key in victims:
            del buckets[key]
        return 0


cdef class _Period:
    cdef long long used
    cdef double started
    cdef double renews_at


cdef class QuotaCounter:
    cdef dict _periods
    cdef Py_ssize_t _max_keys
    cdef Py_ssize_t _low_water

    def __init__(self, max_keys=1_000_000):
        self._max_keys = _max_keys(max_keys)
        self._low_water = _low_water(self._max_keys)
        self._periods = {}

    def hit(self, key, quota_max, double renewal_rate, double now):
        cdef _Period period
        cdef object found
        cdef long long limit = _long_long(quota_max)
        cdef long long used
        cdef double renews_at
        if renewal_rate != renewal_rate or not isfinite(now):
            raise ValueError("renewal_rate must not be NaN, now must be finite")
        if limit <= 0:
            return (True, -1, 0.0)
        found = self._periods.get(key)
        if found is None or 0.0 < (<_Period>found).renews_at <= now:
            renews_at = now + renewal_rate if 0.0 < renewal_rate < INF else 0.0
            if found is None:
                if len(self._periods) >= self._max_keys:
                    self._evict(now)
                period = _Period.__new__(_Period)
                self._periods[key] = period
            else:
                period = <_Period>found
            period.used = 1
            period.started = now
            period.renews_at = renews_at
            return (True, limit - 1, renews_at)
        period = <_Period>found
        used = period.used
        if used >= limit:
            return (False, 0, period.renews_at)
        period.used = used + 1
        return (True, limit - used - 1, period.renews_at)

    def state(self, key, quota_max, double now):
        cdef _Period period
        cdef object found
        cdef long long limit = _long_long(quota_max)
        if not isfinite(now):
            raise ValueError("now must be finite")
        if limit <= 0:
            return (-1, 0.0)
        found = self._periods.get(key)
        if found is None or 0.0 < (<_Period>found).renews_at <= now:
            return (limit, 0.0)
        period = <_Period>found
        return (limit - period.used if period.used < limit else 0, period.renews_at)

    def reset(self, key):
        self._periods.pop(key, None)

    def __len__(self):
        return len(self._periods)

    cdef int _evict(self, double now) except -1:
        cdef dict periods = self._periods
        cdef Py_ssize_t more = len(periods) - self._low_water
        cdef Py_ssize_t count = 0
        cdef double *live = <double *>PyMem_Malloc(len(periods) * sizeof(double))
        cdef list stale = []
        cdef list victims = []
        cdef double cut = 0.0
        cdef _Period period
        if live is NULL:
            raise MemoryError()
        try:
            for key, value in periods.items():
                period = <_Period>value
                if 0.0 < period.renews_at <= now:
                    stale.append(key)
                    if len(stale) == more:
                        break
                else:
                    live[count] = period.started
                    count += 1
            for key in stale:
                del periods[key]
            more -= len(stale)
            if more <= 0:
                return 0
            cut = _kth_smallest(live, count, more - 1)
        finally:
            PyMem_Free(live)
        for key, value in periods.items():
            if (<_Period>value).started < cut:
                victims.append(key)
        for key, value in periods.items():
            if len(victims) >= more:
                break
            if (<_Period>value).started == cut:
                victims.append(key)
        for key in victims:
            del periods[key]
        return 0
