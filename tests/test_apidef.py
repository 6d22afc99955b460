"""Tyk Classic API definitions → ApiSpec: validation, defaults, ignored fields, unsupported auth."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastgate.apidef import ApiSpec, load_api_definitions, parse_api_definition
from fastgate.config import ConfigError, UnknownField

SOURCE = "/etc/fastgate/apps/test.json"


def api(**fields: Any) -> dict[str, Any]:
    """A minimal keyless definition with ``fields`` merged on top (proxy merged too)."""
    data: dict[str, Any] = {
        "api_id": "test",
        "use_keyless": True,
        "proxy": {"listen_path": "/test/", "target_url": "http://upstream:8000"},
    }
    proxy = fields.pop("proxy", None)
    data.update(fields)
    if proxy is not None:
        data["proxy"] = {**data["proxy"], **proxy}
    return data


def parse(data: object) -> ApiSpec:
    return parse_api_definition(data, SOURCE)


def refusal(data: object) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert caught.value.file == SOURCE
    return caught.value


# ---------------------------------------------------------------------------
# Defaults and the compiled target
# ---------------------------------------------------------------------------


def test_minimal_definition_defaults() -> None:
    data = {"api_id": "a1", "proxy": {"listen_path": "/a/", "target_url": "http://u"}}
    spec = parse(data)
    assert spec.api_id == "a1"
    assert spec.name == "a1"
    assert spec.org_id == ""
    assert spec.active is True
    assert spec.strip_listen_path is False
    assert spec.preserve_host_header is False
    assert spec.use_keyless is False
    assert spec.version_data == {
        "not_versioned": True,
        "versions": {"Default": {"name": "Default"}},
    }
    assert spec.source == SOURCE
    assert spec.raw is data
    assert spec.ignored_fields == ()
    # Not keyless and no method: Tyk applies auth-token auth.
    assert spec.unsupported_auth == ()
    assert spec.auth_methods == ("auth_token",)


def test_implemented_fields_are_read() -> None:
    spec = parse(
        api(
            name="Orders",
            org_id="org1",
            active=False,
            proxy={"strip_listen_path": True, "preserve_host_header": True},
        )
    )
    assert (spec.name, spec.org_id, spec.active) == ("Orders", "org1", False)
    assert spec.strip_listen_path is True
    assert spec.preserve_host_header is True
    assert spec.use_keyless is True
    assert spec.unsupported_auth == ()


@pytest.mark.parametrize(
    ("given", "normalised"),
    [
        ("/test/", "/test/"),
        ("test/", "/test/"),
        ("/test", "/test"),
        ("/", "/"),
        ("/v1/orders-api/", "/v1/orders-api/"),
        ("/caf%C3%A9/", "/caf%C3%A9/"),
        ("/a:b@c~d/", "/a:b@c~d/"),
    ],
)
def test_listen_path_normalisation(given: str, normalised: str) -> None:
    spec = parse(api(proxy={"listen_path": given}))
    assert spec.listen_path == normalised
    assert spec.listen_path_bytes == normalised.encode()


TARGETS = [
    # (target_url, scheme, host, port, path, Host header)
    ("http://example.com", "http", "example.com", 80, "", "example.com"),
    ("http://example.com/", "http", "example.com", 80, "", "example.com"),
    ("https://Example.COM/api/", "https", "example.com", 443, "/api", "example.com"),
    ("http://127.0.0.1:8081", "http", "127.0.0.1", 8081, "", "127.0.0.1:8081"),
    ("http://[::1]:8080/x/y", "http", "::1", 8080, "/x/y", "[::1]:8080"),
    ("https://[2001:db8::1]", "https", "2001:db8::1", 443, "", "[2001:db8::1]"),
    ("http://h:80/", "http", "h", 80, "", "h"),
    ("HTTP://h:443", "http", "h", 443, "", "h:443"),
    ("https://h:80", "https", "h", 80, "", "h:80"),
    ("http://my_service.internal:9000/a/b", "http", "my_service.internal", 9000, "/a/b", None),
]


@pytest.mark.parametrize(("url", "scheme", "host", "port", "path", "host_header"), TARGETS)
def test_target_url(
    url: str, scheme: str, host: str, port: int, path: str, host_header: str | None
) -> None:
    spec = parse(api(proxy={"target_url": url}))
    assert spec.target_url == url
    assert spec.target_scheme == scheme
    assert spec.target_host == host
    assert spec.target_port == port
    assert spec.target_path == path
    assert spec.target_host_header == (host_header or f"{host}:{port}")


# ---------------------------------------------------------------------------
# Refusals
# ---------------------------------------------------------------------------

BAD_TARGETS = [
    ("ftp://example.com", "http:// or https://"),
    ("example.com", "http:// or https://"),
    ("localhost:8080", "http:// or https://"),
    ("tyk://self/other-api", "internal API looping"),
    ("http://", "no host"),
    ("http:///path", "no host"),
    ("http://:8080", "no host"),
    ("http://h:0", "between 1 and 65535"),
    ("http://h:99999", "not a valid URL"),
    ("http://h:abc", "not a valid URL"),
    ("http://user:pass@h", "credentials"),
    ("http://h/?q=1", "query string"),
    ("http://h/#frag", "fragment"),
    ("http://h/?", "query string"),
    ("http://exa mple.com", "whitespace"),
    ("http://h\n", "whitespace"),
    ("http://[::zz]", "IPv6"),
    ("http://bücher.example", "punycode"),
    ("http://a..b", "host name"),
    ("http://h/a b", "whitespace"),
    ("http://h/{id}", "path"),
    ("", "http:// or https://"),
]


@pytest.mark.parametrize(("url", "fragment"), BAD_TARGETS)
def test_bad_target_url(url: str, fragment: str) -> None:
    err = refusal(api(proxy={"target_url": url}))
    assert err.field == "proxy.target_url"
    assert fragment in err.message


BAD_LISTEN_PATHS = [
    ("", "must not be empty"),
    ("/users/{id}/", "path parameters"),
    ("/{version:[0-9]+}/", "path parameters"),
    ("/a b/", "not a URL path"),
    ("/a?x=1", "not a URL path"),
    ("/a#b", "not a URL path"),
    ("/café/", "not a URL path"),
    ("/a/../b/", "'..' segments"),
    ("/./", "'..' segments"),
]


@pytest.mark.parametrize(("listen_path", "fragment"), BAD_LISTEN_PATHS)
def test_bad_listen_path(listen_path: str, fragment: str) -> None:
    err = refusal(api(proxy={"listen_path": listen_path}))
    assert err.field == "proxy.listen_path"
    assert fragment in err.message


def without(data: dict[str, Any], dotted: str) -> dict[str, Any]:
    data = copy.deepcopy(data)
    *parents, last = dotted.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]
    return data


FIELD_REFUSALS: list[tuple[dict[str, Any], str, str]] = [
    # (definition, field named, message fragment)
    (without(api(), "api_id"), "api_id", "is required"),
    (api(api_id=""), "api_id", "is required"),
    (api(api_id=12), "api_id", "expected a string, got an integer"),
    (api(name=["n"]), "name", "expected a string"),
    (api(org_id=1), "org_id", "expected a string"),
    (api(active="yes"), "active", "expected true or false"),
    (api(active=1), "active", "expected true or false"),
    (api(use_keyless="true"), "use_keyless", "expected true or false"),
    (without(api(), "proxy"), "proxy", "is required"),
    (api(proxy=None) | {"proxy": "http://u"}, "proxy", "expected an object"),
    (api() | {"proxy": {}}, "proxy", "is required"),
    (without(api(), "proxy.listen_path"), "proxy.listen_path", "is required"),
    (without(api(), "proxy.target_url"), "proxy.target_url", "is required"),
    (api(proxy={"listen_path": 5}), "proxy.listen_path", "expected a string"),
    (api(proxy={"target_url": ["http://u"]}), "proxy.target_url", "expected a string"),
    (api(proxy={"strip_listen_path": "yes"}), "proxy.strip_listen_path", "true or false"),
    (api(proxy={"preserve_host_header": 1}), "proxy.preserve_host_header", "true or false"),
    (api(version_data=[]), "version_data", "expected an object"),
    (
        api(version_data={"not_versioned": "yes"}),
        "version_data.not_versioned",
        "true or false",
    ),
    (api(version_data={"versions": []}), "version_data.versions", "expected an object"),
    (
        api(version_data={"versions": {"v1": "x"}}),
        "version_data.versions.v1",
        "expected an object",
    ),
    # The switches that decide whether an API is protected are type-checked.
    (api(use_keyless=False, use_basic_auth="true"), "use_basic_auth", "true or false"),
    (api(use_keyless=False, enable_jwt=1), "enable_jwt", "true or false"),
    (api(use_keyless=False, external_oauth=True), "external_oauth", "expected an object"),
    (
        api(use_keyless=False, external_oauth={"enabled": "on"}),
        "external_oauth.enabled",
        "true or false",
    ),
    (api(internal="no"), "internal", "true or false"),
    (api(use_mutual_tls_auth=0), "use_mutual_tls_auth", "true or false"),
    (api(enable_ip_whitelisting="yes"), "enable_ip_whitelisting", "true or false"),
]


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    FIELD_REFUSALS,
    ids=[f"{r[1]}:{r[2]}" for r in FIELD_REFUSALS],
)
def test_field_refusals_name_file_and_field(data: object, field: str, fragment: str) -> None:
    err = refusal(data)
    assert err.field == field
    assert fragment in err.message
    assert str(err) == f"{SOURCE}: {field}: {err.message}"


@pytest.mark.parametrize("data", [[], "api", 1, None])
def test_definition_must_be_an_object(data: object) -> None:
    err = refusal(data)
    assert err.field == ""
    assert "expected a JSON object" in err.message


# ---------------------------------------------------------------------------
# Dashboard exports
# ---------------------------------------------------------------------------


def dashboard_wrapped(definition: dict[str, Any]) -> dict[str, Any]:
    return {
        "api_model": {},
        "api_definition": definition,
        "hook_references": [],
        "is_site": False,
        "sort_by": 0,
        "user_group_owners": [],
        "user_owners": [],
    }


def test_dashboard_wrapped_definition_loads() -> None:
    inner = api(name="Wrapped")
    spec = parse(dashboard_wrapped(inner))
    assert spec.api_id == "test"
    assert spec.name == "Wrapped"
    assert spec.raw is inner
    assert spec.ignored_fields == ()


def test_dashboard_wrapped_errors_name_the_wrapped_field() -> None:
    err = refusal(dashboard_wrapped(api(proxy={"target_url": "ftp://x"})))
    assert err.field == "api_definition.proxy.target_url"


def test_dashboard_wrapped_paths_carry_the_prefix() -> None:
    spec = parse(dashboard_wrapped(api(enable_batch_request_support=True, internal=True,
                                       proxi={}, custom_middleware={"pre": [{"name": "x"}]})))
    assert spec.ignored_fields == ("api_definition.enable_batch_request_support",)
    assert spec.unsupported_auth == ("internal",)
    assert spec.unknown_fields == (UnknownField("api_definition.proxi", "proxy"),)


def test_dashboard_bulk_export_is_refused_clearly() -> None:
    err = refusal({"apis": [dashboard_wrapped(api())], "pages": []})
    assert err.field == "apis"
    assert "one API definition per file" in err.message


# ---------------------------------------------------------------------------
# Access controls fastgate does not enforce yet: never served open
# ---------------------------------------------------------------------------

BLACK_LIST_VERSION = {
    "not_versioned": True,
    "versions": {
        "Default": {
            "name": "Default",
            "use_extended_paths": True,
            "extended_paths": {
                "black_list": [{"path": "/admin", "method": "GET", "disabled": False}]
            },
        }
    },
}

UNSUPPORTED: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("keyless", {}, ()),
    # Implemented: auth token (explicit or implicit) and Basic auth.
    ("implicit standard auth", {"use_keyless": False}, ()),
    ("standard auth", {"use_keyless": False, "use_standard_auth": True}, ()),
    ("basic", {"use_keyless": False, "use_basic_auth": True}, ()),
    ("oauth2", {"use_keyless": False, "use_oauth2": True}, ()),
    ("hmac", {"use_keyless": False, "enable_signature_checking": True}, ()),
    ("openid", {"use_keyless": False, "use_openid": True}, ("use_openid",)),
    ("coprocess", {"use_keyless": False, "enable_coprocess_auth": True}, ()),
    ("go plugin", {"use_keyless": False, "use_go_plugin_auth": True}, ("use_go_plugin_auth",)),
    ("custom plugin", {"use_keyless": False, "custom_plugin_auth_enabled": True}, ()),
    (
        "external oauth",
        {"use_keyless": False, "external_oauth": {"enabled": True, "providers": [
            {"jwt": {"enabled": True, "signing_method": "hmac", "source": "c2VjcmV0"}}]}},
        (),
    ),
    (
        "external oauth off",
        {"use_keyless": False, "external_oauth": {"enabled": False}},
        (),
    ),
    (
        "openid and token, chain order",
        {"use_keyless": False, "use_standard_auth": True, "use_openid": True},
        ("use_openid",),
    ),
    # As in Tyk, keyless switches every auth method off ...
    ("keyless wins", {"use_basic_auth": True, "enable_jwt": True}, ()),
    # ... but not these (static mTLS applies to keyless APIs too, and is
    # implemented: fastgate.middleware.mtls).
    ("mtls on keyless", {"use_mutual_tls_auth": True}, ()),
    # Tyk's signed auth tokens: not enforced yet, so refused, never ignored.
    ("signed tokens", {"use_keyless": False, "use_standard_auth": True,
                       "auth_configs": {"authToken": {"validate_signature": True}}},
     ("auth_configs.authToken.validate_signature",)),
    ("signed tokens, legacy auth", {"use_keyless": False,
                                    "auth": {"validate_signature": True}},
     ("auth.validate_signature",)),
    ("signed tokens off", {"use_keyless": False,
                           "auth_configs": {"authToken": {"validate_signature": False}}}, ()),
    ("internal", {"internal": True}, ("internal",)),
    (
        "ip allow list",
        {"enable_ip_whitelisting": True, "allowed_ips": ["10.0.0.0/8"]},
        ("enable_ip_whitelisting",),
    ),
    ("ip allow list empty", {"enable_ip_whitelisting": True, "allowed_ips": []}, ()),
    ("ip allow list off", {"enable_ip_whitelisting": False, "allowed_ips": ["10.0.0.1"]}, ()),
    (
        "ip block list",
        {"enable_ip_blacklisting": True, "blacklisted_ips": ["1.2.3.4"]},
        ("enable_ip_blacklisting",),
    ),
    (
        "endpoint block list",
        {"version_data": BLACK_LIST_VERSION},
        ("version_data.versions.Default.extended_paths.black_list",),
    ),
    (
        "endpoint block list entry disabled",
        {
            "version_data": {
                "versions": {
                    "Default": {
                        "extended_paths": {"black_list": [{"path": "/a", "disabled": True}]}
                    }
                }
            }
        },
        (),
    ),
    (
        "old-style allow list",
        {"version_data": {"versions": {"v1": {"paths": {"white_list": ["/only"]}}}}},
        ("version_data.versions.v1.paths.white_list",),
    ),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [u[1:] for u in UNSUPPORTED], ids=[u[0] for u in UNSUPPORTED]
)
def test_unsupported_auth(fields: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert parse(api(**fields)).unsupported_auth == expected


def test_endpoints_marked_internal_are_refused() -> None:
    internal = {"versions": {"Default": {"extended_paths": {
        "internal": [{"path": "/admin", "method": "GET", "disabled": False}]}}}}
    spec = parse(api(version_data=internal))
    assert spec.unsupported_auth == ("version_data.versions.Default.extended_paths.internal",)
    assert spec.ignored_fields == ()
    internal["versions"]["Default"]["extended_paths"]["internal"][0]["disabled"] = True
    assert parse(api(version_data=internal)).unsupported_auth == ()


def test_endpoint_go_plugins_are_refused() -> None:
    """A Go plugin on an endpoint may refuse requests; fastgate runs none."""
    plugins = {"versions": {"Default": {"extended_paths": {"go_plugin": [
        {"path": "/x", "method": "GET", "plugin_path": "/p.so", "symbol_name": "Check"}]}}}}
    spec = parse(api(version_data=plugins))
    assert spec.unsupported_auth == ("version_data.versions.Default.extended_paths.go_plugin",)
    assert spec.ignored_fields == ()


# -- plugins (custom_middleware): a hook of a driver fastgate does not run refuses the API

HOOK = {"name": "check", "path": "/opt/plugins/check.py", "require_session": False}
DASHBOARD_DEFAULT_MIDDLEWARE = {
    "pre": [], "post": [], "post_key_auth": [], "response": [], "driver": "",
    "auth_check": {"disabled": False, "name": "", "path": "", "require_session": False},
    "id_extractor": {"disabled": False, "extract_from": "", "extract_with": "",
                     "extractor_config": {}},
}
OFF = {**HOOK, "disabled": True}

PLUGINS: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("empty", {"custom_middleware": {}}, ()),
    ("empty lists", {"custom_middleware": {"pre": [], "post": [], "driver": "python"}}, ()),
    ("all disabled", {"custom_middleware": {"pre": [OFF], "post": [OFF], "response": [OFF],
                                            "post_key_auth": [OFF],
                                            "auth_check": OFF}}, ()),
    # What the Tyk Dashboard writes for an API without plugins.
    ("dashboard defaults", {"custom_middleware": DASHBOARD_DEFAULT_MIDDLEWARE,
                            "custom_middleware_bundle": "",
                            "custom_middleware_bundle_disabled": False}, ()),
    # Python and JavaScript (otto, the default driver) run: nothing refused.
    ("python pre", {"custom_middleware": {"driver": "python", "pre": [OFF, HOOK]}}, ()),
    ("python response", {"custom_middleware": {"driver": "python", "response": [HOOK]}}, ()),
    ("otto post", {"custom_middleware": {"post": [HOOK]}}, ()),
    ("python auth_check", {"custom_middleware": {"driver": "python", "auth_check": HOOK}}, ()),
    ("bundle", {"custom_middleware_bundle": "bundle.zip"}, ()),
    # Drivers fastgate does not run refuse the API when a hook would run.
    ("grpc pre", {"custom_middleware": {"driver": "grpc", "pre": [OFF, HOOK]}},
     ("custom_middleware.driver=grpc",)),
    ("lua auth_check", {"custom_middleware": {"driver": "lua", "auth_check": HOOK}},
     ("custom_middleware.driver=lua",)),
    ("goplugin id_extractor", {"custom_middleware": {"driver": "goplugin", "id_extractor": {
        "extract_from": "header", "extract_with": "value",
        "extractor_config": {"header_name": "Authorization"}}}},
     ("custom_middleware.driver=goplugin",)),
    ("grpc all disabled", {"custom_middleware": {"driver": "grpc", "pre": [OFF]}}, ()),
    # Hooks run on keyless APIs too, and after the auth method refusals.
    ("protected", {"use_keyless": False, "use_openid": True,
                   "custom_middleware": {"driver": "grpc", "pre": [HOOK]}},
     ("use_openid", "custom_middleware.driver=grpc")),
]


@pytest.mark.parametrize(("fields", "expected"), [c[1:] for c in PLUGINS],
                         ids=[c[0] for c in PLUGINS])
def test_plugins_of_other_drivers_refuse_the_api(fields: dict[str, Any],
                                                 expected: tuple[str, ...]) -> None:
    spec = parse(api(**fields))
    assert spec.unsupported_auth == expected
    # Either refused or inert: never also "ignored".
    assert spec.ignored_fields == ()
    assert spec.unknown_fields == ()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"custom_middleware": "pre.py"}, "custom_middleware"),
        ({"custom_middleware": {"pre": {"name": "x"}}}, "custom_middleware.pre"),
        ({"custom_middleware": {"post": ["x"]}}, "custom_middleware.post[0]"),
        ({"custom_middleware": {"pre": [{"disabled": "yes"}]}},
         "custom_middleware.pre[0].disabled"),
        ({"custom_middleware": {"auth_check": []}}, "custom_middleware.auth_check"),
        ({"custom_middleware": {"auth_check": {"name": 1}}}, "custom_middleware.auth_check.name"),
        ({"custom_middleware": {"id_extractor": {"extract_with": True}}},
         "custom_middleware.id_extractor.extract_with"),
        ({"custom_middleware_bundle": ["a.zip"]}, "custom_middleware_bundle"),
        ({"custom_middleware_bundle": "a.zip", "custom_middleware_bundle_disabled": "no"},
         "custom_middleware_bundle_disabled"),
    ],
)
def test_plugin_setting_types_refused(fields: dict[str, Any], field: str) -> None:
    # Tyk cannot decode these either: the definition would not load there.
    assert refusal(api(**fields)).field == field


# ---------------------------------------------------------------------------
# Fields fastgate does not implement: accepted, listed when they would matter
# ---------------------------------------------------------------------------

IGNORED: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("identity fields", {"id": "6515", "_id": "6515", "slug": "test"}, ()),
    ("zero values", {"enable_batch_request_support": False, "tags": [], "listen_port": 0}, ()),
    ("null", {"response_processors": None}, ()),
    ("set", {"enable_batch_request_support": True}, ("enable_batch_request_support",)),
    ("domain empty", {"domain": ""}, ()),
    ("domain", {"domain": "api.example.com"}, ("domain",)),
    ("protocol http", {"protocol": "http"}, ()),
    ("protocol https", {"protocol": "https"}, ("protocol",)),
    ("section off", {"CORS": {"enable": False, "allowed_origins": ["*"], "max_age": 24}}, ()),
    ("section on", {"CORS": {"enable": True, "allowed_origins": ["*"]}}, ("CORS",)),
    ("graphql off", {"graphql": {"enabled": False, "execution_mode": "proxyOnly"}}, ()),
    ("signing off", {"request_signing": {"is_enabled": False, "algorithm": "hmac-sha256"}}, ()),
    ("cache off", {"cache_options": {"enable_cache": False, "cache_timeout": 60}}, ()),
    ("nested zeros", {"uptime_tests": {"check_list": [], "config": {"recheck_wait": 0}}}, ()),
    ("rate limit zero", {"global_rate_limit": {"rate": 0, "per": 0}}, ()),
    ("rate limit (implemented)", {"global_rate_limit": {"rate": 10, "per": 1}}, ()),
    ("jwt settings while off", {"jwt_signing_method": "rsa", "jwt_source": "abc"}, ()),
    # An API refused for a method is not also said to ignore that method's settings.
    (
        "openid settings while on (refused)",
        {"use_keyless": False, "use_openid": True,
         "openid_options": {"providers": [{"issuer": "x"}]}},
        (),
    ),
    (
        "oauth settings while on (implemented)",
        {"use_keyless": False, "use_oauth2": True,
         "oauth_meta": {"allowed_access_types": ["client_credentials"]},
         "notifications": {"shared_secret": "s"}},
        (),
    ),
    ("hmac settings while on (implemented)",
     {"use_keyless": False, "enable_signature_checking": True,
      "hmac_allowed_algorithms": ["hmac-sha256"]}, ()),
    ("jwt settings while on (implemented)",
     {"use_keyless": False, "enable_jwt": True, "jwt_signing_method": "rsa"}, ()),
    ("jwt settings on a keyless API", {"enable_jwt": True, "jwt_source": "abc"}, ()),
    ("hmac settings while off", {"hmac_allowed_clock_skew": -1}, ()),
    ("basic auth settings while off", {"basic_auth": {"cache_ttl": 60}}, ()),
    ("ip list while off", {"allowed_ips": ["10.0.0.1"]}, ()),
    ("auth on a keyless API", {"auth": {"auth_header_name": "Authorization"}}, ()),
    (
        "auth on a protected API (implemented)",
        {"use_keyless": False, "auth": {"auth_header_name": "Authorization"}},
        (),
    ),
    (
        "load balancing",
        {"proxy": {"enable_load_balancing": True, "target_list": ["http://a", "http://b"]}},
        ("proxy.enable_load_balancing", "proxy.target_list"),
    ),
    (
        "proxy zeros",
        {
            "proxy": {
                "enable_load_balancing": False,
                "target_list": [],
                "transport": {"proxy_url": ""},
            }
        },
        (),
    ),
    (
        "definition unversioned",
        {"definition": {"location": "header", "key": "x-api-version"}},
        (),
    ),
    (
        "versioned",
        {
            "definition": {"location": "header", "key": "x-api-version"},
            "version_data": {"not_versioned": False, "versions": {"v1": {"name": "v1"}}},
        },
        ("definition", "version_data.not_versioned"),
    ),
    (
        "version middleware",
        {
            "version_data": {
                "default_version": "v1",
                "versions": {
                    "v1": {
                        "name": "v1",
                        "expires": "3000-01-02 15:04",
                        "use_extended_paths": True,
                        "extended_paths": {"transform_headers": [{"path": "/x"}]},
                    }
                },
            }
        },
        (
            "version_data.default_version",
            "version_data.versions.v1.expires",
            "version_data.versions.v1.extended_paths.transform_headers",
        ),
    ),
    (
        "endpoint lists one by one, disabled entries inert",
        {
            "version_data": {
                "versions": {
                    "v1": {
                        "extended_paths": {
                            "transform_headers": [{"path": "/x", "disabled": True}],
                            "hard_timeouts": [{"path": "/y", "timeout": 3}],
                            "cache": [],
                        },
                        "paths": {"ignored": ["/health"], "white_list": []},
                    }
                }
            }
        },
        (
            "version_data.versions.v1.extended_paths.hard_timeouts",
            "version_data.versions.v1.paths.ignored",
        ),
    ),
    # Unknown names are reported as unknown, not as "not implemented".
    ("misspelled", {"enable_batch_request_suport": True}, ()),
    # Names Tyk's schema still lists but its gateway ignores: nothing to say.
    ("schema only", {"is_site": True, "check_host_against_uptime_tests": True}, ()),
]


@pytest.mark.parametrize(
    ("fields", "expected"), [i[1:] for i in IGNORED], ids=[i[0] for i in IGNORED]
)
def test_ignored_fields(fields: dict[str, Any], expected: tuple[str, ...]) -> None:
    assert parse(api(**fields)).ignored_fields == expected


# An API refused for an access control is said to be refused, once: the
# settings of what refuses it are not listed as ignored too.
REFUSED_ONCE: list[tuple[str, dict[str, Any], tuple[str, ...]]] = [
    ("openid", {"use_keyless": False, "use_openid": True,
                "openid_options": {"providers": [{"issuer": "x"}]}}, ("use_openid",)),
    ("internal", {"internal": True}, ("internal",)),
    ("ip allow list", {"enable_ip_whitelisting": True, "allowed_ips": ["10.0.0.0/8"]},
     ("enable_ip_whitelisting",)),
    ("endpoint block list", {"version_data": BLACK_LIST_VERSION},
     ("version_data.versions.Default.extended_paths.black_list",)),
]


@pytest.mark.parametrize(("fields", "refused"), [c[1:] for c in REFUSED_ONCE],
                         ids=[c[0] for c in REFUSED_ONCE])
def test_refused_settings_are_not_also_ignored(fields: dict[str, Any],
                                               refused: tuple[str, ...]) -> None:
    spec = parse(api(**fields))
    assert spec.unsupported_auth == refused
    assert spec.ignored_fields == ()


def test_refused_api_still_lists_its_other_ignored_fields() -> None:
    version = copy.deepcopy(BLACK_LIST_VERSION)
    version["versions"]["Default"]["extended_paths"]["hard_timeouts"] = [{"path": "/s"}]
    spec = parse(api(use_keyless=False, use_openid=True,
                     openid_options={"providers": [{"issuer": "x"}]},
                     enable_batch_request_support=True, version_data=version))
    assert spec.unsupported_auth == (
        "use_openid", "version_data.versions.Default.extended_paths.black_list")
    assert spec.ignored_fields == (
        "enable_batch_request_support",
        "version_data.versions.Default.extended_paths.hard_timeouts",
    )


# ---------------------------------------------------------------------------
# Unknown fields: not Tyk's either, reported whatever their value
# ---------------------------------------------------------------------------

UNKNOWN: list[tuple[str, dict[str, Any], tuple[UnknownField, ...]]] = [
    ("misspelled switch", {"use_keyless": False, "use_standard_auht": True},
     (UnknownField("use_standard_auht", "use_standard_auth"),)),
    # An inert value is reported too: the name is wrong, whatever it holds.
    ("inert value", {"proxi": {}}, (UnknownField("proxi", "proxy"),)),
    ("nothing close", {"x_my_own_metadata": 1}, (UnknownField("x_my_own_metadata", ""),)),
    ("in proxy", {"proxy": {"strip_listen_paths": True}},
     (UnknownField("proxy.strip_listen_paths", "strip_listen_path"),)),
    ("in version_data", {"version_data": {"default_versoin": "v1"}},
     (UnknownField("version_data.default_versoin", "default_version"),)),
    ("in a version", {"version_data": {"versions": {"v1": {"name": "v1",
                                                           "extended_path": {}}}}},
     (UnknownField("version_data.versions.v1.extended_path", "extended_paths"),)),
    ("in extended_paths", {"version_data": {"versions": {"v1": {"extended_paths": {
        "black_lists": [{"path": "/admin"}]}}}}},
     (UnknownField("version_data.versions.v1.extended_paths.black_lists", "black_list"),)),
    ("file order", {"zzz_first": 1, "proxy": {"zz_second": 2}, "aaa_third": 3},
     (UnknownField("zzz_first", ""), UnknownField("aaa_third", ""),
      UnknownField("proxy.zz_second", ""))),
    # Known: Tyk's, fastgate's "_id", and what Tyk's schema still lists.
    ("known", {"_id": "65f1", "is_site": False, "hook_references": [],
               "session_lifetime": 0, "upstream_auth": {}}, ()),
]


@pytest.mark.parametrize(("fields", "expected"), [c[1:] for c in UNKNOWN],
                         ids=[c[0] for c in UNKNOWN])
def test_unknown_fields(fields: dict[str, Any], expected: tuple[UnknownField, ...]) -> None:
    spec = parse(api(**fields))
    assert spec.unknown_fields == expected
    unknown = {field.path for field in expected}
    assert not unknown & set(spec.ignored_fields)


def test_unknown_field_message() -> None:
    (field,) = parse(api(use_keyless=False, use_standard_auht=True)).unknown_fields
    assert str(field) == "use_standard_auht: unknown field (did you mean use_standard_auth?)"
    assert str(UnknownField("x_y", "")) == "x_y: unknown field"


CASE_VARIANTS: list[tuple[dict[str, Any], str, str]] = [
    # (definition, field refused, Tyk's name)
    (api(Use_Keyless=True), "Use_Keyless", "use_keyless"),
    (api(INTERNAL=True), "INTERNAL", "internal"),
    # Found before the proxy is looked for: not "proxy is required".
    ({"api_id": "t", "Proxy": {"listen_path": "/t/", "target_url": "http://u"}}, "Proxy",
     "proxy"),
    (api(proxy={"Listen_Path": "/x/"}), "proxy.Listen_Path", "listen_path"),
    # Go folds the Kelvin sign to "k" and the long s to "s".
    (api(**{"jwt_s\u212aip_kid": True}), "jwt_s\u212aip_kid", "jwt_skip_kid"),
    (api(**{"\u017flug": "x"}), "\u017flug", "slug"),
    (api(version_data={"Not_Versioned": False}), "version_data.Not_Versioned",
     "not_versioned"),
    (api(version_data={"versions": {"v1": {"Extended_Paths": {}}}}),
     "version_data.versions.v1.Extended_Paths", "extended_paths"),
    (api(version_data={"versions": {"v1": {"extended_paths": {"Black_List": [{"path": "/"}]}}}}),
     "version_data.versions.v1.extended_paths.Black_List", "black_list"),
    (dashboard_wrapped(api(USE_MUTUAL_TLS_AUTH=True)), "api_definition.USE_MUTUAL_TLS_AUTH",
     "use_mutual_tls_auth"),
]


@pytest.mark.parametrize(("data", "field", "canonical"), CASE_VARIANTS,
                         ids=[c[1] for c in CASE_VARIANTS])
def test_case_variants_of_tyk_fields_are_refused(data: dict[str, Any], field: str,
                                                 canonical: str) -> None:
    # Tyk (Go's encoding/json) would read these as its field; fastgate would not.
    err = refusal(data)
    assert err.field == field
    assert f"Tyk reads this as {canonical}" in err.message
    assert f"write {canonical}" in err.message


def test_tyk_lists_hold_what_fastgate_implements() -> None:
    from fastgate.apidef import IMPLEMENTED_FIELDS, IMPLEMENTED_PROXY_FIELDS
    from fastgate.apidef.tyk_fields import (
        API_DEFINITION_FIELDS,
        EXTENDED_PATHS_FIELDS,
        PROXY_FIELDS,
        SCHEMA_ONLY_FIELDS,
        VERSION_DATA_FIELDS,
        VERSION_FIELDS,
    )

    # A name implemented but not Tyk's would be a typo in fastgate ("_id" is
    # the Dashboard's; jwt_issuer, jwt_audience, split_token and auth_mode
    # are fastgate's own, in the README).
    not_tyks = IMPLEMENTED_FIELDS - API_DEFINITION_FIELDS
    assert not_tyks == {"_id", "jwt_issuer", "jwt_audience", "split_token", "auth_mode",
                        "hmac_accept_path_only_target", "hmac_replay_protection",
                        "http_message_signatures"}
    assert IMPLEMENTED_PROXY_FIELDS <= PROXY_FIELDS
    assert not SCHEMA_ONLY_FIELDS & API_DEFINITION_FIELDS
    # Read at TykTechnologies/tyk@31e219be: the sizes of the structs there.
    assert [len(names) for names in (API_DEFINITION_FIELDS, PROXY_FIELDS, VERSION_DATA_FIELDS,
                                     VERSION_FIELDS, EXTENDED_PATHS_FIELDS)] == \
        [102, 10, 3, 17, 26]
    assert {"CORS", "jwt_identity_base_field", "custom_middleware_bundle"} \
        <= API_DEFINITION_FIELDS
    assert {"white_list", "black_list", "internal", "rate_limit"} <= EXTENDED_PATHS_FIELDS


def test_version_data_defaults_are_filled_without_touching_raw() -> None:
    given = {"versions": {"Default": {"name": "Default", "expires": ""}}}
    data = api(version_data=given)
    spec = parse(data)
    assert spec.version_data == {
        "not_versioned": True,
        "versions": {"Default": {"name": "Default", "expires": ""}},
    }
    assert "not_versioned" not in data["version_data"]
    assert spec.version_data["versions"] is not given["versions"]


# A definition as the Tyk Dashboard exports it ("Export API" → JSON), with an
# auth-token API, endpoint middleware and the many zero-valued fields Tyk writes.
DASHBOARD_EXPORT: dict[str, Any] = {
    "api_model": {},
    "api_definition": {
        "id": "65f1b8a2c1d4e5000157a9c1",
        "name": "Orders API",
        "slug": "orders-api",
        "listen_port": 0,
        "protocol": "",
        "enable_proxy_protocol": False,
        "api_id": "8f2c1a9e4b7d4c3f9a6e2d1b0c5f7a8e",
        "org_id": "65f1b7e0c1d4e5000157a9b0",
        "use_keyless": False,
        "use_oauth2": False,
        "external_oauth": {"enabled": False, "providers": []},
        "use_openid": False,
        "openid_options": {"providers": [], "segregate_by_client": False},
        "oauth_meta": {
            "allowed_access_types": [],
            "allowed_authorize_types": [],
            "auth_login_redirect": "",
        },
        "auth": {
            "name": "",
            "use_param": False,
            "param_name": "",
            "use_cookie": False,
            "cookie_name": "",
            "disable_header": False,
            "auth_header_name": "Authorization",
            "use_certificate": False,
            "validate_signature": False,
            "signature": {
                "algorithm": "",
                "header": "",
                "secret": "",
                "allowed_clock_skew": 0,
                "error_code": 0,
                "error_message": "",
            },
        },
        "auth_configs": {
            "authToken": {"auth_header_name": "Authorization", "use_param": False},
            "basic": {"auth_header_name": "Authorization"},
            "hmac": {"auth_header_name": "Authorization"},
            "jwt": {"auth_header_name": "Authorization"},
            "oauth": {"auth_header_name": "Authorization"},
        },
        "use_basic_auth": False,
        "basic_auth": {
            "disable_caching": False,
            "cache_ttl": 0,
            "extract_from_body": False,
            "body_user_regexp": "",
            "body_password_regexp": "",
        },
        "use_mutual_tls_auth": False,
        "client_certificates": [],
        "upstream_certificates": {},
        "pinned_public_keys": {},
        "enable_jwt": False,
        "use_standard_auth": True,
        "use_go_plugin_auth": False,
        "enable_coprocess_auth": False,
        "custom_plugin_auth_enabled": False,
        "jwt_signing_method": "",
        "jwt_source": "",
        "jwt_identity_base_field": "",
        "jwt_client_base_field": "",
        "jwt_policy_field_name": "",
        "jwt_default_policies": [],
        "jwt_issued_at_validation_skew": 0,
        "jwt_expires_at_validation_skew": 0,
        "jwt_not_before_validation_skew": 0,
        "jwt_skip_kid": False,
        "jwt_scope_to_policy_mapping": {},
        "jwt_scope_claim_name": "",
        "notifications": {"shared_secret": "", "oauth_on_keychange_url": ""},
        "enable_signature_checking": False,
        "hmac_allowed_clock_skew": -1,
        "hmac_allowed_algorithms": [],
        "request_signing": {
            "is_enabled": False,
            "secret": "",
            "key_id": "",
            "algorithm": "",
            "header_list": [],
            "certificate_id": "",
            "signature_header": "",
        },
        "base_identity_provided_by": "",
        "definition": {
            "enabled": False,
            "name": "",
            "default": "",
            "location": "header",
            "key": "x-api-version",
            "strip_path": False,
            "strip_versioning_data": False,
            "fallback_to_default": False,
            "versions": {},
        },
        "version_data": {
            "not_versioned": True,
            "default_version": "",
            "versions": {
                "Default": {
                    "name": "Default",
                    "expires": "",
                    "paths": {"ignored": [], "white_list": [], "black_list": []},
                    "use_extended_paths": True,
                    "extended_paths": {
                        "ignored": [
                            {
                                "disabled": False,
                                "path": "/health",
                                "method": "GET",
                                "ignore_case": False,
                                "method_actions": {
                                    "GET": {
                                        "action": "no_action",
                                        "code": 200,
                                        "data": "",
                                        "headers": {},
                                    }
                                },
                            }
                        ],
                        "transform_headers": [
                            {
                                "disabled": False,
                                "delete_headers": ["X-Internal"],
                                "add_headers": {"X-Gateway": "tyk"},
                                "path": "/orders",
                                "method": "GET",
                                "act_on": False,
                            }
                        ],
                    },
                    "global_headers": {},
                    "global_headers_remove": [],
                    "global_response_headers": {},
                    "global_response_headers_remove": [],
                    "ignore_endpoint_case": False,
                    "global_size_limit": 0,
                    "override_target": "",
                }
            },
        },
        "uptime_tests": {
            "check_list": [],
            "config": {
                "expire_utime_after": 0,
                "service_discovery": {
                    "use_discovery_service": False,
                    "query_endpoint": "",
                    "cache_timeout": 60,
                },
                "recheck_wait": 0,
            },
        },
        "proxy": {
            "preserve_host_header": False,
            "listen_path": "/orders/",
            "target_url": "https://orders.internal:8443/v2/",
            "disable_strip_slash": True,
            "strip_listen_path": True,
            "enable_load_balancing": False,
            "target_list": [],
            "check_host_against_uptime_tests": False,
            "service_discovery": {
                "use_discovery_service": False,
                "query_endpoint": "",
                "use_nested_query": False,
                "cache_timeout": 0,
            },
            "transport": {
                "ssl_insecure_skip_verify": False,
                "ssl_ciphers": [],
                "ssl_min_version": 0,
                "ssl_max_version": 0,
                "ssl_force_common_name_check": False,
                "proxy_url": "",
            },
        },
        "disable_rate_limit": False,
        "disable_quota": False,
        "custom_middleware": {
            "pre": [],
            "post": [],
            "post_key_auth": [],
            "auth_check": {"disabled": False, "name": "", "path": "", "require_session": False},
            "response": [],
            "driver": "",
            "id_extractor": {
                "disabled": False,
                "extract_from": "",
                "extract_with": "",
                "extractor_config": {},
            },
        },
        "custom_middleware_bundle": "",
        "custom_middleware_bundle_disabled": False,
        "cache_options": {
            "cache_timeout": 60,
            "enable_cache": True,
            "cache_all_safe_requests": True,
            "cache_response_codes": [200],
            "enable_upstream_cache_control": False,
            "cache_control_ttl_header": "",
            "cache_by_headers": [],
        },
        "session_lifetime": 0,
        "active": True,
        "internal": False,
        "auth_provider": {"name": "", "storage_engine": "", "meta": {}},
        "session_provider": {"name": "", "storage_engine": "", "meta": {}},
        "event_handlers": {"events": {}},
        "enable_batch_request_support": False,
        "enable_ip_whitelisting": False,
        "allowed_ips": [],
        "enable_ip_blacklisting": False,
        "blacklisted_ips": [],
        "dont_set_quota_on_create": False,
        "expire_analytics_after": 0,
        "response_processors": [],
        "CORS": {
            "enable": False,
            "allowed_origins": ["*"],
            "allowed_methods": ["GET", "POST", "HEAD"],
            "allowed_headers": ["Origin", "Accept", "Content-Type", "Authorization"],
            "exposed_headers": [],
            "allow_credentials": False,
            "max_age": 24,
            "options_passthrough": False,
            "debug": False,
        },
        "domain": "",
        "certificates": [],
        "check_host_against_uptime_tests": False,
        "do_not_track": False,
        "tags": ["orders", "eu-west"],
        "enable_context_vars": True,
        "config_data": {},
        "config_data_disabled": False,
        "tag_headers": [],
        "global_rate_limit": {"rate": 1000, "per": 60},
        "strip_auth_data": True,
        "enable_detailed_recording": False,
        "graphql": {
            "enabled": False,
            "execution_mode": "proxyOnly",
            "version": "2",
            "schema": "",
            "playground": {"enabled": False, "path": ""},
        },
        "analytics_plugin": {},
        "tyk_streaming": {"Streams": None},
        "detailed_tracing": False,
        "upstream_auth": {"enabled": False, "basic_auth": {"enabled": False}},
    },
    "hook_references": [],
    "is_site": False,
    "sort_by": 0,
    "user_group_owners": [],
    "user_owners": [],
}


def test_realistic_dashboard_export_loads_and_reports(tmp_path: Path) -> None:
    path = tmp_path / "orders.json"
    path.write_bytes(orjson.dumps(DASHBOARD_EXPORT, option=orjson.OPT_INDENT_2))
    (spec,) = load_api_definitions(str(tmp_path))
    assert spec.source == str(path)
    assert spec.api_id == "8f2c1a9e4b7d4c3f9a6e2d1b0c5f7a8e"
    assert spec.name == "Orders API"
    assert spec.org_id == "65f1b7e0c1d4e5000157a9b0"
    assert spec.active is True
    assert spec.listen_path == "/orders/"
    assert spec.strip_listen_path is True
    assert (spec.target_scheme, spec.target_host, spec.target_port) == (
        "https",
        "orders.internal",
        8443,
    )
    assert spec.target_path == "/v2"
    assert spec.target_host_header == "orders.internal:8443"
    assert spec.raw == DASHBOARD_EXPORT["api_definition"]
    assert spec.ignored_fields == (
        "api_definition.cache_options",
        "api_definition.proxy.disable_strip_slash",
        "api_definition.version_data.versions.Default.extended_paths.ignored",
        "api_definition.version_data.versions.Default.extended_paths.transform_headers",
    )
    # Not a field of Tyk's APIDefinition at the commit the lists come from.
    assert spec.unknown_fields == (UnknownField("api_definition.tyk_streaming", ""),)
    assert spec.unsupported_auth == ()
    assert spec.auth_methods == ("auth_token",)
    assert spec.strip_auth_data is True


# ---------------------------------------------------------------------------
# Loading a directory
# ---------------------------------------------------------------------------


def write(path: Path, data: object) -> Path:
    path.write_bytes(orjson.dumps(data))
    return path


def test_load_directory_sorted_and_filtered(tmp_path: Path) -> None:
    write(tmp_path / "b.json", api(api_id="b", proxy={"listen_path": "/b/"}))
    write(tmp_path / "a.json", api(api_id="a", proxy={"listen_path": "/a/"}))
    write(tmp_path / "c.json.bak", api(api_id="c", proxy={"listen_path": "/c/"}))
    write(tmp_path / ".d.json", api(api_id="d", proxy={"listen_path": "/d/"}))
    (tmp_path / "notes.txt").write_text("not an API")
    (tmp_path / "sub.json").mkdir()
    specs = load_api_definitions(str(tmp_path))
    assert [s.api_id for s in specs] == ["a", "b"]
    assert specs[0].source == str(tmp_path / "a.json")


def test_empty_directory(tmp_path: Path) -> None:
    assert load_api_definitions(str(tmp_path)) == []


def test_missing_directory(tmp_path: Path) -> None:
    missing = str(tmp_path / "apps")
    with pytest.raises(ConfigError) as caught:
        load_api_definitions(missing)
    assert caught.value.file == missing
    assert "cannot read the API definitions directory" in caught.value.message


def test_broken_json_in_one_file_names_that_file(tmp_path: Path) -> None:
    write(tmp_path / "a.json", api(api_id="a", proxy={"listen_path": "/a/"}))
    broken = tmp_path / "b.json"
    broken.write_text('{\n  "api_id": "b",\n  "proxy": {"listen_path": "/b/",}\n}\n')
    write(tmp_path / "c.json", api(api_id="c", proxy={"listen_path": "/c/"}))
    with pytest.raises(ConfigError) as caught:
        load_api_definitions(str(tmp_path))
    assert caught.value.file == str(broken)
    assert str(caught.value).startswith(f"{broken}: invalid JSON at line 3 column ")


def test_invalid_definition_names_its_file(tmp_path: Path) -> None:
    write(tmp_path / "a.json", api(api_id="a", proxy={"listen_path": "/a/"}))
    bad = write(tmp_path / "b.json", api(api_id="b", proxy={"target_url": "nope"}))
    with pytest.raises(ConfigError) as caught:
        load_api_definitions(str(tmp_path))
    assert (caught.value.file, caught.value.field) == (str(bad), "proxy.target_url")


@pytest.mark.parametrize(
    ("first", "second", "field", "clash"),
    [
        (
            api(api_id="a", proxy={"listen_path": "/same/"}),
            api(api_id="b", proxy={"listen_path": "same/"}),
            "proxy.listen_path",
            "'/same/'",
        ),
        (
            api(api_id="same", proxy={"listen_path": "/a/"}),
            api(api_id="same", proxy={"listen_path": "/b/"}),
            "api_id",
            "'same'",
        ),
    ],
)
def test_duplicates_among_active_apis_name_both_files(
    tmp_path: Path, first: dict[str, Any], second: dict[str, Any], field: str, clash: str
) -> None:
    one = write(tmp_path / "one.json", first)
    two = write(tmp_path / "two.json", second)
    with pytest.raises(ConfigError) as caught:
        load_api_definitions(str(tmp_path))
    err = caught.value
    assert (err.file, err.field) == (str(two), field)
    assert clash in err.message
    assert str(one) in err.message


def test_duplicates_with_an_inactive_api_are_allowed(tmp_path: Path) -> None:
    write(tmp_path / "one.json", api(api_id="a", proxy={"listen_path": "/same/"}))
    write(tmp_path / "two.json", api(api_id="a", active=False, proxy={"listen_path": "/same/"}))
    specs = load_api_definitions(str(tmp_path))
    assert [s.active for s in specs] == [True, False]


def test_distinct_listen_paths_sharing_a_prefix_are_allowed(tmp_path: Path) -> None:
    write(tmp_path / "one.json", api(api_id="a", proxy={"listen_path": "/same"}))
    write(tmp_path / "two.json", api(api_id="b", proxy={"listen_path": "/same/"}))
    assert len(load_api_definitions(str(tmp_path))) == 2


# ---------------------------------------------------------------------------
# Whatever JSON a field holds, the outcome is an ApiSpec or a ConfigError
# ---------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
FIELD_PATHS = [
    (),
    ("api_id",),
    ("name",),
    ("active",),
    ("use_keyless",),
    ("proxy",),
    ("proxy", "listen_path"),
    ("proxy", "target_url"),
    ("proxy", "strip_listen_path"),
    ("version_data",),
    ("version_data", "versions"),
    ("version_data", "versions", "Default"),
    ("version_data", "versions", "Default", "extended_paths"),
    ("external_oauth",),
    ("use_basic_auth",),
    ("enable_ip_whitelisting",),
    ("allowed_ips",),
    ("jwt_source",),
    ("CORS",),
    ("custom_middleware",),
    ("custom_middleware", "pre"),
    ("custom_middleware_bundle",),
]


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from(FIELD_PATHS), value=JSON_VALUES, wrapped=st.booleans())
def test_any_json_gives_a_spec_or_a_config_error(
    path: tuple[str, ...], value: object, wrapped: bool
) -> None:
    data: Any = api(use_keyless=False, version_data=copy.deepcopy(BLACK_LIST_VERSION),
                    custom_middleware={"pre": [dict(HOOK)]})
    if path:
        node = data
        for part in path[:-1]:
            node = node[part]
        node[path[-1]] = value
    else:
        data = value
    if wrapped:
        data = dashboard_wrapped(data)
    try:
        spec = parse(data)
    except ConfigError as err:
        assert err.file == SOURCE
    else:
        assert spec.listen_path.startswith("/")
        # Never served open: use_keyless is false.
        assert spec.unsupported_auth or spec.auth_methods


# ---------------------------------------------------------------------------
# Authentication settings (auth token, Basic auth)
# ---------------------------------------------------------------------------

AUTH_SETTINGS = [
    # (id, fields, auth_methods, auth_token config as a dict or None)
    ("keyless", {}, (), None),
    ("implicit token", {"use_keyless": False}, ("auth_token",),
     {"auth_header_name": "Authorization", "use_param": False, "param_name": "",
      "use_cookie": False, "cookie_name": "", "disable_header": False}),
    ("legacy auth section", {"use_keyless": False,
                             "auth": {"auth_header_name": "X-Key", "use_param": True}},
     ("auth_token",),
     {"auth_header_name": "X-Key", "use_param": True, "param_name": "",
      "use_cookie": False, "cookie_name": "", "disable_header": False}),
    ("auth_configs wins", {"use_keyless": False, "auth": {"auth_header_name": "X-Old"},
                           "auth_configs": {"authToken": {"auth_header_name": "X-New",
                                                          "use_cookie": True,
                                                          "cookie_name": "sid"}}},
     ("auth_token",),
     {"auth_header_name": "X-New", "use_param": False, "param_name": "",
      "use_cookie": True, "cookie_name": "sid", "disable_header": False}),
    ("basic only", {"use_keyless": False, "use_basic_auth": True}, ("basic_auth",), None),
    ("basic and token, Tyk's order", {"use_keyless": False, "use_basic_auth": True,
                                      "use_standard_auth": True},
     ("basic_auth", "auth_token"),
     {"auth_header_name": "Authorization", "use_param": False, "param_name": "",
      "use_cookie": False, "cookie_name": "", "disable_header": False}),
]


@pytest.mark.parametrize(("fields", "methods", "token"), [c[1:] for c in AUTH_SETTINGS],
                         ids=[c[0] for c in AUTH_SETTINGS])
def test_auth_settings(fields: dict[str, Any], methods: tuple[str, ...],
                       token: dict[str, Any] | None) -> None:
    spec = parse(api(**fields))
    assert spec.auth_methods == methods
    settings = spec.auth_settings("auth_token")
    if token is None:
        assert settings is None
    else:
        assert settings is not None
        assert {f: getattr(settings.credential, f) for f in token} == token


def test_basic_auth_settings() -> None:
    spec = parse(api(use_keyless=False, use_basic_auth=True, basic_auth={
        "disable_caching": True, "cache_ttl": 5, "extract_from_body": True,
        "body_user_regexp": "user=(\\w+)", "body_password_regexp": "pass=(\\w+)"}))
    settings = spec.auth_settings("basic_auth")
    assert settings is not None
    assert (settings.disable_caching, settings.cache_ttl) == (True, 5)
    assert settings.extract_from_body is True
    default = parse(api(use_keyless=False, use_basic_auth=True)).auth_settings("basic_auth")
    assert default.cache_ttl == 60


@pytest.mark.parametrize(
    ("basic_auth", "field"),
    [
        ({"extract_from_body": True, "body_password_regexp": "p=(.*)"},
         "basic_auth.body_user_regexp"),
        ({"extract_from_body": True, "body_user_regexp": "(", "body_password_regexp": "(x)"},
         "basic_auth.body_user_regexp"),
        ({"extract_from_body": True, "body_user_regexp": "u=\\w+",
          "body_password_regexp": "(x)"}, "basic_auth.body_user_regexp"),
        ({"cache_ttl": "60"}, "basic_auth.cache_ttl"),
        ({"cache_ttl": -1}, "basic_auth.cache_ttl"),
    ],
    ids=["missing regexp", "invalid regexp", "no group", "ttl type", "ttl negative"],
)
def test_basic_auth_settings_refused(basic_auth: dict[str, Any], field: str) -> None:
    err = refusal(api(use_keyless=False, use_basic_auth=True, basic_auth=basic_auth))
    assert err.field == field


def test_auth_token_setting_types_refused() -> None:
    err = refusal(api(use_keyless=False, auth={"use_param": "yes"}))
    assert err.field == "auth.use_param"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("basic_auth_user", "basic_auth_user"), ("auth_token", "auth_token"), ("", ""),
     ("jwt_claim", "")],
)
def test_base_identity(value: str, expected: str) -> None:
    spec = parse(api(use_keyless=False, use_basic_auth=True, use_standard_auth=True,
                     base_identity_provided_by=value))
    assert spec.base_identity == expected


def test_base_identity_unknown_value_refused() -> None:
    err = refusal(api(use_keyless=False, base_identity_provided_by="nonsense"))
    assert err.field == "base_identity_provided_by"


@pytest.mark.parametrize(("fields", "expected"), [
    ({}, "all"), ({"auth_mode": "all"}, "all"), ({"auth_mode": "any"}, "any")])
def test_auth_mode(fields: dict[str, Any], expected: str) -> None:
    spec = parse(api(use_keyless=False, use_basic_auth=True, use_standard_auth=True, **fields))
    assert spec.auth_mode == expected
    assert spec.unknown_fields == ()  # fastgate's own field, known


@pytest.mark.parametrize("value", ["or", "ANY", "", 1, True])
def test_auth_mode_other_values_refused(value: object) -> None:
    err = refusal(api(use_keyless=False, use_standard_auth=True, auth_mode=value))
    assert err.field == "auth_mode"


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"rate": 10, "per": 1}, (10, 1)), ({"rate": 0.5, "per": 60}, (0.5, 60)),
     ({"rate": 0, "per": 1}, None), ({"rate": 10, "per": 0}, None), ({}, None)],
)
def test_global_rate_limit(value: dict[str, Any], expected: tuple[float, float] | None) -> None:
    assert parse(api(global_rate_limit=value)).global_rate_limit == expected


def test_global_rate_limit_type_refused() -> None:
    assert refusal(api(global_rate_limit={"rate": "10", "per": 1})).field == \
        "global_rate_limit.rate"


def test_static_mtls_settings_are_read_on_keyless_and_protected_apis() -> None:
    on = parse(api(use_mutual_tls_auth=True, client_certificates=["org1abc", "org1def"]))
    assert on.client_certificates == ("org1abc", "org1def")
    assert on.unsupported_auth == () and on.ignored_fields == ()
    assert parse(api(use_mutual_tls_auth=True)).client_certificates == ()
    protected = parse(api(use_keyless=False, use_mutual_tls_auth=True,
                          client_certificates=["c"]))
    assert protected.client_certificates == ("c",)
    off = parse(api(use_mutual_tls_auth=False, client_certificates=["c"]))
    assert off.client_certificates is None and off.ignored_fields == ()


@pytest.mark.parametrize(("fields", "field"), [
    ({"use_mutual_tls_auth": True, "client_certificates": "c"}, "client_certificates"),
    ({"use_mutual_tls_auth": True, "client_certificates": [1]}, "client_certificates[0]"),
])
def test_bad_static_mtls_settings_name_the_field(fields: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(api(**fields))
    assert caught.value.field == field
