"""Python hooks as chain steps: ``pre``, ``post_key_auth``, ``post``, ``auth_check``, ``response``.

Each call builds the objects Tyk's hooks get (:mod:`.objects`), calls the
hook (:class:`HookRunner`), then applies what it did: ``return_overrides``
answer the request (:func:`fastgate.plugins.changes.override_answer`),
otherwise the request changes are applied and the chain goes on.

**How a hook runs.**  A plain function runs on the event loop -- the
fastest way, and the right one for a hook that only looks at the request; a
hook running longer than ``coprocess_options.hook_time_budget`` is reported
(once per burst), since every other request waits for it.  An ``async def``
hook is awaited (beyond Tyk).  A hook declared with ``"run_in_thread":
true`` runs in the gateway's bounded thread pool
(``coprocess_options.thread_pool_workers``): for hooks that block (a
database driver, ``time.sleep``).  A hook that raises answers Tyk's 500
``Middleware error`` (403 ``Key not authorised`` in ``auth_check``) and its
traceback is logged once per burst; the gateway serves on.

**The body.**  A request with a body is read whole before its hooks run
(Tyk's hooks get ``body`` and ``raw_body``); a request without one costs
nothing.  A body larger than the proxy buffers (``MAX_BUFFERED``) reaches
the hook empty and its body changes are ignored (logged).

**auth_check** (the registry's ``custom`` method, in Tyk's chain order):
success needs a session with a field set and ``metadata["token"]``; else
403 ``Forbidden``.  The session then gets the API's ``org_id``, is stored
under the token (or the ``id_extractor`` id), hashed when ``hash_keys`` is
on, with its policies applied by the session cache, its quota counters
carried over from the stored session, and persisted when this method is
the base identity -- written only when it differs from the one stored
(Tyk writes it on every request).  Session changes are kept from
``auth_check`` only, as in Tyk.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from fastgate import responses
from fastgate.plugins import id_extractor
from fastgate.plugins.auth_sessions import NOT_AUTHORISED, PluginSessions
from fastgate.plugins.changes import (
    MIDDLEWARE_ERROR,
    RequestView,
    apply_changes,
    build_response,
    override_answer,
)
from fastgate.plugins.python.host import PluginHost, current_host
from fastgate.plugins.python.objects import ResponseObject, SessionState, TykCoProcessRequest
from fastgate.services import then
from fastgate.session.cache import CachedSession

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.plugins.python.hooks import Hook
    from fastgate.plugins.settings import HookDescriptor, IdExtractorSettings
    from fastgate.services import Outcome, Request, Services

__all__ = ["HookRunner", "PythonAuth", "PythonHook", "PythonResponseHooks", "has_body"]

log = logging.getLogger("fastgate.plugins")

#: Tyk's answer when auth_check gives no session or no token.
FORBIDDEN = responses.error_response(403, "Forbidden")
#: Seconds during which repeated reports of one hook are counted, not logged.
BURST = 10.0
_POOLS: dict[int, ThreadPoolExecutor] = {}


def _pool(workers: int) -> ThreadPoolExecutor:
    pool = _POOLS.get(workers)
    if pool is None:
        pool = _POOLS[workers] = ThreadPoolExecutor(max_workers=workers,
                                                    thread_name_prefix="fastgate-plugin")
    return pool


def has_body(req: Request) -> bool:
    """Whether the request carries a body (a length above 0, or chunked)."""
    length = req.header(b"content-length")
    if length is not None:
        return length.strip() not in (b"0", b"")
    return req.header(b"transfer-encoding") is not None


class _Reporter:
    """Logs a hook's trouble once per burst, with how many were not logged."""

    __slots__ = ("last", "level", "skipped")

    def __init__(self, level: int = logging.ERROR) -> None:
        self.last = -BURST
        self.skipped = 0
        self.level = level

    def report(self, message: str, *args: object, exc: BaseException | None = None) -> None:
        now = time.monotonic()
        if now - self.last < BURST:
            self.skipped += 1
            return
        if self.skipped:
            message += " (and %d more times in the last burst)"
            args = (*args, self.skipped)
        self.last, self.skipped = now, 0
        log.log(self.level, message, *args, exc_info=exc)


