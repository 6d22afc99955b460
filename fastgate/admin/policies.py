"""``/tyk/policies``: policies managed through the Gateway REST API.

Tyk (``polHandler``, ``handleAddOrUpdatePolicy``, ``handleDeletePolicy`` in
``gateway/api.go``) writes them as files under ``policies.policy_path`` and
applies them at the next reload; fastgate keeps them in the store, where
every worker and node sharing it sees them at once (a ``"policies"`` event),
and a policy of the same id in a policy file is read-only here.

* ``GET /tyk/policies``: every policy in service (files and store), a list.
* ``GET /tyk/policies/{id}``: 404 "Policy not found".
* ``POST /tyk/policies[/{id}]``: the id is the body's ``id`` (Tyk also reads
  ``ID``), else ``_id``, else the one in the path; action ``added``.
* ``PUT /tyk/policies/{id}``: the body's id, if any, must match the path
  (400 "Request ID does not match that in policy! ..."); action ``modified``.
  As in Tyk, a PUT may create the policy.
* ``DELETE /tyk/policies/{id}``: action ``deleted``; 404 "Policy not found".

Replies are Tyk's ``{"key": <id>, "status": "ok", "action": ...}``.  Ids use
Tyk's safe alphabet (letters, digits, ``.``, ``_``, ``-``, ``~``); bodies
are validated by :func:`fastgate.policies.validate_policy` (400 naming the
field) before anything is written.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import orjson

from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.config import ConfigError
from fastgate.policies import validate_policy

if TYPE_CHECKING:
    from fastgate.admin.control import Control

NOT_FOUND = "Policy not found"
INVALID_ID = "Invalid Policy ID: Allowed characters: a-z, A-Z, 0-9, ., _, -, ~"
NO_ID = "Unable to create policy without id."
ID_MISMATCH = ("Request ID does not match that in policy! For Update operations these "
               "must match.")
# Tyk's messages, "apiID" included.
UPDATE_NEEDS_ID = "Must specify an apiID to update"
DELETE_NEEDS_ID = "Must specify an apiID to delete"

_VALID_ID = re.compile(r"[a-zA-Z0-9.\-_~]+")


class PoliciesApi:
    """The ``/tyk/policies`` handlers."""

    def __init__(self, gateway: Control) -> None:
        self.gateway = gateway

    async def listing(self) -> bytes:
        policies = self.gateway.policies
        return replies.ok([policies[pid] for pid in sorted(policies)])

    async def get(self, policy_id: str) -> bytes:
        policy = self.gateway.policies.get(policy_id)
        if policy is None:
            raise AdminError(404, NOT_FOUND)
        return replies.ok(policy)

    async def add(self, policy_id: str, body: bytes) -> bytes:
        return await self._write(policy_id, body, "added")

    async def update(self, policy_id: str, body: bytes) -> bytes:
        if not policy_id:
            raise AdminError(400, UPDATE_NEEDS_ID)
        return await self._write(policy_id, body, "modified")

    async def _write(self, path_id: str, body: bytes, action: str) -> bytes:
        policy = replies.decode_object(body)
        body_id = _body_id(policy)
        if body_id and path_id and body_id != path_id:
            raise AdminError(400, ID_MISMATCH)
        policy_id = body_id or path_id
        if not policy_id:
            raise AdminError(400, NO_ID)
        if not _VALID_ID.fullmatch(policy_id):
            raise AdminError(400, INVALID_ID)
        self._refuse_file_policy(policy_id)
        try:
            checked = validate_policy(policy, "request", "")
        except ConfigError as exc:
            raise AdminError(400, replies.field_message(exc)) from None
        checked["id"] = policy_id
        gateway = self.gateway
        await gateway.store.set_policy(policy_id, orjson.dumps(checked))
        await self._changed(policy_id)
        return replies.modified(policy_id, action)

    async def delete(self, policy_id: str) -> bytes:
        if not policy_id:
            raise AdminError(400, DELETE_NEEDS_ID)
        self._refuse_file_policy(policy_id)
        if not await self.gateway.store.delete_policy(policy_id):
            raise AdminError(404, NOT_FOUND)
        await self._changed(policy_id)
        return replies.modified(policy_id, "deleted")

    async def _changed(self, policy_id: str) -> None:
        # This worker first, so the reply describes what it now serves; the
        # event brings the other workers and nodes up to date.
        await self.gateway.refresh_policies()
        await self.gateway.store.publish("policies", policy_id)

    def _refuse_file_policy(self, policy_id: str) -> None:
        if policy_id in self.gateway.file_policy_ids:
            raise AdminError(409, (
                f"policy {policy_id!r} is defined in the gateway's policy files "
                "(policies.policy_path or policies.policy_record_name) and is read-only "
                "through the API: change the file and reload"))


def _body_id(policy: dict[str, Any]) -> str:
    """The policy's id as Tyk decodes it: ``id`` (any letter case, as Go's
    encoding/json matches field names), else ``_id``; normalised into ``id``.

    Raises AdminError(400) when the id is not a string.
    """
    if "id" not in policy:
        for name in list(policy):
            if name.lower() == "id":
                policy["id"] = policy.pop(name)
                break
    for name in ("id", "_id"):
        value = policy.get(name)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise AdminError(400, f"{name}: expected a string")
        return value
    return ""

