"""API definitions: Tyk Classic JSON → :class:`ApiSpec`.

Theory of operation
-------------------
A definition file holds one Tyk Classic API definition, bare or wrapped the
way the Tyk Dashboard exports it (``{"api_definition": {...}, "api_model":
...}``).  fastgate implements a growing subset of the format:

* Fields in :data:`IMPLEMENTED_FIELDS` (and, inside ``proxy``,
  :data:`IMPLEMENTED_PROXY_FIELDS`) are validated and compiled into the
  ``ApiSpec``; a wrong type or value is a ConfigError naming the file and
  the dotted field.
* Any other field is accepted, so a Tyk export loads, and listed in
  ``ApiSpec.ignored_fields`` when it would change behaviour in Tyk: its value
  is not a zero value (false, "", 0, [], {}, null, or an object made only of
  those), it is not a section switched off by its own ``enabled``/``enable``
  flag, and it is not the settings of an auth method or list that is off
  (``jwt_*`` while ``enable_jwt`` is false, ``allowed_ips`` while
  ``enable_ip_whitelisting`` is false, ...).  The loader's caller warns once.

Security: never serve open what Tyk would protect
-------------------------------------------------
An ignored *feature* degrades gracefully; an ignored *protection* would serve
an API to everyone.  ``ApiSpec.unsupported_auth`` therefore lists every
access control the definition turns on that fastgate does not enforce yet,
and the server answers requests to such an API with an error instead of
proxying them.  It holds, by field name:

* the auth methods enabled and not implemented: ``use_oauth2``,
  ``external_oauth`` (``.enabled``), ``use_basic_auth``,
  ``enable_signature_checking``, ``enable_jwt``, ``use_openid``,
  ``enable_coprocess_auth``, ``use_go_plugin_auth``,
  ``custom_plugin_auth_enabled``, ``use_standard_auth``;
* ``"use_keyless=false"`` when ``use_keyless`` is false and no method is
  enabled: Tyk then applies auth-token (standard) auth;
* as in Tyk, ``use_keyless: true`` switches every method above off; the
  following apply to keyless APIs too: ``use_mutual_tls_auth``, ``internal``
  (reachable only from other APIs, never from clients),
  ``enable_ip_whitelisting`` / ``enable_ip_blacklisting`` with a non-empty
  list, and endpoint ``white_list`` / ``black_list`` entries in a version
  (``version_data.versions.<v>.extended_paths.black_list``, ...).

When a later change implements one of these, it adds the name to
:data:`IMPLEMENTED_AUTH` (and the fields it reads to
:data:`IMPLEMENTED_FIELDS`); nothing else here needs to change.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from fastgate.config import ConfigError, FieldReader, json_type_name, load_json_file

__all__ = [
    "AUTH_METHODS",
    "IMPLEMENTED_AUTH",
    "IMPLEMENTED_FIELDS",
    "IMPLEMENTED_PROXY_FIELDS",
    "ApiSpec",
    "load_api_definitions",
    "parse_api_definition",
]

# Top-level fields compiled into ApiSpec.  Identity fields (id, _id, slug)
# carry no behaviour.  Later issues extend this set with the fields they read.
IMPLEMENTED_FIELDS: frozenset[str] = frozenset(
    {"api_id", "name", "org_id", "active", "proxy", "use_keyless", "version_data"}
    | {"id", "_id", "slug"}
    # Auth token (standard auth) and Basic auth.
    | {"use_standard_auth", "auth", "auth_configs", "strip_auth_data"}
    | {"use_basic_auth", "basic_auth", "base_identity_provided_by"}
    # Limits.
    | {"global_rate_limit"}
)
IMPLEMENTED_PROXY_FIELDS: frozenset[str] = frozenset(
    {"listen_path", "target_url", "strip_listen_path", "preserve_host_header"}
)
# Entries of ApiSpec.unsupported_auth that fastgate enforces (so they are not
# reported any more).
IMPLEMENTED_AUTH: frozenset[str] = frozenset(
    {"use_standard_auth", "use_keyless=false", "use_basic_auth"}
)

# Tyk's auth methods, in Tyk's chain order, each a boolean field of the
# definition, or (field, sub-field) for a section's switch.  Ignored by Tyk
# when use_keyless is true.
AUTH_METHODS: tuple[str | tuple[str, str], ...] = (
    "use_oauth2",
    ("external_oauth", "enabled"),
    "use_basic_auth",
    "enable_signature_checking",
    "enable_jwt",
    "use_openid",
    "enable_coprocess_auth",
    "use_go_plugin_auth",
    "custom_plugin_auth_enabled",
    "use_standard_auth",
)
IMPLICIT_STANDARD_AUTH = "use_keyless=false"

# Settings that only act while another boolean field is true.
_GOVERNED_BY: dict[str, str] = {
    "basic_auth": "use_basic_auth",
    "oauth_meta": "use_oauth2",
    "notifications": "use_oauth2",
    "openid_options": "use_openid",
    "client_certificates": "use_mutual_tls_auth",
    "hmac_allowed_clock_skew": "enable_signature_checking",
    "hmac_allowed_algorithms": "enable_signature_checking",
    "allowed_ips": "enable_ip_whitelisting",
    "blacklisted_ips": "enable_ip_blacklisting",
}
_GOVERNED_PREFIXES: tuple[tuple[str, str], ...] = (("jwt_", "enable_jwt"),)
# Auth settings shared by several methods: inert on a keyless API.
_INERT_WHEN_KEYLESS = frozenset({"auth", "auth_configs", "base_identity_provided_by"})
# Values Tyk exports that mean "nothing special".
_INERT_VALUES: dict[str, tuple[object, ...]] = {"protocol": ("http",)}
# Keys that switch the section holding them on or off.
_SWITCHES = ("enabled", "enable", "is_enabled", "enable_cache", "use_discovery_service")

# RFC 3986: path = *( pchar / "/" ); pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
_PATH_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")  # names and IPv4; "_" for containers
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DEFAULT_VERSION_NAME = "Default"


@dataclass(frozen=True, slots=True)
class AuthTokenConfig:
    """Where an auth-token (standard auth) key is read: ``auth_configs.authToken``,
    falling back to the legacy ``auth`` section, as Tyk does."""

    auth_header_name: str = "Authorization"
    use_param: bool = False
    param_name: str = ""  # "" means the header name
    use_cookie: bool = False
    cookie_name: str = ""  # "" means the header name
    disable_header: bool = False


@dataclass(frozen=True, slots=True)
class BasicAuthConfig:
    """Tyk's ``basic_auth`` section."""

    disable_caching: bool = False
    cache_ttl: int = 60
    extract_from_body: bool = False
    body_user_regexp: str = ""
    body_password_regexp: str = ""
    #: ``auth_configs.basic.auth_header_name`` (default ``Authorization``).
    auth_header_name: str = "Authorization"


