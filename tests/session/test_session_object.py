"""parse_session: Tyk's SessionState fields, zero values, type and value refusals; expiry."""

from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import orjson
import pytest

from fastgate.session import SessionError, parse_session, session_expired

ZERO_LIMIT = {
    "rate": 0,
    "per": 0,
    "throttle_interval": 0,
    "throttle_retry_limit": 0,
    "max_query_depth": 0,
    "quota_max": 0,
    "quota_renews": 0,
    "quota_remaining": 0,
    "quota_renewal_rate": 0,
}

# Every field of Tyk's SessionState (5.x LTS writes them all), with its zero value.
EMPTY_SESSION: dict[str, Any] = {
    "last_check": 0,
    "allowance": 0,
    "rate": 0,
    "per": 0,
    "throttle_interval": 0,
    "throttle_retry_limit": 0,
    "max_query_depth": 0,
    "date_created": "0001-01-01T00:00:00Z",
    "expires": 0,
    "quota_max": 0,
    "quota_renews": 0,
    "quota_remaining": 0,
    "quota_renewal_rate": 0,
    "access_rights": {},
    "org_id": "",
    "oauth_client_id": "",
    "oauth_keys": {},
    "certificate": "",
    "basic_auth_data": {"password": "", "hash_type": ""},
    "jwt_data": {"secret": ""},
    "hmac_enabled": False,
    "enable_http_signature_validation": False,
    "hmac_string": "",
    "rsa_certificate_id": "",
    "is_inactive": False,
    "apply_policy_id": "",
    "apply_policies": [],
    "data_expires": 0,
    "monitor": {"trigger_limits": []},
    "enable_detail_recording": False,
    "enable_detailed_recording": False,
    "meta_data": {},
    "tags": [],
    "alias": "",
    "last_updated": "",
    "id_extractor_deadline": 0,
    "session_lifetime": 0,
    "smoothing": None,
}

EMPTY_ACCESS: dict[str, Any] = {
    "api_name": "",
    "api_id": "",
    "versions": [],
    "allowed_urls": [],
    "restricted_types": [],
    "allowed_types": [],
    "limit": ZERO_LIMIT,
    "field_access_rights": [],
    "disable_introspection": False,
    "allowance_scope": "",
}

# A key as Tyk's Gateway API returns it (GET /tyk/keys/{key}), with Go's nulls.
TYK_EXPORT: dict[str, Any] = {
    "last_check": 0,
    "allowance": 1000,
    "rate": 1000,
    "per": 60,
    "throttle_interval": -1,
    "throttle_retry_limit": -1,
    "max_query_depth": -1,
    "date_created": "2024-03-13T14:36:00.123456789Z",
    "expires": 1893456000,
    "quota_max": -1,
    "quota_renews": 1710340560,
    "quota_remaining": -1,
    "quota_renewal_rate": -1,
    "access_rights": {
        "api1": {
            "api_name": "Orders",
            "api_id": "api1",
            "versions": ["Default"],
            "allowed_urls": [
                {"url": "/orders/{id}", "methods": ["GET"]},
                {"url": "^/orders$", "methods": ["GET", "POST"]},
            ],
            "restricted_types": None,
            "allowed_types": None,
            "limit": None,
            "field_access_rights": None,
            "disable_introspection": False,
            "allowance_scope": "",
        }
    },
    "org_id": "5e9d9544a1dcd60001d0ed20",
    "oauth_client_id": "",
    "oauth_keys": None,
    "certificate": "",
    "basic_auth_data": {"password": "", "hash_type": ""},
    "jwt_data": {"secret": ""},
    "hmac_enabled": False,
    "enable_http_signature_validation": False,
    "hmac_string": "",
    "rsa_certificate_id": "",
    "is_inactive": False,
    "apply_policy_id": "",
    "apply_policies": ["gold"],
    "data_expires": 0,
    "monitor": {"trigger_limits": None},
    "enable_detail_recording": False,
    "enable_detailed_recording": False,
    "meta_data": {"user": {"id": 7}},
    "tags": ["team-a"],
    "alias": "orders-client",
    "last_updated": "1710340560",
    "id_extractor_deadline": 0,
    "session_lifetime": 0,
    "smoothing": None,
}


def test_empty_object_gets_every_field_with_tyk_zero_values() -> None:
    assert parse_session({}) == EMPTY_SESSION
    # In Tyk's order, so a GET shows the fields where Tyk users expect them.
    assert list(parse_session({})) == list(EMPTY_SESSION)


def test_null_counts_as_absent() -> None:
    assert parse_session(dict.fromkeys(EMPTY_SESSION)) == EMPTY_SESSION


