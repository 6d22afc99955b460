"""fastgate's load benchmark: wrk against fastgate and an nginx baseline, same run, as ratios.

Run it with ``tools/bench``; ``bench/README.md`` says what is measured and how to add a
scenario.  ``bench/micro/`` holds the pytest-benchmark micro-benchmarks of ``_core``.
"""
