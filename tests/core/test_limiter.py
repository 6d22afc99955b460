"""limiter: GCRA rate limits and quotas, exact at chosen instants, both implementations.

Instants are chosen so the clock arithmetic itself is exact (dyadic fractions
of a second at 1.7e9, the scale of unix time) wherever a test asserts a float
with ``==``; the differential tests compare the two implementations bit for bit
on arbitrary floats.
"""

from __future__ import annotations

import ast
import inspect
import math
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastgate._core as core

UNIX = 1.7e9  # a unix time: one ulp is 2.4e-7 s, so every multiple of 2**-10 s is exact

SETTINGS = settings(
    max_examples=300,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def burst(limiter: Any, key: str, rate: float, per: float, now: float, n: int) -> list[bool]:
    return [limiter.hit(key, rate, per, now)[0] for _ in range(n)]


# -- rate limits -------------------------------------------------------------------------


@pytest.mark.parametrize("t0", [0.0, 1000.0, UNIX])
def test_five_per_second_burst_then_recovery(impl, t0: float) -> None:
    limiter = impl.limiter.RateLimiter()
    assert burst(limiter, "k", 5, 1, t0, 8) == [True] * 5 + [False] * 3
    # One more 0.2 s later, then nothing at that instant.
    assert burst(limiter, "k", 5, 1, t0 + 0.2, 3) == [True, False, False]
    # Full again one second after the last one: 5 of 8 once more.
    assert burst(limiter, "k", 5, 1, t0 + 1.2, 8) == [True] * 5 + [False] * 3


def test_burst_values(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    results = [limiter.hit("k", 5.0, 1.0, 1000.0) for _ in range(7)]
    assert results == [
        (True, 4, 0.2, 0.0),
        (True, 3, 0.4, 0.0),
        (True, 2, 0.6, 0.0),
        (True, 1, 0.8, 0.0),
        (True, 0, 1.0, 0.0),
        (False, 0, 1.0, 0.2),
        (False, 0, 1.0, 0.2),
    ]
    for allowed, remaining, reset_after, retry_after in results:
        assert type(allowed) is bool
        assert type(remaining) is int
        assert type(reset_after) is float
        assert type(retry_after) is float


# Emission intervals the clock holds exactly at UNIX (multiples of 2**-10 s).
@pytest.mark.parametrize(("rate", "per"), [(1, 1), (4, 1), (8, 2), (8, 0.5), (1024, 64), (3, 3)])
def test_exactly_rate_in_a_burst_then_one_every_interval(impl, rate: int, per: float) -> None:
    limiter = impl.limiter.RateLimiter()
    interval = per / rate
    assert burst(limiter, "k", rate, per, UNIX, rate + 3) == [True] * rate + [False] * 3
    for k in range(1, 200):
        now = UNIX + k * interval
        assert now - UNIX == k * interval
        assert limiter.hit("k", rate, per, now - 2**-10)[0] is False
        assert burst(limiter, "k", rate, per, now, 3) == [True, False, False]


@given(
    rate=st.integers(1, 2000),
    per=st.sampled_from([0.25, 0.5, 1.0, 2.0, 10.0, 60.0, 3600.0, 86400.0]),
    t0=st.sampled_from([0.0, 1000.0, 123456.0, UNIX]),
)
@SETTINGS
def test_burst_is_rate_from_idle_whatever_the_rate(impl, rate: int, per: float, t0: float) -> None:
    limiter = impl.limiter.RateLimiter()
    assert burst(limiter, "k", rate, per, t0, rate + 1) == [True] * rate + [False]
    # Idle for exactly `per`: a full burst again.
    assert burst(limiter, "k", rate, per, t0 + per, rate + 1) == [True] * rate + [False]
    assert limiter.peek("k", rate, per, t0 + 2 * per) == (rate, 0.0)


def test_exact_values_at_chosen_instants(impl) -> None:
    # 4 per 2 s: one request every 0.5 s, capacity 4.
    limiter = impl.limiter.RateLimiter()
    hit = limiter.hit
    assert limiter.peek("k", 4, 2, 100.0) == (4, 0.0)
    assert hit("k", 4, 2, 100.0) == (True, 3, 0.5, 0.0)
    assert hit("k", 4, 2, 100.0) == (True, 2, 1.0, 0.0)
    assert limiter.peek("k", 4, 2, 100.25) == (2, 0.75)
    assert hit("k", 4, 2, 100.25) == (True, 1, 1.25, 0.0)  # half a request drained
    assert hit("k", 4, 2, 100.25) == (True, 0, 1.75, 0.0)
    assert hit("k", 4, 2, 100.25) == (False, 0, 1.75, 0.25)
    assert hit("k", 4, 2, 100.375) == (False, 0, 1.625, 0.125)
    assert limiter.peek("k", 4, 2, 100.5) == (1, 1.5)
    assert hit("k", 4, 2, 100.5) == (True, 0, 2.0, 0.0)
    assert hit("k", 4, 2, 100.5) == (False, 0, 2.0, 0.5)
    assert limiter.peek("k", 4, 2, 101.5) == (2, 1.0)
    assert limiter.peek("k", 4, 2, 102.5) == (4, 0.0)
    assert limiter.peek("k", 4, 2, 1e6) == (4, 0.0)


@pytest.mark.parametrize("t0", [0.0, UNIX])
def test_refusals_consume_nothing(impl, t0: float) -> None:
    # Hammered 1000 times in the second after its burst: it recovers exactly
    # as a key that waited quietly.
    hammered = impl.limiter.RateLimiter()
    quiet = impl.limiter.RateLimiter()
    assert burst(hammered, "k", 4, 1, t0, 4) == [True] * 4
    assert burst(quiet, "k", 4, 1, t0, 4) == [True] * 4
    for i in range(1000):
        assert hammered.hit("k", 4, 1, t0 + i * 2**-14)[0] is False  # all before t0 + 0.25
    assert hammered.peek("k", 4, 1, t0 + 0.75) == quiet.peek("k", 4, 1, t0 + 0.75)
    assert [hammered.hit("k", 4, 1, t0 + 1.0) for _ in range(6)] == [
        quiet.hit("k", 4, 1, t0 + 1.0) for _ in range(6)
    ]


def test_hammering_for_three_seconds_gets_the_full_share(impl) -> None:
    # A request every 1/1024 s for 3 s at 4 per second: the 4 of the burst, then
    # one per 0.25 s, i.e. 4 + 12, to the request.
    limiter = impl.limiter.RateLimiter()
    allowed = [i for i in range(3 * 1024 + 1) if limiter.hit("k", 4, 1, UNIX + i / 1024)[0]]
    assert allowed == [0, 1, 2, 3, *range(256, 3 * 1024 + 1, 256)]


@given(
    steps=st.lists(
        st.tuples(st.sampled_from("ab"), st.sampled_from([0.0, 0.0, 0.01, 0.05, 0.2, 0.7])),
        max_size=80,
    )
)
@SETTINGS
def test_a_refused_request_changes_nothing(impl, steps: list[tuple[str, float]]) -> None:
    # Replaying only the allowed requests gives the same answers to them.
    everything = impl.limiter.RateLimiter()
    only_allowed = impl.limiter.RateLimiter()
    now = 5000.0
    for key, dt in steps:
        now += dt
        result = everything.hit(key, 3, 0.5, now)
        if result[0]:
            assert only_allowed.hit(key, 3, 0.5, now) == result
        assert only_allowed.peek(key, 3, 0.5, now) == everything.peek(key, 3, 0.5, now)


@pytest.mark.parametrize(
    ("rate", "per"),
    [(0, 1), (-1, 1), (5, 0), (5, -1), (0, 0), (-math.inf, 1), (5, -math.inf), (math.inf, 1)],
)
def test_unlimited(impl, rate: float, per: float) -> None:
    limiter = impl.limiter.RateLimiter()
    for _ in range(1000):
        assert limiter.hit("k", rate, per, 0.0) == (True, -1, 0.0, 0.0)
    assert limiter.peek("k", rate, per, 0.0) == (-1, 0.0)
    assert len(limiter) == 0


def test_one_per_ten_seconds(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    assert limiter.hit("k", 1, 10, 0.0) == (True, 0, 10.0, 0.0)
    assert limiter.hit("k", 1, 10, 5.0) == (False, 0, 5.0, 5.0)
    assert limiter.hit("k", 1, 10, 7.5) == (False, 0, 2.5, 2.5)
    assert limiter.hit("k", 1, 10, 10.0) == (True, 0, 10.0, 0.0)
    assert limiter.peek("k", 1, 10, 15.0) == (0, 5.0)
    assert limiter.peek("k", 1, 10, 20.0) == (1, 0.0)


def test_fractional_rates(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    # 2.5 per second: capacity 2.5, so a burst of 2; half a request per 0.2 s.
    assert burst(limiter, "k", 2.5, 1, 0.0, 3) == [True, True, False]
    assert limiter.hit("k", 2.5, 1, 0.0) == (False, 0, 0.8, 0.2)
    assert limiter.hit("k", 2.5, 1, 0.2) == (True, 0, 1.0, 0.0)
    # Hammered for 8 s at 1/64 s: 2 + 2.5 per second on average.
    hammered = impl.limiter.RateLimiter()
    allowed = sum(hammered.hit("k", 2.5, 1, i / 64)[0] for i in range(8 * 64 + 1))
    assert allowed == 2 + 20
    # Below one request per `per`: one request every per / rate, never zero.
    slow = impl.limiter.RateLimiter()
    assert slow.hit("k", 0.5, 1, 0.0) == (True, 0, 2.0, 0.0)
    assert slow.hit("k", 0.5, 1, 1.0) == (False, 0, 1.0, 1.0)
    assert slow.hit("k", 0.5, 1, 2.0) == (True, 0, 2.0, 0.0)
    assert slow.peek("k", 0.5, 1, 4.0) == (1, 0.0)


def test_rate_change_on_a_live_key(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    assert burst(limiter, "k", 10, 1, 0.0, 8) == [True] * 8
    # Lowered to 4: eight requests still owed, drained at 4 per second.
    assert limiter.peek("k", 4, 1, 0.0) == (0, 2.0)
    assert limiter.hit("k", 4, 1, 0.0) == (False, 0, 2.0, 1.25)
    assert limiter.hit("k", 4, 1, 1.25) == (True, 0, 1.0, 0.0)
    # Raised to 100: four owed, the rest of the capacity at once.
    assert limiter.hit("k", 100, 1, 1.25) == (True, 95, 0.05, 0.0)


def test_time_never_runs_backwards_for_a_bucket(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    assert limiter.hit("k", 2, 1, 10.0) == (True, 1, 0.5, 0.0)
    # An earlier `now` counts as 10.0: no drain, and reset is measured from 10.0.
    assert limiter.hit("k", 2, 1, 9.0) == (True, 0, 1.0, 0.0)
    assert limiter.hit("k", 2, 1, 9.5) == (False, 0, 1.0, 0.5)
    assert limiter.peek("k", 2, 1, 5.0) == (0, 1.0)
    assert limiter.hit("k", 2, 1, 10.5) == (True, 0, 1.0, 0.0)


def test_keys_are_independent_and_forgotten(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    assert burst(limiter, "a", 2, 60, 0.0, 3) == [True, True, False]
    assert burst(limiter, "a:api-1", 2, 60, 0.0, 3) == [True, True, False]
    assert len(limiter) == 2
    limiter.forget("a")
    limiter.forget("never-seen")
    assert len(limiter) == 1
    assert burst(limiter, "a", 2, 60, 0.0, 3) == [True, True, False]
    assert limiter.hit("a:api-1", 2, 60, 0.0)[0] is False


def test_huge_capacity_counts_exactly(impl) -> None:
    limiter = impl.limiter.RateLimiter()
    assert limiter.hit("k", 1e300, 1, 0.0) == (True, math.floor(1e300), 1e-300, 0.0)
    assert limiter.peek("k", 2.0**52, 1, 0.0) == (2**52 - 1, 2.0**-52)


@pytest.mark.parametrize(
    "args",
    [
        (math.nan, 1, 0.0),
        (5, math.nan, 0.0),
        (5, 1, math.nan),
        (5, 1, math.inf),
        (5, 1, -math.inf),
        (5, math.inf, 0.0),
        (0, math.nan, 0.0),
    ],
)
def test_rate_bad_numbers(impl, args: tuple[float, float, float]) -> None:
    limiter = impl.limiter.RateLimiter()
    with pytest.raises(ValueError):
        limiter.hit("k", *args)
    with pytest.raises(ValueError):
        limiter.peek("k", *args)
    assert len(limiter) == 0


@pytest.mark.parametrize("bad", ["5", None, b"5", [5], 2**1100])
def test_rate_bad_types(impl, bad: object) -> None:
    limiter = impl.limiter.RateLimiter()
    error = OverflowError if isinstance(bad, int) else TypeError
    for args in ((bad, 1, 0.0), (5, bad, 0.0), (5, 1, bad)):
        with pytest.raises(error):
            limiter.hit("k", *args)
        with pytest.raises(error):
            limiter.peek("k", *args)
    with pytest.raises(TypeError):
        limiter.hit(["unhashable"], 5, 1, 0.0)


def test_rate_numbers_of_other_types(impl) -> None:
    from decimal import Decimal
    from fractions import Fraction

    limiter = impl.limiter.RateLimiter()
    assert limiter.hit("k", True, Fraction(1, 2), Decimal(3)) == (True, 0, 0.5, 0.0)


# -- eviction -----------------------------------------------------------------------------


def test_max_keys_must_be_positive(impl) -> None:
    for cls in (impl.limiter.RateLimiter, impl.limiter.QuotaCounter):
        for bad, error in ((0, ValueError), (-5, ValueError), (1.5, TypeError), ("3", TypeError)):
            with pytest.raises(error):
                cls(bad)
        with pytest.raises(OverflowError):
            cls(2**64)
        assert len(cls(max_keys=1)) == 0


@pytest.mark.parametrize("max_keys", [1, 2, 3, 16, 17, 100])
def test_rate_limiter_stays_bounded(impl, max_keys: int) -> None:
    limiter = impl.limiter.RateLimiter(max_keys)
    for i in range(1000):
        assert limiter.hit(f"k{i}", 1, 3600, float(i))[0] is True  # all live
        assert len(limiter) <= max_keys
    assert len(limiter) >= max_keys - max(1, max_keys // 16)


def test_rate_eviction_takes_full_buckets_then_those_full_soonest(impl) -> None:
    limiter = impl.limiter.RateLimiter(max_keys=4)  # frees one slot at a time
    # Full again at 40, 10, 32 and 20.
    for key, per in (("a", 40), ("b", 10), ("c", 32), ("d", 20)):
        limiter.hit(key, 1, per, 0.0)
    limiter.hit("e", 1, 50, 1.0)  # nothing is full yet: b, full soonest, goes
    assert len(limiter) == 4
    assert limiter.peek("b", 1, 10, 1.0) == (1, 0.0)
    assert limiter.peek("d", 1, 20, 1.0) == (0, 19.0)
    limiter.hit("f", 1, 50, 24.0)  # d is full again: it goes, c stays
    assert limiter.peek("c", 1, 32, 24.0) == (0, 8.0)
    assert limiter.peek("a", 1, 40, 24.0) == (0, 16.0)
    assert len(limiter) == 4
    # Hitting a stored key never evicts.
    for key, per in (("a", 40), ("c", 32), ("e", 50), ("f", 50)):
        limiter.hit(key, 100, per, 26.0)
    assert len(limiter) == 4


def test_rate_eviction_prefers_full_buckets_over_the_oldest(impl) -> None:
    limiter = impl.limiter.RateLimiter(max_keys=32)  # frees two slots at a time
    for i in range(32):
        # Odd keys: 1 per second, full again a second later; even: 1 per hour.
        limiter.hit(f"k{i}", 1, 1 if i % 2 else 3600, float(i) / 100)
    limiter.hit("new", 1, 3600, 2.0)
    assert len(limiter) == 31
    assert all(limiter.peek(f"k{i}", 1, 3600, 2.0)[0] == 0 for i in range(0, 32, 2))


def test_quota_eviction_takes_ended_periods_then_the_oldest(impl) -> None:
    quota = impl.limiter.QuotaCounter(max_keys=3)
    quota.hit("a", 5, 0, 10.0)  # never renews: never irrelevant
    quota.hit("b", 5, 100, 20.0)  # ends at 120
    quota.hit("c", 5, 10, 30.0)  # ends at 40
    quota.hit("d", 5, 100, 50.0)  # c's period is over: it goes
    assert quota.state("a", 5, 50.0) == (4, 0.0)
    assert quota.state("b", 5, 50.0) == (4, 120.0)
    quota.hit("e", 5, 100, 60.0)  # nothing over: a, the oldest, goes
    assert quota.state("a", 5, 60.0) == (5, 0.0)
    assert quota.state("b", 5, 60.0) == (4, 120.0)
    assert len(quota) == 3


@pytest.mark.parametrize("max_keys", [1, 2, 16, 100])
def test_quota_counter_stays_bounded(impl, max_keys: int) -> None:
    quota = impl.limiter.QuotaCounter(max_keys)
    for i in range(1000):
        assert quota.hit(f"k{i}", 10, 0, float(i))[0] is True
        assert len(quota) <= max_keys


# -- quotas -------------------------------------------------------------------------------


def test_quota_ten_pass_the_eleventh_is_refused(impl) -> None:
    quota = impl.limiter.QuotaCounter()
    renews = UNIX + 3600
    assert [quota.hit("k", 10, 3600, UNIX + i) for i in range(11)] == [
        *[(True, 9 - i, renews) for i in range(10)],
        (False, 0, renews),
    ]
    # Refusals do not count, and the period ends on time.
    for i in range(1000):
        assert quota.hit("k", 10, 3600, UNIX + 11 + i) == (False, 0, renews)
    assert quota.state("k", 10, renews - 2**-10) == (0, renews)
    assert quota.hit("k", 10, 3600, renews - 2**-10) == (False, 0, renews)
    # The first request at or after renews_at opens the next period.
    assert quota.state("k", 10, renews) == (10, 0.0)
    assert quota.hit("k", 10, 3600, renews) == (True, 9, renews + 3600)
    assert quota.hit("k", 10, 3600, renews + 7200.5) == (True, 9, renews + 10800.5)


@pytest.mark.parametrize("renewal_rate", [0, 0.0, -1, -math.inf, math.inf])
def test_quota_that_never_renews(impl, renewal_rate: float) -> None:
    quota = impl.limiter.QuotaCounter()
    assert [quota.hit("k", 3, renewal_rate, 0.0)[:2] for _ in range(4)] == [
        (True, 2),
        (True, 1),
        (True, 0),
        (False, 0),
    ]
    assert quota.hit("k", 3, renewal_rate, 1e15) == (False, 0, 0.0)
    assert quota.hit("k", 3, 60, 2e15) == (False, 0, 0.0)  # the period keeps its rule
    assert quota.state("k", 3, 3e15) == (0, 0.0)


@pytest.mark.parametrize("quota_max", [0, -1, -(2**63)])
def test_quota_unlimited(impl, quota_max: int) -> None:
    quota = impl.limiter.QuotaCounter()
    for _ in range(100):
        assert quota.hit("k", quota_max, 60, 0.0) == (True, -1, 0.0)
    assert quota.state("k", quota_max, 0.0) == (-1, 0.0)
    assert len(quota) == 0


def test_quota_max_changed_on_a_live_key(impl) -> None:
    quota = impl.limiter.QuotaCounter()
    for _ in range(5):
        quota.hit("k", 10, 60, 0.0)
    assert quota.state("k", 10, 1.0) == (5, 60.0)
    assert quota.hit("k", 7, 60, 1.0) == (True, 1, 60.0)  # 6 used of 7
    assert quota.hit("k", 3, 60, 2.0) == (False, 0, 60.0)  # lowered below what was used
    assert quota.state("k", 3, 2.0) == (0, 60.0)
    assert quota.state("k", 20, 2.0) == (14, 60.0)
    assert quota.hit("k", 20, 60, 3.0) == (True, 13, 60.0)
    assert quota.hit("k", 20, 60, 60.0) == (True, 19, 120.0)


def test_quota_renewal_rate_change_applies_from_the_next_period(impl) -> None:
    quota = impl.limiter.QuotaCounter()
    assert quota.hit("k", 5, 60, 0.0) == (True, 4, 60.0)
    assert quota.hit("k", 5, 3600, 30.0) == (True, 3, 60.0)
    assert quota.hit("k", 5, 3600, 60.0) == (True, 4, 3660.0)


def test_quota_state_and_reset(impl) -> None:
    quota = impl.limiter.QuotaCounter()
    assert quota.state("k", 10, 0.0) == (10, 0.0)
    assert len(quota) == 0
    quota.hit("k", 10, 60, 0.0)
    quota.hit("k:api", 10, 60, 0.0)
    assert quota.state("k", 10, 0.0) == (9, 60.0)
    quota.reset("k")
    quota.reset("never-seen")
    assert quota.state("k", 10, 0.0) == (10, 0.0)
    assert quota.state("k:api", 10, 0.0) == (9, 60.0)
    assert quota.hit("k", 10, 60, 1.0) == (True, 9, 61.0)
    assert len(quota) == 2


def test_quota_large_numbers(impl) -> None:
    quota = impl.limiter.QuotaCounter()
    biggest = 2**63 - 1
    assert quota.hit("k", biggest, 60, 0.0) == (True, biggest - 1, 60.0)
    assert quota.state("k", biggest, 0.0) == (biggest - 1, 60.0)


@pytest.mark.parametrize(
    ("quota_max", "renewal_rate", "now", "error"),
    [
        (1.5, 60, 0.0, TypeError),
        (10.0, 60, 0.0, TypeError),
        ("10", 60, 0.0, TypeError),
        (None, 60, 0.0, TypeError),
        (2**63, 60, 0.0, OverflowError),
        (-(2**63) - 1, 60, 0.0, OverflowError),
        (10, "60", 0.0, TypeError),
        (10, math.nan, 0.0, ValueError),
        (10, 60, math.nan, ValueError),
        (10, 60, math.inf, ValueError),
        (0, math.nan, 0.0, ValueError),
    ],
)
def test_quota_bad_arguments(
    impl, quota_max: object, renewal_rate: object, now: object, error: type[Exception]
) -> None:
    quota = impl.limiter.QuotaCounter()
    with pytest.raises(error):
        quota.hit("k", quota_max, renewal_rate, now)
    if renewal_rate == 60:
        with pytest.raises(error):
            quota.state("k", quota_max, now)
    assert len(quota) == 0


def test_quota_integer_like(impl) -> None:
    from fractions import Fraction

    class Count:
        def __index__(self) -> int:
            return 3

    quota = impl.limiter.QuotaCounter()
    assert quota.hit("k", Count(), Fraction(1, 2), True) == (True, 2, 1.5)
    assert quota.state("k", True, 1) == (0, 1.5)


# -- the two implementations --------------------------------------------------------------


def outcome(function: Callable[..., Any], *args: object) -> tuple[str, object]:
    try:
        return ("returned", function(*args))
    except Exception as exc:  # the exception type is part of the interface
        return ("raised", type(exc))


def typed(result: tuple[str, object]) -> tuple[object, ...]:
    kind, value = result
    if kind == "raised":
        return (kind, value)
    assert isinstance(value, tuple)
    return (kind, value, tuple(type(v) for v in value))


KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
TIMES = st.one_of(
    st.just(0.0),
    st.sampled_from([0.1, 0.2, 0.25, 1 / 3, 0.5, 1.0, 7.0, 60.0]),
    st.floats(0, 5),
    st.floats(-1, 0),  # a clock that went back
)
STARTS = st.sampled_from([0.0, 1000.0, 123456.789, UNIX, 1.7e9 + 0.1])
RATES = st.one_of(
    st.sampled_from([0, -1, 0.5, 1, 2, 2.5, 3, 5, 7, 10, 100, 1e6, math.inf, -math.inf]),
    st.floats(1e-3, 1e6),
    st.integers(-2, 50),
)
PERS = st.one_of(
    st.sampled_from([0, -1, 0.1, 0.3, 1, 2, 10, 60, 3600]),
    st.floats(1e-3, 1e5),
)
MAX_KEYS = st.sampled_from([1, 2, 3, 4, 1000])


@given(
    max_keys=MAX_KEYS,
    start=STARTS,
    ops=st.lists(
        st.tuples(st.sampled_from(["hit"] * 6 + ["peek", "forget"]), KEYS, RATES, PERS, TIMES),
        max_size=60,
    ),
)
@SETTINGS
def test_rate_limiters_agree(both, max_keys: int, start: float, ops: list) -> None:
    compiled, twin = both("limiter")
    c, py = compiled.RateLimiter(max_keys), twin.RateLimiter(max_keys)
    now = start
    for op, key, rate, per, dt in ops:
        now += dt
        if op == "forget":
            c.forget(key)
            py.forget(key)
        else:
            got = typed(outcome(getattr(c, op), key, rate, per, now))
            expected = typed(outcome(getattr(py, op), key, rate, per, now))
            assert got == expected, f"{op}({key!r}, {rate!r}, {per!r}, {now!r})"
        assert len(c) == len(py)


@given(
    max_keys=MAX_KEYS,
    start=STARTS,
    ops=st.lists(
        st.tuples(
            st.sampled_from(["hit"] * 6 + ["state", "reset"]),
            KEYS,
            st.one_of(st.integers(-2, 12), st.just(10**15)),
            st.one_of(
                st.sampled_from([0, -1, 1, 2.5, 10, 60, math.inf]),
                st.floats(0, 100),
            ),
            TIMES,
        ),
        max_size=60,
    ),
)
@SETTINGS
def test_quota_counters_agree(both, max_keys: int, start: float, ops: list) -> None:
    compiled, twin = both("limiter")
    c, py = compiled.QuotaCounter(max_keys), twin.QuotaCounter(max_keys)
    now = start
    for op, key, quota_max, renewal_rate, dt in ops:
        now += dt
        if op == "reset":
            c.reset(key)
            py.reset(key)
            continue
        args = (key, quota_max, renewal_rate, now) if op == "hit" else (key, quota_max, now)
        got = typed(outcome(getattr(c, op), *args))
        expected = typed(outcome(getattr(py, op), *args))
        assert got == expected, f"{op}{args!r}"
        assert len(c) == len(py)


class _Float(float):
    pass


class _Int(int):
    pass


HOSTILE = st.one_of(
    st.floats(),
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.booleans(),
    st.none(),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.builds(_Float, st.floats()),
    st.builds(_Int, st.integers()),
    st.sampled_from([2**63, -(2**63) - 1, 2**1100, 1.5, math.nan, math.inf, -0.0]),
)


@given(args=st.tuples(HOSTILE, HOSTILE, HOSTILE), key=st.one_of(KEYS, st.integers(), st.none()))
@SETTINGS
def test_hostile_arguments_agree(both, args: tuple, key: object) -> None:
    compiled, twin = both("limiter")
    cases = [
        ("RateLimiter", "hit", (key, *args)),
        ("RateLimiter", "peek", (key, *args)),
        ("QuotaCounter", "hit", (key, *args)),
        ("QuotaCounter", "state", (key, *args[:2])),
    ]
    for cls, method, call in cases:
        c, py = getattr(compiled, cls)(), getattr(twin, cls)()
        for _ in range(2):  # a new key, then a stored one
            got = typed(outcome(getattr(c, method), *call))
            expected = typed(outcome(getattr(py, method), *call))
            assert got == expected, f"{cls}.{method}{call!r}"
            assert len(c) == len(py)


@pytest.mark.parametrize("max_keys", [16, 1000])
def test_eviction_agrees_under_pressure(both, max_keys: int) -> None:
    # Many keys, rates and times: the same entries survive in both.
    compiled, twin = both("limiter")
    c_rate, py_rate = compiled.RateLimiter(max_keys), twin.RateLimiter(max_keys)
    c_quota, py_quota = compiled.QuotaCounter(max_keys), twin.QuotaCounter(max_keys)
    now = UNIX
    for i in range(20 * max_keys):
        now += (i % 7) * 0.013
        key = f"k{(i * 7919) % (3 * max_keys)}"
        rate, per = 1 + i % 5, (0.5, 3.0, 60.0)[i % 3]
        assert c_rate.hit(key, rate, per, now) == py_rate.hit(key, rate, per, now)
        renewal = (0, 1.0, 30.0)[i % 3]
        assert c_quota.hit(key, 3, renewal, now) == py_quota.hit(key, 3, renewal, now)
        assert len(c_rate) == len(py_rate) <= max_keys
        assert len(c_quota) == len(py_quota) <= max_keys
    for j in range(3 * max_keys):
        key = f"k{j}"
        assert c_rate.peek(key, 2, 3.0, now) == py_rate.peek(key, 2, 3.0, now)
        assert c_quota.state(key, 3, now) == py_quota.state(key, 3, now)


# -- interface ----------------------------------------------------------------------------

STUB = Path(core.__file__).parent / "limiter.pyi"


def _stub_classes() -> dict[str, dict[str, list[str]]]:
    classes: dict[str, dict[str, list[str]]] = {}
    for node in ast.parse(STUB.read_text()).body:
        if isinstance(node, ast.ClassDef):
            assert ast.get_docstring(node), f"limiter.pyi: {node.name} has no docstring"
            methods = classes.setdefault(node.name, {})
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    assert ast.get_docstring(item), f"{node.name}.{item.name} has no docstring"
                    methods[item.name] = [a.arg for a in item.args.args]
    return classes


def _methods(module: ModuleType, cls: str) -> dict[str, list[str]]:
    klass = getattr(module, cls)
    return {
        name: list(inspect.signature(getattr(klass, name)).parameters)
        for name in dir(klass)
        if not name.startswith("_") and callable(getattr(klass, name))
    }


def test_same_classes_and_methods_as_the_stub(impl) -> None:
    stub = _stub_classes()
    module = impl.limiter
    assert sorted(module.__all__) == sorted(core.twin("limiter").__all__) == sorted(stub)
    assert module.BENCHMARKED == core.twin("limiter").BENCHMARKED
    for cls, methods in stub.items():
        public = {name: params for name, params in methods.items() if not name.startswith("_")}
        assert _methods(module, cls) == public
        assert "__len__" in methods
        assert "__init__" in methods
    for name in module.BENCHMARKED:
        cls, method = name.split(".")
        assert method in stub[cls]
