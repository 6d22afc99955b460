"""Which fields of a definition fastgate implements, which it refuses, which it ignores.

Every field of a Tyk Classic definition is one of:

* **implemented** (:data:`IMPLEMENTED_FIELDS`, :data:`IMPLEMENTED_PROXY_FIELDS`):
  validated and compiled into the ``ApiSpec``;
* **refused** (:func:`unsupported_auth`): it turns on an access control
  fastgate does not enforce yet, so the API is refused (501) rather than
  served open; its own settings (``jwt_*`` for ``enable_jwt``) are not
  reported again as ignored;
* **known, not implemented** (:func:`ignored_fields`): a field of Tyk's
  (:mod:`fastgate.apidef.tyk_fields`), accepted so that a Tyk export loads,
  and reported when it would change what Tyk does: its value is not a zero
  value (false, "", 0, [], {}, null, or an object made only of those), it is
  not a section switched off by its own ``enabled``/``enable`` flag, and it is
  not the settings of a method or list that is off (``jwt_*`` while
  ``enable_jwt`` is false or the API is keyless, ``allowed_ips`` while
  ``enable_ip_whitelisting`` is false, ...);
* **unknown** (:func:`unknown_api_fields`): a name Tyk does not have there
  either, whatever its value, reported with the closest known name
  ("use_standard_auht: unknown field (did you mean use_standard_auth?)").
  Tyk ignores unknown names, so they are warnings, not errors.  A name that
  differs from one of Tyk's only by case is refused instead (**fastgate
  differs**): Go's ``encoding/json`` would read it as that field, fastgate
  would not, and serving the API would silently differ from Tyk -- perhaps
  without a protection (``Use_Mutual_TLS_Auth``).  Tyk exports never hold
  such names: Tyk writes its own.

Names are checked at the levels Tyk's lists cover: the top level, ``proxy``,
``version_data``, each ``version_data.versions.<name>`` and its
``extended_paths``.

The auth methods' part of every table here is derived from
:data:`fastgate.auth.REGISTRY` (their switches, their own fields, which are
implemented); a field of the core, when implemented, is added to
``_CORE_FIELDS``; nothing else here needs to change.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastgate.apidef.tyk_fields import (
    API_DEFINITION_FIELDS,
    EXTENDED_PATHS_FIELDS,
    PROXY_FIELDS,
    SCHEMA_ONLY_FIELDS,
    VERSION_DATA_FIELDS,
    VERSION_FIELDS,
)
from fastgate.auth import REGISTRY, AuthMethodSpec
from fastgate.config import ConfigError, FieldReader, UnknownField, json_type_name, unknown_fields
from fastgate.plugins.settings import DRIVERS

__all__ = [
    "AUTH_METHODS",
    "IMPLEMENTED_AUTH",
    "IMPLEMENTED_FIELDS",
    "IMPLEMENTED_PROXY_FIELDS",
    "IMPLICIT_STANDARD_AUTH",
    "Flags",
    "ignored_fields",
    "method_switches",
    "unknown_api_fields",
    "unknown_version_fields",
    "unsupported_auth",
]

# Top-level fields compiled into ApiSpec by the core (the auth methods' own
# fields come from the registry, below).  Identity fields (id, _id, slug)
# carry no behaviour; "_id" is not Tyk's (its JSON name is "id") but Tyk
# Dashboard exports carry it.  Later issues extend this set with the fields
# they read.
_CORE_FIELDS: frozenset[str] = frozenset(
    {"api_id", "name", "org_id", "active", "proxy", "use_keyless", "version_data"}
    | {"id", "_id", "slug"}
    # Shared by every auth method.
    | {"auth_configs", "strip_auth_data", "base_identity_provided_by"}
    # fastgate's own: all methods must pass, or any one (fastgate.middleware.any_auth).
    | {"auth_mode"}
    # Limits.
    | {"global_rate_limit"}
    # Key lifetime in the store.
    | {"session_lifetime", "session_lifetime_respects_key_expiration"}
    # Context variables ($tyk_context.*) and fastgate's own split-token flow.
    | {"enable_context_vars", "split_token"}
    # Static mTLS (fastgate.middleware.mtls): keyless APIs too.
    | {"use_mutual_tls_auth", "client_certificates"}
    # Tyk's request_signing: the gateway signs what it sends upstream
    # (fastgate.auth.hmac.request_signing).
    | {"request_signing"}
    # TLS towards the upstream (fastgate.server.upstream_tls).
    | {"upstream_certificates", "upstream_certificates_disabled", "pinned_public_keys",
       "certificate_pinning_disabled"}
    # Plugins (fastgate.plugins): hooks, bundles and the configuration they get.
    | {"custom_middleware", "custom_middleware_bundle", "custom_middleware_bundle_disabled",
       "config_data", "config_data_disabled"}
    # Analytics records (fastgate.observability.analytics).
    | {"do_not_track", "tags", "tag_headers", "enable_detailed_recording",
       "expire_analytics_after"}
)
#: Endpoint lists of ``extended_paths`` that fastgate applies (JavaScript
#: virtual endpoints: fastgate.plugins.js.virtual).
IMPLEMENTED_EXTENDED_PATHS: frozenset[str] = frozenset({"virtual"})
#: Fields of a version (``version_data.versions.<name>``) that fastgate applies.
IMPLEMENTED_VERSION_FIELDS: frozenset[str] = frozenset(
    {"global_headers", "global_headers_remove", "global_headers_disabled"})


def method_switches(method: AuthMethodSpec) -> tuple[str | tuple[str, str], ...]:
    """A method's switches as :meth:`Flags.on` takes them (a dotted switch is
    a section's: ``("external_oauth", "enabled")``)."""
    return tuple(tuple(s.split(".", 1)) if "." in s else s  # type: ignore[misc]
                 for s in method.enabled_by)


