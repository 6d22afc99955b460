"""Fixtures for the rate-limit and quota tests."""

from __future__ import annotations

from typing import Any


def limited_session(rate: float = 0, per: float = 0, quota_max: int = -1,
                    quota_renewal_rate: int = 0, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "rate": rate, "per": per, "allowance": rate,
        "quota_max": quota_max, "quota_remaining": quota_max,
        "quota_renewal_rate": quota_renewal_rate,
        "org_id": "",
        # The tests' protected API is "p" (a key without access rights would
        # be a master key, refused unless allow_master_keys).
        "access_rights": {"p": {"api_id": "p", "api_name": "p", "versions": ["Default"]}},
    }
    body.update(fields)
    return body
