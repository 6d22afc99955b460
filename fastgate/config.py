"""Gateway configuration: the subset of Tyk's ``tyk.conf`` fastgate implements.

Rules, in one place:

* The file is JSON with Tyk's field names.  A wrong type, an out-of-range
  number or an unknown enum value is refused with a :class:`ConfigError`
  naming the file and the dotted field path (``storage.port``).  Booleans are
  never accepted where a number is expected, although Python's ``bool`` is an
  ``int``.
* ``null`` counts as absent, as it does for Tyk (Go decodes it to the zero
  value).  Timeouts of 0 mean "the default", as in Tyk.
* Fields fastgate does not implement are accepted, so an existing ``tyk.conf``
  loads: Tyk's own fields (:mod:`fastgate.tyk_conf_fields`) are listed in
  :attr:`GatewayConfig.ignored_fields`, any other name in
  :attr:`GatewayConfig.unknown_fields` with the closest known name (a
  misspelling is said as such, not as "not implemented"); the CLI warns about
  both once, at start.  Tyk itself ignores unknown names, so they are not an
  error.
* A name that differs from a field Tyk knows only by case (``Listen_Port``)
  is refused: Tyk decodes JSON with Go's ``encoding/json``, which matches
  field names case-insensitively and would use it; fastgate matches names
  exactly and would silently run with a different setting.
* Relative paths (``app_path``, ``policies.policy_record_name``,
  ``policies.policy_path``, ``storage.path``, ``middleware_path``,
  ``public_key_path``, ``coprocess_options.python_path_prefix``) are relative to the directory of
  the configuration file, not to the working directory.
* fastgate's own additions: ``storage.type: "memory"`` (the default),
  ``storage.path``, ``workers``, ``rate_limiter``, ``limits_fail_open``,
  ``limit_leases`` (``enabled``, ``lifetime_ms``, ``max_block``:
  :class:`LimitLeasesConfig`, docs/leases.md), and in
  ``http_server_options``: ``idle_timeout``, ``max_header_bytes``,
  ``read_header_timeout``, ``lingering_time``, ``lingering_timeout``,
  ``lingering_max_bytes`` and ``max_connections`` (nginx's names where nginx
  has the setting); ``jwks.fetch_timeout`` and ``jwks.refetch_interval``;
  ``jsvm_memory_limit``, ``jsvm_workers``, ``coprocess_options.thread_pool_workers`` and
  ``coprocess_options.hook_time_budget`` (plugins, :class:`PluginConfig`).
* TLS (``http_server_options``): ``use_ssl``, ``certificates``,
  ``min_version``, ``max_version`` and ``ssl_ciphers`` as Tyk reads them
  (:class:`TlsOptions`; served by :mod:`fastgate.server.tls`).

:class:`FieldReader` is the typed accessor the API definition and policy
loaders share; it records which fields were read, so that whatever was not
read is what fastgate ignores.
"""

from __future__ import annotations

import difflib
import os
import ssl
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from fastgate import tyk_conf_fields

__all__ = [
    "TLS_CIPHERS",
    "TLS_VERSIONS",
    "ConfigError",
    "FieldReader",
    "GatewayConfig",
    "HttpServerOptions",
    "JwksConfig",
    "LimitLeasesConfig",
    "PluginConfig",
    "PoliciesConfig",
    "ServerCertificate",
    "StorageConfig",
    "TlsOptions",
    "UnknownField",
    "closest_name",
    "config_warnings",
    "go_fold",
    "json_type_name",
    "load_gateway_config",
    "load_json_file",
    "parse_gateway_config",
    "unknown_fields",
]


class ConfigError(ValueError):
    """A configuration problem in one file.

    ``str()`` is ``'<file>: <field>: <message>'``, or ``'<file>: <message>'``
    when the problem concerns the whole file (``field == ''``).
    """

    file: str
    field: str
    message: str

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        if self.field:
            return f"{self.file}: {self.field}: {self.message}"
        return f"{self.file}: {self.message}"

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str]]:
        return (type(self), (self.file, self.field, self.message))


# --------------------------------------------------------------------------
# Reading JSON files and typed fields
# --------------------------------------------------------------------------

_UTF8_BOM = b"\xef\xbb\xbf"