def _switch_field(switch: str) -> str:
    return switch.split(".", 1)[0]


#: Every auth method's switches, in Tyk's chain order.  Ignored by Tyk when
#: use_keyless is true.
AUTH_METHODS: tuple[str | tuple[str, str], ...] = tuple(
    switch for method in REGISTRY for switch in method_switches(method))
_AUTH_SWITCHES = frozenset(_switch_field(s) for m in REGISTRY for s in m.enabled_by)
#: The refusal entry of a non-keyless definition that enables no method: Tyk
#: applies its fallback (auth token).
IMPLICIT_STANDARD_AUTH = "use_keyless=false"
# Entries of ApiSpec.unsupported_auth that fastgate enforces (so they are not
# reported any more): the switches of the implemented methods.
IMPLEMENTED_AUTH: frozenset[str] = frozenset(
    {_switch_field(s) for m in REGISTRY if m.implemented for s in m.enabled_by}
    | ({IMPLICIT_STANDARD_AUTH} if any(m.fallback and m.implemented for m in REGISTRY)
       else set())
)
IMPLEMENTED_FIELDS: frozenset[str] = frozenset(
    _CORE_FIELDS
    | {f for m in REGISTRY if m.implemented for f in m.fields}
    | {_switch_field(s) for m in REGISTRY if m.implemented for s in m.enabled_by}
)
IMPLEMENTED_PROXY_FIELDS: frozenset[str] = frozenset(
    # transport: its ssl_* fields (proxy_url, ssl_force_common_name_check are
    # reported by the parser when set).
    {"listen_path", "target_url", "strip_listen_path", "preserve_host_header", "transport"}
)

# Settings that act only while one of these boolean fields is on.
_GOVERNED_BY: dict[str, tuple[str, ...]] = {
    "client_certificates": ("use_mutual_tls_auth",),
    "allowed_ips": ("enable_ip_whitelisting",),
    "blacklisted_ips": ("enable_ip_blacklisting",),
}
# An auth method's own fields act only while one of its switches is on.
for _method in REGISTRY:
    for _field in _method.fields:
        _GOVERNED_BY[_field] = (*_GOVERNED_BY.get(_field, ()),
                                *(_switch_field(s) for s in _method.enabled_by))
