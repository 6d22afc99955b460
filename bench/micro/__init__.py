"""Micro-benchmarks of fastgate: the regression gate ``tools/test`` runs.

See ``docs/micro-benchmarks.md``.

Functions: every compiled ``fastgate._core`` function declares in
``cases.SPEEDUPS`` the speed-up over its twin that it must keep.
``python -m bench.micro --short`` (run by ``tools/test``) measures twin and
compiled interleaved, keeps the best of several rounds of each, prints the
ratios and exits non-zero when one falls below its floor; the ratio comes from
one run on one machine, so it holds on a noisy CI box.
``pytest bench/micro --benchmark-enable`` gives pytest-benchmark's detailed
statistics for the same cases.

Exchanges (``exchange.py``): whole requests through the real gateway in
process -- keyless, auth token, auth token with a local rate limit, a cached
JWT, Tyk's HMAC signature -- each path's CPU per exchange divided by a keyless
exchange's measured in the same run, with a ceiling per path
(``exchange.CEILINGS``; ``exchange.TWIN_CEILINGS`` on the pure-Python twins).
Each case is checked to take the path it names before it is timed.
The same command runs both gates (``--functions`` or ``--exchanges`` for one).
"""
