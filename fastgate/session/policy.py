"""Applying policies to a session: Tyk's ``internal/policy`` ``Service.Apply``, rule for rule.

Theory of operation
-------------------
A key names policies in ``apply_policies`` (or the legacy ``apply_policy_id``
when that list is empty).  :func:`apply_policies` returns the *effective*
session: a copy of the key's session with the policies merged in, exactly as
Tyk computes it whenever it loads a key (Tyk 5.12+, which scopes policy ids
by organisation).

Lookup.  A policy is found when its id is in the policy map and its
``org_id`` equals the key's ``org_id`` -- or, for a key without one, the
API's org (``org_id=``).  With neither (a key without org handled outside a
request) the id alone finds the policy, as before Tyk 5.12 (5.12 would look
for a policy of org ``""``).  One policy id not found is an error
(``policy not found: "<id>"``); among several, a missing one is skipped.
With an API given, a found policy whose ``org_id`` is not the API's is an
error ("attempting to apply policy from different organisation to key,
skipping").  ``active`` is not looked at (Tyk's gateway ignores it);
``is_inactive`` on any applied policy makes the key inactive, and with
policies applied the key's own ``is_inactive`` no longer counts.

Clearing.  First, for each policy in order (stopping at the first one not
found), the key's own limits are zeroed: quota (``quota_max``,
``quota_remaining``) for a policy partitioned on quota, rate (``rate``,
``per``, ``smoothing``, ``throttle_*``) for one partitioned on rate limit,
``max_query_depth`` for complexity -- all three for a policy with no
partition (``per_api`` counts as none).  So a key's own limits survive only
policies partitioned on something else.

Merging (``partitions`` off: every part applies; on: only the parts set).
Per API of each policy's ``access_rights``:

* ``acl``: the API is granted; ``versions`` and ``allowed_urls`` are unions
  (an ``allowed_urls`` url seen again gains the new methods), first-seen
  order; ``disable_introspection`` sticks.  Only these ACL fields come from
  the policy (not ``api_name``/``api_id``), as in Tyk.
* ``quota``: ``quota_max`` is the largest (-1 = unlimited beats any number),
  ``quota_renewal_rate`` the largest -- on the API and on the session.
* ``rate_limit``: the rate that allows the most requests wins -- compared as
  the time between two requests, ``per/rate`` in whole nanoseconds, where a
  rate or per <= 0 counts as 0 (so -1 beats everything); a policy whose
  ``rate`` or ``per`` is 0 sets nothing.  ``throttle_interval`` and
  ``throttle_retry_limit``: the largest.  Per-endpoint limits merge by
  ``(method, path)``, the higher rate winning.
* ``complexity``: ``max_query_depth`` the largest (-1 beats any number).

A policy without ``access_rights`` sets the session's rate / quota / depth
(per its partitions) directly.  ``hmac_enabled`` and
``enable_http_signature_validation`` are or-ed in; ``tags`` are united;
``meta_data`` is overlaid (policy wins); ``last_updated`` takes the greatest
string.

``per_api`` policies give each API its own limit: the entry's ``limit`` when
set (its ``allowance_scope`` is then the API id), else the policy's limits
(scope: the policy id).  Two per-API policies on one API keep the higher
rate and quota.  ``per_api`` with another partition in one policy, or
per-API and partitioned policies on one key, are errors.

Finally the APIs granted by an ACL replace the key's ``access_rights``
(APIs only limited, never granted, are dropped); each entry's ``limit`` is
its merged limit, taking the session's value for any part no policy set for
that API.  When exactly one API got quota, rate and complexity from
policies, its limits are also the session's.  Policies applied but no API
granted: "key has no valid policies to be applied".  Without policies, the
session is returned as it was (entries with a ``limit`` get their API id as
``allowance_scope``).

fastgate differs: per-endpoint limits whose path contains ``:`` survive a
merge (Tyk's map key ``method:path`` drops them); results do not depend on
Go's random map order (tags keep first-seen order).  GraphQL and MCP access
fields (``restricted_types``, ``allowed_types``, ``field_access_rights``,
``json_rpc_*``, ``mcp_*``) are not merged: fastgate proxies neither.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

from fastgate.session.session import normalize_access_definition, zero_limit

__all__ = ["PolicyError", "apply_policies", "policy_ids"]

# Tyk's error texts (internal/policy/apply.go).
_MIXED = "cannot apply multiple policies when some have per_api set and some are partitioned"
_NO_VALID = "key has no valid policies to be applied"
_OTHER_ORG = "attempting to apply policy from different organisation to key, skipping"


class PolicyError(ValueError):
    """Policies that cannot be applied to a key, with Tyk's message.

    Tyk treats a key whose policies fail as not found: the auth-token
    middleware answers 403 "Access to this API has been disallowed", and
    ``POST /tyk/keys/create`` 500 "Failed to create key - <message>".
    ``policy_id`` names the policy at fault when there is one.
    """

    def __init__(self, message: str, policy_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.policy_id = policy_id

    def __reduce__(self) -> tuple[type[PolicyError], tuple[str, str]]:
        return (type(self), (self.message, self.policy_id))


def policy_ids(session: Mapping[str, Any]) -> list[str]:
    """The policies a session names: ``apply_policies``, else ``[apply_policy_id]``, else none."""
    listed = session.get("apply_policies") or []
    if listed:
        return list(listed)
    single = session.get("apply_policy_id") or ""
    return [single] if single else []


def _go_quote(text: str) -> str:
    """Go's ``%q`` for the ids in messages (the same as JSON for printable text)."""
    return json.dumps(text, ensure_ascii=False)


