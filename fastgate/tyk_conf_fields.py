"""Tyk's ``tyk.conf`` field names, as data.

Read from the JSON tags of ``config.Config`` (with the fields of the structs it
embeds: ``RateLimit``, and ``DevelopmentConfig`` of ``dev`` builds) and of the
structs of the sections fastgate reads (``storage``: ``StorageOptionsConf``,
``policies``: ``PoliciesConfig``, ``http_server_options``:
``HttpServerOptionsConfig``, ``jwks``: ``JWKSConfig`` and its ``cache``:
``JWKSCacheConfig``, ``coprocess_options``: ``CoProcessConfig``), in
``config/config.go``, ``config/rate_limit.go`` and ``config/development.go``
of TykTechnologies/tyk at commit 31e219bebd5598ae9cce67c9b494cebba941f4a4, in
declaration order.  Fields whose
tag is ``-`` are not part of the file format and are left out.
``SCHEMA_ONLY_*`` are names Tyk's own linter schema (``cli/linter/schema.json``)
still accepts although the gateway no longer reads them.

:func:`fastgate.config.parse_gateway_config` reports a field fastgate does
not read as *ignored* when its name is here, and as *unknown* (with the
closest name) when it is not.
"""

from __future__ import annotations

__all__ = [
    "ACCESS_LOGS_FIELDS",
    "ANALYTICS_CONFIG_FIELDS",
    "CONFIG_FIELDS",
    "COPROCESS_OPTIONS_FIELDS",
    "HTTP_SERVER_OPTIONS_FIELDS",
    "JWKS_CACHE_FIELDS",
    "JWKS_FIELDS",
    "OPENTELEMETRY_FIELDS",
    "POLICIES_FIELDS",
    "STORAGE_FIELDS",
]

#: ``Config``, top level.
_CONFIG: tuple[str, ...] = (
    "hostname", "listen_address", "listen_port", "control_api_hostname",
    "control_api_port", "secret", "node_secret", "pid_file_location",
    "allow_insecure_configs", "public_key_path", "allow_remote_config",
    "enable_config_inspection", "security", "external_services", "http_server_options",
    "version_header", "suppress_redis_signal_reload", "reload_interval", "hash_keys",
    "disable_key_actions_by_username", "hash_key_function",
    "basic_auth_hash_key_function", "hash_key_function_fallback",
    "enable_hashed_keys_listing", "min_token_length", "template_path", "policies",
    "ports_whitelist", "disable_ports_whitelist", "app_path", "use_db_app_configs",
    "db_app_conf_options", "storage", "disable_dashboard_zeroconf", "slave_options",
    "management_node", "auth_override", "enforce_org_data_age",
    "enforce_org_data_detail_logging", "enforce_org_quotas",
    "experimental_process_org_off_thread", "monitor", "max_idle_connections",
    "max_idle_connections_per_host", "max_conn_time", "close_connections",
    "enable_custom_domains", "allow_master_keys", "service_discovery",
    "proxy_ssl_insecure_skip_verify", "proxy_enable_http2", "proxy_ssl_min_version",
    "proxy_ssl_max_version", "proxy_ssl_ciphers", "proxy_default_timeout",
    "proxy_ssl_disable_renegotiation", "proxy_close_connections", "uptime_tests",
    "health_check", "health_check_endpoint_name", "readiness_check_endpoint_name",
    "graceful_shutdown_timeout_duration", "graceful_shutdown_delay_seconds",
    "oauth_refresh_token_expire", "oauth_token_expire",
    "oauth_token_expired_retain_period", "oauth_redirect_uri_separator",
    "oauth_error_status_code", "enable_key_logging", "ssl_force_common_name_check",
    "enable_analytics", "analytics_config", "enable_separate_analytics_store",
    "analytics_storage", "liveness_check", "dns_cache", "disable_regexp_cache",
    "regexp_cache_expire", "regexp_cache_max_entries", "disable_regexp_cache_bound",
    "disable_auto_max_procs", "local_session_cache", "enable_separate_cache_store",
    "cache_storage", "enable_bundle_downloader", "bundle_base_url",
    "bundle_insecure_skip_verify", "skip_verify_existing_plugin_bundle", "enable_jsvm",
    "jsvm_timeout", "disable_virtual_path_blobs", "tyk_js_path", "middleware_path",
    "coprocess_options", "ignore_endpoint_case", "ignore_canonical_mime_header_key",
    "log_level", "log_format", "access_logs", "tracing", "opentelemetry", "newrelic",
    "enable_http_profiler", "use_redis_log", "use_sentry", "sentry_code",
    "sentry_log_level", "use_syslog", "syslog_transport", "syslog_network_addr",
    "use_graylog", "graylog_network_addr", "use_logstash", "logstash_transport",
    "logstash_network_addr", "track_404_logs", "statsd_connection_string",
    "statsd_prefix", "event_handlers", "event_trigers_defunct",
    "event_triggers_defunct", "hide_generator_header", "suppress_default_org_store",
    "legacy_enable_allowance_countdown", "force_global_session_lifetime",
    "session_lifetime_respects_key_expiration", "global_session_lifetime", "kv",
    "secrets", "override_messages", "error_overrides", "cloud",
    "jwt_ssl_insecure_skip_verify", "resource_sync", "oas_config", "streaming", "labs",
    "jwks", "allow_unsafe_policy_ids",
)

