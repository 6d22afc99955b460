"""Gateway configuration (tyk.conf subset): types, ranges, enums, paths, unknown fields."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.apidef import load_api_definitions
from fastgate.config import (
    ConfigError,
    GatewayConfig,
    HttpServerOptions,
    PluginConfig,
    PoliciesConfig,
    StorageConfig,
    UnknownField,
    load_gateway_config,
    parse_gateway_config,
)
from fastgate.policies import load_policies

REPO = Path(__file__).resolve().parent.parent
QUICKSTART = REPO / "examples" / "quickstart"

SECRET = "test-secret-5f1c"


def write_config(tmp_path: Path, data: object, name: str = "gateway.json") -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(data))
    return path


def with_field(dotted: str, value: object, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """A minimal valid config with ``dotted`` set to ``value`` (sections created)."""
    data: dict[str, Any] = {"secret": SECRET} if base is None else base
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def load(tmp_path: Path, data: object) -> GatewayConfig:
    return load_gateway_config(str(write_config(tmp_path, data)))


# ---------------------------------------------------------------------------
# Defaults and accepted values
# ---------------------------------------------------------------------------


def test_minimal_config_gets_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"secret": SECRET})
    assert cfg == GatewayConfig(
        path=str(tmp_path / "gateway.json"),
        secret=SECRET,
        app_path=str(tmp_path / "apps"),
        plugins=PluginConfig(middleware_path=str(tmp_path / "middleware")),
    )
    assert cfg.listen_address == ""
    assert cfg.listen_port == 8080
    assert cfg.storage == StorageConfig()
    assert cfg.storage.type == "memory"
    assert cfg.policies == PoliciesConfig()
    assert cfg.http_server_options == HttpServerOptions()
    assert cfg.hash_keys is True
    assert cfg.hash_key_function == ""
    assert cfg.proxy_default_timeout == 30.0
    assert cfg.max_idle_connections_per_host == 100
    assert cfg.graceful_shutdown_timeout_duration == 30.0
    assert cfg.workers == 1
    assert cfg.control_api_port == 0
    assert cfg.ignored_fields == ()
    assert cfg.unknown_fields == ()


@pytest.mark.parametrize(
    ("dotted", "value", "attribute", "expected"),
    [
        ("listen_address", "127.0.0.1", "listen_address", "127.0.0.1"),
        ("listen_port", 0, "listen_port", 0),
        ("listen_port", 65535, "listen_port", 65535),
        ("control_api_port", 9696, "control_api_port", 9696),
        ("hash_keys", False, "hash_keys", False),
        ("hash_key_function", "murmur32", "hash_key_function", "murmur32"),
        ("hash_key_function", "murmur64", "hash_key_function", "murmur64"),
        ("hash_key_function", "murmur128", "hash_key_function", "murmur128"),
        ("hash_key_function", "sha256", "hash_key_function", "sha256"),
        ("hash_key_function", "", "hash_key_function", ""),
        ("proxy_default_timeout", 2.5, "proxy_default_timeout", 2.5),
        ("proxy_default_timeout", 60, "proxy_default_timeout", 60.0),
        # Tyk: 0 means "the default"
        ("proxy_default_timeout", 0, "proxy_default_timeout", 30.0),
        ("graceful_shutdown_timeout_duration", 5, "graceful_shutdown_timeout_duration", 5.0),
        ("graceful_shutdown_timeout_duration", 0, "graceful_shutdown_timeout_duration", 30.0),
        ("max_idle_connections_per_host", 500, "max_idle_connections_per_host", 500),
        ("max_idle_connections_per_host", 0, "max_idle_connections_per_host", 100),
        # null counts as absent, as in Go
        ("listen_port", None, "listen_port", 8080),
        ("hash_keys", None, "hash_keys", True),
    ],
)
def test_accepted_top_level_values(
    tmp_path: Path, dotted: str, value: object, attribute: str, expected: object
) -> None:
    cfg = load(tmp_path, with_field(dotted, value))
    assert getattr(cfg, attribute) == expected
    assert cfg.ignored_fields == ()


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("read_timeout", 10, 10.0),
        ("read_timeout", 0.25, 0.25),
        ("read_timeout", 0, 120.0),
        ("write_timeout", 300, 300.0),
        ("write_timeout", 0, 120.0),
        ("idle_timeout", 5, 5.0),
        ("max_header_bytes", 1024, 1024),
        ("max_header_bytes", 1 << 20, 1 << 20),
    ],
)
def test_http_server_options(tmp_path: Path, name: str, value: object, expected: object) -> None:
    cfg = load(tmp_path, with_field(f"http_server_options.{name}", value))
    assert getattr(cfg.http_server_options, name) == expected


def test_redis_storage_and_several_workers(tmp_path: Path) -> None:
    data = {
        "secret": SECRET,
        "workers": 4,
        "storage": {
            "type": "redis",
            "host": "redis.internal",
            "port": 6380,
            "username": "gw",
            "password": "hunter2",
            "database": 3,
        },
    }
    cfg = load(tmp_path, data)
    assert cfg.workers == 4
    assert cfg.storage == StorageConfig(
        type="redis",
        host="redis.internal",
        port=6380,
        username="gw",
        password="hunter2",
        database=3,
    )


def test_redis_cluster(tmp_path: Path) -> None:
    data = with_field(
        "storage",
        {
            "type": "redis",
            "enable_cluster": True,
            "addrs": ["10.0.0.1:7000", "redis-2:7001", "[::1]:7002"],
            "port": 0,
        },
    )
    cfg = load(tmp_path, data)
    assert cfg.storage.enable_cluster is True
    assert cfg.storage.addrs == ("10.0.0.1:7000", "redis-2:7001", "[::1]:7002")


@pytest.mark.parametrize(
    ("dotted", "value", "attribute", "expected"),
    [
        ("storage.type", "", "type", "memory"),
        ("storage.type", "memory", "type", "memory"),
        ("storage.host", "", "host", "localhost"),
        ("policies.policy_source", "", None, None),
        ("policies.policy_source", "file", None, None),
    ],
)
def test_empty_enums_mean_the_default(
    tmp_path: Path, dotted: str, value: object, attribute: str | None, expected: object
) -> None:
    cfg = load(tmp_path, with_field(dotted, value))
    assert cfg.policies.policy_source == "file"
    if attribute is not None:
        assert getattr(cfg.storage, attribute) == expected


# ---------------------------------------------------------------------------
# Refusals: every one names the file and the dotted field
# ---------------------------------------------------------------------------

REFUSALS: list[tuple[str, object, str, str]] = [
    # (dotted field, value, field named in the error, message fragment)
    ("listen_address", 0, "listen_address", "expected a string, got an integer"),
    ("listen_port", "80", "listen_port", "expected an integer, got a string"),
    ("listen_port", True, "listen_port", "expected an integer, got a boolean"),
    ("listen_port", 80.0, "listen_port", "expected an integer, got a number"),
    ("listen_port", -1, "listen_port", "between 0 and 65535"),
    ("listen_port", 65536, "listen_port", "between 0 and 65535"),
    ("control_api_port", 70000, "control_api_port", "between 0 and 65535"),
    ("control_api_port", "9696", "control_api_port", "expected an integer"),
    ("secret", "", "secret", "non-empty"),
    ("secret", None, "secret", "non-empty"),
    ("secret", 1234, "secret", "expected a string, got an integer"),
    ("app_path", "", "app_path", "must not be empty"),
    ("app_path", ["apps"], "app_path", "expected a string, got an array"),
    ("hash_keys", "yes", "hash_keys", "expected true or false, got a string"),
    ("hash_keys", 1, "hash_keys", "expected true or false, got an integer"),
    ("hash_key_function", "md5", "hash_key_function", "must be one of"),
    ("hash_key_function", 64, "hash_key_function", "expected a string"),
    ("storage", "redis", "storage", "expected an object, got a string"),
    ("storage.type", "mongo", "storage.type", "must be one of 'memory', 'redis'; got 'mongo'"),
    ("storage.type", 1, "storage.type", "expected a string"),
    ("storage.host", 1, "storage.host", "expected a string"),
    ("storage.port", "6379", "storage.port", "expected an integer"),
    ("storage.port", True, "storage.port", "expected an integer, got a boolean"),
    ("storage.port", 65536, "storage.port", "between 0 and 65535"),
    ("storage.addrs", "h:1", "storage.addrs", "expected an array of strings"),
    ("storage.addrs", [1], "storage.addrs[0]", "expected a string"),
    ("storage.addrs", ["a:1", "redis-2"], "storage.addrs[1]", 'expected "host:port"'),
    ("storage.addrs", ["a:0"], "storage.addrs[0]", 'expected "host:port"'),
    ("storage.enable_cluster", "true", "storage.enable_cluster", "expected true or false"),
    ("storage.enable_cluster", True, "storage.enable_cluster", 'needs storage.type "redis"'),
    ("storage.username", 5, "storage.username", "expected a string"),
    ("storage.password", 5, "storage.password", "expected a string"),
    ("storage.database", -1, "storage.database", "at least 0"),
    ("storage.database", False, "storage.database", "expected an integer, got a boolean"),
    ("storage.path", 5, "storage.path", "expected a string"),
    ("policies", [], "policies", "expected an object, got an array"),
    ("policies.policy_source", "service", "policies.policy_source", "Tyk Dashboard"),
    ("policies.policy_source", "rpc", "policies.policy_source", "MDCB"),
    ("policies.policy_source", "mongo", "policies.policy_source", "must be one of 'file'"),
    ("policies.policy_record_name", 1, "policies.policy_record_name", "expected a string"),
    ("policies.policy_path", [], "policies.policy_path", "expected a string"),
    ("http_server_options", 1, "http_server_options", "expected an object"),
    # Plugins (PluginConfig).
    ("enable_bundle_downloader", "true", "enable_bundle_downloader", "expected true or false"),
    ("bundle_base_url", 1, "bundle_base_url", "expected a string, got an integer"),
    ("bundle_base_url", "ftp://b/", "bundle_base_url", "http://, https:// or file:// URL"),
    ("bundle_base_url", "bundles.example", "bundle_base_url", "http://, https:// or file://"),
    ("bundle_insecure_skip_verify", 1, "bundle_insecure_skip_verify", "expected true or false"),
    ("skip_verify_existing_plugin_bundle", "no", "skip_verify_existing_plugin_bundle",
     "expected true or false"),
    ("public_key_path", ["k.pem"], "public_key_path", "expected a string, got an array"),
    ("middleware_path", 5, "middleware_path", "expected a string"),
    ("enable_jsvm", 1, "enable_jsvm", "expected true or false"),
    ("jsvm_timeout", "5", "jsvm_timeout", "expected a number, got a string"),
    ("jsvm_timeout", -1, "jsvm_timeout", "at least 0"),
    ("jsvm_memory_limit", 0, "jsvm_memory_limit", "at least 1"),
    ("jsvm_workers", 0, "jsvm_workers", "between 1 and 64"),
    ("jsvm_memory_limit", 1.5, "jsvm_memory_limit", "expected an integer, got a number"),
    ("coprocess_options", True, "coprocess_options", "expected an object, got a boolean"),
    ("coprocess_options.enable_coprocess", "yes", "coprocess_options.enable_coprocess",
     "expected true or false"),
    ("coprocess_options.python_path_prefix", 1, "coprocess_options.python_path_prefix",
     "expected a string"),
    ("coprocess_options.python_version", 3.12, "coprocess_options.python_version",
     "expected a string, got a number"),
    ("coprocess_options.thread_pool_workers", 0, "coprocess_options.thread_pool_workers",
     "at least 1"),
    ("coprocess_options.thread_pool_workers", "4", "coprocess_options.thread_pool_workers",
     "expected an integer"),
    ("coprocess_options.hook_time_budget", False, "coprocess_options.hook_time_budget",
     "expected a number, got a boolean"),
    ("coprocess_options.hook_time_budget", -0.1, "coprocess_options.hook_time_budget",
     "at least 0"),
    (
        "http_server_options.read_timeout",
        "120",
        "http_server_options.read_timeout",
        "expected a number, got a string",
    ),
    (
        "http_server_options.read_timeout",
        True,
        "http_server_options.read_timeout",
        "expected a number, got a boolean",
    ),
    ("http_server_options.read_timeout", -1, "http_server_options.read_timeout", "at least 0"),
    ("http_server_options.write_timeout", -0.5, "http_server_options.write_timeout", "at least"),
    ("http_server_options.idle_timeout", -1, "http_server_options.idle_timeout", "at least 0"),
    (
        "http_server_options.max_header_bytes",
        100,
        "http_server_options.max_header_bytes",
        "at least 1024",
    ),
    (
        "http_server_options.max_header_bytes",
        2048.5,
        "http_server_options.max_header_bytes",
        "expected an integer",
    ),
    ("proxy_default_timeout", "30", "proxy_default_timeout", "expected a number"),
    ("proxy_default_timeout", -1, "proxy_default_timeout", "at least 0"),
    ("max_idle_connections_per_host", -1, "max_idle_connections_per_host", "at least 0"),
    ("max_idle_connections_per_host", 1.5, "max_idle_connections_per_host", "expected an integer"),
    (
        "graceful_shutdown_timeout_duration",
        -3,
        "graceful_shutdown_timeout_duration",
        "at least 0",
    ),
    ("workers", 0, "workers", "at least 1"),
    ("workers", True, "workers", "expected an integer, got a boolean"),
    ("workers", "2", "workers", "expected an integer"),
    (
        "workers",
        2,
        "workers",
        "more than one worker needs the redis store; the memory store lives in one process",
    ),
]


@pytest.mark.parametrize(
    ("dotted", "value", "field", "fragment"),
    REFUSALS,
    ids=[f"{r[0]}={r[1]!r}" for r in REFUSALS],
)
def test_refusals_name_file_and_field(
    tmp_path: Path, dotted: str, value: object, field: str, fragment: str
) -> None:
    path = write_config(tmp_path, with_field(dotted, value))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    err = caught.value
    assert err.file == str(path)
    assert err.field == field
    assert fragment in err.message
    assert str(err) == f"{path}: {field}: {err.message}"


def test_redis_port_zero_needs_addrs(tmp_path: Path) -> None:
    path = write_config(tmp_path, with_field("storage", {"type": "redis", "port": 0}))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    assert caught.value.field == "storage.port"


def test_secret_missing(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"listen_port": 8080})
    with pytest.raises(ConfigError, match=r"gateway\.json: secret: must be set"):
        load_gateway_config(str(path))


@pytest.mark.parametrize("dotted", ["secret", "storage.password"])
def test_type_errors_never_echo_the_value(tmp_path: Path, dotted: str) -> None:
    path = write_config(tmp_path, with_field(dotted, ["s3cr3t-value"]))
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    assert "s3cr3t-value" not in str(caught.value)


def test_repr_hides_secrets(tmp_path: Path) -> None:
    cfg = load(tmp_path, with_field("storage", {"type": "redis", "password": "hunter2"}))
    assert SECRET not in repr(cfg)
    assert "hunter2" not in repr(cfg)


@pytest.mark.parametrize("data", [[], "x", 1, None])
def test_top_level_must_be_an_object(tmp_path: Path, data: object) -> None:
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    assert caught.value.field == ""
    assert str(caught.value).startswith(f"{path}: expected a JSON object")


# ---------------------------------------------------------------------------
# Files: broken JSON, unreadable, encodings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        (b'{\n  "secret": "x",\n  "listen_port": 8080,\n}\n', 3, 22),
        (b'{"secret": "x" "listen_port": 1}', 1, 16),
        (b"", 1, 1),
        (b"{\n  \"secret\": 'x'\n}", 2, 13),
    ],
)
def test_invalid_json_names_file_line_and_column(
    tmp_path: Path, text: bytes, line: int, column: int
) -> None:
    path = tmp_path / "tyk.conf"
    path.write_bytes(text)
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    err = caught.value
    assert err.file == str(path)
    assert err.field == ""
    assert f"invalid JSON at line {line} column {column}" in str(err)
    assert str(err).startswith(f"{path}: invalid JSON")


def test_not_utf8_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "gateway.json"
    path.write_bytes('{\n  "name": "é",\n  "secret": "caf'.encode() + b'\xe9"\n}')
    with pytest.raises(ConfigError, match="not UTF-8 text at line 3 column 17"):
        load_gateway_config(str(path))


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "gateway.json"
    path.write_bytes(b"\xef\xbb\xbf" + orjson.dumps({"secret": SECRET}))
    assert load_gateway_config(str(path)).secret == SECRET


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(ConfigError) as caught:
        load_gateway_config(str(path))
    assert caught.value.file == str(path)
    assert "cannot read the file" in str(caught.value)


def test_config_error_pickles() -> None:
    err = ConfigError("/etc/gw.json", "storage.port", "expected an integer")
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.file, copy.field, copy.message) == (err.file, err.field, err.message)
    assert str(copy) == "/etc/gw.json: storage.port: expected an integer"
    assert str(ConfigError("/etc/gw.json", "", "bad")) == "/etc/gw.json: bad"
    assert isinstance(err, ValueError)


# ---------------------------------------------------------------------------
# Relative paths are relative to the config file
# ---------------------------------------------------------------------------


def test_relative_paths_are_relative_to_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc" / "fastgate"
    conf_dir.mkdir(parents=True)
    data = {
        "secret": SECRET,
        "app_path": "apps/",
        "policies": {"policy_record_name": "../policies.json"},
        "storage": {"type": "memory", "path": "data/journal"},
    }
    path = write_config(conf_dir, data)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_gateway_config(os.path.relpath(path, elsewhere))
    assert cfg.path == str(path)
    assert cfg.app_path == str(conf_dir / "apps")
    assert cfg.policies.policy_record_name == str(tmp_path / "etc" / "policies.json")
    assert cfg.storage.path == str(conf_dir / "data" / "journal")


def test_absolute_paths_are_kept(tmp_path: Path) -> None:
    data = {
        "secret": SECRET,
        "app_path": "/opt/tyk-gateway/apps",
        "policies": {"policy_path": "/opt/tyk-gateway/policies"},
    }
    cfg = load(tmp_path, data)
    assert cfg.app_path == "/opt/tyk-gateway/apps"
    assert cfg.policies.policy_path == "/opt/tyk-gateway/policies"
    assert cfg.policies.policy_record_name is None


def test_parse_gateway_config_uses_path_for_messages_and_paths(tmp_path: Path) -> None:
    where = str(tmp_path / "conf" / "x.json")
    cfg = parse_gateway_config({"secret": SECRET, "app_path": "a"}, where)
    assert cfg.path == where
    assert cfg.app_path == str(tmp_path / "conf" / "a")
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config({"secret": SECRET, "listen_port": "1"}, where)
    assert caught.value.file == where


# ---------------------------------------------------------------------------
# Unknown fields are accepted and listed
# ---------------------------------------------------------------------------

# A tyk.conf as Tyk ships it (docker image / tyk.conf.example), plus fields of
# later issues.
REAL_TYK_CONF: dict[str, Any] = {
    "listen_address": "",
    "listen_port": 8080,
    "secret": "352d20ee67be67f6340b4c0605b044b7",
    "node_secret": "352d20ee67be67f6340b4c0605b044b7",
    "template_path": "/opt/tyk-gateway/templates",
    "tyk_js_path": "/opt/tyk-gateway/js/tyk.js",
    "middleware_path": "/opt/tyk-gateway/middleware",
    "use_db_app_configs": False,
    "app_path": "/opt/tyk-gateway/apps/",
    "storage": {
        "type": "redis",
        "host": "tyk-redis",
        "port": 6379,
        "username": "",
        "password": "",
        "database": 0,
        "optimisation_max_idle": 2000,
        "optimisation_max_active": 4000,
    },
    "enable_analytics": False,
    "analytics_config": {"type": "", "ignored_ips": []},
    "health_check": {"enable_health_checks": False, "health_check_value_timeouts": 0},
    "optimisations_use_async_session_write": True,
    "enable_non_transactional_rate_limiter": True,
    "enable_sentinel_rate_limiter": False,
    "enable_redis_rolling_limiter": False,
    "allow_master_keys": False,
    "policies": {
        "policy_source": "file",
        "policy_record_name": "/opt/tyk-gateway/policies/policies.json",
        "allow_explicit_policy_id": True,
    },
    "hash_keys": True,
    "hash_key_function": "murmur64",
    "suppress_redis_signal_reload": False,
    "close_connections": False,
    "enable_jsvm": True,
    "hostname": "",
    "log_level": "info",
    "http_server_options": {
        "enable_websockets": True,
        "read_timeout": 60,
        "write_timeout": 60,
    },
    "slave_options": {"use_rpc": False},
    "max_idle_connections_per_host": 500,
    "proxy_default_timeout": 45.5,
    "graceful_shutdown_timeout_duration": 10,
}


def test_real_tyk_conf_loads_and_lists_what_is_ignored(tmp_path: Path) -> None:
    cfg = load(tmp_path, REAL_TYK_CONF)
    assert cfg.storage.type == "redis"
    assert cfg.storage.host == "tyk-redis"
    assert cfg.app_path == "/opt/tyk-gateway/apps"
    assert cfg.policies.policy_record_name == "/opt/tyk-gateway/policies/policies.json"
    assert cfg.hash_key_function == "murmur64"
    assert cfg.http_server_options.read_timeout == 60.0
    assert cfg.max_idle_connections_per_host == 500
    assert cfg.proxy_default_timeout == 45.5
    assert cfg.graceful_shutdown_timeout_duration == 10.0
    assert cfg.ignored_fields == (
        "node_secret",
        "template_path",
        "tyk_js_path",
        "use_db_app_configs",
        "storage.optimisation_max_idle",
        "storage.optimisation_max_active",
        "analytics_config.type",
        "health_check",
        "enable_non_transactional_rate_limiter",
        "enable_sentinel_rate_limiter",
        "policies.allow_explicit_policy_id",
        "suppress_redis_signal_reload",
        "close_connections",
        "hostname",
        "log_level",
        "http_server_options.enable_websockets",
        "slave_options",
    )
    # A Tyk 2 field no longer in Tyk's Config: Tyk ignores it too.
    assert cfg.unknown_fields == (UnknownField("optimisations_use_async_session_write", ""),)


UNKNOWN_CONFIG: list[tuple[str, dict[str, Any], tuple[str, ...], tuple[UnknownField, ...]]] = [
    # (id, fields besides the secret, ignored_fields, unknown_fields)
    ("misspelled Tyk field", {"proxy_default_timout": 5}, (),
     (UnknownField("proxy_default_timout", "proxy_default_timeout"),)),
    # fastgate's own names are suggested too.
    ("misspelled fastgate field", {"worker": 2}, (), (UnknownField("worker", "workers"),)),
    ("fastgate field, other case", {"Workers": 2}, (), (UnknownField("Workers", "workers"),)),
    ("nothing close", {"my_comment": "x"}, (), (UnknownField("my_comment", ""),)),
    ("in storage", {"storage": {"hots": "r1", "optimisation_max_idle": 10}},
     ("storage.optimisation_max_idle",), (UnknownField("storage.hots", "hosts"),)),
    ("in policies", {"policies": {"policy_paths": "p"}}, (),
     (UnknownField("policies.policy_paths", "policy_path"),)),
    ("in http_server_options", {"http_server_options": {"enable_websocket": True,
                                                        "idle_timout": 5}}, (),
     (UnknownField("http_server_options.enable_websocket", "enable_websockets"),
      UnknownField("http_server_options.idle_timout", "idle_timeout"))),
    # Tyk's own fields are ignored, not unknown, whatever their value ...
    ("Tyk field", {"enable_custom_domains": False, "close_idle_connections": True},
     ("enable_custom_domains", "close_idle_connections"), ()),
    # ... and sections fastgate does not read are ignored as a whole.
    ("unread section", {"uptime_tests": {"no_such_thing": 1}}, ("uptime_tests",), ()),
    # In a section fastgate reads, Tyk's names it ignores and misspellings.
    ("in analytics_config", {"analytics_config": {"pool_size": 4, "ignored_ip": []}},
     ("analytics_config.pool_size",),
     (UnknownField("analytics_config.ignored_ip", "ignored_ips"),)),
    ("file order", {"zz_b": 1, "storage": {"zz_c": 1}, "zz_a": 1}, (),
     (UnknownField("zz_b", ""), UnknownField("storage.zz_c", ""), UnknownField("zz_a", ""))),
]


@pytest.mark.parametrize(("fields", "ignored", "unknown"), [c[1:] for c in UNKNOWN_CONFIG],
                         ids=[c[0] for c in UNKNOWN_CONFIG])
def test_unknown_fields_are_listed_with_the_closest_name(
    tmp_path: Path, fields: dict[str, Any], ignored: tuple[str, ...],
    unknown: tuple[UnknownField, ...]
) -> None:
    cfg = load(tmp_path, {"secret": SECRET, **fields})
    assert cfg.ignored_fields == ignored
    assert cfg.unknown_fields == unknown


@pytest.mark.parametrize(
    ("data", "field", "canonical"),
    [
        ({"Secret": SECRET}, "Secret", "secret"),  # not "secret must be set"
        ({"secret": SECRET, "LISTEN_PORT": 9000}, "LISTEN_PORT", "listen_port"),
        ({"secret": SECRET, "hash_\u212aeys": False}, "hash_\u212aeys", "hash_keys"),
        ({"secret": SECRET, "storage": {"Host": "r1"}}, "storage.Host", "host"),
        ({"secret": SECRET, "policies": {"Policy_Path": "p"}}, "policies.Policy_Path",
         "policy_path"),
        ({"secret": SECRET, "http_server_options": {"Read_Timeout": 1}},
         "http_server_options.Read_Timeout", "read_timeout"),
        # Also for a field fastgate does not implement: Tyk would use it.
        ({"secret": SECRET, "Enable_Analytics": True}, "Enable_Analytics", "enable_analytics"),
    ],
)
def test_case_variants_of_tyk_fields_are_refused(tmp_path: Path, data: dict[str, Any],
                                                 field: str, canonical: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, data)
    assert caught.value.field == field
    assert f"Tyk reads this as {canonical}" in caught.value.message
    assert caught.value.message.endswith(f"write {canonical}")


def test_tyk_conf_lists() -> None:
    from fastgate import tyk_conf_fields

    # Read at TykTechnologies/tyk@31e219be: Config (139), the embedded RateLimit
    # (9) and DevelopmentConfig (5), and 3 names only the linter schema has.
    assert len(tyk_conf_fields.CONFIG_FIELDS) == 156
    assert {"secret", "enable_redis_rolling_limiter", "rate_limit_response_headers",
            "enable_leaky_bucket_rate_limiter"} <= tyk_conf_fields.CONFIG_FIELDS
    assert "workers" not in tyk_conf_fields.CONFIG_FIELDS
    assert {"enable_path_prefix_matching", "enable_path_suffix_matching"} \
        <= tyk_conf_fields.HTTP_SERVER_OPTIONS_FIELDS
    assert len(tyk_conf_fields.STORAGE_FIELDS) == 25


def test_plugin_fields_defaults(tmp_path: Path) -> None:
    plugins = load(tmp_path, {"secret": SECRET}).plugins
    assert plugins == PluginConfig(middleware_path=str(tmp_path / "middleware"))
    # Tyk's defaults: middleware_path "middleware", jsvm_timeout 5 s, no downloads.
    assert not plugins.enable_bundle_downloader and plugins.bundle_base_url == ""
    assert plugins.public_key_path == "" and not plugins.enable_coprocess
    assert (plugins.jsvm_timeout, plugins.jsvm_memory_limit) == (5.0, 64)
    assert (plugins.thread_pool_workers, plugins.hook_time_budget) == (4, 0.05)


def test_plugin_fields_are_read(tmp_path: Path) -> None:
    cfg = load(tmp_path, {
        "secret": SECRET, "enable_bundle_downloader": True,
        "bundle_base_url": "https://bundles.example/b/?sig=1",
        "bundle_insecure_skip_verify": True, "skip_verify_existing_plugin_bundle": True,
        "public_key_path": "keys/bundles.pem", "middleware_path": "/opt/tyk/middleware",
        "enable_jsvm": True, "jsvm_timeout": 0, "jsvm_memory_limit": 128,
        "coprocess_options": {"enable_coprocess": True, "python_path_prefix": "lib/py",
                              "python_version": "3.5", "thread_pool_workers": 2,
                              "hook_time_budget": 0.2, "coprocess_grpc_server": "",
                              "thread_pool_worker": 3}})
    assert cfg.plugins == PluginConfig(
        enable_bundle_downloader=True, bundle_base_url="https://bundles.example/b/?sig=1",
        bundle_insecure_skip_verify=True, skip_verify_existing_plugin_bundle=True,
        public_key_path=str(tmp_path / "keys" / "bundles.pem"),
        middleware_path="/opt/tyk/middleware", enable_jsvm=True,
        jsvm_timeout=5.0,  # 0 is Tyk's default
        jsvm_memory_limit=128, enable_coprocess=True,
        python_path_prefix=str(tmp_path / "lib" / "py"), thread_pool_workers=2,
        hook_time_budget=0.2)
    # python_version has no effect (the gateway's own interpreter runs plugins),
    # gRPC is Tyk's only; a misspelling of fastgate's own field is suggested.
    assert cfg.ignored_fields == ("coprocess_options.coprocess_grpc_server",
                                  "coprocess_options.python_version")
    assert cfg.unknown_fields == (UnknownField("coprocess_options.thread_pool_worker",
                                               "thread_pool_workers"),)


def test_plugin_field_case_variant_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, {"secret": SECRET, "coprocess_options": {"Enable_Coprocess": True}})
    assert caught.value.field == "coprocess_options.Enable_Coprocess"
    assert "write enable_coprocess" in caught.value.message


def test_policy_path_wins_over_record_name(tmp_path: Path) -> None:
    data = with_field("policies", {"policy_record_name": "p.json", "policy_path": "pols"})
    cfg = load(tmp_path, data)
    assert cfg.policies.policy_path == str(tmp_path / "pols")
    assert cfg.ignored_fields == ("policies.policy_record_name",)


def test_storage_path_is_ignored_with_redis(tmp_path: Path) -> None:
    cfg = load(tmp_path, with_field("storage", {"type": "redis", "path": "journal"}))
    assert cfg.ignored_fields == ("storage.path",)


def test_config_is_immutable(tmp_path: Path) -> None:
    cfg = load(tmp_path, {"secret": SECRET})
    with pytest.raises(AttributeError):
        cfg.listen_port = 1  # type: ignore[misc]


# ---------------------------------------------------------------------------
# The quick start example
# ---------------------------------------------------------------------------


def test_quickstart_example_loads() -> None:
    cfg = load_gateway_config(str(QUICKSTART / "gateway.json"))
    assert cfg.listen_port == 8080
    assert cfg.secret == "change-me-quickstart-secret"
    assert cfg.app_path == str(QUICKSTART / "apps")
    assert cfg.storage.type == "memory"
    assert cfg.policies.policy_record_name == str(QUICKSTART / "policies.json")
    assert cfg.ignored_fields == ()

    (echo,) = load_api_definitions(cfg.app_path)
    assert (echo.api_id, echo.name, echo.listen_path) == ("echo", "Echo", "/echo/")
    assert echo.use_keyless and echo.strip_listen_path and echo.active
    assert (echo.target_host, echo.target_port) == ("127.0.0.1", 8081)
    assert echo.unsupported_auth == ()
    assert echo.ignored_fields == ()

    policies = load_policies(cfg.policies, cfg.path)
    assert set(policies) == {"default"}
    assert "echo" in policies["default"]["access_rights"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
CONFIG_FIELDS = sorted({r[0] for r in REFUSALS} | {"storage.addrs", "unknown.field"})


@settings(max_examples=300, deadline=None)
@given(dotted=st.sampled_from(CONFIG_FIELDS), value=JSON_VALUES)
def test_any_json_gives_a_config_or_a_config_error(dotted: str, value: object) -> None:
    where = "/etc/fastgate/gateway.json"
    try:
        data = with_field(dotted, value)
    except TypeError:
        return  # a parent of the field was replaced by a non-object
    try:
        cfg = parse_gateway_config(data, where)
    except ConfigError as err:
        assert err.file == where
    else:
        assert cfg.secret
        assert cfg.workers == 1 or cfg.storage.type == "redis"


# ---------------------------------------------------------------------------
# Rate limiter settings
# ---------------------------------------------------------------------------

LIMITER_CASES = [
    # (id, fields, expected rate_limiter)
    ("memory default", {}, "local"),
    ("redis default", {"storage": {"type": "redis"}}, "redis"),
    ("redis, local asked", {"storage": {"type": "redis"}, "rate_limiter": "local"}, "local"),
    ("Tyk's rolling limiter", {"storage": {"type": "redis"},
                               "enable_redis_rolling_limiter": True}, "redis"),
]


@pytest.mark.parametrize(("fields", "expected"), [c[1:] for c in LIMITER_CASES],
                         ids=[c[0] for c in LIMITER_CASES])
def test_rate_limiter_mode(tmp_path: Path, fields: dict[str, Any], expected: str) -> None:
    config = parse_gateway_config({"secret": "s", **fields}, str(tmp_path / "gw.json"))
    assert config.rate_limiter == expected
    assert config.rate_limit_response_headers == "quotas"
    assert config.limits_fail_open is False


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rate_limiter": "redis"}, "rate_limiter"),
        ({"enable_redis_rolling_limiter": True}, "enable_redis_rolling_limiter"),
        ({"rate_limiter": "drl"}, "rate_limiter"),
        ({"rate_limit_response_headers": "both"}, "rate_limit_response_headers"),
        ({"limits_fail_open": "yes"}, "limits_fail_open"),
    ],
    ids=["redis mode on memory", "rolling on memory", "unknown mode", "unknown headers",
         "fail-open type"],
)
def test_rate_limiter_settings_refused(tmp_path: Path, fields: dict[str, Any],
                                       field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config({"secret": "s", **fields}, str(tmp_path / "gw.json"))
    assert caught.value.field == field


def test_storage_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "gw.json")
    assert parse_gateway_config({"secret": "s"}, path).storage.timeout == 1.0
    config = parse_gateway_config({"secret": "s", "storage": {"type": "redis", "timeout": 0.25}},
                                  path)
    assert config.storage.timeout == 0.25
    with pytest.raises(ConfigError) as caught:
        parse_gateway_config({"secret": "s", "storage": {"timeout": "1"}}, path)
    assert caught.value.field == "storage.timeout"
