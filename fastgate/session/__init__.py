"""Sessions (keys): the Tyk session object, key formats and hashing, policies, access rights.

* :mod:`.session` -- :func:`parse_session` (validation, Tyk's defaults),
  :func:`session_expired`, :func:`key_lifetime` (how long the store keeps a key).
* :mod:`.keys` -- :func:`generate_key`, :func:`hash_key`, :func:`storage_key`,
  :func:`key_org`: Tyk's key formats and hashes, bit for bit.
* :mod:`.policy` -- :func:`apply_policies`: the effective session, merged as Tyk does.
* :mod:`.access` -- :func:`compile_access` → :class:`AccessRights` whose
  ``check`` decides, per request, API / version / path / method access.

Pure functions over JSON-ready dicts; no I/O.  Storage, caching and the
HTTP answers live with their callers.
"""

from fastgate.session.access import (
    ALLOWED,
    API_DENIED,
    API_DENIED_MESSAGE,
    RESOURCE_DENIED,
    RESOURCE_DENIED_MESSAGE,
    AccessRights,
    compile_access,
)
from fastgate.session.keys import generate_key, hash_key, key_org, make_key, storage_key
from fastgate.session.policy import PolicyError, apply_policies, policy_ids
from fastgate.session.session import SessionError, key_lifetime, parse_session, session_expired

__all__ = [
    "ALLOWED",
    "API_DENIED",
    "API_DENIED_MESSAGE",
    "RESOURCE_DENIED",
    "RESOURCE_DENIED_MESSAGE",
    "AccessRights",
    "PolicyError",
    "SessionError",
    "apply_policies",
    "compile_access",
    "generate_key",
    "hash_key",
    "key_lifetime",
    "key_org",
    "make_key",
    "parse_session",
    "policy_ids",
    "session_expired",
    "storage_key",
]