#: ``RateLimit``, embedded in ``Config``.
_RATE_LIMIT: tuple[str, ...] = (
    "enable_fixed_window_rate_limiter", "enable_redis_rolling_limiter",
    "enable_sentinel_rate_limiter", "enable_rate_limit_smoothing",
    "enable_non_transactional_rate_limiter", "drl_notification_frequency",
    "drl_threshold", "drl_enable_sentinel_rate_limiter", "rate_limit_response_headers",
)

#: ``DevelopmentConfig``, embedded in ``Config`` (empty in release builds).
_DEVELOPMENT: tuple[str, ...] = (
    "enable_leaky_bucket_rate_limiter", "enable_token_bucket_rate_limiter",
    "enable_sliding_window_rate_limiter", "enable_rate_limiter_storage",
    "rate_limiter_storage",
)

#: In ``cli/linter/schema.json`` but no longer in ``Config``.
_SCHEMA_ONLY: tuple[str, ...] = (
    "close_idle_connections", "enable_api_segregation", "reload_wait_time",
)

#: Every top-level field name Tyk knows.
CONFIG_FIELDS: frozenset[str] = frozenset(_CONFIG + _RATE_LIMIT + _DEVELOPMENT + _SCHEMA_ONLY)

#: ``StorageOptionsConf`` (``storage``).
STORAGE_FIELDS: frozenset[str] = frozenset((
    "type", "host", "port", "hosts", "addrs", "master_name", "sentinel_password",
    "username", "password", "database", "optimisation_max_idle",
    "optimisation_max_active", "timeout", "enable_cluster", "use_ssl",
    "ssl_insecure_skip_verify", "ca_file", "cert_file", "key_file", "tls_max_version",
    "tls_min_version", "compress_api_definitions", "compress_policies",
    "max_decompressed_size", "iam_auth",
))

#: ``PoliciesConfig`` (``policies``).
POLICIES_FIELDS: frozenset[str] = frozenset((
    "policy_source", "policy_connection_string", "policy_record_name",
    "allow_explicit_policy_id", "policy_path",
))

#: ``HttpServerOptionsConfig`` (``http_server_options``), and two names only the
#: linter schema still has (``override_defaults``, ``use_ssl_le``).
HTTP_SERVER_OPTIONS_FIELDS: frozenset[str] = frozenset((
    "read_timeout", "write_timeout", "use_ssl", "enable_http2", "enable_strict_routes",
    "enable_path_prefix_matching", "enable_path_suffix_matching",
    "ssl_insecure_skip_verify", "enable_websockets", "certificates", "ssl_certificates",
    "server_name", "min_version", "max_version", "skip_client_ca_announcement",
    "flush_interval", "skip_url_cleaning", "skip_target_path_escaping", "ssl_ciphers",
    "max_request_body_size", "xff_depth", "max_response_body_size",
    "override_defaults", "use_ssl_le",
))

#: ``JWKSConfig`` (``jwks``) and ``JWKSCacheConfig`` (``jwks.cache``).
JWKS_FIELDS: frozenset[str] = frozenset(("cache",))
JWKS_CACHE_FIELDS: frozenset[str] = frozenset(("timeout",))

#: ``CoProcessConfig`` (``coprocess_options``).
COPROCESS_OPTIONS_FIELDS: frozenset[str] = frozenset((
    "enable_coprocess", "coprocess_grpc_server", "grpc_recv_max_size",
    "grpc_send_max_size", "grpc_authority", "grpc_round_robin_load_balancing",
    "python_path_prefix", "python_version",
))

#: ``AnalyticsConfigConfig`` (``analytics_config``).
ANALYTICS_CONFIG_FIELDS: frozenset[str] = frozenset((
    "type", "ignored_ips", "enable_detailed_recording", "enable_geo_ip", "geo_ip_db_path",
    "normalise_urls", "pool_size", "records_buffer_size", "storage_expiration_time",
    "enable_multiple_analytics_keys", "purge_interval", "serializer_type",
))

#: ``AccessLogsConfig`` (``access_logs``).
ACCESS_LOGS_FIELDS: frozenset[str] = frozenset(("enabled", "template"))

#: ``otel.OpenTelemetry`` (``opentelemetry``, and its ``traces`` of Tyk 5.8).
OPENTELEMETRY_FIELDS: frozenset[str] = frozenset((
    "enabled", "exporter", "endpoint", "headers", "connection_timeout", "resource_name",
    "tls", "span_processor_type", "span_batch_config", "context_propagation",
    "custom_trace_header", "sampling", "traces", "metrics", "mcp",
))
