"""``/tyk/org/keys``: organisation sessions through the Gateway REST API.

Follows Tyk's ``orgHandler``, ``handleOrgAddOrUpdate``, ``handleGetOrgDetail``,
``handleGetAllOrgKeys`` and ``handleDeleteOrgKey`` (``gateway/api.go``).  An
organisation session is a Tyk session object (rate, quota, expiry...) filed
under the org id itself; the store keeps it apart from keys (on Redis under
Tyk's name, ``orgkey.<org id>``, not hashed), so a Tyk gateway sharing the
Redis reads the same records.

* ``POST|PUT /tyk/org/keys/{org}``: create or replace (neither checks
  whether it exists, as Tyk); ``last_updated`` is set to now;
  ``?reset_quota=1`` starts a new quota period (``quota_renews`` = now +
  ``quota_renewal_rate``).  Reply ``{"key": "<org>", "status": "ok",
  "action": "added" | "modified"}`` (POST | PUT).  400 "Request malformed",
  or ``"<field>: <message>"`` for a session fastgate would not store.
* ``GET /tyk/org/keys/{org}``: the session; 404 "Org not found".
* ``GET /tyk/org/keys``: ``{"keys": [org ids]}`` (``?filter=``: a prefix);
  404 "ORG not found" while no API is loaded, as Tyk.
* ``DELETE /tyk/org/keys/{org}``: 404 "Org not found" while no API is loaded,
  400 "Failed to remove the key" when there is none; action ``deleted``.

**Not enforced.**  Tyk enforces organisation quotas, rate limits and expiry
only with the gateway's ``enforce_org_quotas``; fastgate stores the sessions
(so tools that manage them keep working) but enforces none of them, and
refuses to start with ``enforce_org_quotas: true`` rather than ignore a limit
the operator asked for.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.session import SessionError, parse_session

if TYPE_CHECKING:
    from fastgate.admin.control import Control

ORG_NOT_FOUND = "Org not found"
NO_API_LOADED = "ORG not found"  # Tyk's spelling for the listing
REMOVE_FAILED = "Failed to remove the key"


class OrgKeysApi:
    """The ``/tyk/org/keys`` handlers."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway

    def _any_api(self) -> bool:
        # Tyk reaches the org store through a loaded API (getSpecForOrg
        # falls back to any API): with none, there is "no such org".
        return bool(self.gateway.specs)

    async def listing(self, params: Mapping[str, str]) -> bytes:
        """``GET /tyk/org/keys`` (Tyk's handleGetAllOrgKeys)."""
        if not self._any_api():
            raise AdminError(404, NO_API_LOADED)
        prefix = params.get("filter", "")
        orgs = await self.gateway.store.list_org_sessions()
        return replies.ok({"keys": sorted(o for o in orgs if o.startswith(prefix))})

    async def get(self, org_id: str) -> bytes:
        """``GET /tyk/org/keys/{org}`` (Tyk's handleGetOrgDetail)."""
        if not self._any_api():
            raise AdminError(404, ORG_NOT_FOUND)
        data = await self.gateway.store.get_org_session(org_id)
        session = _decoded(data)
        if session is None:
            raise AdminError(404, ORG_NOT_FOUND)
        return replies.ok(session)

    async def put(self, org_id: str, params: Mapping[str, str], body: bytes,
                  action: str) -> bytes:
        """``POST|PUT /tyk/org/keys/{org}`` (Tyk's handleOrgAddOrUpdate)."""
        obj = replies.decode_object(body)
        try:
            session = dict(parse_session(obj))
        except SessionError as exc:
            raise AdminError(400, str(exc)) from None
        now = int(time.time())
        if params.get("reset_quota") == "1":
            rate = session.get("quota_renewal_rate")
            session["quota_renews"] = now + (rate if isinstance(rate, int) else 0)
        session["last_updated"] = str(now)
        await self.gateway.store.set_org_session(org_id, orjson.dumps(session))
        return replies.modified(org_id, action)

    async def delete(self, org_id: str) -> bytes:
        """``DELETE /tyk/org/keys/{org}`` (Tyk's handleDeleteOrgKey)."""
        if not self._any_api():
            raise AdminError(404, ORG_NOT_FOUND)
        if not await self.gateway.store.delete_org_session(org_id):
            raise AdminError(400, REMOVE_FAILED)
        return replies.modified(org_id, "deleted")


def _decoded(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    try:
        session = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return session if isinstance(session, dict) else None
