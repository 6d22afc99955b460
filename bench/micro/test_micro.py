"""pytest-benchmark view of the micro-benchmarks: ``pytest bench/micro --benchmark-enable``.

Each case runs once per implementation (ids ``c`` and ``py``), grouped by
function so pytest-benchmark prints compiled and twin side by side.  Under the
project's default ``--benchmark-disable`` each call runs once, as a smoke test.
The floors are checked by ``python -m bench.micro``; the tests below check the
runner itself.
"""

from __future__ import annotations

import pytest

import fastgate._core as core
from bench.micro.cases import CASES, SPEEDUPS, Case
from bench.micro.runner import Mode, Result, coverage_problems, format_table, measure, resolve

needs_extensions = pytest.mark.skipif(
    core.NO_EXTENSIONS, reason="FASTGATE_NO_EXTENSIONS is set: nothing compiled to measure"
)


def comparable(result: object) -> object:
    """``result`` as it compares: a parsed JWS (``jws.Token``, no ``__eq__``)
    by what it holds."""
    if type(result).__name__ == "Token":
        return tuple(getattr(result, name) for name in (
            "raw", "alg", "kid", "header", "claims", "signing_input", "signature"))
    return result


@needs_extensions
@pytest.mark.parametrize("kind", ["c", "py"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_speed(benchmark, case: Case, kind: str) -> None:
    # Each resolve() of a method binds a new instance, so this compares first
    # calls, whatever state the timing loop leaves behind.
    got = resolve(case.function, kind)(*case.args)
    assert comparable(got) == comparable(resolve(case.function, "py")(*case.args))
    benchmark.group = case.id
    benchmark(resolve(case.function, kind), *case.args)


def test_every_function_has_a_floor_and_a_case() -> None:
    assert coverage_problems() == []


def test_benchmarked_methods_need_floors(monkeypatch: pytest.MonkeyPatch) -> None:
    twin = core.twin("limiter")
    before = coverage_problems()
    monkeypatch.setattr(twin, "BENCHMARKED", (*twin.BENCHMARKED, "RateLimiter.peek", "Nope.hit"))
    assert [p for p in coverage_problems() if p not in before] == [
        "limiter.Nope.hit: in BENCHMARKED but not a method of a public class",
        "limiter.Nope.hit: no floor in bench/micro/cases.py SPEEDUPS",
        "limiter.RateLimiter.peek: no floor in bench/micro/cases.py SPEEDUPS",
        "limiter.Nope.hit: no case in bench/micro/cases.py CASES",
        "limiter.RateLimiter.peek: no case in bench/micro/cases.py CASES",
    ]


def test_resolve_binds_a_method_to_a_new_instance() -> None:
    first = resolve("limiter.RateLimiter.hit", "py")
    second = resolve("limiter.RateLimiter.hit", "py")
    assert first.__self__ is not second.__self__
    assert isinstance(first.__self__, core.twin("limiter").RateLimiter)
    assert first("k", 1.0, 60.0, 0.0)[0] is True
    assert first("k", 1.0, 60.0, 0.0)[0] is False
    assert second("k", 1.0, 60.0, 0.0)[0] is True


@needs_extensions
def test_measure_gives_a_ratio() -> None:
    case = next(c for c in CASES if c.function == "murmur3.murmur64")
    result = measure(case, Mode(sample_seconds=0.001, rounds=3))
    assert result.twin_ns > 0
    assert result.compiled_ns > 0
    assert result.floor == SPEEDUPS["murmur3.murmur64"]
    assert result.ratio == result.twin_ns / result.compiled_ns


def test_below_floor_is_reported() -> None:
    case = CASES[0]
    fine = Result(case, twin_ns=300.0, compiled_ns=100.0, floor=2.0)
    slow = Result(case, twin_ns=300.0, compiled_ns=200.0, floor=2.0)
    assert fine.ok
    assert not slow.ok
    table = format_table([fine, slow])
    assert "3.00x" in table
    assert "BELOW FLOOR" in table