def test_access_entry_gets_every_field() -> None:
    session = parse_session({"access_rights": {"api1": {}}})
    assert session["access_rights"] == {"api1": EMPTY_ACCESS}
    session = parse_session({"access_rights": {"api1": dict.fromkeys(EMPTY_ACCESS)}})
    assert session["access_rights"] == {"api1": EMPTY_ACCESS}


def test_tyk_export_loads_with_its_values() -> None:
    session = parse_session(TYK_EXPORT)
    expected = copy.deepcopy(TYK_EXPORT)
    expected["oauth_keys"] = {}
    expected["monitor"] = {"trigger_limits": []}
    expected["access_rights"]["api1"].update(
        restricted_types=[], allowed_types=[], field_access_rights=[], limit=ZERO_LIMIT
    )
    assert session == expected
    # JSON-ready: encodes, and decodes to the same
    assert orjson.loads(orjson.dumps(session)) == session


def test_unknown_fields_are_kept_and_values_not_aliased() -> None:
    given = {
        "rate": 5,
        "x_custom": {"nested": [1, 2]},
        "meta_data": {"a": [1]},
        "access_rights": {"a": {"api_id": "a", "json_rpc_methods": [{"name": "m"}]}},
        "post_expiry_action": "delete",
        "mtls_static_certificate_bindings": ["cert1"],
        "post_expiry_grace_period": -1,
    }
    before = copy.deepcopy(given)
    session = parse_session(given)
    assert session["x_custom"] == {"nested": [1, 2]}
    assert session["access_rights"]["a"]["json_rpc_methods"] == [{"name": "m"}]
    assert session["post_expiry_action"] == "delete"
    assert session["mtls_static_certificate_bindings"] == ["cert1"]
    assert session["post_expiry_grace_period"] == -1
    session["x_custom"]["nested"].append(3)
    session["meta_data"]["a"].append(2)
    session["access_rights"]["a"]["json_rpc_methods"][0]["name"] = "changed"
    assert given == before


def test_newer_tyk_fields_are_not_filled_in() -> None:
    session = parse_session({"post_expiry_action": None})
    assert "post_expiry_action" not in session
    assert "mtls_static_certificate_bindings" not in session


def test_numbers_keep_their_json_type() -> None:
    session = parse_session({"rate": 2.5, "per": 1, "allowance": 0.5})
    assert (session["rate"], session["per"], session["allowance"]) == (2.5, 1, 0.5)
    assert isinstance(session["per"], int)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rate", -1),
        ("per", -1),
        ("quota_max", -1),
        ("quota_remaining", -1),
        ("quota_renewal_rate", -1),
        ("throttle_interval", -1),
        ("throttle_retry_limit", -1),
        ("max_query_depth", -1),
        ("rate", 0),
        ("rate", 0.001),
        ("expires", -1),  # <= 0: never expires
        ("expires", -5),
        ("quota_max", 2**63 - 1),
        ("allowance", -3.5),  # a limiter's state, not a limit
        ("date_created", "2024-01-31T12:00:00+01:00"),
        ("date_created", "2024-01-31t12:00:00z"),
        ("basic_auth_data", {"password": "$2a$10$abc", "hash_type": "bcrypt"}),
        ("basic_auth_data", {"password": "x", "hash_type": "murmur128"}),
        ("smoothing", {"enabled": True, "threshold": 500}),
        ("session_lifetime", -1),
    ],
)
def test_accepted_values(field: str, value: object) -> None:
    assert parse_session({field: value})[field] == value


