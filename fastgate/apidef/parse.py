"""Parsing one Tyk Classic definition into an :class:`~fastgate.apidef.spec.ApiSpec`.

Implemented fields are validated here (a wrong type or value is a
ConfigError naming the file and the dotted field); what the other fields
mean for the API -- refused, ignored, unknown -- is decided in
:mod:`fastgate.apidef.fields`.
"""

from __future__ import annotations

import copy
import ipaddress
import os
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastgate.apidef.fields import (
    Flags,
    ignored_fields,
    method_switches,
    unknown_api_fields,
    unknown_version_fields,
    unsupported_auth,
)
from fastgate.apidef.spec import ApiSpec, AuthEntry
from fastgate.auth import REGISTRY
from fastgate.auth.hmac.request_signing import parse_request_signing
from fastgate.auth.jwt.split_token import parse_split_token
from fastgate.config import (
    ConfigError,
    FieldReader,
    UpstreamTlsOptions,
    json_type_name,
    parse_upstream_tls,
    string_map,
)
from fastgate.middleware.any_auth import AUTH_MODES
from fastgate.middleware.headers import parse_global_headers
from fastgate.plugins.runtime import PluginSource
from fastgate.plugins.settings import DRIVERS, parse_custom_middleware

__all__ = ["parse_api_definition"]

# RFC 3986: path = *( pchar / "/" ); pchar = unreserved / pct-encoded / sub-delims / ":" / "@"
_PATH_RE = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*")
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]*[A-Za-z0-9_])?"
_HOSTNAME_RE = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")  # names and IPv4; "_" for containers
_DEFAULT_PORTS = {"http": 80, "https": 443}
_DEFAULT_VERSION_NAME = "Default"


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
    unknown = unknown_api_fields(data, source, prefix)
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
    unknown += unknown_version_fields(version_data, source, prefix)
    flags = Flags(data, top, use_keyless)
    unsupported = unsupported_auth(data, version_data, flags, top)
    ignored = ignored_fields(data, version_data, flags, tuple(unsupported), prefix)
    auth = _auth(top, flags, use_keyless)
    strip_auth_data = top.boolean("strip_auth_data")
    base_identity = _base_identity(top, auth)
    # fastgate's own: "any" is the OR of TykTechnologies/tyk#2623.
    auth_mode = top.string("auth_mode", "all", choices=AUTH_MODES)
    limit_section = top.section("global_rate_limit")
    global_rate = limit_section.number("rate", 0)
    global_per = limit_section.number("per", 0)
    global_rate_limit = (global_rate, global_per) if global_rate > 0 and global_per > 0 else None
    session_lifetime = top.integer("session_lifetime", 0)
    respects_expiration = top.boolean("session_lifetime_respects_key_expiration")
    context_vars = top.boolean("enable_context_vars")
    headers_remove, headers = parse_global_headers(top, version_data)
    client_certificates = (top.string_list("client_certificates")
                           if top.boolean("use_mutual_tls_auth") else None)
    upstream_tls = _upstream_tls(top, proxy, source)
    transport = proxy.section("transport")
    ignored += [f"{prefix}proxy.transport.{name}"
                for name in ("proxy_url", "ssl_force_common_name_check") if transport.get(name)]
    request_signing = parse_request_signing(top)
    plugins = _plugins(top)
    config_data: dict = {}
    if not top.boolean("config_data_disabled"):
        raw_config = top.get("config_data")
        if raw_config is not None and not isinstance(raw_config, dict):
            raise top.error("config_data", f"expected an object, got {json_type_name(raw_config)}")
        config_data = raw_config or {}
    split_token = parse_split_token(
        top, keyless=use_keyless,
        uses_auth_token=any(method.name == "auth_token" for method, _settings in auth))

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
        unknown_fields=tuple(unknown),
        auth=auth,
        strip_auth_data=strip_auth_data,
        base_identity=base_identity,
        auth_mode=auth_mode,
        global_rate_limit=global_rate_limit,
        session_lifetime=session_lifetime,
        session_lifetime_respects_key_expiration=respects_expiration,
        enable_context_vars=context_vars,
        global_headers_remove=headers_remove,
        global_headers=headers,
        split_token=split_token,
        request_signing=request_signing,
        client_certificates=client_certificates,
        upstream_tls=upstream_tls,
        config_data=config_data,
        plugins=plugins,
    )


def _plugins(top: FieldReader) -> PluginSource | None:
    """``custom_middleware`` and ``custom_middleware_bundle``, when a driver
    fastgate runs would run them (other drivers are refused: unsupported_auth)."""
    section = top.obj.get("custom_middleware")
    driver = (section.get("driver") if isinstance(section, dict) else None) or "otto"
    bundle = top.string("custom_middleware_bundle").strip()
    if top.boolean("custom_middleware_bundle_disabled"):
        bundle = ""
    if driver not in DRIVERS:
        return None
    settings = None if bundle else parse_custom_middleware(top)
    if settings is None and not bundle:
        return None
    return PluginSource(settings=settings, bundle=bundle)


def _upstream_tls(top: FieldReader, proxy: FieldReader, source: str) -> UpstreamTlsOptions:
    """``proxy.transport.ssl_*``, ``upstream_certificates`` and
    ``pinned_public_keys`` (each off with its ``*_disabled``); a relative
    file name is taken from the definition's directory."""
    where = os.path.dirname(source) if source else ""

    def resolve(value: str) -> str:
        return os.path.join(where, value) if where and not os.path.isabs(value) else value

    certificates = {} if top.boolean("upstream_certificates_disabled") else {
        host: resolve(value) if "/" in value else value
        for host, value in string_map(top, "upstream_certificates").items()}
    pins = {} if top.boolean("certificate_pinning_disabled") else \
        string_map(top, "pinned_public_keys")
    return parse_upstream_tls(proxy.section("transport"), "ssl_", resolve,
                              certificates=certificates, pinned_public_keys=pins)


def _auth(top: FieldReader, flags: Flags, use_keyless: bool) -> tuple[AuthEntry, ...]:
    """The implemented auth methods the definition enables, in Tyk's chain
    order, each with its parsed settings (from :data:`fastgate.auth.REGISTRY`).

    As in Tyk: ``use_keyless`` switches every method off; with no method
    enabled and ``use_keyless`` false, the fallback (auth token) applies.
    Enabled methods that are not implemented are left out here: they are in
    ``unsupported_auth`` and the API is refused.
    """
    if use_keyless:
        return ()
    enabled = [m for m in REGISTRY if any(flags.on(s) for s in method_switches(m))]
    if not enabled:
        enabled = [m for m in REGISTRY if m.fallback]
    return tuple((m, m.parse(top)) for m in enabled if m.parse is not None and m.implemented)


def _base_identity(top: FieldReader, auth: tuple[AuthEntry, ...]) -> str:
    """``base_identity_provided_by``: the method whose session drives access
    rights and limits; "" when every method may set it (the last one wins)."""
    names = tuple(dict.fromkeys(m.identity for m in REGISTRY if m.identity))
    value = top.string("base_identity_provided_by", choices=("", *names))
    if not value or len(auth) < 2:
        return ""
    if value not in {method.identity for method, _settings in auth}:
        # A method that is not enabled here (or not implemented yet, in which
        # case the API is refused anyway): Tyk falls back to the first one.
        return ""
    return value


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
