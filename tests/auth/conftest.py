"""Fixtures for the authentication tests: a gateway on each store kind."""

from __future__ import annotations

from typing import Any


def session(api_ids: tuple[str, ...] = (), **fields: Any) -> dict[str, Any]:
    """A Tyk session object granting ``api_ids`` (none: a master key, all APIs,
    which the gateway refuses to create unless ``allow_master_keys``)."""
    rights = {
        api_id: {"api_id": api_id, "api_name": api_id, "versions": ["Default"]}
        for api_id in api_ids
    }
    body: dict[str, Any] = {
        "allowance": 1000, "rate": 1000, "per": 1, "quota_max": -1,
        "org_id": "", "access_rights": rights,
    }
    body.update(fields)
    return body
