"""Times each case on the twin and on the compiled module, and checks the floors.

Method: for each implementation, find a loop count that takes about
``sample_seconds``; then run ``rounds`` rounds, each timing the twin and the
compiled function back to back (alternating which goes first), and keep the
fastest sample of each.  Samples are timed in CPU time of this thread, so time
spent preempted by other processes does not count; the minimum of many short
samples is the one least disturbed by the rest (cache, frequency changes); and
interleaving means a slow phase of the machine hits both sides, so the ratio is
stable even when the absolute times are not.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fastgate._core as core
from bench.micro.cases import CASES, MEASURED_ELSEWHERE, SPEEDUPS, Case


@dataclass(frozen=True)
class Mode:
    sample_seconds: float
    rounds: int


SHORT = Mode(sample_seconds=0.002, rounds=15)
FULL = Mode(sample_seconds=0.005, rounds=60)


@dataclass(frozen=True)
class Result:
    case: Case
    twin_ns: float
    compiled_ns: float
    floor: float

    @property
    def ratio(self) -> float:
        return self.twin_ns / self.compiled_ns

    @property
    def ok(self) -> bool:
        return self.ratio >= self.floor


def resolve(function: str, kind: str) -> Callable[..., Any]:
    """The function ``"<module>.<name>"`` of the ``"c"`` or ``"py"`` implementation.

    ``"<module>.<Class>.<method>"`` gives that method bound to a new instance
    (``Class()``), one per call: state built up by timing stays with it.
    """
    module_name, name = function.split(".", 1)
    module = core.twin(module_name) if kind == "py" else core.compiled(module_name)
    if module is None:
        raise LookupError(f"fastgate._core.{module_name} is not compiled")
    class_name, _, method = name.rpartition(".")
    if class_name:
        return getattr(getattr(module, class_name)(), method)
    return getattr(module, name)


def _is_public_method(function: str) -> bool:
    module_name, _, qualified = function.partition(".")
    class_name, _, method = qualified.partition(".")
    twin = core.twin(module_name)
    if class_name not in getattr(twin, "__all__", ()):
        return False
    cls = getattr(twin, class_name)
    return isinstance(cls, type) and callable(getattr(cls, method, None))


def coverage_problems() -> list[str]:
    """Public _core functions without a floor or a case, and floors for nothing."""
    measured = [m for m in core.MODULES if m not in MEASURED_ELSEWHERE]
    problems = [
        f"{m}: no __all__ to take floors from"
        for m in measured
        if not hasattr(core.twin(m), "__all__")
    ]
    problems += [
        f"{m}: in MEASURED_ELSEWHERE but not a _core module"
        for m in MEASURED_ELSEWHERE
        if m not in core.MODULES
    ]
    # Functions need floors; classes (the proxy's protocols) are measured end
    # to end by tools/bench, or by the methods their module lists (below).
    public = {
        f"{m}.{f}"
        for m in measured
        for f in getattr(core.twin(m), "__all__", ())
        if not isinstance(getattr(core.twin(m), f), type)
    }
    # A module whose hot path is a class names the methods to time in its
    # BENCHMARKED ("Class.method"); they need floors like functions.
    methods = {f"{m}.{name}" for m in measured for name in getattr(core.twin(m), "BENCHMARKED", ())}
    problems += [
        f"{f}: in BENCHMARKED but not a method of a public class"
        for f in sorted(methods)
        if not _is_public_method(f)
    ]
    public |= methods
    with_case = {case.function for case in CASES}
    problems += [
        f"{f}: no floor in bench/micro/cases.py SPEEDUPS" for f in sorted(public - set(SPEEDUPS))
    ]
    problems += [f"{f}: no case in bench/micro/cases.py CASES" for f in sorted(public - with_case)]
    problems += [f"{f}: floor for an unknown function" for f in sorted(set(SPEEDUPS) - public)]
    problems += [f"{f}: case for an unknown function" for f in sorted(with_case - public)]
    return problems


def _timer(function: Callable[..., Any], args: tuple[object, ...]) -> timeit.Timer:
    names = [f"a{i}" for i in range(len(args))]
    namespace: dict[str, Any] = {"f": function, **dict(zip(names, args, strict=True))}
    return timeit.Timer(f"f({', '.join(names)})", timer=time.thread_time, globals=namespace)


def _calibrate(timer: timeit.Timer, seconds: float) -> int:
    number = 1
    while True:
        if timer.timeit(number) >= seconds / 2:
            return max(1, int(number * 2))
        number *= 4


def measure(case: Case, mode: Mode) -> Result:
    twin = _timer(resolve(case.function, "py"), case.args)
    compiled = _timer(resolve(case.function, "c"), case.args)
    n_twin = _calibrate(twin, mode.sample_seconds)
    n_compiled = _calibrate(compiled, mode.sample_seconds)
    best_twin = best_compiled = float("inf")
    for round_ in range(mode.rounds):
        order = [(twin, n_twin, "py"), (compiled, n_compiled, "c")]
        if round_ % 2:
            order.reverse()
        for timer, number, kind in order:
            per_call = timer.timeit(number) / number
            if kind == "py":
                best_twin = min(best_twin, per_call)
            else:
                best_compiled = min(best_compiled, per_call)
    return Result(case, best_twin * 1e9, best_compiled * 1e9, SPEEDUPS[case.function])


def format_table(results: Iterable[Result]) -> str:
    header = ("function", "input", "twin ns/op", "compiled ns/op", "ratio", "floor", "")
    rows = [
        (
            r.case.function,
            r.case.label,
            f"{r.twin_ns:.1f}",
            f"{r.compiled_ns:.1f}",
            f"{r.ratio:.2f}x",
            f"{r.floor:.2f}x",
            "ok" if r.ok else "BELOW FLOOR",
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    align = ["<", "<", ">", ">", ">", ">", "<"]
    lines = [
        "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
