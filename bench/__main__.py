"""``python -m bench``: the entry point ``tools/bench`` runs."""

from bench.harness import main

raise SystemExit(main())
