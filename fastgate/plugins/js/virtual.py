"""Tyk's virtual endpoints: a JavaScript function answers the request itself.

A version's ``extended_paths.virtual`` lists them (Tyk's ``VirtualMeta``)::

    {"path": "/token", "method": "POST",
     "response_function_name": "login",
     "function_source_type": "file",            # or "blob": base64 source
     "function_source_uri": "middleware/login.js",
     "use_session": false, "proxy_on_error": false, "disabled": false}

Matching is Tyk's: the first entry (in order) whose ``method`` equals the
request's and whose path pattern (``{name}`` segments and ``/*`` wildcards
turned into regular expressions, Go's RE2 syntax, unanchored unless the
gateway's ``enable_path_prefix_matching`` / ``enable_path_suffix_matching``
say otherwise) matches the path with the listen path stripped, or the whole
path.  The function is called as ``fn(request, session, config)`` with
Tyk's objects: ``request`` ``{Headers, Body, URL, Params, Scheme}``
(``Params`` merges a form body's fields and the query's, as Go's
``ParseForm``), ``session`` the request's session when ``use_session`` is
set (else an empty one), ``config`` ``{OrgID, APIID, config_data}``.  It
returns ``TykJsResponse({Body, Code, Headers}, session_meta)``; with
``use_session``, a changed ``session_meta`` is saved as the session's
``meta_data``.  A script that throws, times out or returns something
unusable answers 500 "Error during virtual endpoint execution. Contact
Administrator for more details." -- or, with ``proxy_on_error``, the
request goes on to the upstream.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

import orjson

from fastgate import responses
from fastgate.config import FieldReader, json_type_name
from fastgate.plugins.changes import build_response, canonical_name
from fastgate.plugins.js.middleware import save_session_meta
from fastgate.plugins.js.runtime import JsError, JsLoadError, JsRuntime, compile_check
from fastgate.session.access import compile_url_pattern, strip_listen_path

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services

__all__ = [
    "VIRTUAL_ERROR",
    "VIRTUAL_ERROR_MESSAGE",
    "VirtualEndpoint",
    "VirtualEndpoints",
    "parse_virtual_endpoints",
]

log = logging.getLogger("fastgate.plugins.js")

VIRTUAL_ERROR_MESSAGE = ("Error during virtual endpoint execution. "
                         "Contact Administrator for more details.")
#: Tyk's answer when a virtual endpoint fails (without ``proxy_on_error``).
VIRTUAL_ERROR = responses.error_response(500, VIRTUAL_ERROR_MESSAGE)
_FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class VirtualEndpoint:
    """One enabled ``extended_paths.virtual`` entry, its source loaded."""

    path: str
    method: str
    function_name: str
    #: The JavaScript defining the function.
    source: str
    #: Where it came from: the file, or ``<blob ...virtual[i]>``.
    source_name: str
    use_session: bool
    proxy_on_error: bool
    #: Where it was declared, for messages.
    where: str


def parse_virtual_endpoints(top: FieldReader, version_data: dict[str, Any],
                            base_dir: str) -> tuple[VirtualEndpoint, ...]:
    """The enabled virtual endpoints of the served version ``version_data``
    (``top`` reads the API definition, for messages); a file source is read
    (relative paths from ``base_dir``), a blob decoded, and either checked to
    compile.  Raises ConfigError naming the field."""
    name = version_data.get("name") if isinstance(version_data.get("name"), str) else ""
    prefix = f"version_data.versions.{name or 'Default'}.extended_paths"
    extended = version_data.get("extended_paths")
    if extended is None:
        return ()
    if not isinstance(extended, dict):
        raise top.error(prefix, f"expected an object, got {json_type_name(extended)}")
    entries = extended.get("virtual")
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise top.error(prefix + ".virtual", f"expected an array, got {json_type_name(entries)}")
    out = []
    for index, entry in enumerate(entries):
        where = f"{prefix}.virtual[{index}]"
        if not isinstance(entry, dict):
            raise top.error(where, f"expected an object, got {json_type_name(entry)}")
        reader = FieldReader(entry, top.file, top.path(where) + ".")
        endpoint = _endpoint(reader, top.path(where), base_dir)
        if endpoint is not None:
            out.append(endpoint)
    return tuple(out)


def _endpoint(reader: FieldReader, where: str, base_dir: str) -> VirtualEndpoint | None:
    disabled = reader.boolean("disabled")
    path = reader.string("path")
    method = reader.string("method")
    function = reader.string("response_function_name")
    kind = reader.string("function_source_type")
    uri = reader.string("function_source_uri")
    use_session = reader.boolean("use_session")
    proxy_on_error = reader.boolean("proxy_on_error")
    if disabled:
        return None
    if not path:
        raise reader.error("path", "is required (the endpoint's path)")
    try:
        compile_url_pattern(path)
    except ValueError as exc:
        raise reader.error("path", f"not a usable path pattern: {exc}") from None
    if not function:
        raise reader.error("response_function_name", "is required (the function to call)")
    if kind == "file":
        if not uri:
            raise reader.error("function_source_uri", "is required (the script's file)")
        file = uri if os.path.isabs(uri) else os.path.join(base_dir, uri)
        try:
            with open(file, encoding="utf-8") as handle:
                source = handle.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise reader.error("function_source_uri",
                               f"cannot read {file}: {exc.__class__.__name__}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        source_name = file
    elif kind == "blob":
        try:
            source = base64.b64decode(uri, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise reader.error("function_source_uri",
                               "a blob must be base64-encoded UTF-8 JavaScript") from None
        source_name = f"<blob {where}>"
    else:
        raise reader.error("function_source_type",
                           f"must be 'file' or 'blob'; got {kind!r}")
    try:
        compile_check(source_name, source)
    except JsLoadError as exc:
        raise reader.error("function_source_uri", str(exc)) from None
    return VirtualEndpoint(path=path, method=method, function_name=function, source=source,
                           source_name=source_name, use_session=use_session,
                           proxy_on_error=proxy_on_error, where=where)


class VirtualEndpoints:
    """The chain step answering requests that match a virtual endpoint."""

    name = "virtual_endpoints"

    def __init__(self, spec: ApiSpec, endpoints: tuple[VirtualEndpoint, ...],
                 services: Services) -> None:
        # What the step needs of the spec, not the spec (as JsMiddleware:
        # no cycle may keep an out-of-service runtime's workers alive).
        self.api_id = spec.api_id
        self.listen_path = spec.listen_path
        self.session_lifetime = spec.session_lifetime
        self.services = services
        self.endpoints = endpoints
        server = services.config.http_server_options
        prefix = server.enable_path_prefix_matching
        suffix = server.enable_path_suffix_matching
        ignore_case = _ignore_case(spec)
        self._patterns: list[tuple[re.Pattern[str], VirtualEndpoint]] = []
        for endpoint in endpoints:
            pattern = compile_url_pattern(endpoint.path, prefix, suffix)
            if ignore_case:
                pattern = re.compile(pattern.pattern, pattern.flags | re.IGNORECASE)
            self._patterns.append((pattern, endpoint))
        self.runtime = JsRuntime(api_id=spec.api_id, org_id=spec.org_id,
                                 config_data=spec.raw.get("config_data"), services=services,
                                 config_data_disabled=spec.raw.get("config_data_disabled")
                                 is True)
        for endpoint in endpoints:
            self.runtime.add_script(endpoint.source_name, endpoint.source)

    def match(self, method: str, path: str) -> VirtualEndpoint | None:
        """The endpoint answering ``method`` on ``path`` (decoded), or None."""
        clean = strip_listen_path(self.listen_path, path) \
            if self.listen_path != "/" else path
        for pattern, endpoint in self._patterns:
            if endpoint.method != method:
                continue
            if pattern.search(clean) or pattern.search(path):
                return endpoint
        return None

    def process(self, req: Request) -> Outcome:
        """Answer a matching request with the function's response; None for others."""
        path = unquote(req.path.decode("latin-1"))
        endpoint = self.match(req.method.decode("latin-1"), path)
        if endpoint is None:
            return None
        body = req.read_body()
        return self._answer(req, endpoint, body)

    async def _answer(self, req: Request, endpoint: VirtualEndpoint,
                      pending: Awaitable[bytes | None]) -> bytes | None:
        body = await pending
        session: dict[str, Any] = {}
        cached = req.session if endpoint.use_session else None
        if cached is not None:
            session = dict(cached.session)
        request = _request_object(req, body or b"")
        expression = (f"{endpoint.function_name}({orjson.dumps(request).decode()}, "
                      f"{orjson.dumps(session).decode()}, {self.runtime.spec_json});")
        try:
            result = await self.runtime.run(expression)
            answer = orjson.loads(result)
            if not isinstance(answer, dict):
                raise JsError("the function did not return TykJsResponse(...)")
            response = answer.get("Response")
            if not isinstance(response, dict):
                raise JsError("the response has no Response object")
        except (JsError, orjson.JSONDecodeError) as exc:
            log.error("[JSVM %s] virtual endpoint %s (%s) failed: %s", self.api_id,
                      endpoint.function_name, endpoint.where, exc)
            return None if endpoint.proxy_on_error else VIRTUAL_ERROR
        if cached is not None and req.session_key:
            await self._save_meta(req.session_key, session, answer.get("SessionMeta"))
        return _response_bytes(response, req.response_headers)

    async def _save_meta(self, storage_key: str, session: dict[str, Any], meta: object) -> None:
        await save_session_meta(self.services, self.api_id, storage_key, session,
                                {} if meta is None else meta, self.session_lifetime)

    async def aclose(self) -> None:
        """Stop the step's JavaScript workers."""
        await self.runtime.aclose()


