"""Measure the embeddable JavaScript engines for Tyk's JSVM plugins.

For each engine: start-up (a context with Tyk's TykJS shim loaded), the
cost of one trivial middleware call (JSON in, JSON out, through
``DoProcessRequest``), whether a host function can be called synchronously
from JavaScript (``var r = TykMakeHttpRequest(...)`` used at once), and
whether a runaway script can be stopped without stopping the gateway (the
event loop's thread keeps running while it spins).  Prints a table.

    .venv/bin/python bench/js_engines.py [calls]

mini-racer and dukpy are measured when installed (``pip install mini-racer
dukpy``); fastgate depends on neither.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import types
from collections.abc import Callable
from typing import Any

from fastgate.outbound import HttpClient
from fastgate.plugins.js.runtime import JsLimits, JsRuntime, JsTimeout
from fastgate.plugins.js.shim import TYKJS

SCRIPT = """
var mw = new TykJS.TykMiddleware.NewMiddleware({});
mw.NewProcessRequest(function(request, session, config) {
    request.SetHeaders["X-Hello"] = "world";
    return mw.ReturnData(request, {});
});
"""
REQUEST = json.dumps({"Headers": {"Host": ["x"]}, "SetHeaders": {}, "DeleteHeaders": [],
                      "Body": "", "URL": "/a?b=1", "Params": {"b": ["1"]}, "AddParams": {},
                      "ExtendedParams": {}, "DeleteParams": [],
                      "ReturnOverrides": {"ResponseCode": 0}, "Method": "GET"})
EXPR = f'mw.DoProcessRequest({REQUEST}, {{}}, {{"APIID": "a", "config_data": {{}}}})'
# Host stubs for the in-process engines (the shim calls these).
STUBS = """
var __b64enc = function (s) { return s; }; var __b64dec = function (s) { return s; };
var __rawb64enc = __b64enc; var __rawb64dec = __b64dec;
var log = function () {}; var rawlog = log;
var __host_TykMakeHttpRequest = function () { return null; };
var __host_TykBatchRequest = __host_TykMakeHttpRequest;
var __host_TykGetKeyData = __host_TykMakeHttpRequest;
var __host_TykSetKeyData = __host_TykMakeHttpRequest;
"""


def per_call(fn: Callable[[], Any], calls: int) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def loop_progress_while(spin: Callable[[], Any], seconds: float = 0.5) -> bool:
    """Does this thread keep running (no pause over 100 ms) while ``spin``
    runs in another one?"""
    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    time.sleep(0.01)
    longest, last = 0.0, time.perf_counter()
    end = last + seconds
    while (now := time.perf_counter()) < end:
        longest = max(longest, now - last)
        last = now
    longest = max(longest, time.perf_counter() - last)
    thread.join()
    return longest < 0.1


def mini_racer(calls: int) -> dict[str, Any]:
    from py_mini_racer import MiniRacer

    start = time.perf_counter()
    ctx = MiniRacer()
    ctx.eval(STUBS + TYKJS + SCRIPT)
    startup = (time.perf_counter() - start) * 1e3
    cost = per_call(lambda: ctx.eval(EXPR), calls)
    try:
        ctx.eval("while(true){}", timeout_sec=0.2)
        stopped = False
    except Exception:
        stopped = True
    return {"engine": "mini-racer (V8), in process", "startup_ms": startup, "call_us": cost,
            "sync_host": "no: wrap_py_function gives JS an async function (a Promise)",
            "timeout": "yes (eval timeout_sec)" if stopped else "no",
            "memory": "yes (set_hard_memory_limit)", "gil_free": "yes"}


def dukpy_engine(calls: int) -> dict[str, Any]:
    import dukpy

    start = time.perf_counter()
    interp = dukpy.JSInterpreter()
    interp.evaljs(STUBS + TYKJS + SCRIPT)
    startup = (time.perf_counter() - start) * 1e3
    cost = per_call(lambda: interp.evaljs(EXPR), calls)
    interp.export_function("host", lambda text: text.upper())
    sync = interp.evaljs("call_python('host', 'ok') + '!'") == "OK!"
    busy = dukpy.JSInterpreter()
    free = loop_progress_while(
        lambda: busy.evaljs("var s = Date.now(); while (Date.now() - s < 700) {}"))
    return {"engine": f"dukpy {getattr(dukpy, '__version__', '')} in process",
            "startup_ms": startup, "call_us": cost,
            "sync_host": "yes (call_python)" if sync else "no",
            "timeout": "no (nothing interrupts a running script)", "memory": "no",
            "gil_free": "yes" if free else "no: holds the GIL, the gateway stops"}


def quickjs_in_process(calls: int) -> dict[str, Any]:
    import quickjs

    start = time.perf_counter()
    ctx = quickjs.Context()
    ctx.eval(STUBS + TYKJS + SCRIPT)
    startup = (time.perf_counter() - start) * 1e3
    cost = per_call(lambda: ctx.eval(EXPR), calls)
    limited = quickjs.Context()
    limited.add_callable("host", lambda: "x")
    limited.set_time_limit(1)
    try:
        limited.eval("host()")
        both = True
    except quickjs.JSException:
        both = False
    busy = quickjs.Context()
    busy.set_time_limit(1)
    free = loop_progress_while(lambda: _swallow(lambda: busy.eval("while(true){}")))
    return {"engine": "quickjs, in process", "startup_ms": startup, "call_us": cost,
            "sync_host": "yes (add_callable)",
            "timeout": "yes, but not with host functions" if not both else "yes",
            "memory": "yes (set_memory_limit)", "gil_free": "yes" if free else "no"}


def _swallow(fn: Callable[[], Any]) -> None:
    try:
        fn()
    except Exception:
        return


def quickjs_workers(calls: int) -> dict[str, Any]:
    async def measure() -> dict[str, Any]:
        services = types.SimpleNamespace(http=HttpClient(), config=None)
        rt = JsRuntime(api_id="a", org_id="o", config_data={},
                       services=services,  # type: ignore[arg-type]
                       limits=JsLimits(timeout=0.5, memory_mib=32, workers=1))
        rt.add_script("bench.js", SCRIPT + "function spin() { while (true) {} }")
        start = time.perf_counter()
        await rt.run("'up'")
        startup = (time.perf_counter() - start) * 1e3
        await rt.run(EXPR)
        start = time.perf_counter()
        for _ in range(calls):
            await rt.run(EXPR)
        cost = (time.perf_counter() - start) / calls * 1e6
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        try:
            await rt.run("spin()")
            stopped = False
        except JsTimeout:
            stopped = True
        ticker.cancel()
        await rt.aclose()
        await services.http.close()
        return {"engine": "quickjs in worker processes (fastgate)", "startup_ms": startup,
                "call_us": cost, "sync_host": "yes (host calls served by the event loop)",
                "timeout": "yes (the worker is killed)" if stopped else "no",
                "memory": "yes (set_memory_limit)",
                "gil_free": "yes" if ticks > 50 else "no"}

    return asyncio.run(measure())


def main() -> None:
    """Print the table."""
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    rows = []
    for probe in (mini_racer, dukpy_engine, quickjs_in_process, quickjs_workers):
        try:
            rows.append(probe(calls))
        except ImportError as exc:
            rows.append({"engine": probe.__name__, "startup_ms": float("nan"),
                         "call_us": float("nan"), "sync_host": f"not installed ({exc.name})",
                         "timeout": "", "memory": "", "gil_free": ""})
    print(f"{'engine':42} {'start ms':>9} {'call µs':>9}  sync host fn / time limit / "
          "memory limit / loop runs while a script spins")
    for row in rows:
        print(f"{row['engine']:42} {row['startup_ms']:9.1f} {row['call_us']:9.1f}  "
              f"{row['sync_host']} / {row['timeout']} / {row['memory']} / {row['gil_free']}")


if __name__ == "__main__":
    main()