@dataclass(slots=True)
class ApiSpec:
    """One API definition, validated and compiled for the server."""

    api_id: str
    name: str
    org_id: str
    active: bool
    listen_path: str  # normalised: starts with "/", e.g. "/httpbin/"
    target_url: str
    target_scheme: str  # "http" | "https"
    target_host: str  # host without port (IPv6 without brackets)
    target_port: int  # explicit or 80/443
    target_path: str  # path of target_url without trailing "/"; "" for none or "/"
    target_host_header: str  # Host to send: "host" or "host:port"; IPv6 bracketed
    strip_listen_path: bool
    preserve_host_header: bool
    use_keyless: bool
    version_data: dict[str, Any]  # as given, defaults filled
    source: str  # file the definition came from ("" for API-posted)
    ignored_fields: tuple[str, ...]  # present, not implemented (reported once at load)
    raw: dict[str, Any]  # the definition as given (unwrapped)
    # Access controls the definition enables that fastgate cannot enforce yet;
    # non-empty: the server refuses to proxy (see the module docstring).
    unsupported_auth: tuple[str, ...] = ()
    listen_path_bytes: bytes = field(default=b"", repr=False)  # for the router
    #: Implemented auth methods enabled, in Tyk's chain order ("basic_auth",
    #: "auth_token"); empty for keyless APIs.
    auth_methods: tuple[str, ...] = ()
    auth_token: AuthTokenConfig | None = None
    basic_auth: BasicAuthConfig | None = None
    strip_auth_data: bool = False
    #: The method whose session drives access rights and limits when several
    #: are chained ("auth_token", "basic_auth"); "" for the first one.
    base_identity: str = ""
    #: API-wide rate limit ``(rate, per)`` for every caller, keyless APIs
    #: included; None when unset (rate or per <= 0, as in Tyk).
    global_rate_limit: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.listen_path_bytes:
            self.listen_path_bytes = self.listen_path.encode("ascii")


