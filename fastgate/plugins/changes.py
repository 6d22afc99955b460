"""What a plugin sees of the request, and how what it changed is applied.

Shared by both drivers (Python's ``request.object``, JavaScript's request
object): :class:`RequestView` is the snapshot a hook is given,
:class:`RequestChanges` what it asked for, :func:`apply_changes` makes the
request forwarded upstream say it, and :func:`override_answer` turns Tyk's
``return_overrides`` into the answer that ends the chain.

Tyk's rules, with fastgate's corrections (**fastgate differs**):

* headers: ``delete_headers`` first, then ``set_headers`` (a value replaces
  every field of that name).  Names are matched case-insensitively; the
  fields that frame or route the request (``Content-Length``,
  ``Transfer-Encoding``, ``Host``, ``Connection``...) belong to the proxy and
  are left alone, and a value holding CR, LF or NUL is refused (500).
* query: ``delete_params``, then ``add_params`` (a value replaces the
  parameter), then ``extended_params`` (values added); re-encoded only when
  one of them says something.
* ``url`` (path and query): when the hook changed it, the new path is
  forwarded (the listen path stripped as usual, when it still starts with
  it) with the query the hook wrote, the parameter changes applied on top.
  Tyk appends the original query to the new one, duplicating it when the
  hook kept it; fastgate uses what the hook wrote.  An unusable URL gives
  Tyk's 500.
* ``method``: forwarded when changed.
* body: Tyk reads back ``raw_body`` only; fastgate takes ``raw_body`` when
  it changed, else ``body`` (the decoded text) when that changed.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import orjson

from fastgate import responses
from fastgate.middleware.headers import PROXY_OWNED, is_header_name

if TYPE_CHECKING:
    from fastgate.services import Request

__all__ = [
    "MIDDLEWARE_ERROR",
    "RequestChanges",
    "RequestView",
    "apply_changes",
    "build_response",
    "canonical_name",
    "override_answer",
]

log = logging.getLogger("fastgate.plugins")

#: Tyk's answer when a hook (other than auth_check) fails.
MIDDLEWARE_ERROR = responses.error_response(500, "Middleware error")

#: Fields the proxy owns (they frame or route the request), as the request holds them.
_PROXY_OWNED = frozenset(name.encode("ascii") for name in PROXY_OWNED)
_UNSAFE = frozenset("\r\n\x00")
# RFC 3986 characters a path may hold as they are (and "%" of an escape).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


def canonical_name(name: str) -> str:
    """Go's ``textproto.CanonicalMIMEHeaderKey``: ``x-api-key`` -> ``X-Api-Key``
    (a name holding a character outside a token stays as it is)."""
    for char in name:
        if not (char.isascii() and (char.isalnum() or char in "!#$%&'*+-.^_`|~")):
            return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


@functools.lru_cache(maxsize=4096)
def _canonical(name: bytes) -> str:
    return canonical_name(name.decode("latin-1"))


class RequestView:
    """The request as a hook is given it (built once per hook call; the
    header and parameter maps are made when first asked for)."""

    __slots__ = ("_fields", "_headers", "_params", "body", "body_read", "method", "query",
                 "request_uri", "scheme", "url")

    def __init__(self, *, method: str, url: str, scheme: str,
                 fields: list[tuple[bytes, bytes, bytes]], query: str = "",
                 body: bytes = b"", body_read: bool = False) -> None:
        self.method = method
        #: Path and query as the client sent them (``/api/x?a=1``).
        self.url = url
        #: Tyk's ``request_uri``: the same, as received.
        self.request_uri = url
        self.scheme = scheme
        self.query = query
        #: The body (b"" for none, or when it was not read: see ``body_read``).
        self.body = body
        #: Whether ``body`` is the request's whole body.
        self.body_read = body_read
        self._fields = fields
        self._headers: dict[str, list[str]] | None = None
        self._params: dict[str, list[str]] | None = None

    @classmethod
    def of(cls, req: Request, body: bytes | None = None) -> RequestView:
        """The view of ``req``; ``body`` is what ``read_body()`` gave (None: not read)."""
        path = req.path.decode("latin-1")
        query = req.query.decode("latin-1")
        return cls(method=req.method.decode("latin-1"),
                   url=f"{path}?{query}" if query else path,
                   scheme="https" if req.tls else "http", fields=req.request_headers,
                   query=query, body=body or b"", body_read=body is not None)

    @property
    def headers(self) -> dict[str, list[str]]:
        """Every field by canonical name, all values in order; ``Host`` included."""
        headers = self._headers
        if headers is None:
            headers = self._headers = {}
            for _lname, name, value in self._fields:
                key = _canonical(name)
                found = headers.get(key)
                if found is None:
                    headers[key] = [value.decode("latin-1")]
                else:
                    found.append(value.decode("latin-1"))
        return headers

    @property
    def params(self) -> dict[str, list[str]]:
        """The query's parameters, all values in order."""
        params = self._params
        if params is None:
            params = self._params = {}
            if self.query:
                for param, value in parse_qsl(self.query, keep_blank_values=True):
                    params.setdefault(param, []).append(value)
        return params

    def first_values(self) -> dict[str, str]:
        """Each field's first value (Tyk's Python ``headers`` map)."""
        out: dict[str, str] = {}
        for _lname, name, value in self._fields:
            key = _canonical(name)
            if key not in out:
                out[key] = value.decode("latin-1")
        return out

    def first_params(self) -> dict[str, str]:
        """Each parameter's first value (Tyk's Python ``params`` map)."""
        if not self.query:
            return {}
        return {name: values[0] for name, values in self.params.items()}