class HookRunner:
    """Calls one hook the way its declaration asks (see the module docstring)."""

    __slots__ = ("budget", "failures", "hook", "host", "label", "oversized", "slow", "threaded",
                 "workers")

    def __init__(self, hook: Hook, descriptor: HookDescriptor, host: PluginHost, *,
                 budget: float, workers: int) -> None:
        self.hook = hook
        self.host = host
        self.budget = budget
        self.workers = workers
        self.threaded = descriptor.run_in_thread and not hook.is_async
        self.label = f"{descriptor.where} {hook.name!r}"
        self.failures = _Reporter()
        self.slow = _Reporter(logging.WARNING)
        self.oversized = _Reporter(logging.WARNING)

    def call(self, args: tuple[Any, ...]) -> Any:
        """The hook's result, or an awaitable of it; raises what a synchronous hook raises."""
        host = self.host
        if host.loop is None:
            host.loop = asyncio.get_running_loop()
            host.thread = threading.get_ident()
        var = current_host()
        if self.hook.is_async:
            return self._awaited(args)
        if self.threaded:
            context = contextvars.copy_context()
            context.run(var.set, host)
            return host.loop.run_in_executor(_pool(self.workers), context.run, self.hook, *args)
        token = var.set(host)
        started = time.perf_counter()
        try:
            return self.hook(*args)
        finally:
            var.reset(token)
            elapsed = time.perf_counter() - started
            if elapsed > self.budget:
                self.slow.report("plugin hook %s ran %.1f ms on the event loop (budget %.1f ms):"
                                 " every request waited; mark it \"run_in_thread\" or make it"
                                 " async", self.label, elapsed * 1000, self.budget * 1000)

    async def _awaited(self, args: tuple[Any, ...]) -> Any:
        current_host().set(self.host)  # this Task's own context
        return await self.hook(*args)

    def failed(self, exc: BaseException) -> None:
        """Report a hook that raised."""
        self.failures.report("plugin hook %s failed", self.label, exc=exc)


def _spec_object(spec: ApiSpec, bundle_hash: str) -> dict[str, str]:
    return {"OrgID": spec.org_id, "APIID": spec.api_id, "bundle_hash": bundle_hash,
            "config_data": orjson.dumps(spec.config_data).decode()}


class _Call:
    """One hook call's objects."""

    __slots__ = ("metadata", "request", "session", "view")

    def __init__(self, view: RequestView, request: TykCoProcessRequest,
                 session: SessionState) -> None:
        self.view = view
        self.request = request
        self.session = session
        self.metadata: dict[str, str] = session.metadata


class _Step:
    """What the request hooks share: reading the body, calling, the answer."""

    __slots__ = ("descriptor", "four", "runner", "spec_object", "with_session")
    failure: ClassVar[bytes] = MIDDLEWARE_ERROR

    def __init__(self, spec: ApiSpec, descriptor: HookDescriptor, runner: HookRunner,
                 bundle_hash: str, *, with_session: bool) -> None:
        self.descriptor = descriptor
        self.runner = runner
        self.spec_object = _spec_object(spec, bundle_hash)
        self.with_session = with_session
        self.four = runner.hook.arg_count >= 4

    def _with_body(self, req: Request, go: Callable[[bytes | None], Outcome]) -> Outcome:
        if not has_body(req):
            return go(b"")
        return then(req.read_body(), go)

    def _invoke(self, req: Request, body: bytes | None,
                done: Callable[[Request, _Call, Any], Outcome]) -> Outcome:
        if body is None:
            self.runner.oversized.report("%s: the request body is larger than the proxy "
                                         "buffers: the hook sees none", self.runner.label)
        view = RequestView.of(req, body)
        found = req.session if self.with_session else None
        call = _Call(view, TykCoProcessRequest(view, raw_body_only=self.descriptor.raw_body_only),
                     SessionState(found.effective if found is not None else None))
        args = (call.request, call.session, call.metadata, self.spec_object) if self.four \
            else (call.request, call.session, self.spec_object)
        try:
            result = self.runner.call(args)
        except Exception as exc:
            self.runner.failed(exc)
            return self.failure
        if hasattr(result, "__await__"):
            return self._later(result, req, call, done)
        return done(req, call, result)

    async def _later(self, pending: Awaitable[Any], req: Request, call: _Call,
                     done: Callable[[Request, _Call, Any], Outcome]) -> bytes | None:
        try:
            result = await pending
        except Exception as exc:
            self.runner.failed(exc)
            return self.failure
        outcome = done(req, call, result)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    @staticmethod
    def _returned(call: _Call, result: Any) -> None:
        """Take the objects a hook returned (Tyk assigns them back)."""
        if isinstance(result, tuple):
            if result and isinstance(result[0], TykCoProcessRequest):
                call.request = result[0]
            if len(result) > 1 and isinstance(result[1], SessionState):
                call.session = result[1]
            if len(result) > 2 and isinstance(result[2], dict):
                call.metadata = result[2]

    @staticmethod
    def _overrides(call: _Call) -> bytes | None:
        ro = call.request.object.return_overrides
        return override_answer(int(ro.response_code or 0), error=str(ro.response_error or ""),
                               body=ro.response_body or "", headers=ro.headers,
                               override_error=bool(ro.override_error))

    @staticmethod
    def _apply(req: Request, call: _Call) -> bytes | None:
        if call.request.untouched():
            return None
        changes = call.request.changes()
        if not call.view.body_read:
            changes.body = None
        return apply_changes(req, call.view, changes)


class PythonHook(_Step):
    """A ``pre``, ``post_key_auth`` or ``post`` hook."""

    name: ClassVar[str] = "python_hook"

    def process(self, req: Request) -> Outcome:
        return self._with_body(req, lambda body: self._invoke(req, body, self._done))

    def _done(self, req: Request, call: _Call, result: Any) -> bytes | None:
        self._returned(call, result)
        answer = self._overrides(call)
        if answer is not None:
            return answer
        return self._apply(req, call)