# --------------------------------------------------------------------------
# Parsing one definition
# --------------------------------------------------------------------------


def parse_api_definition(data: object, source: str) -> ApiSpec:
    """Validate one decoded Tyk Classic API definition and compile it.

    ``data`` may be the definition or a Tyk Dashboard export wrapping it as
    ``{"api_definition": {...}}``.  ``source`` is the file it came from ("" if
    none), named in errors.  Raises ConfigError(file=source, field=...).
    """
    prefix = ""
    if isinstance(data, dict) and "api_id" not in data:
        if isinstance(data.get("api_definition"), dict):
            data = data["api_definition"]
            prefix = "api_definition."
        elif isinstance(data.get("apis"), list):
            raise ConfigError(
                source,
                "apis",
                "this looks like a Tyk Dashboard bulk export; fastgate reads one API"
                " definition per file: save each api_definition in its own .json file",
            )
    if not isinstance(data, dict):
        raise ConfigError(source, "", f"expected a JSON object, got {json_type_name(data)}")
    top = FieldReader(data, source, prefix)

    api_id = top.string("api_id")
    if not api_id:
        raise top.error("api_id", "is required (a non-empty string)")
    name = top.string("name") or api_id
    org_id = top.string("org_id")
    active = top.boolean("active", True)
    use_keyless = top.boolean("use_keyless")

    proxy = top.section("proxy")
    if not proxy.obj:
        raise top.error("proxy", "is required (an object with listen_path and target_url)")
    listen_path = _listen_path(proxy)
    target = _Target.parse(proxy)
    strip_listen_path = proxy.boolean("strip_listen_path")
    preserve_host_header = proxy.boolean("preserve_host_header")

    version_data = _version_data(top)
    flags = _Flags(data, top)
    unsupported = _unsupported_auth(data, version_data, flags, use_keyless, prefix)
    ignored = _ignored_fields(data, version_data, flags, use_keyless, prefix)
    auth_methods, auth_token, basic_auth = _auth(top, flags, use_keyless)
    strip_auth_data = top.boolean("strip_auth_data")
    base_identity = _base_identity(top, auth_methods)
    limit_section = top.section("global_rate_limit")
    global_rate = limit_section.number("rate", 0)
    global_per = limit_section.number("per", 0)
    global_rate_limit = (global_rate, global_per) if global_rate > 0 and global_per > 0 else None

    return ApiSpec(
        api_id=api_id,
        name=name,
        org_id=org_id,
        active=active,
        listen_path=listen_path,
        target_url=target.url,
        target_scheme=target.scheme,
        target_host=target.host,
        target_port=target.port,
        target_path=target.path,
        target_host_header=target.host_header,
        strip_listen_path=strip_listen_path,
        preserve_host_header=preserve_host_header,
        use_keyless=use_keyless,
        version_data=version_data,
        source=source,
        ignored_fields=tuple(ignored),
        raw=data,
        unsupported_auth=tuple(unsupported),
        auth_methods=auth_methods,
        auth_token=auth_token,
        basic_auth=basic_auth,
        strip_auth_data=strip_auth_data,
        base_identity=base_identity,
        global_rate_limit=global_rate_limit,
    )


# Tyk's base_identity_provided_by values, by the method they name.
_BASE_IDENTITY = {"auth_token": "auth_token", "basic_auth_user": "basic_auth"}
_BASE_IDENTITY_LATER = ("hmac_key", "jwt_claim", "oidc_user", "oauth_key", "custom_auth")


def _base_identity(top: FieldReader, auth_methods: tuple[str, ...]) -> str:
    value = top.string("base_identity_provided_by",
                       choices=("", *_BASE_IDENTITY, *_BASE_IDENTITY_LATER))
    if not value or len(auth_methods) < 2:
        return ""
    method = _BASE_IDENTITY.get(value)
    if method is None or method not in auth_methods:
        # A method that is not enabled here (or not implemented yet, in which
        # case the API is refused anyway): Tyk falls back to the first one.
        return ""
    return method


