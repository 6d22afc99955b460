"""The JavaScript runtime of one API: Tyk's JSVM, run in worker processes.

Theory of operation.  Tyk's scripts call host functions synchronously
(``var r = TykMakeHttpRequest(...)`` and use ``r`` at once), so the engine
must let JavaScript block on Python; a runaway script (``while(true){}``)
must be stopped after ``jsvm_timeout`` seconds; and nothing may block the
gateway's event loop.  QuickJS (the ``quickjs`` package) gives synchronous
host functions and a memory limit, but its own time limit cannot be used
with host functions and a running script cannot be interrupted from another
thread.  So each API's scripts run in a small pool of worker processes
(:mod:`.worker`), and the time limit is enforced by the operating system:
a call that overruns kills its worker (a new one is started for the next
call).  The measurements behind this choice are in
``docs/plugins-javascript.md`` (``bench/js_engines.py``).

The event loop talks to a worker through asyncio pipes: it sends the
expression to evaluate, then serves the host calls the script makes (on
the loop, with the gateway's outbound client and REST API) until the
result comes back.  No thread is blocked, so the number of JavaScript calls
running at once is the number of workers (``jsvm_workers`` per API), and
the loop serves other requests meanwhile.

Limits: ``jsvm_timeout`` (Tyk's, seconds, default 5) bounds each call,
host calls included, as Tyk's timer does; ``jsvm_memory_limit`` (fastgate's,
MiB, default 64) is QuickJS's heap limit per API context (an allocation over
it throws ``InternalError: out of memory`` in the script).

Differences from otto: Tyk runs each call on a copy of the VM, so globals a
call sets are gone at the next; here a worker's context lives on, so they
persist within a worker (scripts written for Tyk do not notice).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import logging
import os
import re
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from fastgate.outbound import OutboundError
from fastgate.plugins.js.shim import TYKJS
from fastgate.session.keys import storage_key

if TYPE_CHECKING:
    from fastgate.services import Services

__all__ = [
    "DEFAULT_MEMORY_MIB",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WORKERS",
    "JsError",
    "JsLimits",
    "JsLoadError",
    "JsRuntime",
    "JsTimeout",
    "go_canonical_header",
]

log = logging.getLogger("fastgate.plugins.js")
raw_log = logging.getLogger("fastgate.plugins.js.raw")

DEFAULT_TIMEOUT = 5.0
DEFAULT_MEMORY_MIB = 64
DEFAULT_WORKERS = 2
#: QuickJS's native stack limit per context.
STACK_BYTES = 1024 * 1024
#: Starting a worker (an interpreter and QuickJS) and loading the scripts.
START_TIMEOUT = 20.0
_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
_HEADER = struct.Struct(">I")
_LINE = re.compile(r"<input>:(\d+)")
_ids = itertools.count(1)


class JsError(Exception):
    """A script failed: it threw, returned something unusable, or its worker died."""


class JsTimeout(JsError):
    """A call ran past ``jsvm_timeout`` (its worker was killed)."""


class JsLoadError(JsError):
    """A script does not compile (or throws while it loads); ``file`` and
    ``line`` say where."""

    def __init__(self, file: str, line: int | None, message: str) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.message = message


@dataclass(frozen=True, slots=True)
class JsLimits:
    """The limits of every call of one API's scripts."""

    #: Seconds a call may take, host calls included (Tyk's ``jsvm_timeout``).
    timeout: float = DEFAULT_TIMEOUT
    #: The QuickJS heap of the API's context, in MiB (fastgate's ``jsvm_memory_limit``).
    memory_mib: int = DEFAULT_MEMORY_MIB
    #: Worker processes (calls at once) for the API (fastgate's ``jsvm_workers``).
    workers: int = DEFAULT_WORKERS

    @classmethod
    def from_config(cls, config: object) -> JsLimits:
        """The limits a gateway configuration sets (Tyk's rule: a
        ``jsvm_timeout`` of 0 or less is the default 5 s)."""
        # The gateway's plugin settings (GatewayConfig.plugins), or a bare object.
        config = getattr(config, "plugins", None) or config
        timeout = getattr(config, "jsvm_timeout", 0) or 0
        memory = getattr(config, "jsvm_memory_limit", 0) or 0
        workers = getattr(config, "jsvm_workers", 0) or 0
        return cls(timeout=float(timeout) if timeout > 0 else DEFAULT_TIMEOUT,
                   memory_mib=int(memory) if memory > 0 else DEFAULT_MEMORY_MIB,
                   workers=int(workers) if workers > 0 else DEFAULT_WORKERS)


