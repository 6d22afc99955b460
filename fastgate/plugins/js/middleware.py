"""Tyk's JavaScript middleware (``custom_middleware`` hooks with driver otto).

A hook names a middleware object its file defines::

    var rewrite = new TykJS.TykMiddleware.NewMiddleware({});
    rewrite.NewProcessRequest(function(request, session, config) {
        request.SetHeaders["X-Hello"] = "world";
        return rewrite.ReturnData(request, session.meta_data);
    });

The gateway calls ``<name>.DoProcessRequest(request, session, config)``
with Tyk's request object (``Headers``, ``SetHeaders``, ``DeleteHeaders``,
``Body``, ``URL``, ``Params``, ``AddParams``, ``ExtendedParams``,
``DeleteParams``, ``ReturnOverrides``, ``IgnoreBody``, ``Method``,
``RequestURI``, ``Scheme``), the session (``post_key_auth`` and ``post``
hooks with ``require_session``; an empty one otherwise) and ``config``
(``{OrgID, APIID, config_data}``).  What the script changed is applied with
:mod:`fastgate.plugins.changes`; ``ReturnOverrides.ResponseCode`` ends the
chain with the script's answer (400 and more without ``OverrideError``:
Tyk's error JSON).  The ``SessionMeta`` handed back becomes the session's
``meta_data`` (saved) when the hook has the session.  A script that throws
or times out answers Tyk's 500 ``{"error": "Internal Server Error"}``.

**fastgate differs:** a changed ``Method`` is forwarded (Tyk's JSVM ignores
it).  Tyk's JS ``auth_check`` is :mod:`fastgate.plugins.js.auth`.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import orjson

from fastgate import responses
from fastgate.config import ConfigError
from fastgate.plugins.changes import (
    RequestChanges,
    RequestView,
    apply_changes,
    build_response,
    override_answer,
)
from fastgate.plugins.js.runtime import JsError, JsLoadError, JsRuntime

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services

__all__ = ["JS_ERROR", "JsMiddleware"]

log = logging.getLogger("fastgate.plugins.js")

#: Tyk's answer when a JS middleware fails.
JS_ERROR = responses.error_response(500, "Internal Server Error")


class JsMiddleware:
    """A ``pre`` / ``post_key_auth`` / ``post`` hook run in the API's JSVM."""

    name = "js_middleware"

    def __init__(self, spec: ApiSpec, descriptor: Any, kind: str, services: Services) -> None:
        # What the step needs of the spec, not the spec: the spec holds its
        # loaded plugins (``spec.loaded_plugins``), so a reference back would
        # make a cycle keeping the step and its worker processes alive after
        # a reload replaced it -- until a full collection, which never comes
        # for the objects the gateway froze at start (``gc.freeze()``).
        # Without the cycle the runtime is freed with the old chain and its
        # idle workers are killed (JsRuntime.__del__).
        self.api_id = spec.api_id
        self.session_lifetime = spec.session_lifetime
        self.services = services
        self.kind = kind
        self.object_name = str(descriptor.name)
        self.pre = kind == "pre"
        self.use_session = not self.pre and bool(descriptor.require_session)
        self.runtime = JsRuntime(api_id=spec.api_id, org_id=spec.org_id,
                                 config_data=spec.raw.get("config_data"), services=services,
                                 config_data_disabled=spec.raw.get("config_data_disabled")
                                 is True)
        try:
            self.runtime.add_file(str(descriptor.path))
        except JsLoadError as exc:
            # A ConfigError: the definition is refused (on a reload the
            # configuration in service stays), the file and line named.
            raise ConfigError(spec.source, descriptor.where + ".path", str(exc)) from None

    @staticmethod
    def request_object(view: RequestView) -> dict[str, Any]:
        """Tyk's JS request object for ``view``."""
        return {
            "Headers": view.headers, "SetHeaders": {}, "DeleteHeaders": [],
            "Body": base64.b64encode(view.body).decode("ascii"), "URL": view.url,
            "Params": view.params, "AddParams": {}, "ExtendedParams": {}, "DeleteParams": [],
            "ReturnOverrides": {"ResponseCode": 0, "ResponseError": "", "ResponseBody": "",
                                "ResponseHeaders": {}, "OverrideError": False},
            "IgnoreBody": False, "Method": view.method, "RequestURI": view.request_uri,
            "Scheme": view.scheme,
        }

    def process(self, req: Request) -> Outcome:
        """Run the hook; None to go on, or the answer that ends the chain."""
        return self._run(req, req.read_body())

    async def _run(self, req: Request, pending: Awaitable[bytes | None]) -> bytes | None:
        body = await pending
        view = RequestView.of(req, body)
        cached = req.session if self.use_session else None
        session: dict[str, Any] = dict(cached.session) if cached is not None else {}
        request = self.request_object(view)
        expression = (f"{self.object_name}.DoProcessRequest({orjson.dumps(request).decode()}, "
                      f"{orjson.dumps(session).decode()}, {self.runtime.spec_json});")
        try:
            returned = orjson.loads(await self.runtime.run(expression))
            if not isinstance(returned, dict) or not isinstance(returned.get("Request"), dict):
                raise JsError("the middleware did not return ReturnData(request, ...)")
        except (JsError, orjson.JSONDecodeError) as exc:
            log.error("[JSVM %s] middleware %s (%s) failed: %s", self.api_id,
                      self.object_name, self.kind, exc)
            return JS_ERROR
        new: dict[str, Any] = returned["Request"]
        if cached is not None and req.session_key:
            await self._save_meta(req.session_key, session, returned.get("SessionMeta"))
        overrides = new.get("ReturnOverrides")
        if isinstance(overrides, dict):
            answer = _override(overrides)
            if answer is not None:
                return answer
        return apply_changes(req, view, _changes(new, view))

    async def _save_meta(self, storage_key: str, session: dict[str, Any], meta: object) -> None:
        await save_session_meta(self.services, self.api_id, storage_key, session, meta,
                                self.session_lifetime)

    async def aclose(self) -> None:
        """Stop the hook's JavaScript workers."""
        await self.runtime.aclose()