def _ignore_case(spec: ApiSpec) -> bool:
    versions = spec.version_data.get("versions") if isinstance(spec.version_data, dict) else None
    if isinstance(versions, dict):
        return any(isinstance(v, dict) and v.get("ignore_endpoint_case") is True
                   for v in versions.values())
    return False


def _request_object(req: Request, body: bytes) -> dict[str, Any]:
    """Tyk's virtual endpoint ``RequestObject``."""
    headers: dict[str, list[str]] = {}
    for _lname, name, value in req.request_headers:
        key = canonical_name(name.decode("latin-1"))
        if key == "Host":
            continue  # Go keeps Host out of the header map
        headers.setdefault(key, []).append(value.decode("latin-1"))
    path = req.path.decode("latin-1")
    query = req.query.decode("latin-1")
    params: dict[str, list[str]] = {}
    content_type = (req.header(b"content-type") or b"").decode("latin-1").split(";")[0]
    if req.method in (b"POST", b"PUT", b"PATCH") and content_type.strip().lower() == _FORM_TYPE:
        for field, item in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
            params.setdefault(field, []).append(item)
    for field, item in parse_qsl(query, keep_blank_values=True):
        params.setdefault(field, []).append(item)
    return {
        "Headers": headers,
        "Body": body.decode("utf-8", "replace"),
        "URL": f"{path}?{query}" if query else path,
        "Params": params,
        "Scheme": "https" if req.tls else "http",
    }


def _response_bytes(response: dict[str, Any], limit_headers: bytes) -> bytes:
    """The answer ``TykJsResponse`` described (Tyk's defaults: 200, no body;
    a body without Content-Type is labelled text/plain as Go's sniffing
    labels text)."""
    code = response.get("Code")
    status = code if isinstance(code, int) and not isinstance(code, bool) and code > 0 else 200
    if status > 599:
        status = 500
    body = response.get("Body")
    raw = body.encode("utf-8") if isinstance(body, str) else b""
    headers = response.get("Headers")
    pairs = [(canonical_name(str(k)), v) for k, v in headers.items()] \
        if isinstance(headers, dict) else []
    if raw and not any(name.lower() == "content-type" for name, _ in pairs):
        pairs.append(("Content-Type", _sniff(raw)))
    for line in limit_headers.split(b"\r\n"):
        name, sep, value = line.partition(b": ")
        if sep:
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return build_response(status, pairs, raw)


def _sniff(body: bytes) -> str:
    head = body.lstrip()[:14].lower()
    if head.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return "text/html; charset=utf-8"
    return "text/plain; charset=utf-8"

