"""``python -m bench.micro [--short] [-k TEXT] [--json FILE] [--functions | --exchanges]``.

(``python -m bench.micro --spin CASE [--seconds S]`` runs one exchange case in
a loop, to profile it under ``perf record`` or ``py-spy``.)

Two gates, both run by default (``tools/test`` runs ``--short``):

* **functions** -- each compiled ``_core`` function against its pure-Python
  twin, with the speed-up floors of ``bench/micro/cases.py``;
* **exchanges** -- whole requests through the real gateway in process
  (``bench/micro/exchange.py``), each path's CPU per exchange relative to a
  keyless exchange measured in the same run, with the ceilings of
  ``exchange.CEILINGS``.

Exit status: 0 when every ratio keeps its floor or ceiling; 1 when one does
not, when a compiled module is missing, when a public ``_core`` function has
no floor or no case, or when an exchange case does not take the path it names.
With ``FASTGATE_NO_EXTENSIONS`` set there is nothing compiled to compare: the
function floors are skipped (with a notice) and the exchanges run on the twins,
checked against ``exchange.TWIN_CEILINGS``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import fastgate._core as core
from bench.micro import exchange
from bench.micro.cases import CASES
from bench.micro.runner import FULL, SHORT, Result, coverage_problems, format_table, measure


def _functions(short: bool, text: str | None) -> tuple[list[Result], list[str]]:
    """The function floors: results and problems (nothing measured when there are problems)."""
    problems = coverage_problems()
    missing = [name for name in core.MODULES if core.compiled(name) is None]
    problems += [f"fastgate._core.{name}: extension not built" for name in missing]
    if problems:
        return [], problems
    mode = SHORT if short else FULL
    cases = [c for c in CASES if text is None or text in c.function]
    results = [measure(case, mode) for case in cases]
    below = [r.case.function for r in results if not r.ok]
    if below:
        problems.append(f"{len(below)} function(s) below their speed-up floor: "
                        + ", ".join(below))
    return results, problems


def _exchanges(short: bool, text: str | None) -> tuple[list[exchange.ExchangeResult], list[str]]:
    problems: list[str] = []
    names = [n for n in exchange.CEILINGS if text is None or text in n]
    results = exchange.run(exchange.SHORT if short else exchange.FULL, names, problems)
    above = [r.name for r in results if not r.ok]
    if above:
        problems.append(f"{len(above)} exchange(s) above their ceiling (x keyless): "
                        + ", ".join(above))
    return results, problems


def _spin(name: str, seconds: float) -> int:
    if name not in exchange.CEILINGS:
        print(f"bench.micro: --spin: no exchange case {name!r} (cases: "
              f"{', '.join(exchange.CEILINGS)})", file=sys.stderr)
        return 2
    problems: list[str] = []
    us = exchange.spin(name, seconds, problems)
    for problem in problems:
        print(f"bench.micro: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{name}: {us:.2f} us of CPU per exchange")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", action="store_true", help="a few seconds in all (CI mode)")
    parser.add_argument("-k", metavar="TEXT",
                        help="only functions / exchange cases whose name contains TEXT")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--functions", action="store_true",
                       help="only the compiled-vs-twin function floors")
    which.add_argument("--exchanges", action="store_true",
                       help="only the whole-exchange ceilings")
    which.add_argument("--spin", metavar="CASE",
                       help="run one exchange case for --seconds (to profile it), "
                            "print its CPU us per exchange, check nothing")
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long --spin runs (CPU seconds, default 5)")
    args = parser.parse_args(argv)
    if args.spin is not None:
        return _spin(args.spin, args.seconds)

    problems: list[str] = []
    report: dict[str, Any] = {"extensions": not core.NO_EXTENSIONS}
    if not args.exchanges:
        if core.NO_EXTENSIONS:
            print("bench.micro: FASTGATE_NO_EXTENSIONS is set, no compiled function to "
                  "compare with its twin: function floors skipped")
        else:
            results, found = _functions(args.short, args.k)
            problems += found
            if results:
                print(format_table(results))
            report["functions"] = [
                {"function": r.case.function, "input": r.case.label, "twin_ns": r.twin_ns,
                 "compiled_ns": r.compiled_ns, "ratio": r.ratio, "floor": r.floor,
                 "ok": r.ok}
                for r in results
            ]
    if not args.functions:
        outcomes, found = _exchanges(args.short, args.k)
        problems += found
        if outcomes:
            if not args.exchanges:
                print()
            print(exchange.format_table(outcomes))
        report["exchanges"] = [
            {"case": r.name, "us": r.us, "keyless_us": r.keyless_us, "added_us": r.added_us,
             "ratio": r.ratio, "ceiling": r.ceiling, "ok": r.ok}
            for r in outcomes
        ]
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    for problem in problems:
        print(f"bench.micro: {problem}", file=sys.stderr)
    return 1 if problems else 0


raise SystemExit(main())
