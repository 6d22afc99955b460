"""The compiled form of one API definition: :class:`ApiSpec` and its sections."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fastgate.config import UnknownField, UpstreamTlsOptions

if TYPE_CHECKING:
    from fastgate.auth.method import AuthMethodSpec

__all__ = ["ApiSpec", "AuthEntry"]


#: One enabled authentication method and its parsed settings.
AuthEntry = tuple["AuthMethodSpec", Any]


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
    #: Tyk's fields present that fastgate does not implement and that would
    #: change what Tyk does (dotted paths); the server warns once per change.
    ignored_fields: tuple[str, ...]
    raw: dict[str, Any]  # the definition as given (unwrapped)
    # Access controls the definition enables that fastgate cannot enforce yet;
    # non-empty: the server refuses to proxy (see the package docstring).
    unsupported_auth: tuple[str, ...] = ()
    #: Fields Tyk does not know either (misspellings), with the closest name.
    unknown_fields: tuple[UnknownField, ...] = ()
    listen_path_bytes: bytes = field(default=b"", repr=False)  # for the router
    #: The implemented auth methods enabled, in Tyk's chain order, each with
    #: its settings (from fastgate.auth.REGISTRY); empty for keyless APIs.
    auth: tuple[AuthEntry, ...] = ()
    strip_auth_data: bool = False
    #: ``base_identity_provided_by``: the identity name ("auth_token",
    #: "basic_auth_user", ...) of the method whose session drives access
    #: rights and limits when several are chained; "" when any may set it.
    base_identity: str = ""
    #: fastgate's ``auth_mode``: "all" (Tyk's: every method in ``auth`` must
    #: pass) or "any" (the first method whose credential the request carries
    #: decides: :mod:`fastgate.middleware.any_auth`).
    auth_mode: str = "all"
    #: API-wide rate limit ``(rate, per)`` for every caller, keyless APIs
    #: included; None when unset (rate or per <= 0, as in Tyk).
    global_rate_limit: tuple[float, float] | None = None
    #: Seconds the store keeps the record of a key with access to this API
    #: (Tyk's key lifetime; <= 0: none of its own), and whether a key that
    #: expires later is kept until it expires.
    session_lifetime: int = 0
    session_lifetime_respects_key_expiration: bool = False
    #: ``enable_context_vars``: the request's ``$tyk_context.*`` variables
    #: (JWT claims, headers...) are recorded and may be used in headers.
    enable_context_vars: bool = False
    #: The served version's ``global_headers_remove`` (lower-cased names) and
    #: ``global_headers`` (:class:`fastgate.middleware.headers.HeaderRule`).
    global_headers_remove: tuple[bytes, ...] = ()
    global_headers: tuple[Any, ...] = ()
    #: The ``split_token`` section (:mod:`fastgate.auth.jwt.split_token`), or None.
    split_token: Any = None
    #: Tyk's ``request_signing`` (:mod:`fastgate.auth.hmac.request_signing`), or None.
    request_signing: Any = None
    #: Static mTLS (``use_mutual_tls_auth``): the ``client_certificates``
    #: allow-list (certificate-store ids), or None when off.  Applies to
    #: keyless APIs too (:mod:`fastgate.middleware.mtls`).
    client_certificates: tuple[str, ...] | None = None
    #: TLS towards an ``https://`` target (:mod:`fastgate.server.upstream_tls`).
    upstream_tls: UpstreamTlsOptions = field(default_factory=UpstreamTlsOptions)
    #: Tyk's ``config_data`` (unless ``config_data_disabled``): what plugins
    #: are given as their configuration.
    config_data: dict[str, Any] = field(default_factory=dict)
    #: Where the plugins come from (:class:`fastgate.plugins.runtime.PluginSource`),
    #: or None for none.
    plugins: Any = None
    #: The plugins once loaded for the chain (:func:`fastgate.plugins.runtime.plugins_for`).
    loaded_plugins: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.listen_path_bytes:
            self.listen_path_bytes = self.listen_path.encode("ascii")

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """The names of the auth methods enabled, in chain order."""
        return tuple(method.name for method, _settings in self.auth)

    def auth_settings(self, name: str) -> Any:
        """The parsed settings of the enabled method ``name``, or None."""
        for method, settings in self.auth:
            if method.name == name:
                return settings
        return None
