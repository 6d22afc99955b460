"""Policies from policy_record_name (one map) and policy_path (one file per policy)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from fastgate.config import ConfigError, PoliciesConfig, load_gateway_config
from fastgate.policies import load_policies

CONFIG_FILE = "/etc/fastgate/gateway.json"

# A policy as Tyk exports it, with the nulls Go writes for empty fields.
GOLD: dict[str, Any] = {
    "_id": "65f1b9d0c1d4e5000157a9d2",
    "id": "",
    "name": "Gold",
    "org_id": "org1",
    "rate": 1000,
    "per": 1,
    "quota_max": -1,
    "quota_renewal_rate": 3600,
    "throttle_interval": -1,
    "throttle_retry_limit": -1,
    "max_query_depth": -1,
    "access_rights": {
        "orders": {
            "api_id": "orders",
            "api_name": "Orders API",
            "versions": ["Default"],
            "allowed_urls": [{"url": "/orders/.*", "methods": ["GET", "POST"]}],
            "restricted_types": [],
            "limit": None,
        },
        "echo": {"api_id": "echo", "api_name": "Echo", "versions": ["Default"]},
    },
    "hmac_enabled": False,
    "enable_http_signature_validation": False,
    "active": True,
    "is_inactive": False,
    "tags": ["gold"],
    "key_expires_in": 0,
    "partitions": {
        "quota": False,
        "rate_limit": False,
        "complexity": False,
        "acl": False,
        "per_api": False,
    },
    "last_updated": "1710340560",
    "meta_data": None,
    "graphql_access_rights": None,
    "smoothing": None,
}

SILVER: dict[str, Any] = {
    "name": "Silver",
    "rate": 10.5,
    "per": 60,
    "quota_max": 10000,
    "access_rights": {},
}


def write(path: Path, data: object) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def test_no_source_means_no_policies() -> None:
    assert load_policies(PoliciesConfig(), CONFIG_FILE) == {}


def test_record_file_keys_are_the_ids(tmp_path: Path) -> None:
    record = write(tmp_path / "policies.json", {"gold": GOLD, "silver": SILVER})
    policies = load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert list(policies) == ["gold", "silver"]
    # As in Tyk, the map key is the id, whatever the policy's own id field says.
    assert policies["gold"]["id"] == "gold"
    assert policies["gold"]["name"] == "Gold"
    assert policies["gold"]["access_rights"] == GOLD["access_rights"]
    assert policies["silver"] == {**SILVER, "id": "silver"}
    assert "id" not in SILVER  # the caller's data is not modified


def test_record_file_key_overrides_id_field(tmp_path: Path) -> None:
    record = write(tmp_path / "policies.json", {"key-id": {**SILVER, "id": "field-id"}})
    policies = load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert list(policies) == ["key-id"]
    assert policies["key-id"]["id"] == "key-id"


def test_directory_ids_from_id_then_underscore_id_then_file_name(tmp_path: Path) -> None:
    write(tmp_path / "a.json", {**SILVER, "id": "explicit"})
    write(tmp_path / "b.json", GOLD)  # "id" empty, "_id" set
    write(tmp_path / "c-from-name.json", SILVER)
    write(tmp_path / ".hidden.json", {**SILVER, "id": "hidden"})
    write(tmp_path / "d.json.orig", {**SILVER, "id": "orig"})
    (tmp_path / "sub.json").mkdir()
    policies = load_policies(PoliciesConfig(policy_path=str(tmp_path)), CONFIG_FILE)
    assert sorted(policies) == ["65f1b9d0c1d4e5000157a9d2", "c-from-name", "explicit"]
    assert policies["c-from-name"]["id"] == "c-from-name"
    assert policies["65f1b9d0c1d4e5000157a9d2"]["name"] == "Gold"


def test_directory_wins_over_record_file(tmp_path: Path) -> None:
    record = write(tmp_path / "policies.json", {"from-record": SILVER})
    directory = tmp_path / "policies"
    directory.mkdir()
    write(directory / "from-dir.json", SILVER)
    cfg = PoliciesConfig(policy_record_name=str(record), policy_path=str(directory))
    assert list(load_policies(cfg, CONFIG_FILE)) == ["from-dir"]


def test_directory_duplicate_ids_name_both_files(tmp_path: Path) -> None:
    one = write(tmp_path / "one.json", {**SILVER, "id": "same"})
    two = write(tmp_path / "two.json", {**SILVER, "id": "same"})
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_path=str(tmp_path)), CONFIG_FILE)
    assert (caught.value.file, caught.value.field) == (str(two), "id")
    assert str(one) in caught.value.message


def test_directory_with_a_policy_map_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "policies.json", {"gold": GOLD, "silver": SILVER})
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_path=str(tmp_path)), CONFIG_FILE)
    assert caught.value.file == str(path)
    assert "map of policies" in caught.value.message


def test_missing_record_file_names_the_config_field(tmp_path: Path) -> None:
    cfg = PoliciesConfig(policy_record_name=str(tmp_path / "nope.json"))
    with pytest.raises(ConfigError) as caught:
        load_policies(cfg, CONFIG_FILE)
    assert (caught.value.file, caught.value.field) == (CONFIG_FILE, "policies.policy_record_name")
    assert "nope.json" in caught.value.message


def test_missing_directory_names_the_config_field(tmp_path: Path) -> None:
    cfg = PoliciesConfig(policy_path=str(tmp_path / "nope"))
    with pytest.raises(ConfigError) as caught:
        load_policies(cfg, CONFIG_FILE)
    assert (caught.value.file, caught.value.field) == (CONFIG_FILE, "policies.policy_path")


def test_unsupported_source_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_source="service"), CONFIG_FILE)
    assert caught.value.field == "policies.policy_source"


def test_broken_json_names_the_policy_file(tmp_path: Path) -> None:
    record = tmp_path / "policies.json"
    record.write_text('{"gold": {"rate": 1,}}')
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert caught.value.file == str(record)
    assert "invalid JSON at line 1 column" in caught.value.message


@pytest.mark.parametrize("data", [[], "x", 1])
def test_record_file_must_be_an_object(tmp_path: Path, data: object) -> None:
    record = write(tmp_path / "policies.json", data)
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert (caught.value.file, caught.value.field) == (str(record), "")


def test_record_file_empty_id_is_refused(tmp_path: Path) -> None:
    record = write(tmp_path / "policies.json", {"": SILVER})
    with pytest.raises(ConfigError, match="must not be empty"):
        load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)


def patched(dotted: str, value: object) -> dict[str, Any]:
    """GOLD with ``dotted`` set to ``value``; '[n]' indexes arrays."""
    data = copy.deepcopy(GOLD)
    node: Any = data
    parts = dotted.replace("[", ".[").split(".")
    for part in parts[:-1]:
        node = node[int(part[1:-1])] if part.startswith("[") else node[part]
    last = parts[-1]
    if last.startswith("["):
        node[int(last[1:-1])] = value
    else:
        node[last] = value
    return data


AR = "access_rights.orders"
TYPE_REFUSALS: list[tuple[str, object, str, str]] = [
    # (dotted field patched, value, field named (without the policy prefix), fragment)
    ("rate", "10", "rate", "expected a number, got a string"),
    ("per", True, "per", "expected a number, got a boolean"),
    ("throttle_interval", "1", "throttle_interval", "expected a number"),
    ("quota_max", 1.5, "quota_max", "expected an integer, got a number"),
    ("quota_max", "100", "quota_max", "expected an integer"),
    ("quota_renewal_rate", False, "quota_renewal_rate", "expected an integer, got a boolean"),
    ("key_expires_in", "0", "key_expires_in", "expected an integer"),
    ("name", 5, "name", "expected a string"),
    ("org_id", [], "org_id", "expected a string"),
    ("id", 7, "id", "expected a string"),
    ("active", "yes", "active", "expected true or false"),
    ("is_inactive", 0, "is_inactive", "expected true or false"),
    ("hmac_enabled", "no", "hmac_enabled", "expected true or false"),
    ("tags", "gold", "tags", "expected an array of strings"),
    ("tags", ["gold", 1], "tags[1]", "expected a string"),
    ("meta_data", [], "meta_data", "expected an object"),
    ("partitions", True, "partitions", "expected an object"),
    ("partitions.per_api", "yes", "partitions.per_api", "expected true or false"),
    ("access_rights", [], "access_rights", "expected an object, got an array"),
    (AR, "orders", AR, "expected an object, got a string"),
    (f"{AR}.api_id", 1, f"{AR}.api_id", "expected a string"),
    (f"{AR}.versions", "Default", f"{AR}.versions", "expected an array of strings"),
    (f"{AR}.versions", [1], f"{AR}.versions[0]", "expected a string"),
    (f"{AR}.allowed_urls", {}, f"{AR}.allowed_urls", "expected an array"),
    (f"{AR}.allowed_urls[0]", "/x", f"{AR}.allowed_urls[0]", "expected an object"),
    (f"{AR}.allowed_urls[0].url", 5, f"{AR}.allowed_urls[0].url", "expected a string"),
    (
        f"{AR}.allowed_urls[0].methods",
        "GET",
        f"{AR}.allowed_urls[0].methods",
        "expected an array of strings",
    ),
    (f"{AR}.limit", [], f"{AR}.limit", "expected an object"),
    (f"{AR}.limit", {"rate": "1"}, f"{AR}.limit.rate", "expected a number"),
    (f"{AR}.limit", {"quota_max": 2.5}, f"{AR}.limit.quota_max", "expected an integer"),
    # limits: -1 (unlimited) or at least 0
    ("rate", -5, "rate", "must be -1 (unlimited) or at least 0; got -5"),
    ("per", -0.5, "per", "must be -1 (unlimited) or at least 0; got -0.5"),
    ("throttle_interval", -2, "throttle_interval", "must be -1 (unlimited) or at least 0"),
    ("quota_max", -2, "quota_max", "must be -1 (unlimited) or at least 0; got -2"),
    ("quota_renewal_rate", -60, "quota_renewal_rate", "must be -1 (unlimited) or at least 0"),
    ("throttle_retry_limit", -3, "throttle_retry_limit", "must be -1 (unlimited) or at least 0"),
    ("max_query_depth", -9, "max_query_depth", "must be -1 (unlimited) or at least 0"),
    (f"{AR}.limit", {"per": -3}, f"{AR}.limit.per", "must be -1 (unlimited) or at least 0"),
    (f"{AR}.limit", {"max_query_depth": "1"}, f"{AR}.limit.max_query_depth", "an integer"),
    # newer Tyk fields
    ("post_expiry_action", "keep", "post_expiry_action", "must be one of"),
    ("post_expiry_grace_period", -2, "post_expiry_grace_period", "must be at least -1"),
    ("smoothing", "on", "smoothing", "expected an object"),
    # allowed_urls patterns must compile as Go (RE2) regular expressions
    (
        f"{AR}.allowed_urls[0].url",
        "/orders/(",
        f"{AR}.allowed_urls[0].url",
        "invalid regular expression",
    ),
    (
        f"{AR}.allowed_urls[0].url",
        "/orders/(?!admin)",
        f"{AR}.allowed_urls[0].url",
        "not RE2 syntax",
    ),
    (f"{AR}.allowed_urls[0].url", "", f"{AR}.allowed_urls[0].url", "must not be empty"),
    (f"{AR}.disable_introspection", "no", f"{AR}.disable_introspection", "true or false"),
    (f"{AR}.allowance_scope", 1, f"{AR}.allowance_scope", "expected a string"),
    (f"{AR}.endpoints", "x", f"{AR}.endpoints", "expected an array"),
    (
        f"{AR}.endpoints",
        [{"path": "/a", "methods": [{"name": "GET", "limit": {"rate": "1"}}]}],
        f"{AR}.endpoints[0].methods[0].limit.rate",
        "expected a number",
    ),
]


@pytest.mark.parametrize(
    ("dotted", "value", "field", "fragment"),
    TYPE_REFUSALS,
    ids=[f"{r[0]}={r[1]!r}" for r in TYPE_REFUSALS],
)
def test_type_refusals_in_record_file(
    tmp_path: Path, dotted: str, value: object, field: str, fragment: str
) -> None:
    record = write(tmp_path / "policies.json", {"silver": SILVER, "gold": patched(dotted, value)})
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    err = caught.value
    assert (err.file, err.field) == (str(record), f"gold.{field}")
    assert fragment in err.message


@pytest.mark.parametrize(
    ("dotted", "value", "field", "fragment"),
    TYPE_REFUSALS,
    ids=[f"{r[0]}={r[1]!r}" for r in TYPE_REFUSALS],
)
def test_type_refusals_in_directory(
    tmp_path: Path, dotted: str, value: object, field: str, fragment: str
) -> None:
    write(tmp_path / "a-silver.json", SILVER)
    path = write(tmp_path / "gold.json", patched(dotted, value))
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_path=str(tmp_path)), CONFIG_FILE)
    err = caught.value
    assert (err.file, err.field) == (str(path), field)
    assert fragment in err.message


@pytest.mark.parametrize("policy", ["gold", 5, [], None])
def test_policy_must_be_an_object(tmp_path: Path, policy: object) -> None:
    record = write(tmp_path / "policies.json", {"p1": policy})
    with pytest.raises(ConfigError) as caught:
        load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert (caught.value.file, caught.value.field) == (str(record), "p1")


def test_through_the_gateway_config(tmp_path: Path) -> None:
    write(tmp_path / "policies.json", {"silver": SILVER})
    config = write(
        tmp_path / "gateway.json",
        {"secret": "s", "policies": {"policy_record_name": "policies.json"}},
    )
    cfg = load_gateway_config(str(config))
    assert list(load_policies(cfg.policies, cfg.path)) == ["silver"]


def test_unlimited_values_and_endpoint_limits_load(tmp_path: Path) -> None:
    policy = patched("access_rights.orders.limit", {"rate": -1, "per": -1, "quota_max": -1})
    policy["access_rights"]["echo"]["endpoints"] = [
        {"path": "/slow", "methods": [{"name": "GET", "limit": {"rate": 1, "per": 60}}]}
    ]
    policy.update(rate=-1, per=-1, quota_renewal_rate=-1, smoothing=None)
    record = write(tmp_path / "policies.json", {"gold": policy})
    loaded = load_policies(PoliciesConfig(policy_record_name=str(record)), CONFIG_FILE)
    assert loaded["gold"]["access_rights"]["echo"]["endpoints"][0]["path"] == "/slow"
    assert loaded["gold"]["rate"] == -1
