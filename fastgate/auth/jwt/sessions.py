"""Sessions from tokens, exactly as Tyk builds them (``processCentralisedJWT``).

A token checked against ``jwt_source`` carries no key of its own: the gateway
keeps one session per identity, ``generateToken(org_id, hex(md5(identity)))``,
so that rate limits and quotas follow the identity across tokens and across
nodes (a new token for the same ``sub`` shares the bucket).

* **identity**: ``jwt_identity_base_field`` (literal claim first, then a dot
  path), else ``sub``; an identity error is a 403 with Tyk's raw text (404 in
  the per-key mode);
* **base policy**: the ``jwt_policy_field_name`` claim (one non-empty
  string); when that field is unset, ``jwt_client_base_field``: the first
  policy of the key named by that claim; failing both, ``jwt_default_policies[0]``
  (and then every default policy is applied);
* **new session**: built from the base policy (its rate, per, quota, access
  rights, HMAC flags, tags, ``key_expires_in``); ``meta_data.TykJWTSessionID``
  and ``alias`` = identity; a later ``exp`` becomes ``expires`` --
  **fastgate differs**: ``exp`` plus ``jwt_expires_at_validation_skew`` (in
  Tyk the session expires at ``exp``, so a token the skew lets in is refused
  a step later as "Key has expired");
* **existing session**: a base policy it does not have (or a changed default
  list) replaces its policies; a later ``exp`` extends ``expires``;
* **scopes** (``jwt_scope_to_policy_mapping`` / ``scopes.jwt``): the claim
  (dot path; a string split on single spaces, or an array) maps to policies,
  which with the base policy become the session's -- the default policies are
  dropped;
* ``oauth_client_id`` from ``clientId``, ``cid`` or ``client_id`` (unless
  ``idp_client_id_mapping_disabled``).

Pure functions over JSON-ready dicts: :func:`reconcile` says what the
session must become; the middleware stores it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fastgate.session import PolicyError, apply_policies, make_key, parse_session, policy_ids

if TYPE_CHECKING:
    from fastgate.auth.jwt.config import JwtConfig

__all__ = [
    "IdentityError",
    "claim_string",
    "identity_of",
    "reconcile",
    "scope_of",
    "session_id",
]

NO_POLICY = "key not authorized: no matching policy"
NO_POLICY_FOUND = "key not authorized: no matching policy found"
NEW_POLICY_FAILED = "key not authorized: could not apply new policy"
NO_SCOPE_POLICY = "key not authorized: no matching policy found in scope claim"
SCOPE_POLICIES_FAILED = "key not authorized: could not apply several policies"
NO_SCOPE_OR_POLICY = "key not authorized: no scope or policy in token"

#: Claims an IdP names its OAuth client in (Keycloak, Okta, Gluu), in Tyk's order.
CLIENT_ID_CLAIMS = ("clientId", "cid", "client_id")


class IdentityError(ValueError):
    """No usable identity in the token (Tyk's raw message)."""


def _nested(claims: Mapping[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def claim_string(claims: Mapping[str, Any], name: str) -> str | None:
    """A non-empty string claim: the literal name first, then a dot path (Tyk's
    ``getClaimValue``)."""
    value = claims.get(name)
    if isinstance(value, str) and value:
        return value
    if "." in name:
        value = _nested(claims, name)
        if isinstance(value, str) and value:
            return value
    return None


def identity_of(claims: Mapping[str, Any], field: str) -> str:
    """The token's identity (Tyk's ``getUserIDFromClaim`` with the ``sub`` fallback).

    Raises IdentityError with Tyk's message.
    """
    if field:
        found = claim_string(claims, field)
        if found is not None:
            return found
        if claims.get(field) == "" or ("." in field and _nested(claims, field) == ""):
            raise IdentityError(
                f"found an empty user ID in predefined base claim, claim: {field}")
    sub = claims.get("sub")
    if isinstance(sub, str):
        if sub:
            return sub
        raise IdentityError("found an empty user ID in sub claim")
    raise IdentityError("no suitable claims for user ID were found")


def session_id(org_id: str, identity: str, hash_key_function: str) -> str:
    """The key a token identity's session is kept under (before hashing)."""
    digest = hashlib.md5(identity.encode("utf-8", "surrogatepass"), usedforsecurity=False)
    return make_key(org_id, digest.hexdigest(), hash_key_function)


def _scope_items(value: Any, out: list[str], nested: bool) -> None:
    if isinstance(value, str):
        out.extend([value] if nested else value.split(" "))
    elif isinstance(value, list):
        for item in value:
            _scope_items(item, out, True)


def scope_of(claims: Mapping[str, Any], name: str) -> list[str]:
    """The scopes a token carries in claim ``name`` (a dot path): a string split
    on single spaces, or an array's strings (Tyk's ``getScopeFromClaim``)."""
    out: list[str] = []
    _scope_items(_nested(claims, name), out, False)
    return out


def client_id_of(claims: Mapping[str, Any]) -> str:
    """The OAuth client the IdP names in the token ("" for none)."""
    for name in CLIENT_ID_CLAIMS:
        if name in claims:
            value = claims[name]
            return value if isinstance(value, str) else ""
    return ""


class Refusal(Exception):
    """The token may not have a session: (status, message), Tyk's."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _policy(policies: Mapping[str, Mapping[str, Any]], policy_id: str,
            org_id: str) -> Mapping[str, Any] | None:
    policy = policies.get(policy_id)
    if policy is None or (policy.get("org_id") or "") != org_id:
        return None
    return policy


def _from_policy(policy: Mapping[str, Any], policy_id: str, org_id: str,
                 now: float) -> dict[str, Any]:
    """Tyk's ``generateSessionFromPolicy``: a session templated on one policy."""
    session: dict[str, Any] = {
        "org_id": org_id,
        "apply_policies": [policy_id],
        "allowance": policy.get("rate", 0),
        "access_rights": dict(policy.get("access_rights") or {}),
        "hmac_enabled": bool(policy.get("hmac_enabled")),
        "enable_http_signature_validation": bool(
            policy.get("enable_http_signature_validation")),
        "is_inactive": bool(policy.get("is_inactive")),
        "tags": list(policy.get("tags") or []),
    }
    for name in ("rate", "per", "throttle_interval", "throttle_retry_limit",
                 "max_query_depth", "quota_max", "quota_renewal_rate",
                 "post_expiry_action", "post_expiry_grace_period"):
        if name in policy:
            session[name] = policy[name]
    expires_in = policy.get("key_expires_in")
    if isinstance(expires_in, int | float) and expires_in > 0:
        session["expires"] = int(now) + int(expires_in)
    return session


def _check_policies(session: Mapping[str, Any], policies: Mapping[str, Mapping[str, Any]],
                    org_id: str) -> None:
    apply_policies(parse_session(dict(session)), policies, org_id=org_id)


def reconcile(
    config: JwtConfig,
    claims: Mapping[str, Any],
    *,
    org_id: str,
    identity: str,
    sid: str,
    existing: Mapping[str, Any] | None,
    base_policy: str,
    policies: Mapping[str, Mapping[str, Any]],
    now: float,
) -> dict[str, Any] | None:
    """What the identity's session must become: a new session dict to store,
    or None when ``existing`` stays as it is.

    ``base_policy``: from the policy claim or the client key ("" for none);
    the default policies are handled here.  Raises Refusal (Tyk's status and
    message).
    """
    defaults = config.default_policies
    is_default = False
    if not base_policy and defaults:
        is_default, base_policy = True, defaults[0]
    update = False
    if existing is None:
        if base_policy:
            template = _policy(policies, base_policy, org_id)
            if template is None:
                raise Refusal(403, NO_POLICY)
            session = _from_policy(template, base_policy, org_id, now)
            if is_default:
                for policy_id in defaults:
                    if policy_id not in session["apply_policies"]:
                        session["apply_policies"].append(policy_id)
            try:
                _check_policies(session, policies, org_id)
            except PolicyError as exc:
                raise Refusal(500, f"failed to create key: {exc}") from None
        else:
            session = {"org_id": org_id}
        session["meta_data"] = {"TykJWTSessionID": sid}
        session["alias"] = identity
        update = True
    else:
        session = dict(existing)
        if base_policy and policies.get(base_policy) is None:
            raise Refusal(403, NO_POLICY)
        current = policy_ids(session)
        if not current:
            raise Refusal(403, NO_POLICY_FOUND)
        changed = is_default and (
            any(p not in defaults and p != base_policy for p in current)
            or any(p not in current for p in defaults))
        if base_policy and (base_policy not in current or changed):
            if _policy(policies, base_policy, org_id) is None:
                raise Refusal(403, NO_POLICY)
            session["apply_policies"] = [base_policy] + (
                [p for p in defaults if p != base_policy] if is_default else [])
            session.pop("policy_id", None)
            update = True
            try:
                _check_policies(session, policies, org_id)
            except PolicyError:
                raise Refusal(403, NEW_POLICY_FAILED) from None
    exp = claims.get("exp")
    if isinstance(exp, int | float) and not isinstance(exp, bool):
        # The skew the token was accepted with holds for its session too
        # (Tyk's session expires at exp, so its skew never helps).
        ends = int(exp) + config.expires_at_skew
        expires = session.get("expires") or 0
        if ends > (expires if isinstance(expires, int | float) else 0):
            session["expires"] = ends
            update = True
    if config.scope_to_policy:
        scope = scope_of(claims, config.scope_claim)
        if scope:
            wanted = [] if is_default or not base_policy else [base_policy]
            for item in scope:
                mapped = config.scope_to_policy.get(item)
                if mapped is not None and mapped not in wanted:
                    wanted.append(mapped)
            if not wanted:
                raise Refusal(403, NO_SCOPE_POLICY)
            if not update:
                update = set(policy_ids(session)) != set(wanted)
            session["apply_policies"] = wanted
            session.pop("policy_id", None)
            try:
                _check_policies(session, policies, org_id)
            except PolicyError:
                raise Refusal(403, SCOPE_POLICIES_FAILED) from None
        elif not base_policy and existing is not None:
            raise Refusal(403, NO_SCOPE_OR_POLICY)
    if not base_policy and not defaults:
        if not policy_ids(session):
            raise Refusal(403, NO_POLICY_FOUND)
        if existing is not None and not config.scope_to_policy:
            raise Refusal(403, NO_POLICY_FOUND)
    client_id = client_id_of(claims) if config.client_id_mapping else ""
    if (session.get("oauth_client_id") or "") != client_id:
        session["oauth_client_id"] = client_id
        update = True
    if existing is None:
        return session
    # Tyk rewrites the session whenever its rules touched it; fastgate writes
    # only when the result differs (the same policies in another order do not).
    if set(policy_ids(session)) == set(policy_ids(existing)):
        session["apply_policies"] = existing.get("apply_policies")
        if "apply_policies" not in existing:
            del session["apply_policies"]
    return None if session == dict(existing) else session
