"""Global request headers (Tyk's ``RequestHeaderInjector``, global part).

A version of the API definition (``version_data.versions.<name>``; for an
unversioned API its only version, else the one named ``Default``, as Tyk
picks it) may hold:

* ``global_headers_remove``: names removed from every request sent upstream;
* ``global_headers``: ``{name: value}`` set on every request (an existing
  field of that name is replaced), after the removals;
* ``global_headers_disabled``: both off.

A value may hold Tyk's variables, replaced per request:

* ``$tyk_meta.<name>``: the member ``<name>`` of the session's ``meta_data``
  (the split-token flow sends ``Bearer $tyk_meta.jwt``);
* ``$tyk_context.<name>``, with ``enable_context_vars`` on: what earlier
  middleware recorded (``jwt_claims_<claim>``, ``token``), and ``path``,
  ``path_parts`` (comma-joined), ``remote_addr``, ``request_id`` (a new
  UUID), ``headers_<Name>`` (``_`` for ``-``: ``headers_X_Request_Id``) and
  ``request_data_<param>`` (the query string's first value).

A variable with no value becomes "", as in Tyk; values are rendered as Tyk
renders them (strings as they are, numbers without exponent, arrays
comma-joined).  The headers run after authentication and limits, so a
refused request never costs a rendering.

**fastgate differs**: a rendered value holding CR, LF or NUL is not sent
(Tyk writes it, letting a session's metadata inject header lines); names
that frame or route the request (``Content-Length``, ``Transfer-Encoding``,
``Connection``, ``Host``...) are refused when the definition is loaded
rather than sent in conflict with the framing the proxy chose.
"""

from __future__ import annotations

import re
import uuid
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, quote_plus, unquote

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Request

__all__ = ["PROXY_OWNED", "GlobalHeaders", "HeaderRule", "is_header_name", "parse_global_headers",
           "render_value"]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VARIABLE = re.compile(r"\$tyk_(meta|context)\.([A-Za-z0-9_\-.]+)")
#: Fields the proxy owns: they frame or route the request (lower case).
PROXY_OWNED = frozenset({
    "content-length", "transfer-encoding", "connection", "host", "te", "trailer",
    "upgrade", "keep-alive", "proxy-connection", "expect",
})
_UNSAFE = re.compile(rb"[\r\n\x00]")


class HeaderRule:
    """One ``global_headers`` entry, its value split into literals and variables."""

    __slots__ = ("literal", "lname", "name", "parts")

    def __init__(self, name: str, value: str) -> None:
        self.name = name.encode("ascii")
        self.lname = self.name.lower()
        parts: list[str | tuple[str, str]] = []
        at = 0
        for match in _VARIABLE.finditer(value):
            if match.start() > at:
                parts.append(value[at:match.start()])
            parts.append((match.group(1), match.group(2)))
            at = match.end()
        if at < len(value):
            parts.append(value[at:])
        self.parts = tuple(parts)
        #: The value when it holds no variable (rendered once).
        self.literal: bytes | None = (value.encode("utf-8")
                                      if all(isinstance(p, str) for p in parts) else None)


def parse_global_headers(top: FieldReader, version_data: dict[str, Any]
                         ) -> tuple[tuple[bytes, ...], tuple[HeaderRule, ...]]:
    """``(names removed, rules set)`` of the version requests are served with
    (ConfigError names the field)."""
    versions = version_data.get("versions") or {}
    if len(versions) == 1:
        name = next(iter(versions))
    elif "Default" in versions:
        name = "Default"
    else:
        return (), ()
    where = f"version_data.versions.{name}."
    version = versions[name]
    if version.get("global_headers_disabled") is True:
        return (), ()
    removed: list[bytes] = []
    remove = version.get("global_headers_remove")
    if remove is not None:
        if not isinstance(remove, list) or not all(isinstance(n, str) for n in remove):
            raise top.error(where + "global_headers_remove", "expected an array of strings")
        for header in remove:
            _check_name(top, where + "global_headers_remove", header)
            removed.append(header.lower().encode("ascii"))
    rules: list[HeaderRule] = []
    add = version.get("global_headers")
    if add is not None:
        if not isinstance(add, dict):
            raise top.error(where + "global_headers", "expected an object of name: value")
        for header, value in add.items():
            field = f"{where}global_headers.{header}"
            _check_name(top, field, header)
            if not isinstance(value, str):
                raise top.error(field, "expected a string value")
            if _UNSAFE.search(value.encode("utf-8")):
                raise top.error(field, "a header value cannot hold CR, LF or NUL")
            rules.append(HeaderRule(header, value))
    return tuple(removed), tuple(rules)


def is_header_name(name: str) -> bool:
    """Whether ``name`` is a field name (an RFC 9110 token)."""
    return _TOKEN.fullmatch(name) is not None


def _check_name(top: FieldReader, field: str, name: str) -> None:
    if not is_header_name(name):
        raise top.error(field, f"{name!r} is not a header name (RFC 9110 token)")
    if name.lower() in PROXY_OWNED:
        raise top.error(field, f"{name!r} frames or routes the request: the proxy sets it")


def render_value(value: object) -> str:
    """A variable's value as Tyk writes it into a header (``valToStr``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ""  # Tyk has no case for booleans
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        text = format(Decimal(repr(value)), "f")
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, list):
        return ",".join(quote_plus(s) for s in (render_value(v) for v in value) if s)
    return ""


class GlobalHeaders:
    """Removes and sets the version's global headers on the request sent upstream."""

    name: ClassVar[str] = "global_headers"

    def __init__(self, spec: ApiSpec) -> None:
        self.removed = spec.global_headers_remove
        self.rules = spec.global_headers
        self.context_vars = spec.enable_context_vars
        # Both lists touch the forwarded head: one pass removes them all.
        self.cleared = frozenset((*self.removed, *(rule.lname for rule in self.rules)))

    def process(self, req: Request) -> None:
        for lname in self.cleared:
            if req.header(lname) is not None:
                req.remove_header(lname)
        for rule in self.rules:
            value = rule.literal
            if value is None:
                value = self._render(req, rule).encode("utf-8", "surrogateescape")
                if _UNSAFE.search(value):
                    continue
            req.add_header(rule.name, value)

    def _render(self, req: Request, rule: HeaderRule) -> str:
        out = []
        for part in rule.parts:
            if isinstance(part, str):
                out.append(part)
            elif part[0] == "meta":
                found = req.session
                meta = found.session.get("meta_data") if found is not None else None
                out.append(render_value(meta.get(part[1])) if isinstance(meta, dict) else "")
            elif self.context_vars:
                out.append(render_value(_context_value(req, part[1])))
        return "".join(out)


def _context_value(req: Request, name: str) -> object:
    """``$tyk_context.<name>``: recorded by middleware, else derived from the request."""
    recorded = req.context
    if recorded is not None and name in recorded:
        return recorded[name]
    path = req.path.decode("latin-1")
    if name == "path":
        return unquote(path)
    if name == "path_parts":
        return ",".join(unquote(path).split("/")).removeprefix(",")  # Go's []string
    if name == "remote_addr":
        return req.client_ip.decode("latin-1")
    if name == "request_id":
        return str(uuid.uuid4())
    if name.startswith("headers_"):
        value = req.header(name[len("headers_"):].replace("_", "-").lower().encode("latin-1"))
        return value.decode("latin-1") if value is not None else None
    if name.startswith("request_data_"):
        values = parse_qs(req.query.decode("latin-1")).get(name[len("request_data_"):])
        return values[0] if values else None
    return None