# --------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------


def _greater(first: int, second: int) -> bool:
    """Tyk's greaterThanInt64: -1 (unlimited) is greater than everything."""
    if first == -1:
        return True
    if second == -1:
        return False
    return first > second


def _interval_ns(rate: float, per: float) -> int:
    """Tyk's ``RateLimit.Duration``: nanoseconds between two requests; 0 when unlimited/unset."""
    if per <= 0 or rate <= 0:
        return 0
    return int(1e9 * per / rate)


def _limit_is_empty(limit: Mapping[str, Any]) -> bool:
    """Tyk's ``APILimit.IsEmpty`` (smoothing is not looked at)."""
    return not any(
        limit.get(name)
        for name in (
            "rate",
            "per",
            "throttle_interval",
            "throttle_retry_limit",
            "max_query_depth",
            "quota_max",
            "quota_renews",
            "quota_remaining",
            "quota_renewal_rate",
        )
    )


def _policy_limit(policy: Mapping[str, Any]) -> dict[str, Any]:
    """Tyk's ``Policy.APILimit``: the policy's own limits as a per-API limit."""
    limit = zero_limit()
    for name in (
        "rate",
        "per",
        "throttle_interval",
        "throttle_retry_limit",
        "max_query_depth",
        "quota_max",
        "quota_renewal_rate",
    ):
        limit[name] = policy.get(name) or 0
    if policy.get("smoothing") is not None:
        limit["smoothing"] = copy.deepcopy(policy["smoothing"])
    return limit


# --------------------------------------------------------------------------
# Per-endpoint rate limits: {"path", "methods": [{"name", "limit": {rate, per}}]}
# --------------------------------------------------------------------------


