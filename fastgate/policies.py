"""Policies from files: Tyk's ``policies.policy_record_name`` and ``policies.policy_path``.

* ``policy_record_name``: one JSON object mapping policy id → policy.  As in
  Tyk, the map key is the policy's id (it overrides an ``id`` field).
* ``policy_path``: a directory; every ``*.json`` file in it holds one policy
  whose id is its ``id`` field, else its ``_id`` field, else the file name
  without ``.json``.  Two files with the same id are an error naming both.
* Both set: ``policy_path`` wins, as in Tyk (the config loader reports
  ``policy_record_name`` as ignored).  Neither set: no policies.

Each policy is validated shallowly (field types; see :func:`validate_policy`)
and returned as a new dict with ``id`` set to its id; merging and applying
policies to sessions lives with the sessions.
"""

from __future__ import annotations

import os
from typing import Any

from fastgate.config import ConfigError, FieldReader, PoliciesConfig, json_type_name, load_json_file
from fastgate.session.session import (
    POST_EXPIRY_ACTIONS,
    SessionError,
    normalize_access_definition,
)

__all__ = ["load_policies", "validate_policy"]

# Fields whose presence marks an object as a policy (used to recognise a
# policy map put where a single policy is expected).
_POLICY_FIELDS = frozenset(
    {
        "id",
        "_id",
        "name",
        "org_id",
        "rate",
        "per",
        "quota_max",
        "quota_renewal_rate",
        "access_rights",
        "partitions",
        "active",
        "is_inactive",
        "tags",
        "key_expires_in",
        "meta_data",
    }
)


def load_policies(cfg: PoliciesConfig, config_file: str) -> dict[str, dict[str, Any]]:
    """Load the policies the configuration points at, keyed by policy id.

    ``config_file`` is named when a configured file or directory cannot be
    read.  Raises ConfigError naming the file (and field) at fault.
    """
    if cfg.policy_source != "file":
        raise ConfigError(
            config_file,
            "policies.policy_source",
            f'only "file" is supported; got {cfg.policy_source!r}',
        )
    if cfg.policy_path is not None:
        return _load_directory(cfg.policy_path, config_file)
    if cfg.policy_record_name is not None:
        return _load_record_file(cfg.policy_record_name, config_file)
    return {}


def _load_record_file(path: str, config_file: str) -> dict[str, dict[str, Any]]:
    if not os.path.isfile(path):
        raise ConfigError(
            config_file, "policies.policy_record_name", f"{path} does not exist or is not a file"
        )
    data = load_json_file(path)
    if not isinstance(data, dict):
        raise ConfigError(
            path,
            "",
            f"expected a JSON object mapping policy id to policy, got {json_type_name(data)}",
        )
    policies: dict[str, dict[str, Any]] = {}
    for policy_id, policy in data.items():
        if not policy_id:
            raise ConfigError(path, '""', "a policy id must not be empty")
        checked = validate_policy(policy, path, f"{policy_id}.")
        checked["id"] = policy_id
        policies[policy_id] = checked
    return policies


def _load_directory(directory: str, config_file: str) -> dict[str, dict[str, Any]]:
    try:
        names = sorted(os.listdir(directory))
    except OSError as exc:
        raise ConfigError(
            config_file,
            "policies.policy_path",
            f"cannot read the directory {directory}: {exc.strerror or exc}",
        ) from None
    policies: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for file_name in names:
        path = os.path.join(directory, file_name)
        if not file_name.endswith(".json") or file_name.startswith("."):
            continue
        if not os.path.isfile(path):
            continue
        data = load_json_file(path)
        if (
            isinstance(data, dict)
            and data
            and not _POLICY_FIELDS.intersection(data)
            and all(isinstance(v, dict) for v in data.values())
        ):
            raise ConfigError(
                path,
                "",
                "this looks like a map of policies (the policy_record_name format);"
                " each file under policy_path holds one policy",
            )
        checked = validate_policy(data, path, "")
        policy_id = _policy_id(checked, path, file_name)
        other = sources.get(policy_id)
        if other is not None:
            raise ConfigError(path, "id", f"policy id {policy_id!r} is also used by {other}")
        checked["id"] = policy_id
        policies[policy_id] = checked
        sources[policy_id] = path
    return policies


