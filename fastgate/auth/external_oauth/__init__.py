"""External OAuth (Tyk's ``external_oauth``): access tokens another
authorization server issued, checked as a JWT or through RFC 7662
introspection, each identity getting Tyk's session.

* :mod:`.config` -- the ``external_oauth`` section, read and checked once;
* :mod:`.introspection` -- one introspection call and what its answer means;
* :mod:`.middleware` -- the request path and the two caches.

Differences from Tyk (which answers most failures 500 and keeps
introspection answers forever under ``cache.timeout: 0``) are listed in
each module; in short: configuration errors refuse the definition, the
authorization server's faults are 502 / 504 with a clear message, client
faults 401, and a cached answer never outlives the token's ``exp``.

``base_identity_provided_by`` has no value naming this method (Tyk has
none): it provides the request's session when it is the only method, or
when no other method sets one.
"""

from __future__ import annotations

from fastgate.auth.external_oauth.config import ExternalOAuthConfig, parse_config
from fastgate.auth.external_oauth.middleware import ExternalIntrospection, ExternalJwt, build
from fastgate.auth.method import AuthMethodSpec

__all__ = ["METHOD", "ExternalIntrospection", "ExternalJwt", "ExternalOAuthConfig"]

METHOD = AuthMethodSpec(
    name="external_oauth",
    enabled_by=("external_oauth.enabled",),
    order=20,
    identity="",
    parse=parse_config,
    build=build,
)