def _auth(
    top: FieldReader, flags: _Flags, use_keyless: bool
) -> tuple[tuple[str, ...], AuthTokenConfig | None, BasicAuthConfig | None]:
    """The implemented auth methods the definition enables, and their settings.

    As in Tyk: ``use_keyless`` switches every method off; with no method
    enabled and ``use_keyless`` false, auth-token (standard) auth applies.
    """
    if use_keyless:
        return (), None, None
    methods: list[str] = []
    basic = None
    token = None
    if flags.on("use_basic_auth"):
        methods.append("basic_auth")
        basic = _basic_auth_config(top)
    enabled_any = any(flags.on(m) for m in AUTH_METHODS)
    if flags.on("use_standard_auth") or not enabled_any:
        methods.append("auth_token")
        token = _auth_token_config(top)
    return tuple(methods), token, basic


def _auth_token_config(top: FieldReader) -> AuthTokenConfig:
    configs = top.section("auth_configs")
    section = configs.section("authToken") if configs.get("authToken") is not None \
        else top.section("auth")
    return AuthTokenConfig(
        auth_header_name=section.string("auth_header_name") or "Authorization",
        use_param=section.boolean("use_param"),
        param_name=section.string("param_name"),
        use_cookie=section.boolean("use_cookie"),
        cookie_name=section.string("cookie_name"),
        disable_header=section.boolean("disable_header"),
    )


def _basic_auth_config(top: FieldReader) -> BasicAuthConfig:
    section = top.section("basic_auth")
    config = BasicAuthConfig(
        disable_caching=section.boolean("disable_caching"),
        cache_ttl=section.integer("cache_ttl", 0, minimum=0) or 60,
        extract_from_body=section.boolean("extract_from_body"),
        body_user_regexp=section.string("body_user_regexp"),
        body_password_regexp=section.string("body_password_regexp"),
        auth_header_name=top.section("auth_configs").section("basic")
        .string("auth_header_name") or "Authorization",
    )
    for name in ("body_user_regexp", "body_password_regexp"):
        pattern = getattr(config, name)
        if config.extract_from_body and not pattern:
            raise section.error(name, "is required when extract_from_body is true")
        if pattern:
            try:
                compiled = re.compile(pattern)
            except re.error as exc:
                raise section.error(name, f"invalid regular expression: {exc}") from None
            if compiled.groups < 1:
                raise section.error(name, "needs a capturing group around the value")
    return config


def _listen_path(proxy: FieldReader) -> str:
    value = proxy.get("listen_path")
    if value is None:
        raise proxy.error("listen_path", "is required")
    if not isinstance(value, str):
        raise proxy.error("listen_path", f"expected a string, got {json_type_name(value)}")
    if not value:
        raise proxy.error("listen_path", 'must not be empty (use "/" to serve every path)')
    if "{" in value or "}" in value:
        raise proxy.error(
            "listen_path",
            f"{value!r}: path parameters such as {{id}} are not supported yet; use a fixed prefix",
        )
    if _PATH_RE.fullmatch(value) is None:
        raise proxy.error(
            "listen_path",
            f"{value!r} is not a URL path: no spaces, '?', '#' or non-ASCII characters"
            " (percent-encode them)",
        )
    path = value if value.startswith("/") else "/" + value
    if any(segment in (".", "..") for segment in path.split("/")):
        raise proxy.error("listen_path", f"{value!r}: '.' and '..' segments never match")
    return path


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str
    host_header: str

    @classmethod
    def parse(cls, proxy: FieldReader) -> _Target:
        value = proxy.get("target_url")
        if value is None:
            raise proxy.error("target_url", "is required (an http:// or https:// URL)")
        if not isinstance(value, str):
            raise proxy.error("target_url", f"expected a string, got {json_type_name(value)}")

        def bad(message: str) -> ConfigError:
            return proxy.error("target_url", f"{value!r}: {message}")

        # urlsplit silently drops tabs and newlines; refuse them instead.
        if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in value):
            raise bad("contains whitespace or control characters")
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError as exc:
            raise bad(f"not a valid URL ({exc})") from None
        scheme = parts.scheme.lower()
        if scheme == "tyk":
            raise bad("tyk:// (internal API looping) is not supported yet")
        if scheme not in _DEFAULT_PORTS:
            raise bad("must be an http:// or https:// URL")
        if "@" in parts.netloc:
            raise bad("credentials in the URL are not supported")
        host = parts.hostname or ""
        if not host:
            raise bad("has no host")
        if ":" in host:
            try:
                ipaddress.IPv6Address(host)
            except ValueError:
                raise bad("has an invalid IPv6 address") from None
            host_part = f"[{host}]"
        else:
            if not host.isascii() or _HOSTNAME_RE.fullmatch(host) is None:
                raise bad("has an invalid host name (use the ASCII/punycode form)")
            host_part = host
        if port == 0:
            raise bad("port must be between 1 and 65535")
        if parts.query or parts.fragment or value.endswith(("?", "#")):
            raise bad("a query string or fragment in target_url is not supported")
        if _PATH_RE.fullmatch(parts.path) is None:
            raise bad("the path is not a valid URL path (percent-encode it)")
        default_port = _DEFAULT_PORTS[scheme]
        effective_port = port if port is not None else default_port
        host_header = (
            host_part if effective_port == default_port else f"{host_part}:{effective_port}"
        )
        return cls(
            url=value,
            scheme=scheme,
            host=host,
            port=effective_port,
            path=parts.path.rstrip("/"),
            host_header=host_header,
        )


