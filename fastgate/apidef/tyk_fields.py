"""Tyk's Classic API definition field names, as data.

Read from the JSON tags of the Go structs in ``apidef/api_definitions.go`` of
TykTechnologies/tyk at commit 31e219bebd5598ae9cce67c9b494cebba941f4a4, in
declaration order: ``APIDefinition`` (the top level; it embeds no struct),
``ProxyConfig`` (``proxy``), ``VersionData`` (``version_data``),
``VersionInfo`` (``version_data.versions.<name>``) and ``ExtendedPathsSet``
(``version_data.versions.<name>.extended_paths``).  Fields tagged ``-`` are
not part of the format and are left out; the tags of inline anonymous
structs (``oauth_meta``, ``basic_auth``) belong to their section, not here.

:data:`SCHEMA_ONLY_FIELDS` are top-level names Tyk's JSON schema for Classic
definitions (``apidef/schema.json``) still lists although ``APIDefinition``
has no such field: Tyk Dashboard exports and Tyk's own sample files carry
them, and the gateway ignores them.

Go's ``encoding/json``, which Tyk decodes definitions with, matches field
names case-insensitively; fastgate matches them exactly, which is why
:mod:`fastgate.apidef.fields` refuses a name that differs from one of these
only by case.
"""

from __future__ import annotations

__all__ = [
    "API_DEFINITION_FIELDS",
    "EXTENDED_PATHS_FIELDS",
    "PROXY_FIELDS",
    "SCHEMA_ONLY_FIELDS",
    "VERSION_DATA_FIELDS",
    "VERSION_FIELDS",
]

#: ``APIDefinition``: the top level.
API_DEFINITION_FIELDS: frozenset[str] = frozenset((
    "id", "name", "expiration", "slug", "listen_port", "protocol",
    "enable_proxy_protocol", "json_rpc_version", "application_protocol", "api_id",
    "org_id", "use_keyless", "use_oauth2", "external_oauth", "use_openid",
    "openid_options", "oauth_meta", "auth", "auth_configs", "use_basic_auth",
    "basic_auth", "use_mutual_tls_auth", "client_certificates", "upstream_certificates",
    "upstream_certificates_disabled", "pinned_public_keys",
    "certificate_pinning_disabled", "enable_jwt", "use_standard_auth",
    "use_go_plugin_auth", "enable_coprocess_auth", "custom_plugin_auth_enabled",
    "jwt_signing_method", "jwt_source", "jwt_jwks_uris", "jwt_identity_base_field",
    "jwt_client_base_field", "jwt_policy_field_name", "jwt_default_policies",
    "jwt_issued_at_validation_skew", "jwt_expires_at_validation_skew",
    "jwt_not_before_validation_skew", "jwt_skip_kid", "scopes",
    "idp_client_id_mapping_disabled", "jwt_scope_to_policy_mapping",
    "jwt_scope_claim_name", "notifications", "enable_signature_checking",
    "hmac_allowed_clock_skew", "hmac_allowed_algorithms", "request_signing",
    "base_identity_provided_by", "definition", "version_data", "uptime_tests", "proxy",
    "disable_rate_limit", "disable_quota", "custom_middleware",
    "custom_middleware_bundle", "custom_middleware_bundle_disabled", "cache_options",
    "session_lifetime_respects_key_expiration", "session_lifetime", "active",
    "internal", "auth_provider", "session_provider", "event_handlers",
    "enable_batch_request_support", "enable_ip_whitelisting", "allowed_ips",
    "enable_ip_blacklisting", "blacklisted_ips", "ip_access_control_disabled",
    "dont_set_quota_on_create", "expire_analytics_after", "response_processors", "CORS",
    "domain", "domain_disabled", "certificates", "do_not_track", "enable_context_vars",
    "config_data", "config_data_disabled", "tag_headers", "global_rate_limit",
    "strip_auth_data", "enable_detailed_recording", "graphql", "analytics_plugin",
    "tags_disabled", "tags", "is_oas", "detailed_tracing", "upstream_auth",
    "security_requirements", "security_requirement_scopes", "error_overrides",
    "error_overrides_disabled",
))

#: ``ProxyConfig``: ``proxy``.
PROXY_FIELDS: frozenset[str] = frozenset((
    "preserve_host_header", "listen_path", "target_url", "disable_strip_slash",
    "strip_listen_path", "enable_load_balancing", "target_list",
    "check_host_against_uptime_tests", "service_discovery", "transport",
))

#: ``VersionData``: ``version_data``.
VERSION_DATA_FIELDS: frozenset[str] = frozenset((
    "not_versioned", "default_version", "versions",
))

#: ``VersionInfo``: ``version_data.versions.<name>``.
VERSION_FIELDS: frozenset[str] = frozenset((
    "name", "expires", "paths", "use_extended_paths", "extended_paths",
    "global_headers", "global_headers_remove", "global_headers_disabled",
    "global_response_headers", "global_response_headers_remove",
    "global_response_headers_disabled", "ignore_endpoint_case", "global_size_limit",
    "global_size_limit_disabled", "global_enforce_timeout",
    "global_enforce_timeout_disabled", "override_target",
))

#: ``ExtendedPathsSet``: ``version_data.versions.<name>.extended_paths``.
EXTENDED_PATHS_FIELDS: frozenset[str] = frozenset((
    "ignored", "white_list", "black_list", "mock_response", "cache",
    "advance_cache_config", "transform", "transform_response", "transform_jq",
    "transform_jq_response", "transform_headers", "transform_response_headers",
    "hard_timeouts", "circuit_breakers", "url_rewrites", "virtual", "size_limits",
    "method_transforms", "track_endpoints", "do_not_track_endpoints", "validate_json",
    "validate_request", "internal", "go_plugin", "persist_graphql", "rate_limit",
))

#: Top-level names in ``apidef/schema.json`` that ``APIDefinition`` does not have.
SCHEMA_ONLY_FIELDS: frozenset[str] = frozenset((
    "check_host_against_uptime_tests", "disable_expire_analytics", "hook_references",
    "is_site", "jwt_disable_expires_at_validation", "jwt_disable_issued_at_validation",
    "jwt_disable_not_before_validation", "session_lifetime_disabled",
))
