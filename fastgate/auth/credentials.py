"""Reading (and stripping) a credential from a request: a header, a query
parameter, a cookie.

Tyk's precedence, for every method that reads its credential this way
(``auth_configs.<method>``): the header, then a non-empty query parameter
overrides it, then a non-empty cookie overrides both -- cookie > param >
header.  A leading ``Bearer `` (any case) is stripped from a header value.
With ``strip_auth_data`` the credential is removed from where it was found (all
three places it was looked for) before the request goes upstream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes

if TYPE_CHECKING:
    from fastgate.config import FieldReader
    from fastgate.services import Request

__all__ = [
    "CredentialConfig",
    "CredentialSource",
    "cookie_value",
    "query_param",
    "strip_bearer",
    "without_cookie",
    "without_param",
]


def strip_bearer(value: bytes) -> bytes:
    """``Bearer <token>`` -> ``<token>`` (case-insensitive), else the value, trimmed."""
    if value[:7].lower() == b"bearer ":
        return value[7:].strip()
    return value.strip()


def query_param(query: bytes, name: bytes) -> bytes | None:
    """The first value of ``name`` in a query string (percent-decoded)."""
    for pair in query.split(b"&"):
        key, _, value = pair.partition(b"=")
        if unquote_to_bytes(key.replace(b"+", b" ")) == name:
            return unquote_to_bytes(value.replace(b"+", b" "))
    return None


def without_param(query: bytes, name: bytes) -> bytes:
    """The query string without ``name``."""
    kept = [pair for pair in query.split(b"&")
            if pair and unquote_to_bytes(pair.partition(b"=")[0].replace(b"+", b" ")) != name]
    return b"&".join(kept)


def cookie_value(header: bytes | None, name: bytes) -> bytes | None:
    """The value of cookie ``name`` in a ``Cookie`` header (RFC 6265 §5.4)."""
    if not header:
        return None
    for part in header.split(b";"):
        key, sep, value = part.strip().partition(b"=")
        if sep and key == name:
            return value.strip(b'"')
    return None


def without_cookie(header: bytes, name: bytes) -> bytes:
    """A ``Cookie`` header without cookie ``name``."""
    parts = [p.strip() for p in header.split(b";")]
    return b"; ".join(p for p in parts if p and p.partition(b"=")[0] != name)


@dataclass(frozen=True, slots=True)
class CredentialConfig:
    """Where a method reads its credential: one ``auth_configs.<method>`` section
    (Tyk's ``AuthConfig``)."""

    auth_header_name: str = "Authorization"
    use_param: bool = False
    param_name: str = ""  # "" means the header name
    use_cookie: bool = False
    cookie_name: str = ""  # "" means the header name
    disable_header: bool = False

    @classmethod
    def read(cls, section: FieldReader) -> CredentialConfig:
        """The settings of one section (ConfigError names the field)."""
        return cls(
            auth_header_name=section.string("auth_header_name") or "Authorization",
            use_param=section.boolean("use_param"),
            param_name=section.string("param_name"),
            use_cookie=section.boolean("use_cookie"),
            cookie_name=section.string("cookie_name"),
            disable_header=section.boolean("disable_header"),
        )

    @classmethod
    def of(cls, top: FieldReader, method: str) -> CredentialConfig:
        """``auth_configs.<method>``, else the legacy ``auth`` section (Tyk's
        ``getAuthToken`` falls back to it for the auth token and JWT)."""
        configs = top.section("auth_configs")
        if configs.get(method) is not None:
            return cls.read(configs.section(method))
        return cls.read(top.section("auth"))

    def source(self, *, strip: bool, bearer: bool = True) -> CredentialSource:
        """The reader of these settings (``strip``: the API's ``strip_auth_data``;
        ``bearer``: a leading ``Bearer `` is stripped from the header's value)."""
        header_name = self.auth_header_name or "Authorization"
        return CredentialSource(
            header=None if self.disable_header else header_name,
            param=(self.param_name or header_name) if self.use_param else None,
            cookie=(self.cookie_name or header_name) if self.use_cookie else None,
            strip=strip, bearer=bearer)


class CredentialSource:
    """Where one method reads its credential (see the module docstring)."""

    __slots__ = ("cookie", "header", "param", "strip", "strip_bearer")

    def __init__(self, *, header: str | None, param: str | None = None,
                 cookie: str | None = None, strip: bool = False,
                 bearer: bool = True) -> None:
        #: Lower-cased header name, or None when the header is not read.
        self.header = header.lower().encode("latin-1") if header else None
        self.param = param.encode() if param else None
        self.cookie = cookie.encode() if cookie else None
        self.strip = strip
        self.strip_bearer = bearer

    def read(self, req: Request) -> bytes | None:
        """The credential, or None when the request carries none."""
        found: bytes | None = None
        if self.header is not None:
            value = req.header(self.header)
            if value:
                found = strip_bearer(value) if self.strip_bearer else value
                if self.strip:
                    req.remove_header(self.header)
        if self.param is not None and req.query:
            value = query_param(req.query, self.param)
            if value:
                found = value
                if self.strip:
                    req.set_query(without_param(req.query, self.param))
        if self.cookie is not None:
            cookies = req.header(b"cookie")
            value = cookie_value(cookies, self.cookie)
            if value:
                found = value
                if self.strip and cookies is not None:
                    rest = without_cookie(cookies, self.cookie)
                    req.remove_header(b"cookie")
                    if rest:
                        req.add_header(b"Cookie", rest)
        return found

    def peek(self, req: Request) -> bytes | None:
        """What :meth:`read` would answer, without stripping anything (the
        credential's presence, for ``auth_mode: "any"``)."""
        if self.cookie is not None:
            value = cookie_value(req.header(b"cookie"), self.cookie)
            if value:
                return value
        if self.param is not None and req.query:
            value = query_param(req.query, self.param)
            if value:
                return value
        if self.header is not None:
            value = req.header(self.header)
            if value:
                return strip_bearer(value) if self.strip_bearer else value
        return None