@dataclass(slots=True)
class RequestChanges:
    """What a hook asked to change (empty: nothing)."""

    set_headers: Mapping[str, str] = field(default_factory=dict)
    delete_headers: Iterable[str] = ()
    #: The URL the hook left (None, or the view's: unchanged).
    url: str | None = None
    add_params: Mapping[str, str] = field(default_factory=dict)
    extended_params: Mapping[str, Sequence[str]] = field(default_factory=dict)
    delete_params: Iterable[str] = ()
    #: The method the hook left (None or the view's: unchanged).
    method: str | None = None
    #: The new body (None: unchanged).
    body: bytes | None = None


def apply_changes(req: Request, view: RequestView, changes: RequestChanges) -> bytes | None:
    """Make ``req`` say what ``changes`` asks; None, or Tyk's 500 when the
    change cannot be made (an unusable URL, method or header value)."""
    try:
        _apply(req, view, changes)
    except ValueError as exc:
        log.warning("a plugin's request change was refused: %s", exc)
        return MIDDLEWARE_ERROR
    return None


def _apply(req: Request, view: RequestView, changes: RequestChanges) -> None:
    for name in changes.delete_headers:
        lname = _header_name(name).lower()
        if lname not in _PROXY_OWNED and req.header(lname) is not None:
            req.remove_header(lname)
    for name, value in changes.set_headers.items():
        raw = _header_name(name)
        lname = raw.lower()
        if lname in _PROXY_OWNED:
            continue
        if not isinstance(value, str) or _UNSAFE.intersection(value):
            raise ValueError(f"header {name!r}: a value must be text without CR, LF or NUL")
        if req.header(lname) is not None:
            req.remove_header(lname)
        req.add_header(raw, value.encode("utf-8"))
    query: str | None = None  # None: the query stays as it is
    if changes.url is not None and changes.url != view.url:
        path, query = _split_url(changes.url)
        req.set_path(path)
    params_changed = bool(changes.delete_params) or bool(changes.add_params) \
        or bool(changes.extended_params)
    if params_changed:
        pairs = parse_qsl(query if query is not None else req.query.decode("latin-1"),
                          keep_blank_values=True)
        dropped = set(changes.delete_params) | set(changes.add_params)
        pairs = [(k, v) for k, v in pairs if k not in dropped]
        pairs += list(changes.add_params.items())
        for key, values in changes.extended_params.items():
            pairs += [(key, value) for value in values]
        query = urlencode(pairs)
    if query is not None:
        req.set_query(query.encode("latin-1"))
    if changes.method and changes.method != view.method:
        req.set_method(changes.method.encode("ascii", "replace"))
    if changes.body is not None:
        req.set_body(changes.body)


def _header_name(name: str) -> bytes:
    if not isinstance(name, str) or not is_header_name(name):
        raise ValueError(f"{name!r} is not a header name")
    return name.encode("ascii")


def _split_url(url: str) -> tuple[bytes, str]:
    """``(path, query)`` of the URL a hook wrote (origin form, or absolute:
    its path and query); ValueError when unusable."""
    if not isinstance(url, str) or _UNSAFE.intersection(url) or " " in url:
        raise ValueError(f"unusable URL {url!r}")
    if not url.startswith("/"):
        parts = urlsplit(url)
        if not parts.scheme or not parts.netloc:
            raise ValueError(f"unusable URL {url!r}")
        url = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    path, _, query = url.partition("?")
    path = path.partition("#")[0]
    query = query.partition("#")[0]
    encoded = quote(path, safe=_PATH_SAFE)
    return encoded.encode("ascii"), quote(query, safe=_QUERY_SAFE)


def build_response(status: int, headers: Iterable[tuple[str, str]], body: bytes) -> bytes:
    """A complete HTTP/1.1 response; the hook's ``Content-Length`` and framing
    fields are replaced by the proxy's, unsafe values dropped."""
    parts = [responses.STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status]
    for name, value in headers:
        try:
            raw = _header_name(name)
        except ValueError:
            continue
        if raw.lower() in _PROXY_OWNED or not isinstance(value, str) \
                or _UNSAFE.intersection(value):
            continue
        parts.append(raw + b": " + value.encode("utf-8") + b"\r\n")
    parts.append(b"Content-Length: %d\r\n\r\n" % len(body))
    parts.append(body)
    return b"".join(parts)


def override_answer(code: int, *, error: str = "", body: str | bytes = b"",
                    headers: Mapping[str, str] | None = None,
                    override_error: bool = False) -> bytes | None:
    """Tyk's ``return_overrides``: None when ``code`` asks nothing (0 or
    less); a code of 400 or more without ``override_error`` gives Tyk's error
    JSON (``{"error": error or body or "Key not authorised"}``) with the
    override headers; any other code writes the headers, the code and the
    body (``error`` in its place when set) as they are."""
    if code <= 0:
        return None
    if code < 100 or code > 599:
        log.warning("a plugin asked for status %d: answered 500", code)
        return MIDDLEWARE_ERROR
    pairs = list((headers or {}).items())
    raw_body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if code >= 400 and not override_error:
        message = error or raw_body.decode("utf-8", "replace") or "Key not authorised"
        pairs = [(k, v) for k, v in pairs if k.lower() != "content-type"]
        return build_response(code, [("Content-Type", "application/json"), *pairs],
                              orjson.dumps({"error": message}))
    if error:
        raw_body = error.encode("utf-8")
    return build_response(code, pairs, raw_body)
