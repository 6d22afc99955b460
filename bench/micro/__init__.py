"""Micro-benchmarks of fastgate._core: each compiled function against its pure-Python twin.

Every compiled function declares in ``cases.SPEEDUPS`` the speed-up over its twin
that it must keep.  ``python -m bench.micro --short`` (run by ``tools/test``)
measures twin and compiled interleaved, keeps the best of several rounds of each,
prints the ratios and exits non-zero when one falls below its floor; the ratio
comes from one run on one machine, so it holds on a noisy CI box.
``pytest bench/micro --benchmark-enable`` gives pytest-benchmark's detailed
statistics for the same cases.
"""