class PythonAuth(_Step):
    """``auth_check``: Tyk's custom authentication (see the module docstring)."""

    name: ClassVar[str] = "custom"
    failure: ClassVar[bytes] = NOT_AUTHORISED
    __slots__ = ("extractor", "org_id", "services", "sessions")

    def __init__(self, spec: ApiSpec, descriptor: HookDescriptor, runner: HookRunner,
                 bundle_hash: str, services: Services,
                 extractor: IdExtractorSettings | None) -> None:
        super().__init__(spec, descriptor, runner, bundle_hash, with_session=False)
        self.services = services
        self.extractor = extractor
        self.org_id = spec.org_id
        self.sessions = PluginSessions(spec, services, self.runner.failed)

    def present(self, req: Request) -> bool:
        """The extractor's header when one is configured; else any request
        (the plugin decides what it reads)."""
        extractor = self.extractor
        if extractor is not None and extractor.extract_from == "header":
            return req.header(extractor.header_name.lower().encode("latin-1")) is not None
        return True

    def process(self, req: Request) -> Outcome:
        return self._with_body(req, lambda body: self._start(req, body))

    def _start(self, req: Request, body: bytes | None) -> Outcome:
        extractor = self.extractor
        if extractor is None:
            return self._invoke(req, body, lambda r, c, res: self._done(r, c, res, None))
        value = id_extractor.extract(extractor, req, body)
        if value is None:
            return id_extractor.MISSING
        sid = id_extractor.session_id(self.org_id, value)
        skey = self.sessions.storage_key(sid)
        return then(self.services.sessions.lookup(skey),
                    lambda found: self._known(req, body, sid, skey, found))

    def _known(self, req: Request, body: bytes | None, sid: str, skey: str,
               found: CachedSession | None) -> Outcome:
        if found is not None:
            deadline = found.session.get("id_extractor_deadline") or 0
            if isinstance(deadline, int | float) and deadline > self.services.clock():
                return self.sessions.identity.accept(req, (skey, found))
        return self._invoke(req, body, lambda r, c, res: self._done(r, c, res, sid))

    def _done(self, req: Request, call: _Call, result: Any, sid: str | None) -> Outcome:
        self._returned(call, result)
        ro = call.request.object.return_overrides
        code = int(ro.response_code or 0)
        if code > 0:
            answer = self._overrides(call)
            if answer is not None:
                return answer
        session = call.session
        metadata = call.metadata
        token = metadata.get("token") or session.metadata.get("token")
        if session.empty or not token:
            return FORBIDDEN
        refusal = self._apply(req, call)
        if refusal is not None:
            return refusal
        record = session.to_dict()
        if metadata is not session.metadata:
            meta = dict(record.get("meta_data") or {})
            meta.update({str(k): str(v) for k, v in metadata.items()})
            record["meta_data"] = meta
        return self.sessions.accept(req, sid or str(token), record)


class PythonResponseHooks:
    """The ``response`` hooks, in order, on the upstream's answer (a chain
    step that registers them: it runs last, once the request is going upstream)."""

    name: ClassVar[str] = "python_response_hooks"

    def __init__(self, spec: ApiSpec, runners: list[HookRunner], bundle_hash: str) -> None:
        self.runners = runners
        self.spec_object = _spec_object(spec, bundle_hash)

    def process(self, req: Request) -> None:
        req.on_response(lambda status, headers, body: self._run(req, status, headers, body),
                        True)

    def _run(self, req: Request, status: int, headers: list[tuple[bytes, bytes]],
             body: bytes | None) -> Outcome:
        found = req.session
        session = SessionState(found.effective if found is not None else None)
        view = RequestView.of(req, None)
        request = TykCoProcessRequest(view)
        response = ResponseObject(status, [(n.decode("latin-1"), v.decode("latin-1"))
                                           for n, v in headers], body or b"")
        return self._next(0, request, response, session)

    def _next(self, index: int, request: TykCoProcessRequest, response: ResponseObject,
              session: SessionState) -> Outcome:
        while index < len(self.runners):
            runner = self.runners[index]
            index += 1
            args = (request, response, session, session.metadata, self.spec_object)
            try:
                result = runner.call(args)
            except Exception as exc:
                runner.failed(exc)
                return MIDDLEWARE_ERROR
            if hasattr(result, "__await__"):
                return self._later(result, runner, index, request, response, session)
            if isinstance(result, ResponseObject):
                response = result
        status, pairs, raw = response.result()
        return build_response(status, pairs, raw)

    async def _later(self, pending: Awaitable[Any], runner: HookRunner, index: int,
                     request: TykCoProcessRequest, response: ResponseObject,
                     session: SessionState) -> bytes | None:
        try:
            result = await pending
        except Exception as exc:
            runner.failed(exc)
            return MIDDLEWARE_ERROR
        if isinstance(result, ResponseObject):
            response = result
        outcome = self._next(index, request, response, session)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome
