"""Tyk's session-from-token rules (``processCentralisedJWT``), as pure functions."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from fastgate.auth.jwt.config import JwtConfig
from fastgate.auth.jwt.sessions import (
    IdentityError,
    Refusal,
    claim_string,
    client_id_of,
    identity_of,
    reconcile,
    scope_of,
    session_id,
)

ORG = "org1"


def pol(pid: str, org: str = ORG, **extra: Any) -> dict[str, Any]:
    return {"id": pid, "org_id": org, "rate": 10, "per": 1, "quota_max": -1,
            "access_rights": {"api": {"api_id": "api", "versions": ["Default"]}}, **extra}


POLICIES = {p: pol(p) for p in ("base", "d1", "d2", "read", "write", "gold")}
POLICIES["foreign"] = pol("foreign", org="other")
POLICIES["expiring"] = pol("expiring", key_expires_in=3600)


def run(config: JwtConfig, claims: dict[str, Any], existing: dict[str, Any] | None = None,
        base: str = "", now: float = 1_000_000.0) -> dict[str, Any] | None:
    return reconcile(config, claims, org_id=ORG, identity="alice", sid="sid", existing=existing,
                     base_policy=base, policies=POLICIES, now=now)


def refusal(config: JwtConfig, claims: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(Refusal) as info:
        run(config, claims, **kwargs)
    return info.value.status, info.value.message


# -- claims --------------------------------------------------------------------


def test_claim_lookup_tries_the_literal_name_then_a_dot_path():
    claims = {"user.id": "literal", "user": {"id": "nested"}, "a": {"b": {"c": "deep"}}}
    assert claim_string(claims, "user.id") == "literal"
    assert claim_string({"user": {"id": "nested"}}, "user.id") == "nested"
    assert claim_string(claims, "a.b.c") == "deep"
    assert claim_string({"x": ""}, "x") is None
    assert claim_string({"x": 5}, "x") is None


def test_identity_falls_back_to_sub_and_says_why_it_cannot():
    assert identity_of({"sub": "s", "email": "e"}, "email") == "e"
    assert identity_of({"sub": "s"}, "email") == "s"
    assert identity_of({"sub": "s"}, "") == "s"
    with pytest.raises(IdentityError, match=r"^found an empty user ID in predefined base "
                                            r"claim, claim: email$"):
        identity_of({"sub": "s", "email": ""}, "email")
    with pytest.raises(IdentityError, match=r"^found an empty user ID in sub claim$"):
        identity_of({"sub": ""}, "")
    with pytest.raises(IdentityError, match=r"^no suitable claims for user ID were found$"):
        identity_of({"sub": 42}, "")


def test_session_id_is_generate_token_of_the_md5_of_the_identity():
    digest = hashlib.md5(b"alice").hexdigest()
    assert session_id(ORG, "alice", "") == ORG + digest
    hashed = session_id(ORG, "alice", "murmur64")
    assert hashed.startswith("ey")  # Tyk's base64 JSON form under a hash_key_function


def test_scopes_split_strings_on_single_spaces_and_take_arrays_as_they_are():
    assert scope_of({"scope": "a b  c"}, "scope") == ["a", "b", "", "c"]
    assert scope_of({"scp": ["a b", "c"]}, "scp") == ["a b", "c"]
    assert scope_of({"realm_access": {"roles": ["r1", "r2"]}}, "realm_access.roles") == [
        "r1", "r2"]
    assert scope_of({"scope": 5}, "scope") == []


def test_client_id_claims_in_tyks_order():
    assert client_id_of({"cid": "okta", "client_id": "gluu"}) == "okta"
    assert client_id_of({"clientId": "kc", "cid": "okta"}) == "kc"
    assert client_id_of({}) == ""


# -- new sessions ----------------------------------------------------------------


def test_a_new_session_is_templated_on_the_base_policy():
    session = run(JwtConfig(), {"exp": 2_000_000}, base="expiring")
    assert session is not None
    assert session["apply_policies"] == ["expiring"]
    assert session["rate"] == 10
    assert session["meta_data"] == {"TykJWTSessionID": "sid"}
    assert session["alias"] == "alice"
    # key_expires_in gives 1_003_600; the later exp wins.
    assert session["expires"] == 2_000_000
    session = run(JwtConfig(), {"exp": 1_000_100}, base="expiring")
    assert session is not None and session["expires"] == 1_003_600


def test_default_policies_are_all_applied_to_a_new_session():
    session = run(JwtConfig(default_policies=("d1", "d2")), {})
    assert session is not None and session["apply_policies"] == ["d1", "d2"]


@pytest.mark.parametrize("base", ["missing", "foreign"])
def test_a_missing_or_foreign_base_policy_is_refused(base):
    assert refusal(JwtConfig(), {}, base=base) == (403, "key not authorized: no matching policy")


def test_no_policy_at_all_is_refused():
    assert refusal(JwtConfig(), {}) == (403, "key not authorized: no matching policy found")


# -- existing sessions -------------------------------------------------------------


def existing(*policies: str, **extra: Any) -> dict[str, Any]:
    return {"org_id": ORG, "apply_policies": list(policies), "expires": 0, **extra}


def test_an_unchanged_session_is_left_alone():
    assert run(JwtConfig(), {}, existing=existing("base"), base="base") is None


def test_a_new_base_policy_replaces_the_sessions_policies():
    session = run(JwtConfig(), {}, existing=existing("base"), base="gold")
    assert session is not None and session["apply_policies"] == ["gold"]


def test_a_changed_default_list_replaces_the_policies():
    config = JwtConfig(default_policies=("d1", "d2"))
    session = run(config, {}, existing=existing("d1"))
    assert session is not None and session["apply_policies"] == ["d1", "d2"]
    assert run(config, {}, existing=existing("d1", "d2")) is None


def test_a_later_exp_extends_the_session():
    session = run(JwtConfig(), {"exp": 5_000}, existing=existing("base", expires=4_000),
                  base="base")
    assert session is not None and session["expires"] == 5_000
    assert run(JwtConfig(), {"exp": 3_000}, existing=existing("base", expires=4_000),
               base="base") is None


def test_an_existing_session_without_policies_is_refused():
    assert refusal(JwtConfig(), {}, existing=existing(), base="base") == (
        403, "key not authorized: no matching policy found")


def test_an_existing_session_needs_a_policy_in_the_token_when_there_are_no_defaults():
    assert refusal(JwtConfig(), {}, existing=existing("base")) == (
        403, "key not authorized: no matching policy found")


# -- scopes ------------------------------------------------------------------------------


SCOPED = JwtConfig(scope_to_policy={"r": "read", "w": "write"}, default_policies=("d1",))


def test_scopes_replace_the_default_policies():
    session = run(SCOPED, {"scope": "r w x"})
    assert session is not None and sorted(session["apply_policies"]) == ["read", "write"]


def test_scopes_keep_the_base_policy_from_the_token():
    session = run(SCOPED, {"scope": "r"}, base="gold")
    assert session is not None and session["apply_policies"] == ["gold", "read"]


def test_a_scope_claim_mapping_to_nothing_is_refused():
    assert refusal(SCOPED, {"scope": "x"}) == (
        403, "key not authorized: no matching policy found in scope claim")


def test_an_existing_session_needs_a_scope_or_a_policy():
    config = JwtConfig(scope_to_policy={"r": "read"})
    assert refusal(config, {}, existing=existing("read")) == (
        403, "key not authorized: no scope or policy in token")


def test_the_same_scopes_leave_the_session_alone():
    assert run(SCOPED, {"scope": "w r"}, existing=existing("read", "write")) is None


def test_the_oauth_client_id_is_kept_up_to_date():
    session = run(JwtConfig(), {"cid": "c1"}, existing=existing("base"), base="base")
    assert session is not None and session["oauth_client_id"] == "c1"
    no_mapping = JwtConfig(client_id_mapping=False)
    assert run(no_mapping, {"cid": "c1"}, existing=existing("base"), base="base") is None
