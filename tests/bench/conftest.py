"""Tests of the benchmark harness's own logic (bench/): wrk parsing, ratios, configs.

This folder has no ``__init__.py`` on purpose: as a package it would be named
``bench`` and shadow the harness.  The repo root goes on sys.path so ``import bench``
finds the harness whether pytest runs as ``python -m pytest`` or as ``pytest``.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
