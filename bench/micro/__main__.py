"""``python -m bench.micro [--short] [-k TEXT] [--json FILE]``: compiled vs twin, with floors.

Exit status: 0 when every ratio is at or above its floor; 1 when one is below,
when a compiled module is missing, or when a public ``_core`` function has no
floor or no case; 0 with a notice when ``FASTGATE_NO_EXTENSIONS`` is set (there is
nothing compiled to compare).
"""

from __future__ import annotations

import argparse
import json
import sys

import fastgate._core as core
from bench.micro.cases import CASES
from bench.micro.runner import FULL, SHORT, coverage_problems, format_table, measure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.micro", description=__doc__)
    parser.add_argument("--short", action="store_true", help="a few seconds in all (CI mode)")
    parser.add_argument("-k", metavar="TEXT", help="only cases whose function contains TEXT")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)

    if core.NO_EXTENSIONS:
        print("bench.micro: FASTGATE_NO_EXTENSIONS is set, no compiled module to measure: skipped")
        return 0
    problems = coverage_problems()
    missing = [name for name in core.MODULES if core.compiled(name) is None]
    problems += [f"fastgate._core.{name}: extension not built" for name in missing]
    if problems:
        for problem in problems:
            print(f"bench.micro: {problem}", file=sys.stderr)
        return 1

    mode = SHORT if args.short else FULL
    cases = [c for c in CASES if args.k is None or args.k in c.function]
    results = [measure(case, mode) for case in cases]
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as out:
            json.dump(
                [
                    {
                        "function": r.case.function,
                        "input": r.case.label,
                        "twin_ns": r.twin_ns,
                        "compiled_ns": r.compiled_ns,
                        "ratio": r.ratio,
                        "floor": r.floor,
                        "ok": r.ok,
                    }
                    for r in results
                ],
                out,
                indent=2,
            )
    below = [r for r in results if not r.ok]
    if below:
        print(
            f"bench.micro: {len(below)} function(s) below their speed-up floor: "
            + ", ".join(r.case.function for r in below),
            file=sys.stderr,
        )
        return 1
    return 0


raise SystemExit(main())