def _endpoint_map(endpoints: Any) -> dict[tuple[str, str], dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for endpoint in endpoints or ():
        for method in endpoint.get("methods") or ():
            out[(method.get("name") or "", endpoint.get("path") or "")] = method.get("limit") or {}
    return out


def _endpoint_list(mapped: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    by_path: dict[str, list[dict[str, Any]]] = {}
    for (name, path), limit in mapped.items():
        by_path.setdefault(path, []).append({"name": name, "limit": copy.deepcopy(limit)})
    return [
        {"path": path, "methods": sorted(methods, key=lambda m: str(m["name"]).upper())}
        for path, methods in sorted(by_path.items())
    ]


def _merge_endpoints(policy_endpoints: Any, current_endpoints: Any) -> list[dict[str, Any]]:
    """Tyk's ``ApplyEndpointLevelLimits``: per (method, path), the higher rate wins."""
    current = _endpoint_map(current_endpoints)
    if not current:
        return copy.deepcopy(list(policy_endpoints or []))
    result = _endpoint_map(policy_endpoints)
    if not result:
        return _endpoint_list(current)
    for key, current_limit in current.items():
        policy_limit = result.get(key)
        if policy_limit is None:
            result[key] = current_limit
            continue
        policy_ns = _interval_ns(policy_limit.get("rate") or 0, policy_limit.get("per") or 0)
        current_ns = _interval_ns(current_limit.get("rate") or 0, current_limit.get("per") or 0)
        if policy_ns > current_ns or (
            policy_ns == current_ns
            and (current_limit.get("rate") or 0) > (policy_limit.get("rate") or 0)
        ):
            result[key] = current_limit
    return _endpoint_list(result)


def _append_missing(dest: list[Any], items: Any) -> list[Any]:
    for item in items or ():
        if item not in dest:
            dest.append(item)
    return dest


def _merge_allowed_urls(first: Any, second: Any) -> list[dict[str, Any]]:
    """Tyk's ``MergeAllowedURLs``: one entry per url, methods united, first-seen order."""
    merged: dict[str, list[str]] = {}
    for rules in (first, second):
        for rule in rules or ():
            url = rule.get("url") or ""
            if url in merged:
                _append_missing(merged[url], rule.get("methods"))
            else:
                merged[url] = list(rule.get("methods") or [])
    return [{"url": url, "methods": methods} for url, methods in merged.items()]


# --------------------------------------------------------------------------
# Apply
# --------------------------------------------------------------------------


class _State:
    """What the policies applied so far did, per API id (Tyk's applyStatus)."""

    __slots__ = (
        "did_acl",
        "did_complexity",
        "did_partition",
        "did_per_api",
        "did_quota",
        "did_rate_limit",
        "rights",
        "set_by",
    )

    def __init__(self) -> None:
        self.rights: dict[str, dict[str, Any]] = {}
        self.set_by: dict[str, str] = {}  # Tyk's APILimit.SetBy, kept out of the JSON
        self.did_acl: dict[str, bool] = {}
        self.did_quota: dict[str, bool] = {}
        self.did_rate_limit: dict[str, bool] = {}
        self.did_complexity: dict[str, bool] = {}
        self.did_per_api = False
        self.did_partition = False


def _partitions(policy: Mapping[str, Any]) -> tuple[bool, bool, bool, bool, bool]:
    parts = policy.get("partitions") or {}
    return (
        bool(parts.get("quota")),
        bool(parts.get("rate_limit")),
        bool(parts.get("acl")),
        bool(parts.get("complexity")),
        bool(parts.get("per_api")),
    )


def _find(
    policies: Mapping[str, Mapping[str, Any]], policy_id: str, scope_org: str
) -> Mapping[str, Any] | None:
    policy = policies.get(policy_id)
    if policy is None or (scope_org and (policy.get("org_id") or "") != scope_org):
        return None
    return policy


def _clear_session(
    session: dict[str, Any],
    ids: list[str],
    policies: Mapping[str, Mapping[str, Any]],
    scope_org: str,
) -> None:
    """Tyk's ``ClearSession``: zero the key's own limits that the policies will set."""
    for policy_id in ids:
        policy = _find(policies, policy_id, scope_org)
        if policy is None:
            return  # Tyk stops at the first policy not found
        quota, rate_limit, acl, complexity, _ = _partitions(policy)
        every = not (quota or rate_limit or acl or complexity)
        if quota or every:
            session["quota_max"] = 0
            session["quota_remaining"] = 0
        if rate_limit or every:
            session["rate"] = 0
            session["per"] = 0
            session["smoothing"] = None
            session["throttle_retry_limit"] = 0
            session["throttle_interval"] = 0
        if complexity or every:
            session["max_query_depth"] = 0


def _apply_rate_limits(
    session: dict[str, Any], policy: Mapping[str, Any], api_limit: dict[str, Any]
) -> None:
    """Tyk's ``ApplyRateLimits``: raise the API's and the session's rate to the policy's."""
    rate = policy.get("rate") or 0
    per = policy.get("per") or 0
    if rate == 0 or per == 0:
        return
    policy_ns = _interval_ns(rate, per)
    smoothing = copy.deepcopy(policy.get("smoothing"))
    api_rate, api_per = api_limit.get("rate") or 0, api_limit.get("per") or 0
    if api_rate == 0 or api_per == 0 or _interval_ns(api_rate, api_per) > policy_ns:
        api_limit["rate"], api_limit["per"] = rate, per
        _put_smoothing(api_limit, smoothing)
    own_rate, own_per = session.get("rate") or 0, session.get("per") or 0
    if own_rate == 0 or own_per == 0 or _interval_ns(own_rate, own_per) > policy_ns:
        session["rate"], session["per"] = rate, per
        session["smoothing"] = copy.deepcopy(smoothing)


def _put_smoothing(limit: dict[str, Any], smoothing: Any) -> None:
    """Set an API limit's smoothing; absent when null, as Tyk writes it (omitempty)."""
    if smoothing is None:
        limit.pop("smoothing", None)
    else:
        limit["smoothing"] = copy.deepcopy(smoothing)


def _api_level_limits(
    new: dict[str, Any], new_scope: str, current: Mapping[str, Any], state: _State, api_id: str
) -> tuple[dict[str, Any], str]:
    """Tyk's ``applyAPILevelLimits``: merge a per-API entry with the one already there."""
    limit, current_limit = new["limit"], current["limit"]
    updated = False
    if _interval_ns(limit.get("rate") or 0, limit.get("per") or 0) > _interval_ns(
        current_limit.get("rate") or 0, current_limit.get("per") or 0
    ):
        limit["rate"], limit["per"] = current_limit.get("rate") or 0, current_limit.get("per") or 0
        _put_smoothing(limit, current_limit.get("smoothing"))
        updated = True
    current_quota = current_limit.get("quota_max") or 0
    if current_quota != (limit.get("quota_max") or 0) and _greater(
        current_quota, limit.get("quota_max") or 0
    ):
        limit["quota_max"] = current_quota
        updated = True
    if _greater(current_limit.get("quota_renewal_rate") or 0, limit.get("quota_renewal_rate") or 0):
        limit["quota_renewal_rate"] = current_limit.get("quota_renewal_rate") or 0
    if limit.get("quota_max") == -1:
        limit["quota_renewal_rate"] = 0
    if updated:
        new_scope = state.set_by.get(api_id, "")
        new["allowance_scope"] = current.get("allowance_scope") or ""
    endpoints = _merge_endpoints(new.get("endpoints"), current.get("endpoints"))
    _put_endpoints(new, endpoints)
    return new, new_scope


def _put_endpoints(access: dict[str, Any], endpoints: list[dict[str, Any]]) -> None:
    if endpoints:
        access["endpoints"] = endpoints
    else:
        access.pop("endpoints", None)


def _apply_per_api(
    policy_id: str,
    policy: Mapping[str, Any],
    session: dict[str, Any],
    state: _State,
) -> None:
    """Tyk's ``applyPerAPI``."""
    if state.did_partition:
        raise PolicyError(_MIXED, policy_id)
    own_rights = session.get("access_rights") or {}
    for api_id, raw in (policy.get("access_rights") or {}).items():
        access = normalize_access_definition(raw, f"access_rights.{api_id}")
        scope = api_id
        if _limit_is_empty(access["limit"]):
            scope = policy_id
            access["limit"] = _policy_limit(policy)
        access["allowance_scope"] = scope
        own = own_rights.get(api_id)
        if own is not None:
            own_limit = own.get("limit") or {}
            if not _limit_is_empty(own_limit):
                access["limit"]["quota_renews"] = own_limit.get("quota_renews") or 0
            if own.get("disable_introspection"):
                access["disable_introspection"] = True
        current = state.rights.get(api_id)
        if current is not None:
            access, scope = _api_level_limits(access, scope, current, state, api_id)
        state.rights[api_id] = access
        state.set_by[api_id] = scope
        state.did_acl[api_id] = True
        state.did_quota[api_id] = True
        state.did_rate_limit[api_id] = True
        state.did_complexity[api_id] = True
    if policy.get("access_rights"):
        state.did_per_api = True


def _empty_access() -> dict[str, Any]:
    return normalize_access_definition({}, "")


def _apply_partitions(
    policy_id: str,
    policy: Mapping[str, Any],
    session: dict[str, Any],
    state: _State,
) -> None:
    """Tyk's ``applyPartitions``."""
    quota, rate_limit, acl, complexity, _ = _partitions(policy)
    partitioned = quota or rate_limit or acl or complexity
    if partitioned and state.did_per_api:
        raise PolicyError(_MIXED, policy_id)
    policy_rights = policy.get("access_rights") or {}
    for api_id in policy_rights:
        if api_id not in state.rights:
            state.rights[api_id] = _empty_access()
    own_rights = session.get("access_rights") or {}
    for api_id, raw in policy_rights.items():
        given = normalize_access_definition(raw, f"access_rights.{api_id}")
        access = state.rights[api_id]
        limit = access["limit"]
        if not partitioned or acl:
            state.did_acl[api_id] = True
            if given.get("disable_introspection"):
                access["disable_introspection"] = True
            access["versions"] = _append_missing(access["versions"], given.get("versions"))
            access["allowed_urls"] = _merge_allowed_urls(
                access["allowed_urls"], given.get("allowed_urls")
            )
            state.set_by[api_id] = policy_id
        if not partitioned or quota:
            state.did_quota[api_id] = True
            quota_max = policy.get("quota_max") or 0
            if _greater(quota_max, limit["quota_max"]):
                limit["quota_max"] = quota_max
                if _greater(quota_max, session.get("quota_max") or 0):
                    session["quota_max"] = quota_max
            renewal = policy.get("quota_renewal_rate") or 0
            if renewal > limit["quota_renewal_rate"]:
                limit["quota_renewal_rate"] = renewal
                if renewal > (session.get("quota_renewal_rate") or 0):
                    session["quota_renewal_rate"] = renewal
        if not partitioned or rate_limit:
            state.did_rate_limit[api_id] = True
            _apply_rate_limits(session, policy, limit)
            _put_endpoints(
                access, _merge_endpoints(given.get("endpoints"), access.get("endpoints"))
            )
            retries = policy.get("throttle_retry_limit") or 0
            if retries > limit["throttle_retry_limit"]:
                limit["throttle_retry_limit"] = retries
                if retries > (session.get("throttle_retry_limit") or 0):
                    session["throttle_retry_limit"] = retries
            interval = policy.get("throttle_interval") or 0
            if interval > limit["throttle_interval"]:
                limit["throttle_interval"] = interval
                if interval > (session.get("throttle_interval") or 0):
                    session["throttle_interval"] = interval
        if not partitioned or complexity:
            state.did_complexity[api_id] = True
            depth = policy.get("max_query_depth") or 0
            if _greater(depth, limit["max_query_depth"]):
                limit["max_query_depth"] = depth
                if _greater(depth, session.get("max_query_depth") or 0):
                    session["max_query_depth"] = depth
        own = own_rights.get(api_id)
        if own is not None and not _limit_is_empty(own.get("limit") or {}):
            limit["quota_renews"] = (own.get("limit") or {}).get("quota_renews") or 0
    if not policy_rights:
        # A policy for every API: its limits become the session's.
        if not partitioned or rate_limit:
            session["rate"] = policy.get("rate") or 0
            session["per"] = policy.get("per") or 0
            session["smoothing"] = copy.deepcopy(policy.get("smoothing"))
            session["throttle_interval"] = policy.get("throttle_interval") or 0
            session["throttle_retry_limit"] = policy.get("throttle_retry_limit") or 0
        if not partitioned or complexity:
            session["max_query_depth"] = policy.get("max_query_depth") or 0
        if not partitioned or quota:
            session["quota_max"] = policy.get("quota_max") or 0
            session["quota_renewal_rate"] = policy.get("quota_renewal_rate") or 0
    if not session.get("hmac_enabled"):
        session["hmac_enabled"] = bool(policy.get("hmac_enabled"))
    if not session.get("enable_http_signature_validation"):
        session["enable_http_signature_validation"] = bool(
            policy.get("enable_http_signature_validation")
        )
    state.did_partition = partitioned


def apply_policies(
    session: Mapping[str, Any],
    policies: Mapping[str, Mapping[str, Any]],
    *,
    org_id: str | None = None,
) -> dict[str, Any]:
    """The effective session: a new dict with the session's policies merged in as Tyk does.

    ``session``: as returned by ``parse_session`` (missing fields count as
    zero).  ``policies``: id -> policy, as ``load_policies`` returns them (the
    map key is the policy id).  ``org_id``: the org of the API being served,
    or None outside a request (Tyk's BaseMiddleware without a spec); it is
    used to find the policies of a key without ``org_id`` and to refuse
    policies of another org.  The input is not modified.

    Raises PolicyError with Tyk's message; see the module docstring for the rules.
    """
    out = copy.deepcopy(dict(session))
    ids = policy_ids(out)
    scope_org = out.get("org_id") or org_id or ""
    if not isinstance(out.get("meta_data"), dict):
        out["meta_data"] = {}
    _clear_session(out, ids, policies, scope_org)

    state = _State()
    inactive = bool(out.get("is_inactive")) and not ids
    tags: list[str] = []
    for policy_id in ids:
        policy = _find(policies, policy_id, scope_org)
        if policy is None:
            if len(ids) > 1:
                continue
            raise PolicyError(f"policy not found: {_go_quote(policy_id)}", policy_id)
        if org_id is not None and (policy.get("org_id") or "") != org_id:
            raise PolicyError(_OTHER_ORG, policy_id)
        per_api = _partitions(policy)[4]
        if per_api and any(_partitions(policy)[:4]):
            raise PolicyError(
                f"cannot apply policy {policy_id} which has per_api and any of partitions set",
                policy_id,
            )
        if per_api:
            _apply_per_api(policy_id, policy, out, state)
        else:
            _apply_partitions(policy_id, policy, out, state)
        inactive = inactive or bool(policy.get("is_inactive"))
        _append_missing(tags, policy.get("tags"))
        out["meta_data"].update(copy.deepcopy(policy.get("meta_data") or {}))
        updated = policy.get("last_updated") or ""
        if updated > (out.get("last_updated") or ""):
            out["last_updated"] = updated
        if policy.get("post_expiry_action"):
            out["post_expiry_action"] = policy["post_expiry_action"]
        if policy.get("post_expiry_grace_period"):
            out["post_expiry_grace_period"] = policy["post_expiry_grace_period"]

    out["is_inactive"] = inactive
    out["tags"] = _append_missing(list(out.get("tags") or []), tags)

    if not ids:
        for api_id, access in (out.get("access_rights") or {}).items():
            if not _limit_is_empty(access.get("limit") or {}):
                access["allowance_scope"] = api_id
        return out

    _finish_rights(out, state)
    if state.did_acl:
        out["access_rights"] = state.rights
    if not state.rights:
        raise PolicyError(_NO_VALID)
    return out


def _finish_rights(session: dict[str, Any], state: _State) -> None:
    """Drop APIs no ACL granted; fill the parts no policy set from the session; root vars."""
    distinct_setters = {setter for setter in state.set_by.values() if setter}
    for api_id in list(state.rights):
        if not state.did_acl.get(api_id):
            del state.rights[api_id]
            continue
        access = state.rights[api_id]
        limit = access["limit"]
        if not state.did_rate_limit.get(api_id):
            limit["rate"] = session.get("rate") or 0
            limit["per"] = session.get("per") or 0
            _put_smoothing(limit, session.get("smoothing"))
            limit["throttle_interval"] = session.get("throttle_interval") or 0
            limit["throttle_retry_limit"] = session.get("throttle_retry_limit") or 0
            access.pop("endpoints", None)
        if not state.did_complexity.get(api_id):
            limit["max_query_depth"] = session.get("max_query_depth") or 0
        if not state.did_quota.get(api_id):
            limit["quota_max"] = session.get("quota_max") or 0
            limit["quota_renewal_rate"] = session.get("quota_renewal_rate") or 0
            limit["quota_renews"] = session.get("quota_renews") or 0
        setter = state.set_by.get(api_id, "")
        if len(distinct_setters) > 1 and not access["allowance_scope"] and setter:
            access["allowance_scope"] = setter

    # Tyk's updateSessionRootVars: one API limited by policies -> its limits are the session's.
    if (
        len(state.did_quota) == 1
        and len(state.did_rate_limit) == 1
        and len(state.did_complexity) == 1
    ):
        for access in state.rights.values():
            limit = access["limit"]
            session["rate"] = limit["rate"]
            session["per"] = limit["per"]
            session["smoothing"] = copy.deepcopy(limit.get("smoothing"))
            session["quota_max"] = limit["quota_max"]
            session["quota_renews"] = limit["quota_renews"]
            session["quota_renewal_rate"] = limit["quota_renewal_rate"]
            session["max_query_depth"] = limit["max_query_depth"]
