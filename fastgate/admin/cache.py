"""``DELETE /tyk/cache/{api_id}``: Tyk's ``invalidateCacheHandler``; and
``DELETE /tyk/cache/jwks[/{api_id}]``: Tyk's ``invalidateJWKSCacheForAllAPIs``
and ``invalidateJWKSCacheForAPIID``.

Tyk flushes the API's response cache (``cache-<api_id>*`` in Redis).
fastgate has no response cache; what it does cache per API is the sessions
its workers have used, with policies applied, access rights compiled and
the API's rate limits and quotas worked out.  So the call drops, on every
worker and every node sharing the store (an ``"api-cache"`` event carrying
the API id), every cached session that may use that API -- its access
rights name it, or it has none (a master key).  Their next request reads
them from the store again.  The reply is Tyk's: 200 ``{"status": "ok",
"message": "cache invalidated"}``, whether or not the API is loaded (Tyk does
not look either); 503 when the store cannot carry the event.

``DELETE /tyk/cache/jwks`` drops every JWK Set the gateway has fetched, and
``DELETE /tyk/cache/jwks/{api_id}`` the sets of the URLs that API used
(:meth:`fastgate.auth.jwt.jwks.JwksCache.flush`; a URL several APIs share is
dropped for all of them); the next token fetches again, and tokens verified
with the dropped keys are verified again.  Tyk flushes only the node that
answers; fastgate does it on every worker and node sharing the store (a
``"jwks-cache"`` event carrying the API id, "" for all), since the workers
behind one address are one gateway to the caller.  The reply is Tyk's 200
``{"status": "ok", "message": "cache invalidated"}`` (also for an API that is
not loaded); 503 when the store cannot carry the event.  ``/tyk/cache/jwks``
is never the response cache of an API named ``jwks``: Tyk routes it first too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastgate.admin import replies
from fastgate.session.cache import CachedSession

if TYPE_CHECKING:
    from fastgate.admin.control import Control

#: The store event: payload the API id.
EVENT_API_CACHE = "api-cache"
#: The store event: payload the API id, "" for every API.
EVENT_JWKS_CACHE = "jwks-cache"
INVALIDATED = "cache invalidated"


class CacheApi:
    """The ``/tyk/cache`` handler, and the event it sends to every worker."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway
        gateway.store.subscribe(self._on_event)

    async def delete(self, api_id: str) -> bytes:
        """``DELETE /tyk/cache/{api_id}``: publish the flush; this worker flushes
        when the event comes back, as every other does."""
        await self.gateway.store.publish(EVENT_API_CACHE, api_id)
        return replies.status_ok(INVALIDATED)

    async def delete_jwks(self, api_id: str | None) -> bytes:
        """``DELETE /tyk/cache/jwks[/{api_id}]``: publish the flush; this
        worker flushes when the event comes back, as every other does."""
        await self.gateway.store.publish(EVENT_JWKS_CACHE, api_id or "")
        return replies.status_ok(INVALIDATED)

    def _on_event(self, event: str, payload: str) -> None:
        if event == EVENT_API_CACHE:
            forget_api_sessions(self.gateway, payload)
        elif event == EVENT_JWKS_CACHE:
            self.gateway.jwks.flush(payload or None)


def forget_api_sessions(gateway: Control, api_id: str) -> int:
    """Drop from this worker's session cache every session that may use
    ``api_id``; how many were dropped."""
    cache = gateway.sessions
    doomed = []
    for skey, entry in cache.entries.items():
        if isinstance(entry, CachedSession):
            rights = entry.effective.get("access_rights")
            if not rights or api_id in rights:
                doomed.append(skey)
    for skey in doomed:
        cache.invalidate(skey)
    return len(doomed)