def go_canonical_header(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``content-type`` -> ``Content-Type``
    (names with characters Go does not canonicalise are kept as given)."""
    if not name or any(c in " \t\r\n:" for c in name):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def compile_check(file: str, source: str) -> None:
    """Raise :class:`JsLoadError` (with the line) when ``source`` is not valid
    JavaScript; the script is compiled, never run."""
    import quickjs

    context = quickjs.Context()
    context.set_time_limit(2)
    try:
        context.eval("new Function(" + json.dumps(source) + ")")
    except quickjs.JSException as exc:
        text = str(exc).strip()
        found = _LINE.search(text)
        # new Function puts two lines of its own before the body.
        line = max(int(found.group(1)) - 2, 1) if found else None
        raise JsLoadError(file, line, text.splitlines()[0]) from None


class _WorkerDied(Exception):
    pass


class _ScriptError(Exception):
    """The worker answered that the script failed (the worker itself is fine)."""


class _Worker:
    """One worker process and its pipes (bound to the loop that started it)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.loaded = 0

    @classmethod
    async def start(cls) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-s", _WORKER_FILE,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        return cls(process)

    async def send(self, message: Mapping[str, Any]) -> None:
        stdin = self.process.stdin
        assert stdin is not None
        data = orjson.dumps(message)
        try:
            stdin.write(_HEADER.pack(len(data)) + data)
            await stdin.drain()
        except (ConnectionError, BrokenPipeError):
            raise _WorkerDied from None

    async def receive(self) -> dict[str, Any]:
        stdout = self.process.stdout
        assert stdout is not None
        try:
            head = await stdout.readexactly(4)
            (size,) = _HEADER.unpack(head)
            message: dict[str, Any] = orjson.loads(await stdout.readexactly(size))
        except (asyncio.IncompleteReadError, ConnectionError, orjson.JSONDecodeError):
            raise _WorkerDied from None
        return message

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()

    async def stop(self) -> None:
        self.kill()
        with contextlib.suppress(ProcessLookupError, TimeoutError):
            async with asyncio.timeout(2):
                await self.process.wait()
                # Let the pipes' transports see their end before the loop may close.
                for _ in range(3):
                    await asyncio.sleep(0)


class JsRuntime:
    """The JSVM of one API: its scripts, its limits, its worker pool, and the
    host functions bridged to the gateway.

    Scripts are added at load time (:meth:`add_script`, which checks that
    they compile); :meth:`run` evaluates an expression yielding a string in
    a worker and answers it, raising :class:`JsTimeout` or :class:`JsError`.
    Workers start on first use.
    """

    def __init__(self, *, api_id: str, org_id: str, config_data: object,
                 services: Services, limits: JsLimits | None = None,
                 config_data_disabled: bool = False) -> None:
        self.api_id = api_id
        self.org_id = org_id
        self.services = services
        self.limits = limits or JsLimits.from_config(services.config)
        spec: dict[str, Any] = {"OrgID": org_id, "APIID": api_id}
        if not config_data_disabled:
            spec["config_data"] = config_data if config_data is not None else {}
        #: Tyk's third argument, ``config``: ``{OrgID, APIID, config_data}`` as JSON.
        self.spec_json = orjson.dumps(spec).decode()
        self._ctx = f"api-{next(_ids)}"
        self._scripts: list[tuple[str, str]] = []
        self._idle: list[_Worker] = []
        self._running = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._dying: set[asyncio.Task[None]] = set()

    # -- scripts ------------------------------------------------------------------

    def add_script(self, name: str, source: str) -> None:
        """Load ``source`` (from file ``name``) into the API's context after the
        scripts already added; JsLoadError when it does not compile."""
        compile_check(name, source)
        self._scripts.append((name, source))

    def add_file(self, path: str) -> None:
        """:meth:`add_script` with the contents of ``path``; JsLoadError when it
        cannot be read."""
        if any(name == path for name, _ in self._scripts):
            return
        try:
            with open(path, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise JsLoadError(path, None, f"cannot read the script: {exc}") from None
        self.add_script(path, source)

    # -- calls --------------------------------------------------------------------

    async def run(self, expression: str) -> str:
        """Evaluate ``expression`` (it must yield a string) within the limits."""
        worker = await self._acquire()
        healthy = False
        try:
            await self._load(worker)
            try:
                async with asyncio.timeout(self.limits.timeout):
                    result = await self._call(worker, expression)
            except TimeoutError:
                raise JsTimeout(f"JS middleware timed out after "
                                f"{self.limits.timeout:g}s") from None
            except _ScriptError as exc:
                healthy = True  # the script failed; its worker is fine
                raise JsError(str(exc)) from None
            healthy = True
            return result
        except _WorkerDied:
            raise JsError("the JavaScript worker stopped (out of memory?)") from None
        finally:
            self._release(worker, healthy)

    async def _call(self, worker: _Worker, expression: str) -> str:
        message = await self._converse(worker, {"op": "run", "ctx": self._ctx,
                                                "expr": expression})
        if "result" in message:
            return str(message["result"])
        raise _ScriptError(str(message.get("error") or "the script failed"))

    async def _converse(self, worker: _Worker, request: dict[str, Any]) -> dict[str, Any]:
        """Send ``request`` to ``worker`` and serve its log lines and host
        calls (at load time too) until it answers; that answer."""
        await worker.send(request)
        while True:
            message = await worker.receive()
            if "log" in message:
                self._log(message)
            elif "host" in message:
                value = await self._host(str(message["host"]), message.get("args") or [])
                await worker.send({"value": value})
            else:
                return message

    async def _load(self, worker: _Worker) -> None:
        """Bring ``worker``'s context up to date with the scripts added."""
        if worker.loaded >= len(self._scripts) and worker.loaded:
            return
        memory = self.limits.memory_mib * 1024 * 1024
        try:
            async with asyncio.timeout(START_TIMEOUT):
                if worker.loaded == 0:
                    await self._load_one(worker, "<TykJS>", "", memory)
                for name, source in self._scripts[worker.loaded:]:
                    await self._load_one(worker, name, source, memory)
                    worker.loaded += 1
        except TimeoutError:
            raise JsTimeout("loading the API's scripts took more than "
                            f"{START_TIMEOUT:g}s") from None

    async def _load_one(self, worker: _Worker, name: str, source: str, memory: int) -> None:
        message = await self._converse(worker, {
            "op": "load", "ctx": self._ctx, "name": name, "source": source, "memory": memory,
            "stack": STACK_BYTES, "prelude": TYKJS})
        if "error" in message:
            text = str(message["error"])
            found = _LINE.search(text)
            raise JsLoadError(name, int(found.group(1)) if found else None,
                              text.splitlines()[0] if text else "failed to load")

    async def _acquire(self) -> _Worker:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # Workers belong to the loop that started them.
            for worker in self._idle:
                worker.kill()
            self._idle = []
            self._running = 0
            self._waiters = []
            self._loop = loop
        while True:
            if self._idle:
                self._running += 1
                return self._idle.pop()
            if self._running < self.limits.workers:
                self._running += 1
                try:
                    async with asyncio.timeout(START_TIMEOUT):
                        return await _Worker.start()
                except BaseException:
                    self._running -= 1
                    self._wake()
                    raise
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def _release(self, worker: _Worker, healthy: bool) -> None:
        self._running -= 1
        if healthy:
            self._idle.append(worker)
        else:
            # Killed on a timeout, or in an unknown state after an error
            # between frames: a new worker replaces it on demand.
            worker.kill()
            task = asyncio.get_running_loop().create_task(worker.stop())
            self._dying.add(task)
            task.add_done_callback(self._dying.discard)
        self._wake()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                break

    async def aclose(self) -> None:
        """Stop the idle workers (calls under way keep theirs until they end)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            await worker.stop()
        if self._dying:
            await asyncio.gather(*self._dying, return_exceptions=True)

    def close(self) -> None:
        """Kill the idle workers without waiting (any thread)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.kill()

    def __del__(self) -> None:
        for worker in self._idle:
            with contextlib.suppress(Exception):
                worker.kill()

    # -- host functions -------------------------------------------------------------

    def _log(self, message: Mapping[str, Any]) -> None:
        text = str(message.get("log", ""))
        if message.get("raw"):
            raw_log.info("%s", text)
        else:
            log.info("[JSVM %s] %s", self.api_id, text)

    def _remaining(self) -> float:
        # The call's own timeout cancels a host call at the call's deadline.
        return self.limits.timeout

    async def _host(self, name: str, args: list[Any]) -> str | None:
        texts = [arg if isinstance(arg, str) else json.dumps(arg) for arg in args]
        texts += ["undefined"] * (3 - len(texts))
        try:
            if name == "TykMakeHttpRequest":
                return await self.make_http_request(texts[0])
            if name == "TykBatchRequest":
                return await self.batch_request(texts[0])
            if name == "TykGetKeyData":
                return await self.get_key_data(texts[0], texts[1])
            if name == "TykSetKeyData":
                await self.set_key_data(texts[0], texts[1], texts[2])
                return None
        except Exception:
            log.exception("[JSVM %s] %s failed", self.api_id, name)
        return None

    async def make_http_request(self, request_json: str) -> str | None:
        """Tyk's ``TykMakeHttpRequest``: the request object (``Method``,
        ``Domain``, ``Resource``, ``Headers``, ``Body``, ``FormData``; names
        matched without regard to case, as Go's JSON decoder does) sent with
        the gateway's outbound client; the answer as Tyk's JSON (``Code``,
        ``Body``, ``Headers`` and their lower-case twins), or None (the
        script gets ``undefined``) when the request cannot be made."""
        if request_json == "undefined":
            return None
        fields = _go_fields(request_json)
        if fields is None:
            log.error("[JSVM %s] TykMakeHttpRequest: failed to decode the request object",
                      self.api_id)
            return None
        url = _string(fields.get("domain")) + _string(fields.get("resource"))
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            log.error("[JSVM %s] TykMakeHttpRequest: not an absolute http(s) URL",
                      self.api_id)
            return None
        form = _string_map(fields.get("formdata"))
        headers = {go_canonical_header(k): v for k, v in _string_map(fields.get("headers")).items()}
        body = _string(fields.get("body"))
        if not body and form:
            body = urlencode(sorted(form.items()))
        method = _string(fields.get("method")).upper() or "GET"
        try:
            response = await self.services.http.request(
                method, _request_url(url), headers=headers, body=body.encode(),
                timeout=self._remaining())
        except OutboundError as exc:
            log.error("[JSVM %s] TykMakeHttpRequest failed: %s", self.api_id, exc)
            return None
        text = response.body.decode("utf-8", "replace")
        grouped = _grouped_headers(response.headers)
        return orjson.dumps({"Code": response.status, "Body": text, "Headers": grouped,
                             "code": response.status, "body": text,
                             "headers": grouped}).decode()

    async def batch_request(self, batch_json: str) -> str | None:
        """Tyk's ``TykBatchRequest``: ``{"requests": [{method, headers, body,
        relative_url}], "suppress_parallel_execution"}`` with absolute URLs;
        the replies ``[{relative_url, code, headers, body}]`` (a failed one is
        Tyk's empty reply)."""
        fields = _go_fields(batch_json)
        if fields is None or not isinstance(fields.get("requests", []), list):
            log.error("[JSVM %s] TykBatchRequest: failed to decode the batch", self.api_id)
            return None
        requests = []
        for raw in fields.get("requests") or []:
            entry = _lower_keys(raw) if isinstance(raw, dict) else {}
            requests.append(entry)

        async def one(entry: dict[str, Any]) -> dict[str, Any]:
            url = _string(entry.get("relative_url"))
            headers = {go_canonical_header(k): v
                       for k, v in _string_map(entry.get("headers")).items()}
            try:
                response = await self.services.http.request(
                    _string(entry.get("method")).upper() or "GET", _request_url(url),
                    headers=headers, body=_string(entry.get("body")).encode(),
                    timeout=self._remaining())
            except OutboundError as exc:
                log.error("[JSVM %s] batch request failed: %s", self.api_id, exc)
                return {"relative_url": "", "code": 0, "headers": None, "body": ""}
            return {"relative_url": url, "code": response.status,
                    "headers": _grouped_headers(response.headers),
                    "body": response.body.decode("utf-8", "replace")}

        if fields.get("suppress_parallel_execution") is True:
            replies = [await one(entry) for entry in requests]
        else:
            replies = list(await asyncio.gather(*(one(entry) for entry in requests)))
        return orjson.dumps(replies).decode()

    def _admin_base(self) -> str:
        config = self.services.config
        host = config.listen_address or "127.0.0.1"
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        port = config.control_api_port or config.listen_port
        scheme = "https" if config.http_server_options.tls.use_ssl else "http"
        return f"{scheme}://{host}:{port}"

    async def _admin(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        response = await self.services.http.request(
            method, self._admin_base() + path,
            headers={"X-Tyk-Authorization": self.services.config.secret,
                     "Content-Type": "application/json"},
            body=body, timeout=self._remaining())
        return response.status, response.body

    async def get_key_data(self, key: str, api_id: str) -> str:
        """Tyk's ``TykGetKeyData``: what ``GET /tyk/keys/{key}?api_id=`` answers
        (the session, or Tyk's error object)."""
        query = "?api_id=" + quote(api_id, safe="") if api_id and api_id != "undefined" else ""
        try:
            _status, body = await self._admin("GET", "/tyk/keys/" + quote(key, safe="") + query)
        except OutboundError as exc:
            log.error("[JSVM %s] TykGetKeyData failed: %s", self.api_id, exc)
            return "{}"
        return body.decode("utf-8", "replace")

    async def set_key_data(self, key: str, session_json: str, suppress_reset: str) -> None:
        """Tyk's ``TykSetKeyData``: store ``session_json`` under the key named
        ``key`` as given (hashed when the gateway hashes keys; Tyk's
        ``doAddOrUpdate``), through the REST API so that its checks,
        policies, lifetime and notifications apply; ``suppress_reset`` "1"
        keeps the quota counters."""
        skey = storage_key(key, hash_keys=self.services.hash_keys,
                           hash_key_function=self.services.hash_key_function)
        query = "?hashed=1" + ("&suppress_reset=1" if suppress_reset == "1" else "")
        try:
            status, body = await self._admin("POST", "/tyk/keys/" + quote(skey, safe="") + query,
                                             session_json.encode())
        except OutboundError as exc:
            log.error("[JSVM %s] TykSetKeyData failed: %s", self.api_id, exc)
            return
        if status >= 300:
            log.error("[JSVM %s] TykSetKeyData refused (%d): %s", self.api_id, status,
                      body[:200].decode("utf-8", "replace"))


def _request_url(url: str) -> str:
    """The URL as the outbound client wants it (a space or other raw byte
    percent-encoded, as Go's URL parser re-encodes it)."""
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def _go_fields(text: str) -> dict[str, Any] | None:
    """A JSON object with lower-cased names (Go matches struct fields so)."""
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict):
        return None
    return _lower_keys(value)


def _lower_keys(value: Mapping[str, Any]) -> dict[str, Any]:
    return {name.lower(): item for name, item in value.items()}


def _string(value: object) -> str:
    return value if isinstance(value, str) else ""


def _string_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _grouped_headers(headers: tuple[tuple[str, str], ...]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(go_canonical_header(name), []).append(value)
    return grouped


def encode_body(body: bytes) -> str:
    """A request body as Tyk's middleware object carries it (Go's ``[]byte``
    in JSON: standard base64)."""
    return base64.b64encode(body).decode("ascii")