AR = "access_rights.api1"
REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    # (session given, field named, message fragment)
    ({"rate": "10"}, "rate", "expected a number, got a string"),
    ({"rate": True}, "rate", "expected a number, got a boolean"),
    ({"rate": -2}, "rate", "must be -1 (unlimited) or at least 0; got -2"),
    ({"rate": -0.5}, "rate", "must be -1 (unlimited) or at least 0"),
    ({"rate": math.inf}, "rate", "expected a finite number"),
    ({"rate": math.nan}, "rate", "expected a finite number"),
    ({"per": [1]}, "per", "expected a number, got an array"),
    ({"allowance": "x"}, "allowance", "expected a number"),
    ({"throttle_interval": -3}, "throttle_interval", "must be -1 (unlimited) or at least 0"),
    ({"throttle_retry_limit": 1.5}, "throttle_retry_limit", "expected an integer, got a number"),
    ({"max_query_depth": -7}, "max_query_depth", "must be -1 (unlimited) or at least 0; got -7"),
    ({"quota_max": 1.0}, "quota_max", "expected an integer, got a number"),
    ({"quota_max": False}, "quota_max", "expected an integer, got a boolean"),
    ({"quota_max": -2}, "quota_max", "must be -1 (unlimited) or at least 0; got -2"),
    ({"quota_max": 2**63}, "quota_max", "out of range for a 64-bit integer"),
    ({"quota_remaining": -9}, "quota_remaining", "must be -1 (unlimited) or at least 0"),
    ({"quota_renewal_rate": "3600"}, "quota_renewal_rate", "expected an integer, got a string"),
    ({"quota_renews": 1.5}, "quota_renews", "expected an integer"),
    ({"expires": "2030-01-01"}, "expires", "expected an integer, got a string"),
    ({"expires": 1.7e9}, "expires", "expected an integer, got a number"),
    ({"last_check": True}, "last_check", "expected an integer, got a boolean"),
    ({"data_expires": {}}, "data_expires", "expected an integer, got an object"),
    ({"session_lifetime": "1"}, "session_lifetime", "expected an integer"),
    ({"id_extractor_deadline": 0.5}, "id_extractor_deadline", "expected an integer"),
    ({"date_created": 5}, "date_created", "expected an RFC 3339 time string, got an integer"),
    ({"date_created": "yesterday"}, "date_created", "expected an RFC 3339 time"),
    ({"date_created": "2024-13-01T00:00:00Z"}, "date_created", "not a valid date and time"),
    ({"org_id": 1}, "org_id", "expected a string, got an integer"),
    ({"oauth_client_id": []}, "oauth_client_id", "expected a string"),
    ({"certificate": {}}, "certificate", "expected a string"),
    ({"hmac_string": 1}, "hmac_string", "expected a string"),
    ({"rsa_certificate_id": False}, "rsa_certificate_id", "expected a string"),
    ({"apply_policy_id": 3}, "apply_policy_id", "expected a string"),
    ({"alias": 3}, "alias", "expected a string"),
    ({"last_updated": 1710340560}, "last_updated", "expected a string, got an integer"),
    ({"hmac_enabled": "true"}, "hmac_enabled", "expected true or false, got a string"),
    ({"is_inactive": 1}, "is_inactive", "expected true or false, got an integer"),
    ({"enable_http_signature_validation": 0}, "enable_http_signature_validation", "true or false"),
    ({"enable_detail_recording": "no"}, "enable_detail_recording", "true or false"),
    ({"enable_detailed_recording": []}, "enable_detailed_recording", "true or false"),
    ({"apply_policies": "gold"}, "apply_policies", "expected an array of strings, got a string"),
    ({"apply_policies": ["gold", 7]}, "apply_policies[1]", "expected a string, got an integer"),
    ({"tags": [None]}, "tags[0]", "expected a string, got null"),
    ({"meta_data": []}, "meta_data", "expected an object, got an array"),
    ({"oauth_keys": {"client": 1}}, "oauth_keys.client", "expected a string"),
    ({"oauth_keys": "x"}, "oauth_keys", "expected an object"),
    ({"basic_auth_data": "pw"}, "basic_auth_data", "expected an object, got a string"),
    ({"basic_auth_data": {"password": 1}}, "basic_auth_data.password", "expected a string"),
    ({"basic_auth_data": {"hash_type": "md5"}}, "basic_auth_data.hash_type", "must be one of"),
    ({"jwt_data": {"secret": 5}}, "jwt_data.secret", "expected a string"),
    ({"monitor": {"trigger_limits": ["80"]}}, "monitor.trigger_limits[0]", "expected a number"),
    ({"smoothing": "on"}, "smoothing", "expected an object, got a string"),
    ({"post_expiry_action": "keep"}, "post_expiry_action", "must be one of"),
    ({"post_expiry_grace_period": -2}, "post_expiry_grace_period", "must be -1 or at least 0"),
    ({"mtls_static_certificate_bindings": [1]}, "mtls_static_certificate_bindings[0]", "string"),
    ({"access_rights": []}, "access_rights", "expected an object mapping API ids"),
    ({"access_rights": {"api1": "x"}}, AR, "expected an object, got a string"),
    ({"access_rights": {"api1": {"api_id": 1}}}, f"{AR}.api_id", "expected a string"),
    ({"access_rights": {"api1": {"api_name": 1}}}, f"{AR}.api_name", "expected a string"),
    ({"access_rights": {"api1": {"versions": "v1"}}}, f"{AR}.versions", "array of strings"),
    ({"access_rights": {"api1": {"versions": [1]}}}, f"{AR}.versions[0]", "expected a string"),
    ({"access_rights": {"api1": {"allowed_urls": {}}}}, f"{AR}.allowed_urls", "expected an array"),
    ({"access_rights": {"api1": {"allowed_urls": ["/x"]}}}, f"{AR}.allowed_urls[0]", "an object"),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": 5}]}}},
        f"{AR}.allowed_urls[0].url",
        "expected a string, got an integer",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": "/a", "methods": "GET"}]}}},
        f"{AR}.allowed_urls[0].methods",
        "expected an array of strings",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": "/ok"}, {"url": "/users/(["}]}}},
        f"{AR}.allowed_urls[1].url",
        "invalid regular expression",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": "/(?=admin)"}]}}},
        f"{AR}.allowed_urls[0].url",
        "not RE2 syntax",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": "/a++"}]}}},
        f"{AR}.allowed_urls[0].url",
        "invalid nested repetition operator",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"url": ""}]}}},
        f"{AR}.allowed_urls[0].url",
        "must not be empty",
    ),
    (
        {"access_rights": {"api1": {"allowed_urls": [{"methods": ["GET"]}]}}},
        f"{AR}.allowed_urls[0].url",
        "must not be empty",
    ),
    ({"access_rights": {"api1": {"limit": []}}}, f"{AR}.limit", "expected an object"),
    ({"access_rights": {"api1": {"limit": {"rate": "1"}}}}, f"{AR}.limit.rate", "a number"),
    ({"access_rights": {"api1": {"limit": {"per": -4}}}}, f"{AR}.limit.per", "must be -1"),
    (
        {"access_rights": {"api1": {"limit": {"quota_max": 2.5}}}},
        f"{AR}.limit.quota_max",
        "expected an integer",
    ),
    (
        {"access_rights": {"api1": {"limit": {"smoothing": 1}}}},
        f"{AR}.limit.smoothing",
        "expected an object",
    ),
    (
        {"access_rights": {"api1": {"disable_introspection": "yes"}}},
        f"{AR}.disable_introspection",
        "true or false",
    ),
    ({"access_rights": {"api1": {"allowance_scope": 1}}}, f"{AR}.allowance_scope", "a string"),
    ({"access_rights": {"api1": {"restricted_types": {}}}}, f"{AR}.restricted_types", "an array"),
    ({"access_rights": {"api1": {"allowed_types": [1]}}}, f"{AR}.allowed_types[0]", "an object"),
    (
        {"access_rights": {"api1": {"field_access_rights": "x"}}},
        f"{AR}.field_access_rights",
        "expected an array",
    ),
    ({"access_rights": {"api1": {"endpoints": {}}}}, f"{AR}.endpoints", "expected an array"),
    (
        {"access_rights": {"api1": {"endpoints": [{"path": 1}]}}},
        f"{AR}.endpoints[0].path",
        "expected a string",
    ),
    (
        {"access_rights": {"api1": {"endpoints": [{"path": "/a", "methods": [{"name": 1}]}]}}},
        f"{AR}.endpoints[0].methods[0].name",
        "expected a string",
    ),
    (
        {
            "access_rights": {
                "api1": {"endpoints": [{"methods": [{"name": "GET", "limit": {"rate": -3}}]}]}
            }
        },
        f"{AR}.endpoints[0].methods[0].limit.rate",
        "must be -1",
    ),
]


