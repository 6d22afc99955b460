"""Tyk's JavaScript custom authentication: an ``auth_check`` with driver otto.

The middleware object's function returns ``ReturnAuthData(request,
session)``; as in Tyk (``DynamicMiddleware`` with ``Auth``) the session it
gives becomes the request's, its key id being the object's ``AuthValue``
(a script sets ``AuthValue`` on the returned object).  **fastgate
differs**: without an ``AuthValue`` the request's ``Authorization`` header
names the key, and a session with no field set, or no key id at all, is
refused with 403 ``Forbidden`` (Tyk would admit the request with an empty
session).  ``ReturnOverrides`` answer as in the other JS hooks.  The session
is then handed over as the Python ``auth_check``'s is
(:mod:`fastgate.plugins.auth_sessions`: org id, hashed key, policies, quota
kept, persisted when changed).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from fastgate import responses
from fastgate.plugins.auth_sessions import PluginSessions
from fastgate.plugins.changes import RequestView, apply_changes
from fastgate.plugins.js.middleware import JS_ERROR, JsMiddleware, _changes, _override
from fastgate.plugins.js.runtime import JsError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services

__all__ = ["JsAuth"]

log = logging.getLogger("fastgate.plugins.js")

FORBIDDEN = responses.error_response(403, "Forbidden")


class JsAuth(JsMiddleware):
    """``auth_check`` run in the API's JSVM (the registry's ``custom`` method)."""

    name: ClassVar[str] = "custom"  # type: ignore[misc]

    def __init__(self, spec: ApiSpec, descriptor: Any, services: Services) -> None:
        super().__init__(spec, descriptor, "auth_check", services)
        self.sessions = PluginSessions(spec, services, self._failed)

    def present(self, req: Request) -> bool:
        """Any request: the script decides what it reads."""
        return True

    def process(self, req: Request) -> Outcome:
        """Run the script; the session it gives becomes the request's."""
        return self._authenticate(req, req.read_body())

    def _failed(self, exc: BaseException) -> None:
        log.error("[JSVM %s] auth_check %s gave an unusable session: %s", self.api_id,
                  self.object_name, exc)

    async def _authenticate(self, req: Request,
                            pending: Awaitable[bytes | None]) -> bytes | None:
        body = await pending
        view = RequestView.of(req, body)
        returned = await self.call(view, {})
        if returned is None:
            return JS_ERROR
        new: dict[str, Any] = returned["Request"]
        overrides = new.get("ReturnOverrides")
        if isinstance(overrides, dict):
            answer = _override(overrides)
            if answer is not None:
                return answer
        session = returned.get("Session")
        key_id = returned.get("AuthValue")
        if not isinstance(key_id, str) or not key_id:
            header = req.header(b"authorization")
            key_id = header.decode("latin-1") if header else ""
        if not isinstance(session, dict) or not any(session.values()) or not key_id:
            return FORBIDDEN
        refusal = apply_changes(req, view, _changes(new, view))
        if refusal is not None:
            return refusal
        outcome = self.sessions.accept(req, key_id, dict(session))
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome

    async def call(self, view: RequestView, session: dict[str, Any]) -> dict[str, Any] | None:
        """``<name>.DoProcessRequest(request, session, config)``: the object
        the script returned, or None when it failed (logged)."""
        expression = (f"{self.object_name}.DoProcessRequest("
                      f"{orjson.dumps(self.request_object(view)).decode()}, "
                      f"{orjson.dumps(session).decode()}, {self.runtime.spec_json});")
        try:
            returned = orjson.loads(await self.runtime.run(expression))
            if not isinstance(returned, dict) or not isinstance(returned.get("Request"), dict):
                raise JsError("the middleware did not return ReturnAuthData(request, session)")
        except (JsError, orjson.JSONDecodeError) as exc:
            log.error("[JSVM %s] auth_check %s failed: %s", self.api_id, self.object_name, exc)
            return None
        return returned
