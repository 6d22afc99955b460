"""Keys in an existing Tyk Redis work unchanged: records written exactly as Tyk
writes them (``apikey-<HashKey(generateToken(org, id))>``, the session JSON
with Go's nulls), for custom and generated keys, with and without org and
``hash_key_function``, hashed and not, authenticate through a real gateway
by the custom name and by the full token -- Tyk's SessionDetail candidates."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from typing import Any

import pytest
import requests

from fastgate._core import murmur3

pytestmark = pytest.mark.redis

ORGS = ["", "org1", "5e9d9544a1dcd60001d0ed20"]


def generate_token(org: str, key_id: str, function: str) -> str:
    """Tyk's generateToken, written out from internal/crypto/token.go."""
    key_id = key_id[len(org):] if org and key_id.startswith(org) else key_id
    if function:
        return base64.b64encode(
            f'{{"org":"{org}","id":"{key_id}","h":"{function}"}}'.encode()).decode()
    return org + key_id


def tyk_hash(token: str) -> str:
    """Tyk's HashKey(token): the algorithm the token names, else murmur32."""
    algorithm = ""
    if token.startswith("ey"):
        algorithm = json.loads(base64.b64decode(token)).get("h", "")
    data = token.encode()
    if algorithm == "sha256":
        return hashlib.sha256(data).hexdigest()
    if algorithm == "murmur64":
        return murmur3.murmur64_hex(data)
    if algorithm == "murmur128":
        return murmur3.murmur128_hex(data)
    return murmur3.murmur32_hex(data)


def tyk_record(org: str, api_id: str) -> bytes:
    """A session as Tyk 5 marshals it (every field, nulls for empty slices and maps)."""
    return json.dumps({
        "last_check": 0, "allowance": 1000, "rate": 1000, "per": 1, "throttle_interval": 0,
        "throttle_retry_limit": 0, "max_query_depth": 0,
        "date_created": "2024-05-01T10:00:00.123456789Z", "expires": 0, "quota_max": -1,
        "quota_renews": 1714557600, "quota_remaining": -1, "quota_renewal_rate": 0,
        "access_rights": {api_id: {
            "api_name": api_id, "api_id": api_id, "versions": ["Default"], "allowed_urls": None,
            "restricted_types": None, "allowed_types": None, "limit": None,
            "field_access_rights": None, "disable_introspection": False, "allowance_scope": ""}},
        "org_id": org, "oauth_client_id": "", "oauth_keys": None, "certificate": "",
        "basic_auth_data": {"password": "", "hash_type": ""}, "jwt_data": {"secret": ""},
        "hmac_enabled": False, "enable_http_signature_validation": False, "hmac_string": "",
        "rsa_certificate_id": "", "is_inactive": False, "apply_policy_id": "",
        "apply_policies": None, "data_expires": 0, "monitor": {"trigger_limits": None},
        "enable_detailed_recording": False, "meta_data": None, "tags": None, "alias": "",
        "last_updated": "1714557600", "id_extractor_deadline": 0, "session_lifetime": 0,
    }).encode()


@pytest.mark.parametrize("function", ["", "murmur64", "sha256"])
@pytest.mark.parametrize("hash_keys", [True, False], ids=["hashed", "plain"])
def test_keys_written_by_tyk_authenticate(gateway_factory: Any, make_api: Any, echo: Any,
                                          redis_flush: Any, function: str,
                                          hash_keys: bool) -> None:
    apis = [make_api(f"api{i}", f"/api{i}/", echo.base_url, use_keyless=False, org_id=org)
            for i, org in enumerate(ORGS)]
    gw = gateway_factory(apis, storage={"type": "redis", "host": redis_flush.host,
                                        "port": redis_flush.port},
                         hash_keys=hash_keys, hash_key_function=function)
    client = redis_flush.client()
    presented: list[tuple[str, str]] = []  # (path, credential)
    for i, org in enumerate(ORGS):
        custom = f"custom-key-{i}"
        # POST /tyk/keys/{custom} in Tyk, and a key Tyk generated (createKeyHandler).
        for token, names in ((generate_token(org, custom, function), [custom]),
                             (generate_token(org, uuid.uuid4().hex, function), [])):
            client.set("apikey-" + (tyk_hash(token) if hash_keys else token),
                       tyk_record(org, f"api{i}"))
            presented += [(f"/api{i}/x", name) for name in [token, *names]]
    with requests.Session() as http:
        for path, credential in presented:
            resp = http.get(gw.url(path), headers={"Authorization": credential}, timeout=10)
            assert resp.status_code == 200, (path, credential, resp.text)
        # A name nobody stored, and a key of another org's API, stay refused.
        assert http.get(gw.url("/api1/x"), headers={"Authorization": "custom-key-9"},
                        timeout=10).status_code == 403
        assert http.get(gw.url("/api1/x"), headers={"Authorization": "custom-key-2"},
                        timeout=10).status_code == 403
