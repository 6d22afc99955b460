"""The session a plugin's custom authentication gives, made the request's.

Shared by the Python ``auth_check`` and JavaScript ``ReturnAuthData``: the
session gets the API's ``org_id`` and is kept under the key id the plugin
names (the token, or the ``id_extractor`` id) -- hashed when ``hash_keys``
is on --, with its policies applied by the session cache and the quota
counters of the session already stored under that id.  When the method is
the base identity (``custom_auth``, or none named) it is persisted, as Tyk
does -- but written only when it differs from the one stored (Tyk writes it
on every request): the common request costs a dict comparison.  Otherwise
it is the request's for that request only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import orjson

from fastgate import responses
from fastgate.auth.identity import Identity
from fastgate.plugins.changes import MIDDLEWARE_ERROR
from fastgate.services import store_unavailable, then
from fastgate.session import key_lifetime, parse_session, storage_key
from fastgate.session.cache import CachedSession
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services

__all__ = ["NOT_AUTHORISED", "PluginSessions"]

#: Tyk's answer when custom authentication fails.
NOT_AUTHORISED = responses.error_response(403, "Key not authorised")
#: Sessions remembered per method (the last one given for each key id).
_REMEMBERED = 100_000


class PluginSessions:
    """Hands a plugin's session to the request (see the module docstring)."""

    __slots__ = ("failed", "identity", "last", "lifetime", "org_id",
                 "respects_expiration", "services")

    def __init__(self, spec: ApiSpec, services: Services,
                 failed: Callable[[BaseException], None]) -> None:
        # Not the spec itself: it holds its loaded plugins, and a reference
        # back would keep a replaced chain (and a JS runtime's workers) alive.
        self.lifetime = spec.session_lifetime
        self.respects_expiration = spec.session_lifetime_respects_key_expiration
        self.services = services
        self.org_id = spec.org_id
        self.failed = failed
        self.identity = Identity(spec, "custom_auth")
        #: Per storage key: the session the plugin last gave and what it became.
        self.last: dict[str, tuple[dict[str, Any], CachedSession]] = {}

    def storage_key(self, key_id: str) -> str:
        """Where ``key_id``'s session is stored (hashed once, remembered)."""
        services = self.services
        return services.sessions.storage_key_of(
            key_id.encode("utf-8", "surrogateescape"),
            lambda raw: storage_key(raw.decode("utf-8", "surrogateescape"),
                                    hash_keys=services.hash_keys,
                                    hash_key_function=services.hash_key_function))

    def accept(self, req: Request, key_id: str, record: dict[str, Any]) -> Outcome:
        """Make ``record`` (a Tyk session object) the request's session, kept
        under ``key_id``."""
        record["org_id"] = self.org_id
        skey = self.storage_key(key_id)
        last = self.last.get(skey)
        if last is not None and last[0] == record \
                and self.services.sessions.entries.get(skey) is last[1]:
            return self.identity.accept(req, (skey, last[1]))
        return then(self.services.sessions.lookup(skey),
                    lambda found: self._settle(req, skey, record, found))

    def _settle(self, req: Request, skey: str, record: dict[str, Any],
                found: CachedSession | None) -> Outcome:
        given = dict(record)
        if found is not None:
            for name in ("quota_remaining", "quota_renews"):
                if not record.get(name) and found.session.get(name):
                    record[name] = found.session[name]
        try:
            session = parse_session(record)
        except ValueError as exc:
            self.failed(exc)
            return MIDDLEWARE_ERROR
        if found is not None and found.session == orjson.loads(orjson.dumps(session)):
            self._remember(skey, given, found)
            return self.identity.accept(req, (skey, found))
        if not self.identity.base:
            # Not the base identity: the request's for this request only.
            entry = CachedSession(skey, session, self.services.policies())
            return self.identity.accept(req, (skey, entry))
        return self._store(req, skey, given, session)

    def _remember(self, skey: str, given: dict[str, Any], found: CachedSession) -> None:
        if len(self.last) >= _REMEMBERED:
            self.last.clear()
        self.last[skey] = (given, found)

    async def _store(self, req: Request, skey: str, given: dict[str, Any],
                     session: dict[str, Any]) -> bytes | None:
        services = self.services
        config = services.config
        lifetime = key_lifetime(
            session, services.clock(), api_lifetime=self.lifetime,
            respects_expiration=self.respects_expiration,
            force_global=config.force_global_session_lifetime,
            global_lifetime=config.global_session_lifetime)
        try:
            await services.sessions.save(skey, orjson.dumps(session),
                                         0 if lifetime == -1 else lifetime)
            found: Any = services.sessions.lookup(skey)
            if found is not None and not isinstance(found, CachedSession):
                found = await found
        except StoreError as exc:
            return store_unavailable(exc)
        if found is None:
            return NOT_AUTHORISED
        self._remember(skey, given, found)
        return self.identity.accept(req, (skey, found))