def _position(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of character ``offset`` in ``text``."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def load_json_file(path: str) -> object:
    """Read and decode one JSON file.

    Raises ConfigError(path, '', ...) when the file cannot be read, is not
    UTF-8 or is not valid JSON (with the line and column of the problem).
    A UTF-8 byte order mark, which some editors write, is skipped.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise ConfigError(path, "", f"cannot read the file: {exc.strerror or exc}") from None
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start].decode("utf-8", "replace")
        line, column = _position(before, len(before))
        raise ConfigError(
            path, "", f"invalid JSON: not UTF-8 text at line {line} column {column}"
        ) from None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(
            path, "", f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


_TYPE_NAMES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    type(None): "null",
}


def json_type_name(value: object) -> str:
    """What a decoded JSON value is, for messages: 'a string', 'an array', ..."""
    return _TYPE_NAMES.get(type(value), type(value).__name__)


class FieldReader:
    """Typed, validating access to the fields of one JSON object.

    Every accessor returns the default when the field is absent or null, and
    raises ConfigError(file, '<prefix><name>', ...) when it has the wrong type
    or value.  Fields never asked for are reported by :meth:`unread`.
    Values are never echoed in type errors (the field may be a secret).
    """

    __slots__ = ("_read", "_sections", "file", "obj", "prefix")

    def __init__(self, obj: Mapping[str, object], file: str, prefix: str = "") -> None:
        self.obj = obj
        self.file = file
        self.prefix = prefix
        self._read: set[str] = set()
        self._sections: dict[str, FieldReader] = {}

    def path(self, name: str) -> str:
        """The dotted path of field ``name``, for messages."""
        return self.prefix + name

    def error(self, name: str, message: str) -> ConfigError:
        """A ConfigError about field ``name`` of this object."""
        return ConfigError(self.file, self.path(name), message)

    def get(self, name: str) -> object:
        """The raw value of ``name`` (None when absent), marked as read."""
        self._read.add(name)
        return self.obj.get(name)

    def _wrong_type(self, name: str, expected: str, value: object) -> ConfigError:
        return self.error(name, f"expected {expected}, got {json_type_name(value)}")

    def string(self, name: str, default: str = "", *, choices: Iterable[str] | None = None) -> str:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._wrong_type(name, "a string", value)
        if choices is not None:
            allowed = tuple(choices)
            if value not in allowed:
                listed = ", ".join(repr(c) for c in allowed)
                raise self.error(name, f"must be one of {listed}; got {value!r}")
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._wrong_type(name, "true or false", value)
        return value

    def integer(
        self,
        name: str,
        default: int = 0,
        *,
        minimum: int | None = None,
        maximum: int | None = None,
    ) -> int:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong_type(name, "an integer", value)
        self._check_range(name, value, minimum, maximum)
        return value

    def number(
        self,
        name: str,
        default: float = 0.0,
        *,
        minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._wrong_type(name, "a number", value)
        self._check_range(name, value, minimum, maximum)
        return float(value)

    def _check_range(
        self, name: str, value: float, minimum: float | None, maximum: float | None
    ) -> None:
        if minimum is not None and maximum is not None:
            if not minimum <= value <= maximum:
                raise self.error(name, f"must be between {minimum} and {maximum}; got {value}")
        elif minimum is not None and value < minimum:
            raise self.error(name, f"must be at least {minimum}; got {value}")
        elif maximum is not None and value > maximum:
            raise self.error(name, f"must be at most {maximum}; got {value}")

    def string_list(self, name: str) -> tuple[str, ...]:
        value = self.get(name)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self._wrong_type(name, "an array of strings", value)
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise ConfigError(
                    self.file,
                    f"{self.path(name)}[{index}]",
                    f"expected a string, got {json_type_name(item)}",
                )
        return tuple(value)

    def obj_field(self, name: str) -> dict[str, object] | None:
        """The object at ``name`` (None when absent or null), read as a whole."""
        value = self.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._wrong_type(name, "an object", value)
        return value

    def section(self, name: str) -> FieldReader:
        """A reader for the object at ``name`` (empty when absent or null).

        Fields of the section that are never read show up in :meth:`unread`
        as ``<name>.<field>``.
        """
        value = self.obj_field(name)
        reader = FieldReader(value or {}, self.file, f"{self.path(name)}.")
        self._sections[name] = reader
        return reader

    def unread(self) -> list[str]:
        """Dotted paths of the fields present that were never read, in file order."""
        out: list[str] = []
        for name in self.obj:
            section = self._sections.get(name)
            if section is not None:
                out.extend(section.unread())
            elif name not in self._read:
                out.append(self.path(name))
        return out

    def unread_split(
        self, tyk_fields: Mapping[str, Collection[str]]
    ) -> tuple[list[str], list[UnknownField]]:
        """The fields present and never read, split into (known, unknown), in file order.

        ``tyk_fields`` maps the prefix of this reader and of its sections
        (``""``, ``"storage."``) to the names Tyk knows there; a field whose
        name is there is *known* (a dotted path in the first list), any other
        is an :class:`UnknownField` whose suggestion is the closest of Tyk's
        names and of those fastgate read there.  Fields of a section missing
        from ``tyk_fields`` are all known.  Raises ConfigError for a name
        that differs from one of Tyk's there only by case (see
        :func:`unknown_fields`).
        """
        known: list[str] = []
        unknown: list[UnknownField] = []
        names = tyk_fields.get(self.prefix)
        unread = [name for name in self.obj
                  if name not in self._sections and name not in self._read]
        if names is None:
            known.extend(self.path(name) for name in unread)
        else:
            strange = unknown_fields(dict.fromkeys(unread), names, self.file,
                                     self.prefix, also_known=self._read)
            odd = {field.path for field in strange}
            known.extend(self.path(name) for name in unread if self.path(name) not in odd)
            unknown.extend(strange)
        for section in self._sections.values():
            section_known, section_unknown = section.unread_split(tyk_fields)
            known.extend(section_known)
            unknown.extend(section_unknown)
        order = {self.path(name): index for index, name in enumerate(self.obj)}
        known.sort(key=lambda path: _file_order(order, path))
        unknown.sort(key=lambda field: _file_order(order, field.path))
        return known, unknown


def _file_order(order: Mapping[str, int], path: str) -> int:
    """Where ``path`` (a field or a field of a section) stands in its object."""
    while path not in order and "." in path:
        path = path.rpartition(".")[0]
    return order.get(path, len(order))


# --------------------------------------------------------------------------
# Unknown fields
# --------------------------------------------------------------------------


class UnknownField(NamedTuple):
    """A field, present in a file, that neither Tyk nor fastgate has at its place."""

    #: Dotted path, as :attr:`ConfigError.field`.
    path: str
    #: The closest name known there, "" when none is close.
    suggestion: str = ""

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion}?)" if self.suggestion else ""
        return f"{self.path}: unknown field{hint}"


def go_fold(name: str) -> str:
    """``name`` folded as Go's ``encoding/json`` compares object keys with field
    names: case-insensitively, by Unicode simple folding (so the Kelvin sign
    is a "k" and a long s an "s"; the names compared against are ASCII)."""
    return name.lower().replace("\u017f", "s")


def closest_name(name: str, candidates: Iterable[str]) -> str:
    """The candidate most like ``name`` (a misspelling, another case), or ""
    when none is close enough to be worth suggesting."""
    by_lower: dict[str, str] = {}
    for candidate in sorted(candidates):
        by_lower.setdefault(candidate.lower(), candidate)
    matches = difflib.get_close_matches(name.lower(), by_lower, n=1, cutoff=0.75)
    return by_lower[matches[0]] if matches else ""


def unknown_fields(
    obj: Mapping[str, object],
    tyk_fields: Collection[str],
    file: str,
    prefix: str = "",
    *,
    also_known: Collection[str] = (),
) -> list[UnknownField]:
    """The fields of ``obj`` whose names are neither Tyk's (``tyk_fields``) nor
    fastgate's own (``also_known``), in file order, each with the closest of
    those names.

    Raises ConfigError(file, prefix + name) for a name that differs from one
    of ``tyk_fields`` only by case: Tyk, whose ``encoding/json`` matches names
    case-insensitively, would read it as that field; fastgate reads names
    exactly, so accepting it would silently behave unlike Tyk.
    """
    out: list[UnknownField] = []
    folded: dict[str, str] | None = None
    for name in obj:
        if name in tyk_fields or name in also_known:
            continue
        if folded is None:
            folded = {go_fold(known): known for known in tyk_fields}
        canonical = folded.get(go_fold(name))
        if canonical is not None:
            raise ConfigError(
                file, prefix + name,
                f"Tyk reads this as {canonical} (it matches field names case-insensitively);"
                f" fastgate reads names exactly: write {canonical}",
            )
        out.append(UnknownField(prefix + name,
                                closest_name(name, (*tyk_fields, *also_known))))
    return out


# --------------------------------------------------------------------------
# The configuration
# --------------------------------------------------------------------------

STORAGE_TYPES = ("memory", "redis")
HASH_KEY_FUNCTIONS = ("", "murmur32", "murmur64", "murmur128", "sha256")
RATE_LIMITERS = ("local", "redis")
RATE_LIMIT_HEADER_SOURCES = ("quotas", "rate_limits")
POLICY_SOURCES = ("file",)
# Tyk's other policy sources, refused with an explanation rather than "unknown value".
_TYK_ONLY_POLICY_SOURCES = {
    "service": "loads policies from a Tyk Dashboard",
    "rpc": "loads policies over Tyk MDCB (RPC)",
}

DEFAULT_SERVER_TIMEOUT = 120.0
DEFAULT_PROXY_TIMEOUT = 30.0
DEFAULT_GRACEFUL_SHUTDOWN = 30.0
DEFAULT_MAX_IDLE_PER_HOST = 100
MIN_HEADER_BYTES = 1024
DEFAULT_HEADER_TIMEOUT = 60.0
DEFAULT_LINGERING_TIME = 30.0
DEFAULT_LINGERING_TIMEOUT = 5.0
#: At least 1 MiB (a client still sending its first megabyte is never reset);
#: enough for the uploads a client sends without waiting for an answer.
DEFAULT_LINGERING_MAX_BYTES = 64 * 1024 * 1024
MIN_LINGERING_MAX_BYTES = 1024 * 1024
DEFAULT_MIN_TOKEN_LENGTH = 3
#: Tyk's jwks.cache.timeout when 0 (seconds).
DEFAULT_JWKS_CACHE_TIMEOUT = 240
DEFAULT_JWKS_FETCH_TIMEOUT = 5.0
DEFAULT_JWKS_REFETCH_INTERVAL = 5.0
#: Tyk's ``middleware_path`` default (relative to the config file's directory here).
DEFAULT_MIDDLEWARE_PATH = "middleware"
#: Tyk's ``jsvm_timeout`` when 0 or unset (seconds).
DEFAULT_JSVM_TIMEOUT = 5.0
DEFAULT_JSVM_MEMORY_LIMIT = 64
#: JavaScript worker processes per hook or virtual-endpoint set (calls at once).
DEFAULT_JSVM_WORKERS = 2
DEFAULT_THREAD_POOL_WORKERS = 4
#: The fields an access-log line may carry: Tyk's template names, and
#: fastgate's ``timestamp``, ``request_id``, ``bytes_in``, ``bytes_out``.
ACCESS_LOG_FIELDS: tuple[str, ...] = (
    "timestamp", "api_id", "api_key", "api_name", "client_ip", "host", "latency_gateway",
    "latency_total", "method", "org_id", "original_path", "path", "protocol",
    "remote_addr", "status", "trace_id", "request_id", "upstream_addr", "upstream_latency",
    "user_agent", "bytes_in", "bytes_out",
)
#: Upper bounds (seconds) of the latency histograms, Prometheus' defaults
#: from 0.5 ms up (a gateway's own latency is well under 5 ms).
DEFAULT_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                           0.5, 1.0, 2.5, 5.0, 10.0)
DEFAULT_HOOK_TIME_BUDGET = 0.05
#: The schemes Tyk's bundle downloader knows (``FetchBundleByName``).
BUNDLE_URL_SCHEMES = ("http", "https", "file")

# Tyk's field names by section (FieldReader prefix), for unread_split.
_TYK_FIELDS: dict[str, frozenset[str]] = {
    "": tyk_conf_fields.CONFIG_FIELDS,
    "storage.": tyk_conf_fields.STORAGE_FIELDS,
    "policies.": tyk_conf_fields.POLICIES_FIELDS,
    "http_server_options.": tyk_conf_fields.HTTP_SERVER_OPTIONS_FIELDS,
    "jwks.": tyk_conf_fields.JWKS_FIELDS,
    "jwks.cache.": tyk_conf_fields.JWKS_CACHE_FIELDS,
    "coprocess_options.": tyk_conf_fields.COPROCESS_OPTIONS_FIELDS,
    "analytics_config.": tyk_conf_fields.ANALYTICS_CONFIG_FIELDS,
    "access_logs.": tyk_conf_fields.ACCESS_LOGS_FIELDS,
    "opentelemetry.": tyk_conf_fields.OPENTELEMETRY_FIELDS,
    "opentelemetry.traces.": tyk_conf_fields.OPENTELEMETRY_FIELDS,
}


@dataclass(frozen=True, slots=True)
class StorageConfig:
    type: str = "memory"  # "memory" | "redis"
    host: str = "localhost"
    port: int = 6379
    addrs: tuple[str, ...] = ()
    enable_cluster: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    database: int = 0
    path: str | None = None  # memory store journal, absolute
    #: Seconds every Redis operation may take before it fails (Tyk's
    #: ``storage.timeout``; default 1 s).
    timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class PoliciesConfig:
    policy_source: str = "file"
    policy_record_name: str | None = None  # absolute
    policy_path: str | None = None  # absolute; wins over policy_record_name, as in Tyk


#: Tyk's (Go's) version numbers.
TLS_VERSIONS: dict[int, ssl.TLSVersion] = {
    769: ssl.TLSVersion.TLSv1,
    770: ssl.TLSVersion.TLSv1_1,
    771: ssl.TLSVersion.TLSv1_2,
    772: ssl.TLSVersion.TLSv1_3,
}
DEFAULT_MIN_VERSION = 771
DEFAULT_MAX_VERSION = 772

#: Go's TLS 1.0-1.2 cipher-suite names -> OpenSSL's.
TLS_CIPHERS: dict[str, str] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    # Go's older spellings of the ChaCha20 suites.
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}

#: TLS 1.2 suites when ``ssl_ciphers`` is empty: ECDHE key exchange, AEAD only.
DEFAULT_TLS_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

#: Added to the defaults when min_version allows TLS 1.0/1.1.
LEGACY_TLS_CIPHERS = ("ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:"
                      "ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA")


@dataclass(frozen=True, slots=True)
class ServerCertificate:
    """One ``http_server_options.certificates`` entry (paths absolute)."""

    domain_name: str
    cert_file: str
    key_file: str


@dataclass(frozen=True, slots=True)
class TlsOptions:
    """The listener's TLS settings, as configured."""

    use_ssl: bool = False
    certificates: tuple[ServerCertificate, ...] = ()
    #: Tyk's ``ssl_certificates``: ids in the certificate store (/tyk/certs),
    #: served after the files' certificates.
    store_ids: tuple[str, ...] = ()
    min_version: int = DEFAULT_MIN_VERSION
    max_version: int = DEFAULT_MAX_VERSION
    #: OpenSSL's cipher string for TLS 1.2 and below.
    ciphers: str = DEFAULT_TLS_CIPHERS
    #: Where the settings came from (for messages).
    file: str = field(default="", compare=False)