# Auth settings shared by several methods: inert on a keyless API.
_INERT_WHEN_KEYLESS = frozenset({"auth", "auth_configs", "base_identity_provided_by"})
# Values Tyk exports that mean "nothing special".
_INERT_VALUES: dict[str, tuple[object, ...]] = {"protocol": ("http",)}
# Keys that switch the section holding them on or off.
_SWITCHES = ("enabled", "enable", "is_enabled", "enable_cache", "use_discovery_service")

# Plugins (Tyk's custom_middleware): the hook lists, and the single hooks.
# Either refused (a hook that runs can be an access check) or inert, so they
# are never reported as ignored.
_HOOK_LISTS = ("pre", "post", "post_key_auth", "response")
_PLUGIN_FIELDS = frozenset(
    {"custom_middleware", "custom_middleware_bundle", "custom_middleware_bundle_disabled"}
)
# Endpoint lists in a version that restrict who reaches an endpoint, by container.
_PROTECTING_LISTS: dict[str, tuple[str, ...]] = {
    "paths": ("white_list", "black_list"),
    # go_plugin: a Go plugin on an endpoint (fastgate runs none) may refuse requests.
    "extended_paths": ("white_list", "black_list", "internal", "go_plugin"),
}


class Flags:
    """The definition's boolean switches, type-checked once."""

    __slots__ = ("_data", "_reader", "use_keyless")

    def __init__(self, data: Mapping[str, object], reader: FieldReader,
                 use_keyless: bool) -> None:
        self._data = data
        # A separate reader: checking a switch's type does not make it "implemented".
        self._reader = FieldReader(data, reader.file, reader.prefix)
        self.use_keyless = use_keyless

    def on(self, name: str | tuple[str, str]) -> bool:
        """Whether the switch is true in the definition."""
        if isinstance(name, tuple):
            section_name, switch = name
            section = self._data.get(section_name)
            if section is None:
                return False
            return self._reader.section(section_name).boolean(switch)
        return self._reader.boolean(name)

    def effective(self, name: str) -> bool:
        """Whether the boolean switch ``name`` is on and acts: auth methods do
        not on a keyless API."""
        if self.use_keyless and name in _AUTH_SWITCHES:
            return False
        return self.on(name)


def _active_entries(entries: object) -> bool:
    """Whether a Tyk endpoint list has an entry not marked ``disabled``."""
    if not isinstance(entries, list):
        return False
    return any(not (isinstance(e, dict) and e.get("disabled") is True) for e in entries)


# --------------------------------------------------------------------------
# Refused: access controls fastgate does not enforce yet
# --------------------------------------------------------------------------


def unsupported_auth(
    data: Mapping[str, object],
    version_data: Mapping[str, object],
    flags: Flags,
    reader: FieldReader,
) -> list[str]:
    """``ApiSpec.unsupported_auth``: what the definition turns on that fastgate
    cannot enforce, by field name (dotted paths carry the Dashboard wrapper's
    prefix).  Raises ConfigError when a plugin setting has the wrong type."""
    prefix = reader.prefix
    found: list[str] = []
    if not flags.use_keyless:
        enabled = [_switch_field(s) for m in REGISTRY for s, switch in
                   zip(m.enabled_by, method_switches(m), strict=True) if flags.on(switch)]
        found.extend(enabled if enabled else [IMPLICIT_STANDARD_AUTH])
    for name in ("internal",):
        if flags.on(name):
            found.append(name)
    if not flags.use_keyless:
        # Tyk's signed auth tokens (an HMAC of the key in a header): an
        # access control of its own, refused until it is implemented.
        configs = data.get("auth_configs")
        sections = [(f"auth_configs.{name}", section) for name, section in configs.items()] \
            if isinstance(configs, dict) else []
        sections.append(("auth", data.get("auth")))
        for where, section in sections:
            if isinstance(section, dict) and section.get("validate_signature") is True:
                found.append(f"{prefix}{where}.validate_signature")
    for switch, entries in (
        ("enable_ip_whitelisting", "allowed_ips"),
        ("enable_ip_blacklisting", "blacklisted_ips"),
    ):
        if flags.on(switch) and _active_entries(data.get(entries)):
            found.append(switch)
    # Plugins run on keyless APIs too: those of a driver fastgate does not run
    # are refused (Python and JavaScript run: fastgate.plugins).
    hooks = _plugin_hooks(reader)
    section = data.get("custom_middleware")
    driver = (section.get("driver") if isinstance(section, dict) else None) or "otto"
    if hooks and driver not in DRIVERS:
        found.append(f"{prefix}custom_middleware.driver={driver}")
    versions = version_data["versions"]
    assert isinstance(versions, dict)
    for version_name, version in versions.items():
        for container, kinds in _PROTECTING_LISTS.items():
            lists = version.get(container)
            if not isinstance(lists, dict):
                continue
            for kind in kinds:
                if _active_entries(lists.get(kind)):
                    found.append(f"{prefix}version_data.versions.{version_name}.{container}.{kind}")
    return [name for name in found if name not in IMPLEMENTED_AUTH]


