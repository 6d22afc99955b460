"""apply_policies: Tyk's merge rules (internal/policy/apply.go), table by table."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import pytest

from fastgate.session import PolicyError, apply_policies, parse_session


def endpoint(path: str, method: str, rate: float, per: float) -> dict[str, Any]:
    return {"path": path, "methods": [{"name": method, "limit": {"rate": rate, "per": per}}]}


# Policies as files give them: only what each case needs.
POLICIES: dict[str, dict[str, Any]] = {
    # non-partitioned: rate, quota and ACL at once
    "r10": {"rate": 10, "per": 1, "quota_max": 100, "access_rights": {"a": {}}},
    "r100": {"rate": 100, "per": 1, "quota_max": 1000, "access_rights": {"a": {}}},
    "r100-per-60": {"rate": 100, "per": 60, "access_rights": {"a": {}}},  # 1.67/s
    "r-unlimited": {"rate": -1, "per": 1, "quota_max": -1, "access_rights": {"a": {}}},
    "r0": {"rate": 0, "per": 1, "access_rights": {"a": {}}},
    "r0-a-b": {"rate": 0, "per": 1, "access_rights": {"a": {}, "b": {}}},
    "renew-60": {"quota_max": 5, "quota_renewal_rate": 60, "access_rights": {"a": {}}},
    "renew-3600": {"quota_max": 5, "quota_renewal_rate": 3600, "access_rights": {"a": {}}},
    "throttle": {
        "throttle_interval": 9,
        "throttle_retry_limit": 99,
        "max_query_depth": 4,
        "access_rights": {"a": {}},
    },
    # partitioned
    "acl-a": {"access_rights": {"a": {}}, "partitions": {"acl": True}},
    "acl-b": {"access_rights": {"b": {}}, "partitions": {"acl": True}},
    "acl-a-b": {"access_rights": {"a": {}, "b": {}}, "partitions": {"acl": True}},
    "quota-a": {"quota_max": 50, "access_rights": {"a": {}}, "partitions": {"quota": True}},
    "quota-unlimited-a": {
        "quota_max": -1,
        "quota_renewal_rate": 60,
        "access_rights": {"a": {}},
        "partitions": {"quota": True},
    },
    "rate-a": {"rate": 7, "per": 1, "access_rights": {"a": {}}, "partitions": {"rate_limit": True}},
    "rate-b": {"rate": 3, "per": 1, "access_rights": {"b": {}}, "partitions": {"rate_limit": True}},
    "rate-a-b": {
        "rate": 4,
        "per": 1,
        "access_rights": {"a": {}, "b": {}},
        "partitions": {"rate_limit": True},
    },
    "depth-a": {
        "max_query_depth": 3,
        "access_rights": {"a": {}},
        "partitions": {"complexity": True},
    },
    "quota-rate-a": {
        "rate": 9,
        "per": 1,
        "quota_max": 90,
        "access_rights": {"a": {}},
        "partitions": {"quota": True, "rate_limit": True, "acl": True},
    },
    "rate-everything": {"rate": 4, "per": 4, "partitions": {"acl": True, "rate_limit": True}},
    # ACL merging
    "urls-1": {
        "access_rights": {
            "a": {
                "versions": ["v1"],
                "allowed_urls": [{"url": "/users", "methods": ["GET"]}],
            }
        }
    },
    "urls-2": {
        "access_rights": {
            "a": {
                "versions": ["v2", "v1"],
                "allowed_urls": [
                    {"url": "/users", "methods": ["POST", "GET"]},
                    {"url": "/orders", "methods": ["GET"]},
                ],
            }
        }
    },
    "named": {
        "access_rights": {"a": {"api_id": "a", "api_name": "A API", "versions": ["Default"]}}
    },
    # per API
    "per-api": {
        "partitions": {"per_api": True},
        "rate": 300,
        "per": 1,
        "quota_max": -1,
        "access_rights": {
            "c": {"limit": {"rate": 20, "per": 1, "quota_max": 1000, "quota_renewal_rate": 3600}},
            "d": {},
        },
    },
    "per-api-c-fast": {
        "partitions": {"per_api": True},
        "access_rights": {"c": {"limit": {"rate": 50, "per": 1, "quota_max": 10}}},
    },
    "per-api-c-slow": {
        "partitions": {"per_api": True},
        "access_rights": {"c": {"limit": {"rate": 5, "per": 1, "quota_max": -1}}},
    },
    "per-api-c-default-slow": {
        "partitions": {"per_api": True},
        "rate": 5,
        "per": 1,
        "access_rights": {"c": {}},
    },
    "per-api-c-default-fast": {
        "partitions": {"per_api": True},
        "rate": 500,
        "per": 1,
        "quota_max": -1,
        "access_rights": {"c": {}},
    },
    "per-api-and-acl": {
        "partitions": {"per_api": True, "acl": True},
        "access_rights": {"c": {}},
    },
    # per-endpoint rate limits
    "ep-1": {"access_rights": {"a": {"endpoints": [endpoint("/get", "GET", 10, 60)]}}},
    "ep-2": {
        "access_rights": {
            "a": {
                "endpoints": [
                    endpoint("/post", "POST", 1, 1),
                    endpoint("/get", "GET", 20, 60),
                ]
            }
        }
    },
    "ep-3": {"access_rights": {"a": {"endpoints": [endpoint("/get", "GET", -1, 0)]}}},
    "ep-5-per-30": {"access_rights": {"a": {"endpoints": [endpoint("/get", "GET", 5, 30)]}}},
    "ep-colon": {"access_rights": {"a": {"endpoints": [endpoint("/a:b", "GET", 1, 1)]}}},
    "ep-acl-only": {
        "partitions": {"acl": True},
        "access_rights": {"a": {"endpoints": [endpoint("/get", "GET", 10, 60)]}},
    },
    # other fields
    "tags-meta": {
        "access_rights": {"a": {}},
        "tags": ["gold", "shared"],
        "meta_data": {"tier": "gold", "from": "tags-meta"},
        "last_updated": "1710000000",
        "hmac_enabled": True,
    },
    "tags-meta-2": {
        "access_rights": {"a": {}},
        "tags": ["shared", "silver"],
        "meta_data": {"from": "tags-meta-2"},
        "last_updated": "1700000000",
    },
    "inactive": {"access_rights": {"a": {}}, "is_inactive": True},
    "switched-off": {"access_rights": {"a": {}}, "active": False},
    "master": {"rate": 50, "per": 1, "quota_max": 500, "quota_renewal_rate": 60},
    "org1": {"org_id": "org1", "access_rights": {"a": {}}},
    "org2": {"org_id": "org2", "access_rights": {"b": {}}},
    "expiry": {
        "access_rights": {"a": {}},
        "post_expiry_action": "delete",
        "post_expiry_grace_period": 30,
    },
}
for _pid, _policy in POLICIES.items():
    _policy["id"] = _pid


def apply(ids: list[str], org_id: str | None = None, **session: Any) -> dict[str, Any]:
    return apply_policies(
        parse_session({**session, "apply_policies": ids}), POLICIES, org_id=org_id
    )


def limit_of(effective: dict[str, Any], api_id: str) -> dict[str, Any]:
    return {k: v for k, v in effective["access_rights"][api_id]["limit"].items() if v}


# --------------------------------------------------------------------------
# Rates: the one allowing the most requests wins, whatever the order
# --------------------------------------------------------------------------

RATES: list[tuple[list[str], dict[str, Any], tuple[float, float]]] = [
    # (policies, key's own fields, (rate, per) of the effective session)
    (["r10"], {}, (10, 1)),
    (["r10", "r100"], {}, (100, 1)),
    (["r100", "r10"], {}, (100, 1)),
    (["r10", "r100-per-60"], {}, (10, 1)),  # 10/s beats 100/min
    (["r100-per-60", "r10"], {}, (10, 1)),
    (["r100", "r-unlimited"], {}, (-1, 1)),  # -1 beats any number
    (["r-unlimited", "r100"], {}, (-1, 1)),
    (["r0"], {}, (0, 0)),  # rate 0 sets nothing (and the key's own was cleared)
    (["r0", "r10"], {}, (10, 1)),
    (["r10"], {"rate": 1000, "per": 1}, (10, 1)),  # a policy's rate replaces the key's
    # a rate-partitioned policy replaces the key's rate; a quota one keeps it
    (["rate-a", "acl-a"], {"rate": 1000, "per": 1}, (7, 1)),
    (["quota-a", "acl-a"], {"rate": 1000, "per": 1}, (1000, 1)),
    (["rate-a", "rate-a-b", "acl-a-b"], {}, (7, 1)),
    (["rate-everything", "acl-a"], {}, (4, 4)),  # no access rights: sets the session's
]


@pytest.mark.parametrize(("ids", "own", "expected"), RATES, ids=[str(r[:2]) for r in RATES])
def test_rates(ids: list[str], own: dict[str, Any], expected: tuple[float, float]) -> None:
    effective = apply(ids, **own)
    assert (effective["rate"], effective["per"]) == expected


def test_rate_of_each_api_is_its_best_policy_rate() -> None:
    effective = apply(["acl-a-b", "rate-a", "rate-b", "rate-a-b"])
    assert limit_of(effective, "a") == {"rate": 7, "per": 1}
    assert limit_of(effective, "b") == {"rate": 4, "per": 1}


# --------------------------------------------------------------------------
# Quotas: the largest wins, -1 beats everything
# --------------------------------------------------------------------------

QUOTAS: list[tuple[list[str], dict[str, Any], tuple[int, int]]] = [
    # (policies, key's own fields, (quota_max, quota_renewal_rate))
    (["r10"], {}, (100, 0)),
    (["r10", "r100"], {}, (1000, 0)),
    (["r100", "r10"], {}, (1000, 0)),
    (["r100", "r-unlimited"], {}, (-1, 0)),
    (["r-unlimited", "r100"], {}, (-1, 0)),
    (["renew-60", "renew-3600"], {}, (5, 3600)),
    (["renew-3600", "renew-60"], {}, (5, 3600)),
    (["r10"], {"quota_max": 9999}, (100, 0)),  # cleared, then the policy's
    (["quota-a", "acl-a"], {"quota_max": 9999}, (50, 0)),
    (["rate-a", "acl-a"], {"quota_max": 9999, "quota_renewal_rate": 60}, (9999, 60)),
    (["quota-unlimited-a", "quota-a", "acl-a"], {}, (-1, 60)),
    (["quota-a", "quota-unlimited-a", "acl-a"], {}, (-1, 60)),
]


@pytest.mark.parametrize(("ids", "own", "expected"), QUOTAS, ids=[str(q[:2]) for q in QUOTAS])
def test_quotas(ids: list[str], own: dict[str, Any], expected: tuple[int, int]) -> None:
    effective = apply(ids, **own)
    assert (effective["quota_max"], effective["quota_renewal_rate"]) == expected


def test_clearing_stops_at_the_first_missing_policy() -> None:
    # Tyk's ClearSession returns at the first policy not found: the policies after
    # it do not clear the key's own limits (r0-a-b sets no rate of its own)
    assert apply(["r0-a-b"], rate=1000, per=1)["rate"] == 0
    assert apply(["r0-a-b", "nope"], rate=1000, per=1)["rate"] == 0
    assert apply(["nope", "r0-a-b"], rate=1000, per=1)["rate"] == 1000


def test_throttle_and_complexity_take_the_largest() -> None:
    effective = apply(["r10", "throttle"])
    assert (effective["throttle_interval"], effective["throttle_retry_limit"]) == (9, 99)
    assert effective["max_query_depth"] == 4
    assert apply(["depth-a", "acl-a"])["max_query_depth"] == 3


# --------------------------------------------------------------------------
# Partitions
# --------------------------------------------------------------------------

PARTITIONS: list[tuple[list[str], dict[str, Any], dict[str, dict[str, Any]]]] = [
    # (policies, key's own fields, expected non-zero limit per API granted)
    (["acl-a"], {}, {"a": {}}),
    (["acl-a", "acl-b"], {}, {"a": {}, "b": {}}),
    # ACL only: the API's limits are the key's own
    (
        ["acl-a"],
        {"rate": 5, "per": 2, "quota_max": 8, "quota_renewal_rate": 60},
        {"a": {"rate": 5, "per": 2, "quota_max": 8, "quota_renewal_rate": 60}},
    ),
    # quota alone grants nothing; with an ACL, the quota lands on that API
    (["quota-a", "acl-a"], {}, {"a": {"quota_max": 50}}),
    (["acl-a", "quota-a"], {"rate": 2, "per": 1}, {"a": {"quota_max": 50, "rate": 2, "per": 1}}),
    # rate for a and b, ACL for a only: b is not granted
    (["acl-a", "rate-a-b"], {}, {"a": {"rate": 4, "per": 1}}),
    (["acl-a-b", "rate-a", "rate-b"], {}, {"a": {"rate": 7, "per": 1}, "b": {"rate": 3, "per": 1}}),
    (["quota-rate-a"], {}, {"a": {"rate": 9, "per": 1, "quota_max": 90}}),
    # b got only an ACL: its limits are the session's, which quota-rate-a raised
    (
        ["quota-rate-a", "acl-b"],
        {},
        {"a": {"rate": 9, "per": 1, "quota_max": 90}, "b": {"rate": 9, "per": 1, "quota_max": 90}},
    ),
    (["depth-a", "acl-a"], {}, {"a": {"max_query_depth": 3}}),
    # a non-partitioned policy and a partitioned one mix
    (["r10", "quota-a"], {}, {"a": {"rate": 10, "per": 1, "quota_max": 100}}),
]


@pytest.mark.parametrize(
    ("ids", "own", "expected"), PARTITIONS, ids=[str(p[:2]) for p in PARTITIONS]
)
def test_partitions(
    ids: list[str], own: dict[str, Any], expected: dict[str, dict[str, Any]]
) -> None:
    effective = apply(ids, **own)
    assert sorted(effective["access_rights"]) == sorted(expected)
    for api_id, limit in expected.items():
        assert limit_of(effective, api_id) == limit


def test_quota_only_policies_grant_nothing() -> None:
    with pytest.raises(PolicyError, match=r"^key has no valid policies to be applied$"):
        apply(["quota-a"])


def test_policy_acl_replaces_the_keys_own_access_rights() -> None:
    own: dict[str, Any] = {"access_rights": {"z": {"api_id": "z", "versions": ["Default"]}}}
    assert list(apply(["acl-a"], **own)["access_rights"]) == ["a"]
    assert list(apply(["rate-a", "acl-a"], **own)["access_rights"]) == ["a"]
    # policies that grant no API refuse the key, even one with access rights of its own
    with pytest.raises(PolicyError, match=r"^key has no valid policies to be applied$"):
        apply(["rate-a"], **own)


def test_one_api_limited_by_policies_gives_the_session_its_limits() -> None:
    effective = apply(["quota-rate-a"], rate=1, per=1)
    assert (effective["rate"], effective["per"], effective["quota_max"]) == (9, 1, 90)


def test_quota_renews_of_the_keys_api_entry_is_kept() -> None:
    own: dict[str, Any] = {
        "access_rights": {"a": {"limit": {"quota_max": 1, "quota_renews": 1710000000}}}
    }
    assert apply(["r10"], **own)["access_rights"]["a"]["limit"]["quota_renews"] == 1710000000


# --------------------------------------------------------------------------
# ACL merging
# --------------------------------------------------------------------------


def test_versions_and_allowed_urls_are_united_in_first_seen_order() -> None:
    access = apply(["urls-1", "urls-2"])["access_rights"]["a"]
    assert access["versions"] == ["v1", "v2"]
    assert access["allowed_urls"] == [
        {"url": "/users", "methods": ["GET", "POST"]},
        {"url": "/orders", "methods": ["GET"]},
    ]
    access = apply(["urls-2", "urls-1"])["access_rights"]["a"]
    assert access["versions"] == ["v2", "v1"]
    assert access["allowed_urls"] == [
        {"url": "/users", "methods": ["POST", "GET"]},
        {"url": "/orders", "methods": ["GET"]},
    ]


def test_a_policy_without_url_rules_does_not_lift_the_others() -> None:
    # Tyk unites the lists: an empty list adds nothing (it does not mean "all paths")
    access = apply(["urls-1", "r10"])["access_rights"]["a"]
    assert access["allowed_urls"] == [{"url": "/users", "methods": ["GET"]}]


def test_acl_entries_take_only_acl_fields_from_the_policy() -> None:
    access = apply(["named"])["access_rights"]["a"]
    assert access["versions"] == ["Default"]
    assert (access["api_id"], access["api_name"]) == ("", "")


def test_several_acl_policies_scope_allowances_by_policy() -> None:
    effective = apply(["acl-a", "acl-b"])
    assert effective["access_rights"]["a"]["allowance_scope"] == "acl-a"
    assert effective["access_rights"]["b"]["allowance_scope"] == "acl-b"
    # one policy: one shared allowance
    assert apply(["acl-a-b"])["access_rights"]["a"]["allowance_scope"] == ""


# --------------------------------------------------------------------------
# Per-endpoint rate limits
# --------------------------------------------------------------------------

ENDPOINTS: list[tuple[list[str], list[dict[str, Any]] | None]] = [
    # (policies, endpoints of API a: sorted by path, the higher rate winning)
    (["ep-1"], [endpoint("/get", "GET", 10, 60)]),
    (["ep-1", "ep-2"], [endpoint("/get", "GET", 20, 60), endpoint("/post", "POST", 1, 1)]),
    (["ep-2", "ep-1"], [endpoint("/get", "GET", 20, 60), endpoint("/post", "POST", 1, 1)]),
    (["ep-1", "ep-3"], [endpoint("/get", "GET", -1, 0)]),  # -1: unlimited
    (["ep-3", "ep-1"], [endpoint("/get", "GET", -1, 0)]),
    # the same interval (6 s): the higher rate wins
    (["ep-1", "ep-5-per-30"], [endpoint("/get", "GET", 10, 60)]),
    (["ep-5-per-30", "ep-1"], [endpoint("/get", "GET", 10, 60)]),
    (["ep-1", "ep-colon"], [endpoint("/a:b", "GET", 1, 1), endpoint("/get", "GET", 10, 60)]),
    # endpoint limits need the rate-limit part of a policy
    (["ep-acl-only"], None),
]


@pytest.mark.parametrize(("ids", "expected"), ENDPOINTS, ids=[str(e[0]) for e in ENDPOINTS])
def test_endpoint_limits(ids: list[str], expected: list[dict[str, Any]] | None) -> None:
    assert apply(ids)["access_rights"]["a"].get("endpoints") == expected


# --------------------------------------------------------------------------
# Per API
# --------------------------------------------------------------------------


def test_per_api_limits_and_scopes() -> None:
    effective = apply(["per-api"])
    c, d = effective["access_rights"]["c"], effective["access_rights"]["d"]
    assert limit_of(effective, "c") == {
        "rate": 20,
        "per": 1,
        "quota_max": 1000,
        "quota_renewal_rate": 3600,
    }
    assert c["allowance_scope"] == "c"
    # no limit of its own: the policy's limits, scoped by the policy
    assert limit_of(effective, "d") == {"rate": 300, "per": 1, "quota_max": -1}
    assert d["allowance_scope"] == "per-api"


@pytest.mark.parametrize(
    "ids",
    [["per-api-c-fast", "per-api-c-slow"], ["per-api-c-slow", "per-api-c-fast"]],
)
def test_two_per_api_policies_on_one_api_keep_the_best(ids: list[str]) -> None:
    assert limit_of(apply(ids), "c") == {"rate": 50, "per": 1, "quota_max": -1}


PER_API_SCOPES: list[tuple[list[str], dict[str, Any], str]] = [
    # (policies, limit of API c, its allowance_scope)
    # the API's own limit is kept (faster), and with it its scope
    (["per-api-c-fast", "per-api-c-default-slow"], {"rate": 50, "per": 1, "quota_max": 10}, "c"),
    (["per-api-c-default-slow", "per-api-c-fast"], {"rate": 50, "per": 1, "quota_max": 10}, "c"),
    # the policy-wide limit wins on rate and quota: the scope is that policy's
    (
        ["per-api-c-fast", "per-api-c-default-fast"],
        {"rate": 500, "per": 1, "quota_max": -1},
        "per-api-c-default-fast",
    ),
]


@pytest.mark.parametrize(("ids", "limit", "scope"), PER_API_SCOPES)
def test_per_api_merge_keeps_the_scope_of_the_winner(
    ids: list[str], limit: dict[str, Any], scope: str
) -> None:
    effective = apply(ids)
    assert limit_of(effective, "c") == limit
    assert effective["access_rights"]["c"]["allowance_scope"] == scope


PER_API_ERRORS = [
    (["per-api-and-acl"], "cannot apply policy per-api-and-acl which has per_api and any of"),
    (["per-api", "quota-a"], "cannot apply multiple policies when some have per_api set and"),
    (["rate-a", "per-api"], "cannot apply multiple policies when some have per_api set and"),
]


@pytest.mark.parametrize(("ids", "message"), PER_API_ERRORS)
def test_per_api_errors(ids: list[str], message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        apply(ids)
    assert str(caught.value).startswith(message)


def test_per_api_then_non_partitioned_policy_is_allowed() -> None:
    effective = apply(["per-api", "r10"])
    assert sorted(effective["access_rights"]) == ["a", "c", "d"]


# --------------------------------------------------------------------------
# Missing policies, organisations, inactive policies
# --------------------------------------------------------------------------


def test_one_missing_policy_is_an_error() -> None:
    with pytest.raises(PolicyError) as caught:
        apply(["nope"])
    assert str(caught.value) == 'policy not found: "nope"'
    assert caught.value.policy_id == "nope"
    again = pickle.loads(pickle.dumps(caught.value))
    assert (str(again), again.policy_id) == ('policy not found: "nope"', "nope")


def test_a_missing_policy_among_several_is_skipped() -> None:
    assert list(apply(["nope", "acl-a"])["access_rights"]) == ["a"]


def test_all_missing_among_several_is_no_valid_policy() -> None:
    with pytest.raises(PolicyError, match=r"^key has no valid policies to be applied$"):
        apply(["nope", "nada"])


def test_legacy_apply_policy_id() -> None:
    effective = apply_policies(parse_session({"apply_policy_id": "r10"}), POLICIES)
    assert effective["rate"] == 10
    # apply_policies wins when both are set
    both = parse_session({"apply_policy_id": "r10", "apply_policies": ["r100"]})
    assert apply_policies(both, POLICIES)["rate"] == 100


ORGS: list[tuple[list[str], str, str | None, str]] = [
    # (policies, key's org_id, API's org (None: no API), expected: APIs granted or error)
    (["org1"], "org1", None, "a"),
    (["org1"], "org1", "org1", "a"),
    (["org1"], "", "org1", "a"),  # a key without org takes the API's
    (["org1"], "", None, "a"),  # no org anywhere: found by id
    (["org1"], "org2", None, 'policy not found: "org1"'),  # another org's policy
    (["org1"], "", "org2", 'policy not found: "org1"'),
    (["org1", "org2"], "org1", None, "a"),  # the other org's is skipped
    (["acl-a"], "org1", None, 'policy not found: "acl-a"'),  # a policy of no org
    # the key's org finds the policy, but the API is another org's
    (["org2"], "org2", "org1", "attempting to apply policy from different organisation"),
]


@pytest.mark.parametrize(("ids", "key_org", "api_org", "expected"), ORGS)
def test_organisations(ids: list[str], key_org: str, api_org: str | None, expected: str) -> None:
    session = parse_session({"apply_policies": ids, "org_id": key_org})
    if len(expected) == 1:
        assert list(apply_policies(session, POLICIES, org_id=api_org)["access_rights"]) == [
            expected
        ]
    else:
        with pytest.raises(PolicyError) as caught:
            apply_policies(session, POLICIES, org_id=api_org)
        assert str(caught.value).startswith(expected)


INACTIVE: list[tuple[list[str], bool, bool]] = [
    # (policies, key's is_inactive, effective is_inactive)
    (["inactive"], False, True),
    (["acl-a", "inactive"], False, True),
    (["acl-a"], True, False),  # with policies, only theirs count
    ([], True, True),
    ([], False, False),
    (["switched-off"], False, False),  # "active" is not read by Tyk's gateway
]


@pytest.mark.parametrize(("ids", "own", "expected"), INACTIVE)
def test_inactive(ids: list[str], own: bool, expected: bool) -> None:
    assert apply(ids, is_inactive=own)["is_inactive"] is expected


def test_a_policy_for_every_api_alone_grants_nothing() -> None:
    # Tyk 5.5+: a key whose policies grant no API is refused
    with pytest.raises(PolicyError, match=r"^key has no valid policies to be applied$"):
        apply(["master"])
    effective = apply(["master", "acl-a"])
    assert (effective["rate"], effective["quota_max"], effective["quota_renewal_rate"]) == (
        50,
        500,
        60,
    )
    assert limit_of(effective, "a") == {
        "rate": 50,
        "per": 1,
        "quota_max": 500,
        "quota_renewal_rate": 60,
    }


# --------------------------------------------------------------------------
# Everything else a policy carries
# --------------------------------------------------------------------------


def test_tags_meta_data_last_updated_and_flags() -> None:
    effective = apply(
        ["tags-meta", "tags-meta-2"],
        tags=["own", "shared"],
        meta_data={"own": 1, "tier": "bronze"},
        last_updated="1600000000",
    )
    assert effective["tags"] == ["own", "shared", "gold", "silver"]
    assert effective["meta_data"] == {"own": 1, "tier": "gold", "from": "tags-meta-2"}
    assert effective["last_updated"] == "1710000000"
    assert effective["hmac_enabled"] is True
    # last_updated compares as strings, as Tyk does
    assert apply(["tags-meta"], last_updated="9")["last_updated"] == "9"


def test_post_expiry_fields_come_from_the_policy() -> None:
    effective = apply(["expiry"])
    assert (effective["post_expiry_action"], effective["post_expiry_grace_period"]) == (
        "delete",
        30,
    )


# --------------------------------------------------------------------------
# Without policies; purity
# --------------------------------------------------------------------------


def test_without_policies_the_session_is_kept() -> None:
    own = parse_session(
        {
            "rate": 5,
            "per": 1,
            "quota_max": 10,
            "access_rights": {
                "x": {"versions": ["Default"]},
                "y": {"limit": {"rate": 1, "per": 1}},
            },
        }
    )
    effective = apply_policies(own, POLICIES)
    expected = copy.deepcopy(own)
    expected["access_rights"]["y"]["allowance_scope"] = "y"  # limited APIs get their own scope
    assert effective == expected


def test_the_input_is_not_modified() -> None:
    own = parse_session(
        {
            "apply_policies": ["urls-1", "urls-2", "per-api-c-fast", "tags-meta"],
            "rate": 3,
            "tags": ["t"],
            "meta_data": {"m": [1]},
            "access_rights": {"a": {"limit": {"quota_max": 1, "quota_renews": 5}}},
        }
    )
    own["apply_policies"] = ["urls-1", "urls-2", "tags-meta"]
    before = copy.deepcopy(own)
    policies_before = copy.deepcopy(POLICIES)
    effective = apply_policies(own, POLICIES)
    effective["access_rights"]["a"]["allowed_urls"][0]["methods"].append("DELETE")
    effective["meta_data"]["m"].append(2)
    effective["tags"].append("x")
    assert own == before
    assert policies_before == POLICIES


def test_minimal_dicts_are_accepted() -> None:
    effective = apply_policies({"apply_policies": ["r10"]}, POLICIES)
    assert (effective["rate"], effective["quota_max"]) == (10, 100)
    assert list(effective["access_rights"]) == ["a"]