def tls_versions(reader: FieldReader, min_name: str, max_name: str) -> tuple[int, int]:
    """Two TLS version fields (Tyk's numbers; 0 when unset).  Raises
    ConfigError naming the field."""
    versions = ", ".join(str(v) for v in TLS_VERSIONS)
    found = []
    for name in (min_name, max_name):
        value = reader.integer(name, 0)
        if value and value not in TLS_VERSIONS:
            raise reader.error(name, f"must be one of {versions} (Tyk's numbers); got {value}")
        found.append(value)
    low, high = found
    if low and high and low > high:
        raise reader.error(min_name, f"{low} is above {max_name} {high}")
    return low, high


def tls_ciphers(reader: FieldReader, name: str) -> str:
    """A cipher-suite list field by Go's names, as OpenSSL's cipher string ("": unset)."""
    names = reader.string_list(name)
    unknown = [n for n in names if n not in TLS_CIPHERS]
    if unknown:
        raise reader.error(name, f"unknown cipher suite {unknown[0]!r} "
                           "(Go's names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)")
    return ":".join(TLS_CIPHERS[n] for n in names)


def string_map(reader: FieldReader, name: str) -> dict[str, str]:
    """An object of strings (``{"host": "cert id"}``); {} when absent."""
    value = reader.obj_field(name) or {}
    for key, item in value.items():
        if not isinstance(item, str):
            raise ConfigError(reader.file, f"{reader.path(name)}.{key}",
                              f"expected a string, got {json_type_name(item)}")
    return dict(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class UpstreamTlsOptions:
    """TLS towards upstreams, as the gateway (``proxy_ssl_*``,
    ``security.certificates.upstream``, ``security.pinned_public_keys``) or
    one API (``proxy.transport.ssl_*``, ``upstream_certificates``,
    ``pinned_public_keys``) configures it (:mod:`fastgate.server.upstream_tls`)."""

    insecure_skip_verify: bool = False
    min_version: int = 0  # 0: unset
    max_version: int = 0
    ciphers: str = ""  # OpenSSL's cipher string; "": OpenSSL's defaults
    #: PEM CA bundle trusted besides the system's (fastgate's own field).
    ca_file: str = ""
    #: Host pattern -> certificate-store id (or PEM file) of the client certificate.
    certificates: dict[str, str] = field(default_factory=dict)
    #: Host pattern -> comma-separated pinned keys (store ids or SHA-256 hex).
    pinned_public_keys: dict[str, str] = field(default_factory=dict)


def parse_upstream_tls(reader: FieldReader, prefix: str, resolve: Callable[[str], str], *,
                       certificates: dict[str, str],
                       pinned_public_keys: dict[str, str]) -> UpstreamTlsOptions:
    """``<prefix>insecure_skip_verify``, ``<prefix>min_version``... of
    ``reader`` (``proxy_ssl_`` in tyk.conf, ``ssl_`` in ``proxy.transport``)."""
    low, high = tls_versions(reader, prefix + "min_version", prefix + "max_version")
    ca_file = reader.string(prefix + "ca_file")
    return UpstreamTlsOptions(
        insecure_skip_verify=reader.boolean(prefix + "insecure_skip_verify"),
        min_version=low, max_version=high, ciphers=tls_ciphers(reader, prefix + "ciphers"),
        ca_file=resolve(ca_file) if ca_file else "",
        certificates=certificates, pinned_public_keys=pinned_public_keys)


def parse_tls_options(server: FieldReader, resolve: Callable[[str], str]) -> TlsOptions:
    """The TLS fields of ``http_server_options``; ``resolve(path)`` makes a
    configured path absolute.  Raises ConfigError naming the field."""
    use_ssl = server.boolean("use_ssl")
    entries = server.get("certificates")
    certificates: list[ServerCertificate] = []
    if entries is not None:
        if not isinstance(entries, list):
            raise server.error("certificates", "expected an array of objects")
        for index, entry in enumerate(entries):
            name = f"certificates[{index}]"
            if not isinstance(entry, dict):
                raise server.error(name, "expected an object")
            item = FieldReader(entry, server.file, server.path(name) + ".")
            cert_file = item.string("cert_file")
            key_file = item.string("key_file")
            if not cert_file or not key_file:
                missing = "cert_file" if not cert_file else "key_file"
                raise item.error(missing, "must name a PEM file")
            certificates.append(ServerCertificate(
                item.string("domain_name").lower(), resolve(cert_file), resolve(key_file)))
    store_ids = server.string_list("ssl_certificates")
    min_version, max_version = tls_versions(server, "min_version", "max_version")
    min_version = min_version or DEFAULT_MIN_VERSION
    max_version = max_version or DEFAULT_MAX_VERSION
    if min_version > max_version:
        raise server.error("min_version", f"{min_version} is above max_version {max_version}")
    # TLS 1.0 and 1.1 have no AEAD suite: allowing them (min_version) adds
    # ECDHE with CBC, as Go's defaults have it.
    ciphers = tls_ciphers(server, "ssl_ciphers") or (
        DEFAULT_TLS_CIPHERS if min_version >= 771
        else DEFAULT_TLS_CIPHERS + ":" + LEGACY_TLS_CIPHERS)
    if use_ssl and not certificates and not store_ids:
        raise server.error("use_ssl", "needs a certificate: http_server_options.certificates "
                           "(cert_file and key_file) or ssl_certificates (certificate store ids)")
    return TlsOptions(use_ssl, tuple(certificates), store_ids, min_version, max_version,
                      ciphers, server.file)



@dataclass(frozen=True, slots=True)
class HttpServerOptions:
    read_timeout: float = DEFAULT_SERVER_TIMEOUT
    write_timeout: float = DEFAULT_SERVER_TIMEOUT
    idle_timeout: float = DEFAULT_SERVER_TIMEOUT
    max_header_bytes: int = 65536
    #: Seconds a client has to send a whole request head, from its first byte
    #: (nginx's client_header_timeout, Go's ReadHeaderTimeout): a client
    #: trickling header lines cannot hold a connection past it.
    read_header_timeout: float = DEFAULT_HEADER_TIMEOUT
    #: Lingering close (nginx's lingering_close): after an answer sent before
    #: the request was read to its end, the gateway shuts down its sending
    #: side and reads and discards what the client still sends -- at most
    #: ``lingering_time`` seconds in all, ``lingering_timeout`` seconds of
    #: silence, and ``lingering_max_bytes`` bytes -- so that the client reads
    #: the answer instead of a TCP reset.
    lingering_time: float = DEFAULT_LINGERING_TIME
    lingering_timeout: float = DEFAULT_LINGERING_TIMEOUT
    lingering_max_bytes: int = DEFAULT_LINGERING_MAX_BYTES
    #: Client connections one worker serves at once (0: derived from the
    #: process's descriptor limit).  Past it, idle keep-alive connections are
    #: closed first; with none idle, a new connection gets 503 and is closed.
    max_connections: int = 0
    #: Tyk 5.5's allowed_urls matching modes: patterns also match the path
    #: with the listen path stripped (prefix), and match only at the end of
    #: the path (suffix: ``$`` appended).
    enable_path_prefix_matching: bool = False
    enable_path_suffix_matching: bool = False
    #: ``use_ssl`` and the listener's certificates, versions and ciphers.
    tls: TlsOptions = TlsOptions()


@dataclass(frozen=True, slots=True)
class OAuthConfig:
    """The gateway's ``oauth_*`` fields: the OAuth 2.0 provider's lifetimes
    and answers (:mod:`fastgate.auth.oauth2`)."""

    #: ``oauth_token_expire``: access-token lifetime, seconds (0 in the file: 3600).
    token_expire: int = 3600
    #: ``oauth_refresh_token_expire``: refresh-token lifetime (0 in the file: 14 days).
    refresh_token_expire: int = 1_209_600
    #: ``oauth_token_expired_retain_period``: seconds a client's expired tokens
    #: stay listed; ``DELETE /tyk/oauth/tokens?scope=lapsed`` drops the older
    #: ones (0: listings are kept for ever and the purge drops nothing, as Tyk).
    expired_retain_period: int = 0
    #: ``oauth_redirect_uri_separator``: splits a client's ``redirect_uri``
    #: into several ("": one URI).
    redirect_uri_separator: str = ""
    #: ``oauth_error_status_code``: the status of every OAuth error answer;
    #: 0 (fastgate's default): RFC 6749's (400, or 401 for a client that
    #: failed to authenticate); Tyk's default is 403.
    error_status_code: int = 0


@dataclass(frozen=True, slots=True)
class JwksConfig:
    """The ``jwks`` section: how JWK Sets are fetched and cached
    (:mod:`fastgate.auth.jwt.jwks`)."""

    #: Tyk's ``jwks.cache.timeout``: seconds a fetched set is fresh (0: 240);
    #: past it the set is still served while it is refreshed.
    cache_timeout: float = DEFAULT_JWKS_CACHE_TIMEOUT
    #: fastgate's: seconds one fetch may take in all (a request waiting for
    #: an unknown key gets its answer within it).
    fetch_timeout: float = DEFAULT_JWKS_FETCH_TIMEOUT
    #: fastgate's: least seconds between two fetches of one URL (unknown
    #: kids, retries after a failure).
    refetch_interval: float = DEFAULT_JWKS_REFETCH_INTERVAL


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """fastgate's ``prometheus`` section: the ``/metrics`` endpoint
    (:mod:`fastgate.observability.metrics`).  Served on the control port when
    ``control_api_port`` is set, else on the gateway port; either way only
    with the gateway ``secret`` (``X-Tyk-Authorization``, or ``Authorization:
    Bearer <secret>`` as Prometheus' ``authorization`` setting sends it).

    * ``enabled`` -- count and serve (default on).
    * ``path`` -- where (default ``/metrics``).
    * ``latency_buckets`` -- upper bounds, seconds, of the latency histograms.
    * ``merge_interval`` -- with ``workers > 1``: seconds between two
      snapshots a worker writes for the others to merge (default 1).
    """

    enabled: bool = True
    path: str = "/metrics"
    latency_buckets: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
    merge_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class AnalyticsConfig:
    """Tyk's ``enable_analytics`` and ``analytics_config``: one record per
    request, as Tyk Pump reads them (:mod:`fastgate.observability.analytics`).

    * ``enabled`` -- ``enable_analytics``.
    * ``ignored_ips`` -- client IPs that produce no record (no CIDRs, as Tyk).
    * ``enable_detailed_recording`` -- keep the raw request and response
      (base64 of the wire format, as Tyk) in each record.
    * ``enable_geo_ip``, ``geo_ip_db_path`` -- the client's country and city
      from a MaxMind database.
    * ``storage_expiration_time`` -- seconds the record list lives in Redis
      if nothing reads it (Tyk's default 60; -1: never expires).  A record's
      ``ExpireAt`` comes from the API's ``expire_analytics_after``, as in Tyk.
    * ``records_buffer_size`` -- records a worker holds before it drops (and
      counts) new ones (Tyk's 1000 per analytics worker; here per gateway
      worker, default 10000).
    * ``enable_multiple_analytics_keys`` -- spread records over Tyk's ten
      ``analytics-tyk-system-analytics_<n>`` lists (Redis Cluster).
    * ``purge_interval`` -- seconds between two pushes at most (default 0.1;
      a full batch goes out at once).
    * ``serializer_type`` -- ``msgpack`` (Tyk's default; ``protobuf`` is refused).
    * fastgate's ``file_path`` -- with the memory store, where the records
      go instead (JSON lines; default ``analytics.jsonl`` beside the config).
    """

    enabled: bool = False
    ignored_ips: frozenset[str] = frozenset()
    enable_detailed_recording: bool = False
    enable_geo_ip: bool = False
    geo_ip_db_path: str = ""
    storage_expiration_time: int = 60
    records_buffer_size: int = 10000
    enable_multiple_analytics_keys: bool = False
    purge_interval: float = 0.1
    serializer_type: str = "msgpack"
    file_path: str = ""


@dataclass(frozen=True, slots=True)
class AccessLogConfig:
    """Tyk's ``access_logs`` section: one JSON line per request.

    * ``enabled`` -- off by default, as in Tyk.
    * ``template`` -- the fields to write, Tyk's names (``api_id``,
      ``api_key`` (the key's hash, never the key), ``client_ip``, ``status``,
      ``latency_total``...); empty: all of them.
    * fastgate's ``file`` -- a file to append to ("": standard output).
    """

    enabled: bool = False
    template: tuple[str, ...] = ()
    file: str = ""


@dataclass(frozen=True, slots=True)
class TracingConfig:
    """Trace context and OpenTelemetry export
    (:mod:`fastgate.observability.tracing`).

    fastgate's ``request_tracing`` section:

    * ``enabled`` -- send the upstream a W3C ``traceparent`` naming the
      gateway's span (the client's trace continued, its ``tracestate``
      kept); on by itself when ``opentelemetry.enabled`` is.
    * ``start_traces`` -- start a new trace when the request carries none
      (default on; off: such requests are forwarded without one).
    * ``request_id_header`` -- a request id header sent upstream and back
      to the client (the client's own kept when it sent one; "" for none;
      default ``X-Request-Id``).

    Tyk's ``opentelemetry`` section (its fields, or the same under
    ``opentelemetry.traces`` as Tyk 5.8 nests them):

    * ``enabled``, ``exporter`` (``http``: OTLP/HTTP protobuf; ``grpc`` is
      refused), ``endpoint`` (``host:port`` or a URL; ``/v1/traces`` added
      when it has no path), ``headers``, ``connection_timeout`` (seconds,
      default 1), ``resource_name`` (the ``service.name``, default
      ``fastgate``), ``span_processor_type`` (``batch``, the default, or
      ``simple``), ``span_batch_config{max_queue_size, max_export_batch_size,
      batch_timeout}``, ``context_propagation`` (``tracecontext``),
      ``sampling{type: AlwaysOn|AlwaysOff|TraceIDRatioBased, rate,
      parent_based}`` (``rate`` 0 or absent with TraceIDRatioBased: 0.5, as
      Tyk has it).
    """

    enabled: bool = False
    start_traces: bool = True
    request_id_header: str = "X-Request-Id"
    otel_enabled: bool = False
    exporter: str = "http"
    endpoint: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    connection_timeout: float = 1.0
    resource_name: str = "fastgate"
    span_processor_type: str = "batch"
    max_queue_size: int = 2048
    max_export_batch_size: int = 512
    batch_timeout: float = 5.0
    sampling_type: str = "AlwaysOn"
    sampling_rate: float = 1.0
    parent_based: bool = False


@dataclass(frozen=True, slots=True)
class DashboardConfig:
    """fastgate's ``dashboard`` section: the live page at ``/dashboard/``
    (on the control port when ``control_api_port`` is set); its data comes
    from ``/tyk/`` and ``/metrics`` with the gateway secret.

    * ``enabled`` -- serve it (default on; it needs ``prometheus.enabled``).
    """

    enabled: bool = True


@dataclass(frozen=True, slots=True)
class ObservabilityConfig:
    """What the exchange-finished consumers read (:mod:`fastgate.observability`)."""

    metrics: MetricsConfig = MetricsConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    access_logs: AccessLogConfig = AccessLogConfig()
    tracing: TracingConfig = TracingConfig()
    dashboard: DashboardConfig = DashboardConfig()


@dataclass(frozen=True, slots=True)
class PluginConfig:
    """The gateway's plugin settings (Tyk's names, top level of ``tyk.conf``
    unless said otherwise): bundles (:mod:`fastgate.plugins.bundles`), the
    Python hooks and the JavaScript engine.  Paths are absolute (relative ones
    in the file are relative to its directory).

    * ``enable_bundle_downloader`` -- download the bundles named by the APIs'
      ``custom_middleware_bundle`` that are not in ``middleware_path`` yet
      (off: only bundles already unpacked there are used).
    * ``bundle_base_url`` -- where bundles are downloaded from: the bundle's
      name is joined to the URL's path, as Tyk does (``http``, ``https`` or
      ``file`` URLs).
    * ``bundle_insecure_skip_verify`` -- do not verify the certificate of an
      ``https`` bundle server.
    * ``skip_verify_existing_plugin_bundle`` -- a bundle already unpacked is
      used without checking its checksum and signature again (a downloaded
      bundle is always verified before it is unpacked into place).
    * ``public_key_path`` -- PEM RSA public key (``PUBLIC KEY`` or
      ``RSA PUBLIC KEY``); when set, every bundle must carry a valid
      ``signature`` ("" when unset).
    * ``middleware_path`` -- the plugins directory; bundles are unpacked
      under ``<middleware_path>/bundles`` (Tyk's default ``middleware``).
    * ``enable_jsvm`` -- run JavaScript middleware and virtual endpoints.
    * ``jsvm_timeout`` -- seconds one JavaScript call may run (0 or unset:
      Tyk's 5).
    * ``jsvm_workers`` -- fastgate's: JavaScript worker processes per hook
      (and per API's virtual endpoints): the calls that run at once (default 2).
    * ``jsvm_memory_limit`` -- fastgate's: MiB of heap for each JavaScript
      engine instance (default 64).
    * ``coprocess_options.enable_coprocess`` -- run Python plugins.
    * ``coprocess_options.python_path_prefix`` -- a directory put on the
      Python module path of plugins ("" when unset).
      ``coprocess_options.python_version`` is accepted and ignored: fastgate
      runs plugins in the gateway's own interpreter.
    * ``coprocess_options.thread_pool_workers`` -- fastgate's: threads of the
      bounded pool that runs the sync hooks that ask to run off the event
      loop (default 4).
    * ``coprocess_options.hook_time_budget`` -- fastgate's: seconds a hook
      may run before it is reported as slow (0 or unset: 0.05).
    """

    enable_bundle_downloader: bool = False
    bundle_base_url: str = ""
    bundle_insecure_skip_verify: bool = False
    skip_verify_existing_plugin_bundle: bool = False
    public_key_path: str = ""
    middleware_path: str = DEFAULT_MIDDLEWARE_PATH
    enable_jsvm: bool = False
    jsvm_timeout: float = DEFAULT_JSVM_TIMEOUT
    jsvm_memory_limit: int = DEFAULT_JSVM_MEMORY_LIMIT
    jsvm_workers: int = DEFAULT_JSVM_WORKERS
    enable_coprocess: bool = False
    python_path_prefix: str = ""
    thread_pool_workers: int = DEFAULT_THREAD_POOL_WORKERS
    hook_time_budget: float = DEFAULT_HOOK_TIME_BUDGET


@dataclass(frozen=True, slots=True)
class LimitLeasesConfig:
    """The ``limit_leases`` section (fastgate's): hot keys' rate and quota
    decided from blocks leased from Redis (:mod:`fastgate.limits.leases`).

    Only with ``rate_limiter: "redis"``; with the memory store it is a no-op
    (one process decides in memory anyway)."""

    #: Off (the default): one Redis script per request, as before.
    enabled: bool = False
    #: How long a leased block may be spent, in milliseconds (1-10000).
    lifetime_ms: int = 50
    #: The most units one block may hold (2-1000000).
    max_block: int = 1000


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: str  # absolute path of the config file
    secret: str = field(repr=False)  # never in a repr: those land in logs
    app_path: str  # absolute directory of API definitions
    listen_address: str = ""  # "" = all interfaces
    listen_port: int = 8080
    policies: PoliciesConfig = PoliciesConfig()
    storage: StorageConfig = StorageConfig()
    hash_keys: bool = True
    hash_key_function: str = ""  # "", "murmur32", "murmur64", "murmur128", "sha256"
    http_server_options: HttpServerOptions = HttpServerOptions()
    proxy_default_timeout: float = DEFAULT_PROXY_TIMEOUT
    max_idle_connections_per_host: int = DEFAULT_MAX_IDLE_PER_HOST
    graceful_shutdown_timeout_duration: float = DEFAULT_GRACEFUL_SHUTDOWN
    workers: int = 1
    control_api_port: int = 0
    #: Where rate-limit decisions are made: "local" (worker memory, the key's
    #: rate split across the workers sharing the store) or "redis" (one atomic
    #: script per decision, exact across nodes).  Default: "redis" with the
    #: redis store (Tyk's enable_redis_rolling_limiter also selects it),
    #: "local" with the memory store (where the two are the same thing).
    rate_limiter: str = "local"
    #: X-RateLimit-* headers carry quota values ("quotas", Tyk's default) or
    #: rate-limit values ("rate_limits").
    rate_limit_response_headers: str = "quotas"
    #: When the store cannot decide a rate limit or quota in time: refuse with
    #: 503 (False, the default) or let the request through (True).
    limits_fail_open: bool = False
    #: Leased blocks of hot keys' rate and quota (:class:`LimitLeasesConfig`).
    limit_leases: LimitLeasesConfig = LimitLeasesConfig()
    #: Tyk's allow_master_keys: keys with no access rights (and no policy
    #: giving any) open every API; refused at creation unless this is true.
    allow_master_keys: bool = False
    #: Tyk's key lifetime: seconds a key's record is kept in the store
    #: (0: the API's session_lifetime, else forever), and whether this wins
    #: over every API's session_lifetime.
    global_session_lifetime: int = 0
    force_global_session_lifetime: bool = False
    #: Keys shorter than this count as not found (Tyk's min_token_length).
    min_token_length: int = DEFAULT_MIN_TOKEN_LENGTH
    #: GET /tyk/keys lists storage keys (hashes) when hash_keys is on only
    #: with this (Tyk's enable_hashed_keys_listing, default false).
    enable_hashed_keys_listing: bool = False
    jwks: JwksConfig = JwksConfig()
    oauth: OAuthConfig = OAuthConfig()
    #: Plugins: bundles, Python hooks, JavaScript (:class:`PluginConfig`).
    plugins: PluginConfig = PluginConfig()
    #: Metrics, analytics, access logs, traces, the dashboard.
    observability: ObservabilityConfig = ObservabilityConfig()
    #: Tyk's ``security.private_certificate_encoding_secret``: the password of
    #: the private keys in the certificate store ("": the gateway ``secret``).
    private_certificate_encoding_secret: str = field(default="", repr=False)
    #: Tyk's ``security.certificates.apis``: certificate-store ids every API
    #: with ``use_mutual_tls_auth`` allows, besides its ``client_certificates``.
    api_client_certificates: tuple[str, ...] = ()
    #: Tyk's ``security.control_api_use_mutual_tls``: ``/tyk/`` requests need a
    #: client certificate allowed by ``security.certificates.control_api``.
    control_api_use_mutual_tls: bool = False
    control_api_certificates: tuple[str, ...] = ()
    #: TLS towards upstreams (``proxy_ssl_*``, ``proxy_ssl_ca_file``,
    #: ``security.certificates.upstream``, ``security.pinned_public_keys``).
    upstream_tls: UpstreamTlsOptions = UpstreamTlsOptions()
    #: Dotted paths of Tyk's fields present in the file that fastgate does not
    #: implement (the CLI warns once, at start).
    ignored_fields: tuple[str, ...] = ()
    #: Fields neither Tyk nor fastgate knows (misspellings), with the closest name.
    unknown_fields: tuple[UnknownField, ...] = ()


def config_warnings(config: GatewayConfig) -> list[str]:
    """What an operator must hear about the config file, once, at start: the
    fields of Tyk's it ignores (one line) and each unknown field."""
    warnings = []
    if config.ignored_fields:
        ignored = ", ".join(config.ignored_fields)
        warnings.append(f"{config.path}: fields not implemented by fastgate, ignored: {ignored}")
    warnings.extend(f"{config.path}: {field}" for field in config.unknown_fields)
    return warnings


def load_gateway_config(path: str) -> GatewayConfig:
    """Read, decode and validate the gateway configuration file at ``path``.

    Raises ConfigError naming the file (and the field, when one is at fault).
    """
    return parse_gateway_config(load_json_file(path), path)


def _resolve(base: str, value: str) -> str:
    return os.path.normpath(os.path.join(base, value))


def _optional_path(reader: FieldReader, name: str, base: str) -> str | None:
    value = reader.string(name)
    return _resolve(base, value) if value else None


def _timeout(reader: FieldReader, name: str, default: float) -> float:
    # Tyk: "not setting this config, or setting this to 0, defaults to ..."
    value = reader.number(name, default, minimum=0)
    return value if value > 0 else default


def parse_gateway_config(data: object, path: str) -> GatewayConfig:
    """Validate an already decoded configuration.

    ``path`` is the file it came from: named in messages, and the base of
    relative paths.  Raises ConfigError.
    """
    path = os.path.abspath(path)
    base = os.path.dirname(path)
    if not isinstance(data, dict):
        raise ConfigError(path, "", f"expected a JSON object, got {json_type_name(data)}")
    # Case variants of Tyk's names first, so that "Secret" is refused as
    # such rather than reported as a missing secret.
    for prefix, names in _TYK_FIELDS.items():
        obj: object = data
        for part in prefix.split(".")[:-1]:  # "jwks.cache." is two levels down
            obj = obj.get(part) if isinstance(obj, dict) else None
        if isinstance(obj, dict):
            unknown_fields(obj, names, path, prefix)
    top = FieldReader(data, path)
    extra_ignored: list[str] = []

    listen_address = top.string("listen_address")
    listen_port = top.integer("listen_port", 8080, minimum=0, maximum=65535)
    control_api_port = top.integer("control_api_port", 0, minimum=0, maximum=65535)

    secret = top.string("secret")
    if not secret:
        raise top.error(
            "secret",
            "must be set to a non-empty string: it guards the /tyk/ control API",
        )

    if "app_path" in data and data["app_path"] == "":
        raise top.error("app_path", "must not be empty (the directory of API definitions)")
    app_path = _resolve(base, top.string("app_path", "apps"))

    policies = _parse_policies(top.section("policies"), base, extra_ignored)
    storage = _parse_storage(top.section("storage"), base, extra_ignored)

    hash_keys = top.boolean("hash_keys", True)
    hash_key_function = top.string("hash_key_function", "", choices=HASH_KEY_FUNCTIONS)

    server = top.section("http_server_options")
    http_server_options = HttpServerOptions(
        read_timeout=_timeout(server, "read_timeout", DEFAULT_SERVER_TIMEOUT),
        write_timeout=_timeout(server, "write_timeout", DEFAULT_SERVER_TIMEOUT),
        idle_timeout=_timeout(server, "idle_timeout", DEFAULT_SERVER_TIMEOUT),
        max_header_bytes=server.integer("max_header_bytes", 65536, minimum=MIN_HEADER_BYTES),
        read_header_timeout=_timeout(server, "read_header_timeout", DEFAULT_HEADER_TIMEOUT),
        lingering_time=_timeout(server, "lingering_time", DEFAULT_LINGERING_TIME),
        lingering_timeout=_timeout(server, "lingering_timeout", DEFAULT_LINGERING_TIMEOUT),
        lingering_max_bytes=server.integer("lingering_max_bytes", DEFAULT_LINGERING_MAX_BYTES,
                                           minimum=MIN_LINGERING_MAX_BYTES),
        max_connections=server.integer("max_connections", 0, minimum=0),
        enable_path_prefix_matching=server.boolean("enable_path_prefix_matching"),
        enable_path_suffix_matching=server.boolean("enable_path_suffix_matching"),
        tls=parse_tls_options(server, lambda value: _resolve(base, value)),
    )

    proxy_default_timeout = _timeout(top, "proxy_default_timeout", DEFAULT_PROXY_TIMEOUT)
    max_idle = (
        top.integer("max_idle_connections_per_host", DEFAULT_MAX_IDLE_PER_HOST, minimum=0)
        or DEFAULT_MAX_IDLE_PER_HOST
    )
    graceful = _timeout(top, "graceful_shutdown_timeout_duration", DEFAULT_GRACEFUL_SHUTDOWN)

    rolling = top.boolean("enable_redis_rolling_limiter")
    default_limiter = "redis" if storage.type == "redis" or rolling else "local"
    rate_limiter = top.string("rate_limiter", default_limiter, choices=RATE_LIMITERS)
    if rate_limiter == "redis" and storage.type != "redis":
        field_name = "rate_limiter" if "rate_limiter" in data else "enable_redis_rolling_limiter"
        raise top.error(field_name, 'the "redis" rate limiter needs storage.type "redis"')
    rate_limit_response_headers = top.string(
        "rate_limit_response_headers", "quotas", choices=RATE_LIMIT_HEADER_SOURCES)
    limits_fail_open = top.boolean("limits_fail_open")
    leases_section = top.section("limit_leases")
    limit_leases = LimitLeasesConfig(
        enabled=leases_section.boolean("enabled"),
        lifetime_ms=leases_section.integer("lifetime_ms", 50, minimum=1, maximum=10000),
        max_block=leases_section.integer("max_block", 1000, minimum=2, maximum=1_000_000))
    if limit_leases.enabled and storage.type == "redis" and rate_limiter != "redis":
        raise leases_section.error("enabled", 'leases need rate_limiter "redis" (with '
                                   '"local" the rate is decided in memory already)')
    allow_master_keys = top.boolean("allow_master_keys")
    global_session_lifetime = top.integer("global_session_lifetime", 0, minimum=0)
    force_global_session_lifetime = top.boolean("force_global_session_lifetime")
    min_token_length = (top.integer("min_token_length", 0, minimum=0)
                        or DEFAULT_MIN_TOKEN_LENGTH)
    enable_hashed_keys_listing = top.boolean("enable_hashed_keys_listing")
    jwks = _parse_jwks(top.section("jwks"))
    plugins = _parse_plugins(top, base, extra_ignored)
    observability = _parse_observability(top, base, storage)
    oauth = OAuthConfig(
        token_expire=top.integer("oauth_token_expire", 0, minimum=0) or 3600,
        refresh_token_expire=(top.integer("oauth_refresh_token_expire", 0, minimum=0)
                              or 1_209_600),
        expired_retain_period=top.integer("oauth_token_expired_retain_period", 0, minimum=0),
        redirect_uri_separator=top.string("oauth_redirect_uri_separator"),
        error_status_code=top.integer("oauth_error_status_code", 0, minimum=0, maximum=599))
    if oauth.error_status_code and oauth.error_status_code < 400:
        raise top.error("oauth_error_status_code", "must be an error status (400-599), "
                        "or 0 for RFC 6749's")
    security = top.section("security")
    certificate_secret = security.string("private_certificate_encoding_secret")
    security_certificates = security.section("certificates")
    api_client_certificates = security_certificates.string_list("apis")
    control_api_mtls = security.boolean("control_api_use_mutual_tls")
    control_api_certificates = security_certificates.string_list("control_api")
    upstream_tls = parse_upstream_tls(
        top, "proxy_ssl_", lambda value: _resolve(base, value),
        certificates={host: _resolve(base, value) if "/" in value else value
                      for host, value in string_map(security_certificates, "upstream").items()},
        pinned_public_keys=string_map(security, "pinned_public_keys"))
    if top.boolean("enforce_org_quotas"):
        # /tyk/org/keys stores organisation sessions, but nothing enforces
        # them: a limit the operator asked for must not be silently ignored.
        raise top.error("enforce_org_quotas", (
            "fastgate does not enforce organisation quotas, rate limits or expiry "
            "(Tyk's organisation sessions, /tyk/org/keys); set it to false"))

    workers = top.integer("workers", 1, minimum=1)
    if workers > 1 and storage.type != "redis":
        raise top.error(
            "workers",
            "more than one worker needs the redis store; the memory store lives in one process"
            ' (set storage.type to "redis" or workers to 1)',
        )

    # Last: every field fastgate reads has been read.
    ignored, unknown = top.unread_split(_TYK_FIELDS)
    return GatewayConfig(
        path=path,
        secret=secret,
        app_path=app_path,
        listen_address=listen_address,
        listen_port=listen_port,
        policies=policies,
        storage=storage,
        hash_keys=hash_keys,
        hash_key_function=hash_key_function,
        http_server_options=http_server_options,
        proxy_default_timeout=proxy_default_timeout,
        max_idle_connections_per_host=max_idle,
        graceful_shutdown_timeout_duration=graceful,
        workers=workers,
        control_api_port=control_api_port,
        rate_limiter=rate_limiter,
        rate_limit_response_headers=rate_limit_response_headers,
        limits_fail_open=limits_fail_open,
        limit_leases=limit_leases,
        allow_master_keys=allow_master_keys,
        global_session_lifetime=global_session_lifetime,
        force_global_session_lifetime=force_global_session_lifetime,
        min_token_length=min_token_length,
        enable_hashed_keys_listing=enable_hashed_keys_listing,
        jwks=jwks,
        oauth=oauth,
        plugins=plugins,
        observability=observability,
        private_certificate_encoding_secret=certificate_secret,
        api_client_certificates=api_client_certificates,
        control_api_use_mutual_tls=control_api_mtls,
        control_api_certificates=control_api_certificates,
        upstream_tls=upstream_tls,
        ignored_fields=tuple(ignored + extra_ignored),
        unknown_fields=tuple(unknown),
    )


def _parse_policies(section: FieldReader, base: str, ignored: list[str]) -> PoliciesConfig:
    source = section.string("policy_source")
    if source in _TYK_ONLY_POLICY_SOURCES:
        raise section.error(
            "policy_source",
            f"{source!r} {_TYK_ONLY_POLICY_SOURCES[source]}, which fastgate does not support;"
            ' use "file" with policy_record_name or policy_path',
        )
    if source not in ("", *POLICY_SOURCES):
        allowed = ", ".join(repr(s) for s in POLICY_SOURCES)
        raise section.error("policy_source", f"must be one of {allowed}; got {source!r}")
    record_name = _optional_path(section, "policy_record_name", base)
    policy_path = _optional_path(section, "policy_path", base)
    if record_name is not None and policy_path is not None:
        # Tyk reads policy_path and silently skips the record file; say so.
        ignored.append(section.path("policy_record_name"))
    return PoliciesConfig(
        policy_source="file", policy_record_name=record_name, policy_path=policy_path
    )


def _parse_plugins(top: FieldReader, base: str, ignored: list[str]) -> PluginConfig:
    base_url = top.string("bundle_base_url")
    if base_url:
        scheme = base_url.partition(":")[0].lower() if ":" in base_url else ""
        if scheme not in BUNDLE_URL_SCHEMES:
            raise top.error("bundle_base_url", "must be an http://, https:// or file:// URL"
                            f" (Tyk's bundle downloader knows no other); got {base_url!r}")
    coprocess = top.section("coprocess_options")
    if coprocess.string("python_version"):
        # fastgate runs plugins in its own interpreter: the setting has no effect.
        ignored.append(coprocess.path("python_version"))
    python_path_prefix = coprocess.string("python_path_prefix")
    return PluginConfig(
        enable_bundle_downloader=top.boolean("enable_bundle_downloader"),
        bundle_base_url=base_url,
        bundle_insecure_skip_verify=top.boolean("bundle_insecure_skip_verify"),
        skip_verify_existing_plugin_bundle=top.boolean("skip_verify_existing_plugin_bundle"),
        public_key_path=_optional_path(top, "public_key_path", base) or "",
        middleware_path=_resolve(base, top.string("middleware_path")
                                 or DEFAULT_MIDDLEWARE_PATH),
        enable_jsvm=top.boolean("enable_jsvm"),
        jsvm_timeout=_timeout(top, "jsvm_timeout", DEFAULT_JSVM_TIMEOUT),
        jsvm_memory_limit=top.integer("jsvm_memory_limit", DEFAULT_JSVM_MEMORY_LIMIT,
                                      minimum=1),
        jsvm_workers=top.integer("jsvm_workers", DEFAULT_JSVM_WORKERS, minimum=1, maximum=64),
        enable_coprocess=coprocess.boolean("enable_coprocess"),
        python_path_prefix=_resolve(base, python_path_prefix) if python_path_prefix else "",
        thread_pool_workers=coprocess.integer("thread_pool_workers",
                                              DEFAULT_THREAD_POOL_WORKERS, minimum=1),
        hook_time_budget=_timeout(coprocess, "hook_time_budget", DEFAULT_HOOK_TIME_BUDGET),
    )


def _parse_jwks(section: FieldReader) -> JwksConfig:
    # Tyk's timeout is an int64 of seconds; a value <= 0 means the default.
    cache_timeout = section.section("cache").integer("timeout", 0, minimum=0)
    return JwksConfig(
        cache_timeout=cache_timeout or DEFAULT_JWKS_CACHE_TIMEOUT,
        fetch_timeout=_timeout(section, "fetch_timeout", DEFAULT_JWKS_FETCH_TIMEOUT),
        refetch_interval=_timeout(section, "refetch_interval", DEFAULT_JWKS_REFETCH_INTERVAL),
    )


def _parse_storage(section: FieldReader, base: str, ignored: list[str]) -> StorageConfig:
    store_type = section.string("type") or "memory"
    if store_type not in STORAGE_TYPES:
        allowed = ", ".join(repr(s) for s in STORAGE_TYPES)
        raise section.error("type", f"must be one of {allowed}; got {store_type!r}")
    addrs = section.string_list("addrs")
    for index, addr in enumerate(addrs):
        host, sep, addr_port = addr.rpartition(":")
        if not sep or not host or not addr_port.isdigit() or not 1 <= int(addr_port) <= 65535:
            raise ConfigError(
                section.file,
                f"{section.path('addrs')}[{index}]",
                f'expected "host:port", got {addr!r}',
            )
    port = section.integer("port", 6379, minimum=0, maximum=65535)
    if store_type == "redis" and not addrs and port == 0:
        raise section.error("port", "must be between 1 and 65535 when storage.addrs is empty")
    enable_cluster = section.boolean("enable_cluster")
    if enable_cluster and store_type != "redis":
        raise section.error("enable_cluster", 'needs storage.type "redis"')
    path = _optional_path(section, "path", base)
    if path is not None and store_type != "memory":
        ignored.append(section.path("path"))  # the journal belongs to the memory store
    return StorageConfig(
        type=store_type,
        host=section.string("host", "localhost") or "localhost",
        port=port,
        addrs=addrs,
        enable_cluster=enable_cluster,
        username=section.string("username"),
        password=section.string("password"),
        database=section.integer("database", 0, minimum=0),
        path=path,
        timeout=_timeout(section, "timeout", 1.0),
    )


def _parse_observability(top: FieldReader, base: str,
                         storage: StorageConfig) -> ObservabilityConfig:
    prom = top.section("prometheus")
    path = prom.string("path", "/metrics")
    if not path.startswith("/") or path.startswith(("/tyk/", "/dashboard")) or path == "/hello":
        raise prom.error("path", "must be an absolute path outside /tyk/, /dashboard/ "
                         f"and /hello; got {path!r}")
    buckets = _bounds(prom, "latency_buckets") or DEFAULT_LATENCY_BUCKETS
    metrics = MetricsConfig(
        enabled=prom.boolean("enabled", True), path=path, latency_buckets=buckets,
        merge_interval=_timeout(prom, "merge_interval", 1.0))

    section = top.section("analytics_config")
    serializer = section.string("serializer_type", "msgpack", choices=("", "msgpack",
                                                                        "protobuf"))
    if serializer == "protobuf":
        raise section.error("serializer_type", "fastgate writes msgpack records (Tyk's "
                            'default); set it to "msgpack" or leave it out')
    geo = section.boolean("enable_geo_ip")
    geo_path = _optional_path(section, "geo_ip_db_path", base) or ""
    if geo and not geo_path:
        raise section.error("geo_ip_db_path", "enable_geo_ip needs the path of a MaxMind "
                            "database")
    if geo and not os.path.isfile(geo_path):
        raise section.error("geo_ip_db_path", f"no such file: {geo_path}")
    if geo:
        try:
            import maxminddb

            maxminddb.open_database(geo_path).close()
        except ImportError:
            raise section.error("geo_ip_db_path", "enable_geo_ip needs the maxminddb "
                                "package") from None
        except Exception as exc:  # any failure to read it is the answer
            raise section.error("geo_ip_db_path", f"{geo_path} is not a MaxMind "
                                f"database: {exc}") from None
    file_path = (_optional_path(section, "file_path", base)
                 or _resolve(base, "analytics.jsonl"))
    enabled = top.boolean("enable_analytics")
    analytics = AnalyticsConfig(
        enabled=enabled,
        ignored_ips=frozenset(section.string_list("ignored_ips")),
        enable_detailed_recording=section.boolean("enable_detailed_recording"),
        enable_geo_ip=geo, geo_ip_db_path=geo_path,
        # Tyk: 0 (unset) is 60 seconds, -1 never expires the list.
        storage_expiration_time=(section.integer("storage_expiration_time", 0, minimum=-1)
                                 or 60),
        records_buffer_size=(section.integer("records_buffer_size", 0, minimum=0) or 10000),
        enable_multiple_analytics_keys=section.boolean("enable_multiple_analytics_keys"),
        purge_interval=_timeout(section, "purge_interval", 0.1),
        serializer_type="msgpack",
        file_path=file_path if enabled and storage.type != "redis" else "",
    )

    logs = top.section("access_logs")
    template = logs.string_list("template")
    # Tyk's names for what fastgate never produces are accepted (and never
    # written, as Tyk leaves them out when they do not apply).
    tyk_only = ("api_type", "circuit_breaker_state", "error_source", "error_target",
                "mcp_error_code", "mcp_method", "mcp_primitive_name", "mcp_primitive_type",
                "response_code_details", "response_flag", "tls_cert_expiry",
                "tls_cert_subject", "upstream_status")
    for index, name in enumerate(template):
        if name not in ACCESS_LOG_FIELDS and name not in tyk_only:
            raise ConfigError(top.file, f"access_logs.template[{index}]",
                              f"unknown field {name!r}; known: {', '.join(ACCESS_LOG_FIELDS)}")
    log_file = _optional_path(logs, "file", base) or ""
    access_logs = AccessLogConfig(enabled=logs.boolean("enabled"), template=template,
                                  file=log_file)

    tracing = _parse_tracing(top)
    dashboard = DashboardConfig(enabled=top.section("dashboard").boolean("enabled", True))
    return ObservabilityConfig(metrics=metrics, analytics=analytics, access_logs=access_logs,
                               tracing=tracing, dashboard=dashboard)


def _bounds(reader: FieldReader, name: str) -> tuple[float, ...]:
    value = reader.get(name)
    if value is None:
        return ()
    if (not isinstance(value, list) or not value
            or any(isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0
                   for v in value)
            or sorted(set(value)) != value):
        raise reader.error(name, "must be a non-empty array of increasing positive numbers")
    return tuple(float(v) for v in value)


def _parse_tracing(top: FieldReader) -> TracingConfig:
    own = top.section("request_tracing")
    otel = top.section("opentelemetry")
    # Tyk 5.8 nests the trace settings under "traces"; older ones are flat.
    traces = otel.section("traces")
    reader = traces if traces.obj else otel
    otel_enabled = reader.boolean("enabled")
    exporter = reader.string("exporter", "http", choices=("", "http", "grpc")) or "http"
    if otel_enabled and exporter == "grpc":
        raise reader.error("exporter", 'fastgate exports OTLP over HTTP: set it to "http" '
                           "and point endpoint at the collector's HTTP port (4318)")
    endpoint = reader.string("endpoint")
    if otel_enabled and not endpoint:
        raise reader.error("endpoint", "must name the OTLP collector (host:port or a URL)")
    headers = tuple(sorted(string_map(reader, "headers").items()))
    propagation = reader.string("context_propagation", "tracecontext",
                                choices=("", "tracecontext", "b3"))
    if propagation == "b3":
        raise reader.error("context_propagation", 'fastgate propagates W3C trace context: '
                           'set it to "tracecontext"')
    batch = reader.section("span_batch_config")
    sampling = reader.section("sampling")
    sampling_type = sampling.string("type", "AlwaysOn", choices=(
        "", "AlwaysOn", "AlwaysOff", "TraceIDRatioBased")) or "AlwaysOn"
    return TracingConfig(
        enabled=own.boolean("enabled") or otel_enabled,
        start_traces=own.boolean("start_traces", True),
        request_id_header=own.string("request_id_header", "X-Request-Id"),
        otel_enabled=otel_enabled,
        exporter=exporter,
        endpoint=endpoint,
        headers=headers,
        connection_timeout=_timeout(reader, "connection_timeout", 1.0),
        resource_name=reader.string("resource_name") or "fastgate",
        span_processor_type=reader.string("span_processor_type", "batch",
                                          choices=("", "batch", "simple")) or "batch",
        max_queue_size=batch.integer("max_queue_size", 0, minimum=0) or 2048,
        max_export_batch_size=batch.integer("max_export_batch_size", 0, minimum=0) or 512,
        batch_timeout=_timeout(batch, "batch_timeout", 5.0),
        sampling_type=sampling_type,
        # Tyk: TraceIDRatioBased with no rate (or 0) samples half the traces.
        sampling_rate=sampling.number("rate", 0, minimum=0, maximum=1) or (
            0.5 if sampling_type == "TraceIDRatioBased" else 1.0),
        parent_based=sampling.boolean("parent_based"),
    )