def _plugin_hooks(top: FieldReader) -> list[str]:
    """The plugin hooks that would run (``custom_middleware.pre``, ...,
    ``custom_middleware_bundle``), as Tyk's ``loadCustomMiddleware`` picks them:
    list entries not ``disabled``; ``auth_check`` not disabled and named; an
    ``id_extractor`` not disabled with an ``extract_with``; a bundle named and
    not ``custom_middleware_bundle_disabled``."""
    # A separate reader: validating these does not make them implemented.
    reader = FieldReader(top.obj, top.file, top.prefix)
    section = reader.section("custom_middleware")
    hooks: list[str] = []
    for kind in _HOOK_LISTS:
        entries = section.get(kind)
        if entries is None:
            continue
        if not isinstance(entries, list):
            raise section.error(kind, f"expected an array, got {json_type_name(entries)}")
        active = False
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ConfigError(top.file, f"{section.path(kind)}[{index}]",
                                  f"expected an object, got {json_type_name(entry)}")
            entry_reader = FieldReader(entry, top.file, f"{section.path(kind)}[{index}].")
            if not entry_reader.boolean("disabled"):
                active = True
        if active:
            hooks.append(f"custom_middleware.{kind}")
    auth_check = section.section("auth_check")
    if not auth_check.boolean("disabled") and auth_check.string("name"):
        hooks.append("custom_middleware.auth_check")
    id_extractor = section.section("id_extractor")
    if not id_extractor.boolean("disabled") and id_extractor.string("extract_with"):
        hooks.append("custom_middleware.id_extractor")
    if reader.string("custom_middleware_bundle") and \
            not reader.boolean("custom_middleware_bundle_disabled"):
        hooks.append("custom_middleware_bundle")
    return hooks


# --------------------------------------------------------------------------
# Known, not implemented: reported when they would matter
# --------------------------------------------------------------------------


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


def _governing_switches(name: str) -> tuple[str, ...]:
    return _GOVERNED_BY.get(name, ())


