"""The per-call cost of a Python plugin hook, without the network.

Three figures, each the median of several timed batches, in µs per call:

* **function**: the bench's ``BenchAuth`` (bench/plugins/auth.py) called
  directly, as a plain Python function -- the floor;
* **HookRunner.call**: the same hook through
  :class:`fastgate.plugins.python.middleware.HookRunner` on a running event
  loop (the host context variable set and reset, the time budget checked),
  with its argument objects made once;
* **objects + call**: what ``auth_check`` does around the hook for one
  request: the :class:`fastgate.plugins.changes.RequestView` of a request with
  wrk's headers, Tyk's ``TykCoProcessRequest`` and ``SessionState``,
  ``HookRunner.call``, then ``session.to_dict()`` -- the Python plugin's whole
  cost short of the chain, the session cache and the proxying.

    .venv/bin/python -m bench.plugin_calls [calls] [--json FILE]

``python-auth-check`` in ``tools/bench`` measures the same hook end to end;
bench/js_engines.py gives the JavaScript figure (one ``DoProcessRequest``
call through the QuickJS worker).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastgate.plugins.changes import RequestView
from fastgate.plugins.python.host import PluginHost
from fastgate.plugins.python.loader import hook_of, load_module
from fastgate.plugins.python.middleware import HookRunner
from fastgate.plugins.python.objects import SessionState, TykCoProcessRequest
from fastgate.plugins.settings import HookDescriptor
from fastgate.storage.memory import MemoryStore

PLUGIN = Path(__file__).resolve().parent / "plugins" / "auth.py"
TOKEN = "bench-plugin-token-0123456789abcdef"
#: The request wrk sends in python-auth-check, as the proxy core hands it over.
HEADERS = (("Host", "127.0.0.1:8080"), ("Authorization", TOKEN))
BATCHES = 7


def fake_request() -> Any:
    """A request with what ``RequestView.of`` reads (method, path, query,
    headers, TLS)."""
    return types.SimpleNamespace(
        method=b"GET", path=b"/", query=b"", tls=False,
        request_headers=[(name.lower().encode(), name.encode(), value.encode())
                         for name, value in HEADERS])


def per_call_us(fn: Callable[[], Any], calls: int) -> float:
    """The median over BATCHES batches of ``calls`` calls, in µs per call."""
    for _ in range(min(calls, 1000)):
        fn()
    samples = []
    for _ in range(BATCHES):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


async def measure(calls: int) -> dict[str, float]:
    """The three figures (see the module docstring), µs per call."""
    module = load_module(str(PLUGIN), source=str(PLUGIN), field="auth_check")
    hook = hook_of(module, "BenchAuth", source=str(PLUGIN), field="auth_check",
                   path=str(PLUGIN))
    descriptor = HookDescriptor(name="BenchAuth", path=str(PLUGIN), require_session=False,
                                raw_body_only=False, run_in_thread=False,
                                where="custom_middleware.auth_check")
    runner = HookRunner(hook, descriptor, PluginHost(MemoryStore()), budget=1.0, workers=1)
    spec_object = {"OrgID": "", "APIID": "bench", "bundle_hash": "", "config_data": "{}"}
    req = fake_request()

    view = RequestView.of(req, b"")
    request = TykCoProcessRequest(view)
    session = SessionState(None)
    args = (request, session, session.metadata, spec_object)
    result = runner.call(args)
    if not (isinstance(result, tuple) and result[2].get("token") == TOKEN):
        raise RuntimeError(f"{PLUGIN} did not accept the bench token")

    def whole() -> Any:
        view = RequestView.of(req, b"")
        session = SessionState(None)
        runner.call((TykCoProcessRequest(view), session, session.metadata, spec_object))
        return session.to_dict()

    return {
        "function_us": per_call_us(lambda: hook.f(*args), calls),
        "hook_runner_call_us": per_call_us(lambda: runner.call(args), calls),
        "objects_and_call_us": per_call_us(whole, calls),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the table (and write the JSON when asked); 0 on success."""
    parser = argparse.ArgumentParser(prog="python -m bench.plugin_calls", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("calls", nargs="?", type=int, default=20_000,
                        help="calls per timed batch (default 20000)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    results = asyncio.run(measure(args.calls))
    labels = {"function_us": "BenchAuth called directly",
              "hook_runner_call_us": "HookRunner.call (on the loop)",
              "objects_and_call_us": "request/session objects + HookRunner.call"}
    for key, label in labels.items():
        print(f"{label:<44} {results[key]:8.2f} us/call")
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"calls_per_batch": args.calls, "batches": BATCHES, **results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