async def save_session_meta(services: Services, api_id: str, storage_key: str,
                            session: dict[str, Any], meta: object, lifetime: int) -> None:
    """Save ``meta`` as the session's ``meta_data`` when a script changed it
    (Tyk's ``SessionMeta``); a store failure is logged."""
    if not isinstance(meta, dict) or meta == (session.get("meta_data") or {}):
        return
    session["meta_data"] = meta
    try:
        await services.sessions.save(storage_key, orjson.dumps(session), max(lifetime, 0))
    except Exception as exc:
        log.error("[JSVM %s] saving the session's meta_data failed: %s", api_id, exc)


def _override(overrides: dict[str, Any]) -> bytes | None:
    code = overrides.get("ResponseCode")
    if not isinstance(code, int) or isinstance(code, bool) or code == 0:
        return None
    error = overrides.get("ResponseError") if isinstance(overrides.get("ResponseError"),
                                                         str) else ""
    body = overrides.get("ResponseBody") if isinstance(overrides.get("ResponseBody"),
                                                       str) else ""
    raw_headers = overrides.get("ResponseHeaders")
    headers = {str(k): v for k, v in raw_headers.items() if isinstance(v, str)} \
        if isinstance(raw_headers, dict) else {}
    override_error = overrides.get("OverrideError") is True
    if code >= 400 and not override_error and not error and not body:
        # Tyk's JSVM: the error is the (empty) body, not Python's default message.
        return build_response(code, [("Content-Type", "application/json"),
                                     *headers.items()], orjson.dumps({"error": ""}))
    return override_answer(code, error=str(error), body=str(body), headers=headers,
                           override_error=override_error)


def _str_map(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): v for k, v in value.items() if isinstance(v, str)}


def _changes(new: dict[str, Any], view: RequestView) -> RequestChanges:
    body: bytes | None = None
    raw = new.get("Body")
    if view.body_read and new.get("IgnoreBody") is not True and isinstance(raw, str):
        try:
            decoded = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            decoded = raw.encode("utf-8")
        if decoded != view.body:
            body = decoded
    extended = new.get("ExtendedParams")
    url = new.get("URL")
    method = new.get("Method")
    deleted_headers = new.get("DeleteHeaders")
    deleted_params = new.get("DeleteParams")
    return RequestChanges(
        set_headers=_str_map(new.get("SetHeaders")),
        delete_headers=[h for h in deleted_headers if isinstance(h, str)]
        if isinstance(deleted_headers, list) else [],
        url=url if isinstance(url, str) else None,
        add_params=_str_map(new.get("AddParams")),
        extended_params={str(k): [x for x in v if isinstance(x, str)]
                         for k, v in extended.items() if isinstance(v, list)}
        if isinstance(extended, dict) else {},
        delete_params=[p for p in deleted_params if isinstance(p, str)]
        if isinstance(deleted_params, list) else [],
        method=method if isinstance(method, str) else None,
        body=body,
    )