def ignored_fields(
    data: Mapping[str, object],
    version_data: Mapping[str, object],
    flags: Flags,
    refused: tuple[str, ...],
    prefix: str,
) -> list[str]:
    """``ApiSpec.ignored_fields``: Tyk's fields present, not implemented, that
    would change what Tyk does, leaving out those the refusal (``refused``,
    the API's ``unsupported_auth``) already accounts for."""
    not_versioned = version_data["not_versioned"] is True
    refused_names = {name.removeprefix(prefix) for name in refused}
    out: list[str] = []
    for name, value in data.items():
        if name in IMPLEMENTED_FIELDS or name not in API_DEFINITION_FIELDS:
            continue  # implemented, or not Tyk's (unknown_api_fields reports those)
        if name in _PLUGIN_FIELDS or name in refused_names:
            continue
        if _is_inert(value) or value in _INERT_VALUES.get(name, ()):
            continue
        switches = _governing_switches(name)
        if switches and not any(
            flags.effective(switch) and switch not in refused_names for switch in switches
        ):
            continue  # its method or list is off, or refused (said once, there)
        if flags.use_keyless and (name in _INERT_WHEN_KEYLESS or name in _AUTH_SWITCHES):
            continue
        if name == "definition" and not_versioned:
            continue  # it only says where to read the version from
        out.append(prefix + name)

    proxy = data.get("proxy")
    if isinstance(proxy, dict):
        for name, value in proxy.items():
            if name in PROXY_FIELDS and name not in IMPLEMENTED_PROXY_FIELDS \
                    and not _is_inert(value):
                out.append(f"{prefix}proxy.{name}")

    if not not_versioned:
        out.append(f"{prefix}version_data.not_versioned")
    for name, value in version_data.items():
        if name in VERSION_DATA_FIELDS and name not in ("not_versioned", "versions") \
                and not _is_inert(value):
            out.append(f"{prefix}version_data.{name}")
    versions = version_data["versions"]
    assert isinstance(versions, dict)
    for version_name, version in versions.items():
        where = f"{prefix}version_data.versions.{version_name}."
        for name, value in version.items():
            # use_extended_paths only says which list format is in use.
            if name not in VERSION_FIELDS or name in ("name", "use_extended_paths") \
                    or name in IMPLEMENTED_VERSION_FIELDS:
                continue
            if name in _PROTECTING_LISTS and isinstance(value, dict):
                out.extend(_ignored_endpoint_lists(value, where + name + ".", name))
            elif not _is_inert(value):
                out.append(where + name)
    return out


def _ignored_endpoint_lists(lists: Mapping[str, object], where: str,
                            container: str) -> list[str]:
    """The endpoint lists of ``paths`` / ``extended_paths`` that would act,
    one by one, leaving out the protecting ones (refused or inert)."""
    out = []
    for kind, entries in lists.items():
        if kind in _PROTECTING_LISTS[container]:
            continue
        if container == "extended_paths" and kind not in EXTENDED_PATHS_FIELDS:
            continue  # unknown: unknown_version_fields reports it
        if container == "extended_paths" and kind in IMPLEMENTED_EXTENDED_PATHS:
            continue
        active = _active_entries(entries) if isinstance(entries, list) \
            else not _is_inert(entries)
        if active:
            out.append(where + kind)
    return out


# --------------------------------------------------------------------------
# Unknown: names Tyk does not have either
# --------------------------------------------------------------------------


def unknown_api_fields(data: Mapping[str, object], file: str, prefix: str) -> list[UnknownField]:
    """Unknown names at the top level and in ``proxy``.

    Raises ConfigError for a name that is one of Tyk's but for its case (see
    :func:`fastgate.config.unknown_fields`); called before anything else is
    read, so that ``"Proxy"`` is refused as such, not as a missing proxy.
    """
    out = unknown_fields(data, API_DEFINITION_FIELDS, file, prefix,
                         also_known=IMPLEMENTED_FIELDS | SCHEMA_ONLY_FIELDS)
    proxy = data.get("proxy")
    if isinstance(proxy, dict):
        out += unknown_fields(proxy, PROXY_FIELDS, file, prefix + "proxy.")
    return out


def unknown_version_fields(version_data: Mapping[str, object], file: str,
                           prefix: str) -> list[UnknownField]:
    """Unknown names in ``version_data``, its versions and their ``extended_paths``
    (``version_data`` already type-checked).  Raises ConfigError as
    :func:`unknown_api_fields`."""
    where = prefix + "version_data."
    out = unknown_fields(version_data, VERSION_DATA_FIELDS, file, where)
    versions = version_data["versions"]
    assert isinstance(versions, dict)
    for version_name, version in versions.items():
        version_where = f"{where}versions.{version_name}."
        out += unknown_fields(version, VERSION_FIELDS, file, version_where)
        extended = version.get("extended_paths")
        if isinstance(extended, dict):
            out += unknown_fields(extended, EXTENDED_PATHS_FIELDS, file,
                                  version_where + "extended_paths.")
    return out
