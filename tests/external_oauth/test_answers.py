"""What an introspection answer means (pure rules): ``active``, ``exp``, the
identity, and how long an answer may be reused."""

from __future__ import annotations

import orjson
import pytest

from fastgate.auth.external_oauth.introspection import (
    DEFAULT_CACHE_SECONDS,
    EXPIRED,
    NOT_VALID,
    ProviderFault,
    cache_until,
    judge,
)

NOW = 1_800_000_000.0


def body(response: bytes) -> tuple[int, str]:
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), orjson.loads(payload)["error"]


def test_an_active_answer_gives_the_identity_and_exp():
    assert judge({"active": True, "sub": "alice", "exp": NOW + 5}, "", NOW) == ("alice", NOW + 5)
    assert judge({"active": True, "sub": "alice"}, "", NOW) == ("alice", None)
    assert judge({"active": True, "sub": "s", "user": {"name": "bob"}}, "user.name",
                 NOW) == ("bob", None)


def test_inactive_and_expired_answers_are_401():
    assert judge({"active": False}, "", NOW) is NOT_VALID
    assert body(NOT_VALID) == (401, "access token is not valid")
    assert judge({"active": True, "sub": "a", "exp": NOW}, "", NOW) is EXPIRED
    assert body(EXPIRED) == (401, "key not authorized: token has expired")


@pytest.mark.parametrize("answer", [
    {}, {"active": "true"}, {"active": 1}, {"active": None},
    {"active": True, "sub": "a", "exp": "soon"}, {"active": True, "sub": "a", "exp": True},
    {"active": True, "sub": "a", "exp": float("nan")},
])
def test_an_answer_breaking_rfc_7662_is_the_servers_fault_502(answer):
    with pytest.raises(ProviderFault) as caught:
        judge(answer, "", NOW)
    assert body(caught.value.response)[0] == 502


def test_no_identity_is_403_with_tyks_text():
    status, text = body(judge({"active": True}, "", NOW))
    assert (status, text) == (403, "no suitable claims for user ID were found")


@pytest.mark.parametrize(("exp", "timeout", "until"), [
    (NOW + 30, 0, NOW + 30),          # timeout 0: until exp
    (NOW + 30, 10, NOW + 10),         # the timeout is shorter
    (NOW + 30, 100, NOW + 30),        # exp is sooner
    (None, 10, NOW + 10),
    (None, 0, NOW + DEFAULT_CACHE_SECONDS),  # never forever
])
def test_an_answer_is_kept_until_exp_and_at_most_the_timeout(exp, timeout, until):
    assert cache_until(NOW, exp, timeout) == until
