"""Checks on the session an authentication method found (Tyk's KeyExpired,
AccessRightsCheck and GranularAccess middleware, in that order).

* ``is_inactive``: 403 "Key is inactive, please renew".
* ``expires`` (unix time, <= 0 never) in the past: 401 "Key has expired,
  please renew".
* access rights: API not allowed: 403 "Access to this API has been
  disallowed"; ``allowed_urls`` with no match: 403 "Access to this resource
  has been disallowed".  The patterns match as the gateway's
  ``http_server_options.enable_path_prefix_matching`` /
  ``enable_path_suffix_matching`` say (see :mod:`fastgate.session.access`).
"""

from __future__ import annotations

import itertools
import time
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import unquote

from fastgate.responses import error_response
from fastgate.session.access import ALLOWED, API_DENIED, check_request

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Request, Services
    from fastgate.session.cache import CachedSession

INACTIVE = error_response(403, "Key is inactive, please renew")
EXPIRED = error_response(401, "Key has expired, please renew")
API_DISALLOWED = error_response(403, "Access to this API has been disallowed")
RESOURCE_DISALLOWED = error_response(403, "Access to this resource has been disallowed")

_STEP_KEYS = itertools.count()


class SessionChecks:
    """Inactive, expiry and access rights, on ``ex.session``."""

    name: ClassVar[str] = "session_checks"

    def __init__(self, spec: ApiSpec, services: Services) -> None:
        self.api_id = spec.api_id
        versions = spec.version_data.get("versions") or {}
        # "" for an unversioned API (access rights' versions are not checked,
        # as in Tyk); else the version requests are served as — fastgate does
        # not select versions per request yet: the first one defined.
        if spec.version_data.get("not_versioned", True):
            self.version = ""
        else:
            self.version = next(iter(versions), "Default")
        options = services.config.http_server_options
        self.prefix_matching = options.enable_path_prefix_matching
        self.suffix_matching = options.enable_path_suffix_matching
        # Sessions' rights are compiled for the default mode; another mode's
        # compilation is kept by the session (AccessRights.with_matching).
        self.default_matching = not (self.prefix_matching or self.suffix_matching)
        # Matched against the decoded path, as Tyk's StripListenPath.
        self.listen_path = unquote(spec.listen_path)
        #: This step's key in ``CachedSession.verdicts``.
        self.key = next(_STEP_KEYS)

    def process(self, ex: Request) -> bytes | None:
        entry: CachedSession = ex.session  # type: ignore[assignment]  # set by auth
        if entry.refusal is not None:
            return entry.refusal
        if entry.inactive:
            return INACTIVE
        if entry.expires > 0 and entry.expired(time.time()):
            return EXPIRED
        verdict = entry.verdicts.get(self.key)
        if verdict is None:
            access = entry.access
            if not self.default_matching:
                access = access.with_matching(self.prefix_matching, self.suffix_matching)
            verdict = check_request(access, self.api_id, self.version, ex.path, ex.method,
                                    self.listen_path)
            if not access.path_dependent(self.api_id):
                entry.verdicts[self.key] = verdict
        if verdict == ALLOWED:
            return None
        return API_DISALLOWED if verdict == API_DENIED else RESOURCE_DISALLOWED