def _policy_id(policy: dict[str, Any], path: str, file_name: str) -> str:
    for name in ("id", "_id"):
        value = policy.get(name)
        if value:
            assert isinstance(value, str)  # validate_policy checked the type
            return value
    return file_name[: -len(".json")]


def validate_policy(policy: object, file: str, prefix: str) -> dict[str, Any]:
    """Check the shape of one Tyk policy object; return a shallow copy of it.

    Field types (``rate`` a number, ``quota_max`` an integer,
    ``access_rights`` an object of objects, ...; ``null`` counts as absent),
    limits -1 (unlimited) or at least 0, ``allowed_urls`` patterns that
    compile (see :mod:`fastgate.session.access`), and access entries as a
    session's (:func:`fastgate.session.session.normalize_access_definition`).
    What ``apply_policies`` reads is checked; unknown fields are kept.
    Raises ConfigError(file, '<prefix><field>', ...).
    """
    if not isinstance(policy, dict):
        field = prefix[:-1] if prefix else ""
        what = f"expected a policy object, got {json_type_name(policy)}"
        raise ConfigError(file, field, what)
    reader = FieldReader(policy, file, prefix)
    for name in ("id", "_id", "name", "org_id", "last_updated"):
        reader.string(name)
    for name in ("rate", "per", "throttle_interval"):
        _limit(reader, name, reader.number(name))
    for name in ("quota_max", "quota_renewal_rate", "throttle_retry_limit", "max_query_depth"):
        _limit(reader, name, reader.integer(name))
    reader.integer("key_expires_in")
    reader.string("post_expiry_action", choices=POST_EXPIRY_ACTIONS)
    reader.integer("post_expiry_grace_period", minimum=-1)
    reader.obj_field("smoothing")
    for name in ("active", "is_inactive", "hmac_enabled", "enable_http_signature_validation"):
        reader.boolean(name)
    reader.string_list("tags")
    reader.obj_field("meta_data")
    partitions = reader.section("partitions")
    for name in ("quota", "rate_limit", "acl", "per_api", "complexity"):
        partitions.boolean(name)
    access_rights = reader.obj_field("access_rights")
    for api_id, access in (access_rights or {}).items():
        _validate_access(access, FieldReader({}, file, f"{prefix}access_rights.{api_id}."))
    return dict(policy)


def _validate_access(access: object, at: FieldReader) -> None:
    if not isinstance(access, dict):
        raise ConfigError(
            at.file, at.prefix[:-1], f"expected an object, got {json_type_name(access)}"
        )
    reader = FieldReader(access, at.file, at.prefix)
    reader.string("api_id")
    reader.string("api_name")
    reader.string_list("versions")
    allowed_urls = reader.get("allowed_urls")
    if allowed_urls is not None:
        if not isinstance(allowed_urls, list):
            raise reader.error(
                "allowed_urls", f"expected an array, got {json_type_name(allowed_urls)}"
            )
        for index, rule in enumerate(allowed_urls):
            at_rule = reader.path(f"allowed_urls[{index}]")
            if not isinstance(rule, dict):
                raise ConfigError(
                    at.file, at_rule, f"expected an object, got {json_type_name(rule)}"
                )
            rule_reader = FieldReader(rule, at.file, at_rule + ".")
            rule_reader.string("url")
            rule_reader.string_list("methods")
    limit = reader.section("limit")
    for name in ("rate", "per", "throttle_interval"):
        limit.number(name)
    for name in ("quota_max", "quota_renewal_rate", "quota_remaining", "throttle_retry_limit"):
        limit.integer(name)
    # The rest (url patterns, limit ranges, endpoints, ...) as in a session.
    try:
        normalize_access_definition(access, "")
    except SessionError as exc:
        raise ConfigError(at.file, at.prefix + exc.field, exc.message) from None


def _limit(reader: FieldReader, name: str, value: float) -> None:
    if value < 0 and value != -1:
        shown = int(value) if value == int(value) else value
        raise reader.error(name, f"must be -1 (unlimited) or at least 0; got {shown}")