def _version_data(top: FieldReader) -> dict[str, object]:
    """``version_data`` as given (deep-copied) with Tyk's defaults filled in."""
    given = top.obj_field("version_data")
    version_data: dict[str, object] = copy.deepcopy(given) if given is not None else {}
    section = FieldReader(version_data, top.file, top.path("version_data."))
    version_data["not_versioned"] = section.boolean("not_versioned", True)
    versions = section.obj_field("versions")
    if not versions:
        versions = {_DEFAULT_VERSION_NAME: {"name": _DEFAULT_VERSION_NAME}}
    for version_name, version in versions.items():
        if not isinstance(version, dict):
            raise section.error(
                f"versions.{version_name}", f"expected an object, got {json_type_name(version)}"
            )
    version_data["versions"] = versions
    return version_data


class _Flags:
    """The definition's boolean switches, type-checked once."""

    __slots__ = ("_data", "_reader")

    def __init__(self, data: Mapping[str, object], reader: FieldReader) -> None:
        self._data = data
        # A separate reader: checking a switch's type does not make it "implemented".
        self._reader = FieldReader(data, reader.file, reader.prefix)

    def on(self, name: str | tuple[str, str]) -> bool:
        if isinstance(name, tuple):
            section_name, switch = name
            section = self._data.get(section_name)
            if section is None:
                return False
            return self._reader.section(section_name).boolean(switch)
        return self._reader.boolean(name)


def _method_name(method: str | tuple[str, str]) -> str:
    return method[0] if isinstance(method, tuple) else method


def _active_entries(entries: object) -> bool:
    """Whether a Tyk endpoint list has an entry not marked ``disabled``."""
    if not isinstance(entries, list):
        return False
    return any(not (isinstance(e, dict) and e.get("disabled") is True) for e in entries)


def _unsupported_auth(
    data: Mapping[str, object],
    version_data: Mapping[str, object],
    flags: _Flags,
    use_keyless: bool,
    prefix: str,
) -> list[str]:
    found: list[str] = []
    if not use_keyless:
        enabled = [_method_name(m) for m in AUTH_METHODS if flags.on(m)]
        found.extend(enabled if enabled else [IMPLICIT_STANDARD_AUTH])
    for name in ("use_mutual_tls_auth", "internal"):
        if flags.on(name):
            found.append(name)
    for switch, entries in (
        ("enable_ip_whitelisting", "allowed_ips"),
        ("enable_ip_blacklisting", "blacklisted_ips"),
    ):
        if flags.on(switch) and _active_entries(data.get(entries)):
            found.append(switch)
    versions = version_data["versions"]
    assert isinstance(versions, dict)
    for version_name, version in versions.items():
        for container in ("paths", "extended_paths"):
            lists = version.get(container)
            if not isinstance(lists, dict):
                continue
            for kind in ("white_list", "black_list"):
                if _active_entries(lists.get(kind)):
                    found.append(f"{prefix}version_data.versions.{version_name}.{container}.{kind}")
    return [name for name in found if name not in IMPLEMENTED_AUTH]


