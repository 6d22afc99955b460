"""``external_oauth`` settings: what is read, and every refusal naming its field."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fastgate.apidef import parse_api_definition
from fastgate.auth.external_oauth.config import DEFAULT_REQUEST_TIMEOUT, ExternalOAuthConfig
from fastgate.config import ConfigError

P0 = "external_oauth.providers[0]."


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def _pem(key: Any) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


RSA_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PEM = _pem(ec.generate_private_key(ec.SECP256R1()))


def api(provider: dict[str, Any] | None = None, **section: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"enabled": True, "providers": [provider or {}], **section}
    if provider is None:
        body["providers"] = [{"introspection": {"enabled": True, "url": "https://as.test/i",
                                                "client_id": "rs", "client_secret": "s3"}}]
    return {"api_id": "x", "org_id": "o", "use_keyless": False,
            "proxy": {"listen_path": "/x/", "target_url": "http://127.0.0.1:9"},
            "version_data": {"not_versioned": True, "versions": {"Default": {"name": "Default"}}},
            "external_oauth": body}


def settings(definition: dict[str, Any]) -> ExternalOAuthConfig:
    spec = parse_api_definition(definition, "api.json")
    [(method, config)] = spec.auth
    assert method.name == "external_oauth"
    assert isinstance(config, ExternalOAuthConfig)
    return config


def refusal(definition: dict[str, Any]) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_api_definition(definition, "api.json")
    assert caught.value.file == "api.json"
    return caught.value


def jwt_provider(**fields: Any) -> dict[str, Any]:
    return {"jwt": {"enabled": True, "signing_method": "rsa", "source": b64(RSA_PEM),
                    **fields}}


def introspection_provider(**fields: Any) -> dict[str, Any]:
    return {"introspection": {"enabled": True, "url": "https://as.test/introspect", **fields}}


# -- what is read ---------------------------------------------------------------


def test_introspection_settings_are_read_as_given():
    config = settings(api(introspection_provider(
        client_id="rs", client_secret="s3", identity_base_field="username",
        cache={"enabled": True, "timeout": 30}, request_timeout=1.5)))
    assert config.jwt is None
    got = config.introspection
    assert got is not None
    assert (got.url, got.client_id, got.client_secret, got.identity_field) == (
        "https://as.test/introspect", "rs", "s3", "username")
    assert (got.cache, got.cache_timeout, got.request_timeout) == (True, 30, 1.5)
    assert "s3" not in repr(got)  # the client secret stays out of reprs (and logs)


def test_introspection_defaults():
    got = settings(api(introspection_provider())).introspection
    assert got is not None
    assert (got.cache, got.cache_timeout, got.request_timeout) == (
        False, 0, DEFAULT_REQUEST_TIMEOUT)


@pytest.mark.parametrize(("source", "kind"), [
    ("https://as.test/jwks", "url"),
    ("HTTPS://as.test/jwks", "url"),
    (b64("https://as.test/jwks"), "url"),
    (b64(RSA_PEM), "key"),
])
def test_jwt_source_is_a_jwks_url_or_a_key(source, kind):
    got = settings(api(jwt_provider(source=source))).jwt
    assert got is not None
    if kind == "url":
        assert got.jwks_url.lower() == "https://as.test/jwks" and got.static_key is None
    else:
        assert got.static_key is not None and got.jwks_url == ""


def test_jwt_settings_are_read_and_jwt_wins_over_introspection():
    provider = {**jwt_provider(issued_at_validation_skew=1, not_before_validation_skew=2,
                               expires_at_validation_skew=3, identity_base_field="email"),
                **introspection_provider()}
    config = settings(api(provider))
    assert config.introspection is None  # as Tyk: jwt wins
    got = config.jwt
    assert got is not None
    assert (got.family, got.issued_at_skew, got.not_before_skew, got.expires_at_skew,
            got.identity_field) == ("rsa", 1, 2, 3, "email")


def test_an_empty_signing_method_is_hmac_and_the_source_its_secret():
    got = settings(api({"jwt": {"enabled": True, "source": b64("a shared secret")}})).jwt
    assert got is not None and got.family == "hmac" and got.static_key is not None


def test_the_token_is_read_where_auth_configs_external_oauth_says():
    definition = api()
    definition["auth_configs"] = {"externalOAuth": {"auth_header_name": "X-Token"}}
    assert settings(definition).credential.auth_header_name == "X-Token"


def test_a_disabled_section_enables_nothing():
    definition = api()
    definition["external_oauth"]["enabled"] = False
    definition["use_standard_auth"] = True
    spec = parse_api_definition(definition, "api.json")
    assert [method.name for method, _ in spec.auth] == ["auth_token"]


# -- refusals, each naming the field ----------------------------------------------


def _without_providers(d: dict[str, Any]) -> None:
    del d["external_oauth"]["providers"]


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda d: d["external_oauth"].update(providers=[]), "external_oauth.providers",
     "is empty"),
    (_without_providers, "external_oauth.providers", "is empty"),
    (lambda d: d["external_oauth"].update(providers={}), "external_oauth.providers",
     "expected an array"),
    (lambda d: d["external_oauth"]["providers"].append({}), "external_oauth.providers[1]",
     "only one provider"),
    (lambda d: d["external_oauth"].update(providers=["x"]), "external_oauth.providers[0]",
     "expected an object"),
    (lambda d: d["external_oauth"].update(providers=[{}]), "external_oauth.providers[0]",
     "neither jwt nor introspection"),
    (lambda d: d["external_oauth"].update(enabeld=True), "external_oauth.enabeld",
     "did you mean enabled"),
    (lambda d: d["external_oauth"].update(enabled="yes"), "external_oauth.enabled",
     "true or false"),
    (lambda d: d["external_oauth"]["providers"][0].update(jtw={}), P0 + "jtw",
     "unknown field (known: jwt, introspection)"),
])
def test_section_refusals(change, field, words):
    definition = copy.deepcopy(api())
    change(definition)
    error = refusal(definition)
    assert error.field == field
    assert words in error.message


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"url": ""}, "url", "is required"),
    ({"url": "ftp://as.test/i"}, "url", "http:// or https://"),
    ({"url": "https:///i"}, "url", "with a host"),
    ({"url": "https://as.test:99999/i"}, "url", "not a valid URL"),
    ({"url": 5}, "url", "a string"),
    ({"client_secret": 5}, "client_secret", "a string"),
    ({"cache": {"enabled": True, "timeout": -1}}, "cache.timeout", "at least 0"),
    ({"cache": {"enabled": True, "timeout": 1.5}}, "cache.timeout", "an integer"),
    ({"cache": {"enabled": "true"}}, "cache.enabled", "true or false"),
    ({"cache": {"enabled": True, "ttl": 5}}, "cache.ttl", "unknown field"),
    ({"cache": []}, "cache", "an object"),
    ({"request_timeout": 0}, "request_timeout", "between"),
    ({"request_timeout": 61}, "request_timeout", "between"),
    ({"client_secert": "x"}, "client_secert", "did you mean client_secret"),
    ({"URL": "https://as.test/i"}, "URL", "fastgate reads names exactly"),
])
def test_introspection_refusals(fields, field, words):
    error = refusal(api(introspection_provider(**fields)))
    assert error.field == P0 + "introspection." + field
    assert words in error.message
    assert "s3cret" not in str(error)


def test_a_wrong_type_never_echoes_the_secret():
    error = refusal(api(introspection_provider(client_secret=["s3cret-value"])))
    assert "s3cret-value" not in str(error)


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"source": ""}, "source", "is required"),
    ({"source": "not base64!"}, "source", "neither a URL nor base64"),
    ({"source": b64("no key in here")}, "source", "not a usable rsa public key"),
    ({"source": b64(EC_PEM)}, "source", "not a usable rsa public key"),
    ({"signing_method": "RS256"}, "signing_method", "must be one of"),
    ({"signing_method": "none"}, "signing_method", "must be one of"),
    ({"expires_at_validation_skew": -1}, "expires_at_validation_skew", "at least 0"),
    ({"issued_at_validation_skew": "1"}, "issued_at_validation_skew", "an integer"),
    ({"identity_base_field": 1}, "identity_base_field", "a string"),
    ({"jwks_url": "https://x"}, "jwks_url", "unknown field"),
])
def test_jwt_refusals(fields, field, words):
    error = refusal(api(jwt_provider(**fields)))
    assert error.field == P0 + "jwt." + field
    assert words in error.message


def test_an_ecdsa_source_is_read_for_ecdsa():
    got = settings(api(jwt_provider(signing_method="ecdsa", source=b64(EC_PEM)))).jwt
    assert got is not None and got.family == "ecdsa" and got.static_key is not None


def test_the_unused_introspection_settings_are_still_checked_when_jwt_wins():
    provider = {**jwt_provider(), **introspection_provider(url="")}
    assert refusal(api(provider)).field == P0 + "introspection.url"