@pytest.mark.parametrize(
    ("given", "field", "fragment"),
    REFUSALS,
    ids=[f"{r[1]}:{str(r[0])[:60]}" for r in REFUSALS],
)
def test_refusals_name_the_field(given: dict[str, Any], field: str, fragment: str) -> None:
    with pytest.raises(SessionError) as caught:
        parse_session(given)
    err = caught.value
    assert err.field == field
    assert fragment in err.message
    assert str(err) == f"{field}: {err.message}"


@pytest.mark.parametrize("data", [[], "key", 5, None, True])
def test_session_must_be_an_object(data: object) -> None:
    with pytest.raises(SessionError) as caught:
        parse_session(data)
    assert caught.value.field == ""
    assert str(caught.value).startswith("expected a session object, got ")


def test_messages_never_echo_secrets() -> None:
    with pytest.raises(SessionError) as caught:
        parse_session({"basic_auth_data": {"password": ["s3cret-pw"]}})
    assert "s3cret" not in str(caught.value)
    with pytest.raises(SessionError) as caught:
        parse_session({"hmac_string": {"k": "s3cret-hmac"}})
    assert "s3cret" not in str(caught.value)


def test_session_error_pickles() -> None:
    err = SessionError("rate", "expected a number, got a string")
    again = pickle.loads(pickle.dumps(err))
    assert (again.field, again.message, str(again)) == (err.field, err.message, str(err))


EXPIRY: list[tuple[object, float, bool]] = [
    # (expires, now, expired) -- Tyk: expires >= 1 and now strictly after it
    (None, 2e9, False),
    (0, 2e9, False),
    (-1, 2e9, False),
    (1, 0.5, False),
    (1, 1.0, False),
    (1, 1.000001, True),
    (1700000000, 1699999999.9, False),
    (1700000000, 1700000000.0, False),
    (1700000000, 1700000000.001, True),
    (1700000000, 1800000000.0, True),
]


@pytest.mark.parametrize(("expires", "now", "expired"), EXPIRY)
def test_session_expired(expires: object, now: float, expired: bool) -> None:
    session = {} if expires is None else {"expires": expires}
    assert session_expired(session, now) is expired
