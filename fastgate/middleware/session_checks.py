"""Checks on the session an authentication method found (Tyk's KeyExpired,
AccessRightsCheck and GranularAccess middleware, in that order).

* ``is_inactive``: 403 "Key is inactive, please renew".
* ``expires`` (unix time, <= 0 never) in the past: 401 "Key has expired,
  please renew".
* access rights: API not allowed: 403 "Access to this API has been
  disallowed"; ``allowed_urls`` with no match: 403 "Access to this resource
  has been disallowed".
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from fastgate.server.responses import error_response
from fastgate.session.access import ALLOWED, API_DENIED, check_request

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.middleware.sessions import CachedSession
    from fastgate.server.gateway import Gateway

INACTIVE = error_response(403, "Key is inactive, please renew")
EXPIRED = error_response(401, "Key has expired, please renew")
API_DISALLOWED = error_response(403, "Access to this API has been disallowed")
RESOURCE_DISALLOWED = error_response(403, "Access to this resource has been disallowed")


class SessionChecks:
    """Inactive, expiry and access rights, on ``ex.session``."""

    name = "session_checks"

    def __init__(self, spec: ApiSpec, gateway: Gateway) -> None:
        self.api_id = spec.api_id
        versions = spec.version_data.get("versions") or {}
        # "" for an unversioned API (access rights' versions are not checked,
        # as in Tyk); else the version requests are served as — fastgate does
        # not select versions per request yet: the first one defined.
        if spec.version_data.get("not_versioned", True):
            self.version = ""
        else:
            self.version = next(iter(versions), "Default")

    def process(self, ex: Any) -> bytes | None:
        entry: CachedSession = ex.session
        if entry.refusal is not None:
            return entry.refusal
        if entry.inactive:
            return INACTIVE
        if entry.expires > 0 and entry.expired(time.time()):
            return EXPIRED
        verdict = check_request(entry.access, self.api_id, self.version, ex.path, ex.method)
        if verdict == ALLOWED:
            return None
        return API_DISALLOWED if verdict == API_DENIED else RESOURCE_DISALLOWED