def _is_inert(value: object) -> bool:
    """Whether a value is Tyk's "nothing configured": a zero value or a switched-off section."""
    if isinstance(value, dict):
        for switch in _SWITCHES:
            if value.get(switch) is False:
                return True
        return all(_is_inert(v) for v in value.values())
    if isinstance(value, bool):
        return not value
    return value is None or value == "" or value == [] or value == 0


def _governing_switch(name: str) -> str | None:
    governing = _GOVERNED_BY.get(name)
    if governing is not None:
        return governing
    for field_prefix, switch in _GOVERNED_PREFIXES:
        if name.startswith(field_prefix):
            return switch
    return None


def _ignored_fields(
    data: Mapping[str, object],
    version_data: Mapping[str, object],
    flags: _Flags,
    use_keyless: bool,
    prefix: str,
) -> list[str]:
    not_versioned = version_data["not_versioned"] is True
    out: list[str] = []
    for name, value in data.items():
        if name in IMPLEMENTED_FIELDS:
            continue
        if _is_inert(value) or value in _INERT_VALUES.get(name, ()):
            continue
        switch = _governing_switch(name)
        if switch is not None and not flags.on(switch):
            continue
        if use_keyless and name in _INERT_WHEN_KEYLESS:
            continue
        if name == "definition" and not_versioned:
            continue  # it only says where to read the version from
        out.append(prefix + name)

    proxy = data.get("proxy")
    if isinstance(proxy, dict):
        for name, value in proxy.items():
            if name not in IMPLEMENTED_PROXY_FIELDS and not _is_inert(value):
                out.append(f"{prefix}proxy.{name}")

    if not not_versioned:
        out.append(f"{prefix}version_data.not_versioned")
    for name, value in version_data.items():
        if name not in ("not_versioned", "versions") and not _is_inert(value):
            out.append(f"{prefix}version_data.{name}")
    versions = version_data["versions"]
    assert isinstance(versions, dict)
    for version_name, version in versions.items():
        for name, value in version.items():
            # use_extended_paths only says which list format is in use.
            if name in ("name", "use_extended_paths") or _is_inert(value):
                continue
            out.append(f"{prefix}version_data.versions.{version_name}.{name}")
    return out


# --------------------------------------------------------------------------
# Loading a directory
# --------------------------------------------------------------------------


def load_api_definitions(app_path: str) -> list[ApiSpec]:
    """Load every ``*.json`` file of ``app_path`` (sorted by name), one API each.

    Raises ConfigError naming the file at fault; two active APIs with the same
    ``api_id`` or the same ``listen_path`` are an error naming both files.
    Hidden files (editor back-ups such as ``.x.json``) are skipped.
    """
    try:
        names = sorted(os.listdir(app_path))
    except OSError as exc:
        raise ConfigError(
            app_path, "", f"cannot read the API definitions directory: {exc.strerror or exc}"
        ) from None
    specs: list[ApiSpec] = []
    by_id: dict[str, ApiSpec] = {}
    by_listen_path: dict[str, ApiSpec] = {}
    for file_name in names:
        path = os.path.join(app_path, file_name)
        if not file_name.endswith(".json") or file_name.startswith("."):
            continue
        if not os.path.isfile(path):
            continue
        spec = parse_api_definition(load_json_file(path), path)
        if spec.active:
            _check_unique(by_id, spec.api_id, spec, "api_id")
            _check_unique(by_listen_path, spec.listen_path, spec, "proxy.listen_path")
        specs.append(spec)
    return specs


def _check_unique(seen: dict[str, ApiSpec], key: str, spec: ApiSpec, field_name: str) -> None:
    other = seen.get(key)
    if other is not None:
        raise ConfigError(
            spec.source,
            field_name,
            f"{key!r} is also used by the active API in {other.source}",
        )
    seen[key] = spec
