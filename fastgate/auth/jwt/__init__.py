"""JWT authentication (Tyk's ``enable_jwt``): every Tyk JWT mode, JWKS
rotation that works, verification in a compiled hot path.

* :mod:`.config` -- the API definition's JWT fields, read and checked once;
* :mod:`fastgate._core.jws` -- splitting, base64url and JSON parsing (compiled);
* :mod:`.keys` -- key material (secrets, PEM/DER/X.509, JWK) and signature checks;
* :mod:`.tokens` -- the verified-token cache;
* :mod:`.jwks` -- JWKS fetching, caching and refetch on an unknown ``kid``;
* :mod:`.sessions` -- Tyk's session from a token (identity, policies, scopes);
* :mod:`.middleware` -- the request path;
* :mod:`.split_token` -- the split-token flow (the client never holds the JWT).
"""

from __future__ import annotations

from fastgate.auth.jwt.config import JwtConfig, parse_config
from fastgate.auth.jwt.middleware import JwtAuth
from fastgate.auth.method import AuthMethodSpec

__all__ = ["METHOD", "JwtAuth", "JwtConfig"]

METHOD = AuthMethodSpec(
    name="jwt",
    enabled_by=("enable_jwt",),
    order=50,
    identity="jwt_claim",
    fields=frozenset({
        "jwt_signing_method", "jwt_source", "jwt_identity_base_field",
        "jwt_client_base_field", "jwt_policy_field_name", "jwt_default_policies",
        "jwt_skip_kid", "jwt_issued_at_validation_skew", "jwt_expires_at_validation_skew",
        "jwt_not_before_validation_skew", "jwt_scope_to_policy_mapping",
        "jwt_scope_claim_name", "scopes", "idp_client_id_mapping_disabled",
        # fastgate's own (Tyk Classic never checks iss / aud)
        "jwt_issuer", "jwt_audience",
    }),
    parse=parse_config,
    build=JwtAuth,
)
