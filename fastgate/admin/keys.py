"""``/tyk/keys``: sessions (keys) through the Gateway REST API.

Follows Tyk's ``keyHandler``, ``handleAddOrUpdate``, ``createKeyHandler``,
``handleGetDetail``, ``handleDeleteKey`` and ``handleGetAllKeys``
(``gateway/api.go``):

* ``POST /tyk/keys/create`` and ``POST /tyk/keys`` create a key with a
  generated name; ``POST /tyk/keys/{key}`` creates (or replaces: Tyk does not
  check) the custom key ``{key}``.  A session carrying
  ``basic_auth_data.password`` is a Basic-auth user: its name is Tyk's
  ``generateToken(org_id, {key})`` and the password is stored as bcrypt.
  Reply ``{"key", "status": "ok", "action": "added", "key_hash"}``;
  ``key_hash`` only with ``hash_keys``, and then a Basic-auth user's ``key``
  is empty, as in Tyk.
* ``PUT /tyk/keys/{key}`` replaces an existing session (404 "Key is not
  found" otherwise), keeping its ``date_created`` and, without a new
  password, its Basic-auth password hash; ``?suppress_reset=1`` keeps its
  ``quota_renews`` and ``last_updated``.  Action ``modified``.
* ``GET /tyk/keys/{key}``: the session as stored, minus
  ``basic_auth_data.password``; 404 "Key not found".
* ``DELETE /tyk/keys/{key}``: 404 "There is no such key found"; action
  ``deleted`` (``?api_id=-1``: ``null``, as Tyk).
* ``GET /tyk/keys``: ``{"keys": [...]}`` -- storage keys, hence hashes with
  ``hash_keys``; ``?filter=`` (key prefix, also matching Tyk's base64 key
  format of that org) and ``?api_id=``.
* ``?hashed=1``: the path segment is the key's hash, used as the storage key
  as it is (GET refuses it without ``hash_keys``, as Tyk).
* A key is looked up as Tyk's ``SessionDetail`` does: when it does not carry
  the org (``?org_id=``, the body's ``org_id`` for PUT, the org of
  ``?api_id=`` for GET), under ``generateToken(org, key)`` first, then as
  given -- so ``GET /tyk/keys/alice`` finds the Basic-auth user ``alice``.

**fastgate differs**: Tyk names *every* key POSTed with a name
``generateToken(org_id, name)`` (``org_id + name`` without a
``hash_key_function``) and finds it again through that fallback when
authenticating; fastgate stores a custom key under the name given (the
auth-token middleware looks keys up as presented) and applies Tyk's naming
to Basic-auth users only, whose middleware looks them up that way.  With no
``org_id`` and no ``hash_key_function`` the two agree.

Every body is validated by :func:`fastgate.session.parse_session` before
anything is written (400 ``"<field>: <message>"``); a write or delete is
published (``"session"`` event with the storage key) and dropped from this
worker's cache before the reply.  With ``hash_keys`` only hashes reach the
store, and nothing here logs a key.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from fastgate._core import compare
from fastgate.admin import replies
from fastgate.admin.replies import AdminError
from fastgate.session import (
    PolicyError,
    SessionError,
    apply_policies,
    generate_key,
    key_org,
    make_key,
    parse_session,
    storage_key,
)
from fastgate.session.basic import basic_auth_key, hash_password

if TYPE_CHECKING:
    from fastgate.server.gateway import Gateway

#: Tyk's defaultMinTokenLength: shorter custom keys could never authenticate.
DEFAULT_MIN_TOKEN_LENGTH = 3
#: Sessions read at once when ``?api_id=`` filters a listing.
_LISTING_BATCH = 100

HASHED_WITHOUT_HASHING = "Key requested by hash but key hashing is not enabled"
LISTING_DISABLED = "Hashed key listing is disabled in config (enable_hashed_keys_listing)"
FILTER_REQUIRED = ("The 'filter' parameter (Org ID) is required when filtering by 'api_id' "
                   "in legacy mode")


class KeysApi:
    """The ``/tyk/keys`` handlers; each returns a complete response or raises
    :class:`AdminError` (or StoreError, answered 503 by the dispatcher)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    # -- helpers ------------------------------------------------------------------

    @property
    def _hash_keys(self) -> bool:
        return bool(self.gateway.config.hash_keys)

    @property
    def _hash_function(self) -> str:
        return str(self.gateway.config.hash_key_function)

    def _storage_key(self, name: str) -> str:
        return storage_key(name, hash_keys=self._hash_keys,
                           hash_key_function=self._hash_function)

    def _min_token_length(self) -> int:
        configured = getattr(self.gateway.config, "min_token_length", 0)
        return configured if isinstance(configured, int) and configured > 0 \
            else DEFAULT_MIN_TOKEN_LENGTH

    async def _find(self, key: str, org_id: str, hashed: bool
                    ) -> tuple[str, str, dict[str, Any]] | None:
        """(name, storage key, stored session) of the key ``key`` names, or None.

        Tyk's ``SessionDetail``: by hash as given; else, when ``key`` does
        not carry ``org_id``, ``generateToken(org_id, key)`` then ``key``.
        """
        store = self.gateway.store
        if hashed:
            names = [(key, key)]
        else:
            candidates = [key]
            if (key_org(key) or "") != org_id:
                candidates = [make_key(org_id, key, self._hash_function), key]
            names = [(name, self._storage_key(name)) for name in dict.fromkeys(candidates)]
        for name, skey in names:
            data = await store.get_session(skey)
            if data is not None:
                return name, skey, _stored_session(data)
        return None

    def _parse(self, body: bytes, malformed: str = replies.MALFORMED) -> dict[str, Any]:
        obj = replies.decode_object(body, malformed)
        try:
            session = parse_session(obj)
        except SessionError as exc:
            raise AdminError(400, _session_error(exc)) from None
        # parse_session may hand back the object it was given: never alias it.
        return dict(session)

    def _check_policies(self, session: Mapping[str, Any]) -> None:
        """Refuse a session naming a policy that does not exist (or cannot apply)."""
        if not session.get("apply_policies") and not session.get("apply_policy_id"):
            return
        try:
            apply_policies(dict(session), self.gateway.policies)
        except PolicyError as exc:
            raise AdminError(400, _prefixed("apply_policies", str(exc))) from None

    async def _hash_password(self, password: str) -> dict[str, str]:
        # bcrypt takes ~50 ms of CPU: off the event loop, which serves traffic.
        loop = asyncio.get_running_loop()
        try:
            hashed = await loop.run_in_executor(None, hash_password, password)
        except ValueError as exc:
            raise AdminError(400, f"basic_auth_data.password: {exc}") from None
        return {"password": hashed, "hash_type": "bcrypt"}

    async def _write(self, skey: str, session: Mapping[str, Any]) -> None:
        await self.gateway.store.set_session(skey, orjson.dumps(session))
        await self._changed(skey)

    async def _changed(self, skey: str) -> None:
        # This worker first: that cannot fail; the event reaches the others.
        self.gateway.sessions.invalidate(skey)
        await self.gateway.store.publish("session", skey)

    # -- create -------------------------------------------------------------------

    async def create(self, params: Mapping[str, str], body: bytes) -> bytes:
        """``POST /tyk/keys/create`` (Tyk's createKeyHandler)."""
        session = self._parse(body, "Unmarshalling failed")
        if session.get("hmac_enabled"):
            # Tyk generates the shared secret of an HMAC key here.
            session["hmac_string"] = base64.b64encode(uuid.uuid4().hex.encode()).decode()
        name, skey = await self._add(session, "", params, hashed=False)
        return replies.modified(name, "added", skey if self._hash_keys else "")

    async def add(self, key: str, params: Mapping[str, str], body: bytes) -> bytes:
        """``POST /tyk/keys[/{key}]`` (Tyk's handleAddOrUpdate, POST)."""
        hashed = replies.flag(params, "hashed")
        session = self._parse(body)
        min_length = self._min_token_length()
        if key and len(key) < min_length:
            raise AdminError(400, (
                f"custom key ID length {len(key)} is less than min_token_length "
                f"({min_length}); the key would be unreachable at auth time. Use an ID of "
                "at least min_token_length characters, or lower min_token_length in the "
                "gateway configuration."))
        is_basic = _basic_password(session) is not None
        name, skey = await self._add(session, key, params, hashed=hashed)
        key_hash = ""
        if self._hash_keys:
            key_hash = skey
            if is_basic:
                name = ""  # Tyk answers a Basic-auth user's key only by hash
        return replies.modified(name, "added", key_hash)

    async def _add(self, session: dict[str, Any], key: str, params: Mapping[str, str],
                   *, hashed: bool) -> tuple[str, str]:
        """Validate, name and store a new session; its (name, storage key)."""
        self._check_policies(session)
        org_id = _org(session)
        now = time.time()
        session["date_created"] = _go_time(now)
        if params.get("suppress_reset") != "1":
            _reset_counters(session, now)
        password = _basic_password(session)
        if password is not None:
            session["basic_auth_data"] = await self._hash_password(password)
        if hashed and key:
            name = skey = key
        else:
            if not key:
                name = generate_key(org_id, self._hash_function)
            elif password is not None:
                name = basic_auth_key(org_id, key, self._hash_function)
            else:
                name = key
            skey = self._storage_key(name)
        await self._write(skey, session)
        return name, skey

    # -- update -------------------------------------------------------------------

    async def update(self, key: str, params: Mapping[str, str], body: bytes) -> bytes:
        """``PUT /tyk/keys/{key}`` (Tyk's handleAddOrUpdate, PUT)."""
        hashed = replies.flag(params, "hashed")
        session = self._parse(body)
        found = await self._find(key, _org(session), hashed)
        if found is None:
            raise AdminError(404, "Key is not found")
        name, skey, original = found
        self._check_policies(session)
        if "date_created" in original:
            session["date_created"] = original["date_created"]
        if params.get("suppress_reset") == "1":
            _keep_counters(session, original)
        else:
            _reset_counters(session, time.time())
        password = _basic_password(session)
        kept = _basic_data(original)
        if password is not None:
            if kept is not None and compare.constant_time_equals(
                    kept["password"].encode(), password.encode()):
                # The stored hash sent back unchanged (Tyk compares the same way).
                session["basic_auth_data"] = kept
            else:
                session["basic_auth_data"] = await self._hash_password(password)
        elif kept is not None:
            session["basic_auth_data"] = kept
        await self._write(skey, session)
        return replies.modified(name, "modified")

    # -- read ---------------------------------------------------------------------

    async def get(self, key: str, params: Mapping[str, str]) -> bytes:
        """``GET /tyk/keys/{key}`` (Tyk's handleGetDetail)."""
        hashed = replies.flag(params, "hashed")
        if hashed and not self._hash_keys:
            raise AdminError(400, HASHED_WITHOUT_HASHING)
        org_id = params.get("org_id", "")
        api_id = params.get("api_id", "")
        if api_id:
            for spec in self.gateway.specs:
                if spec.api_id == api_id:
                    org_id = spec.org_id
                    break
        found = await self._find(key, org_id, hashed)
        if found is None:
            raise AdminError(404, "Key not found")
        _name, skey, session = found
        await self._live_quota(skey, session)
        return replies.ok(without_password(session))

    async def _live_quota(self, skey: str, session: dict[str, Any]) -> None:
        """Report the quota as the limiter counts it (the stored session's
        ``quota_remaining`` is what it was created with)."""
        quota_max = session.get("quota_max")
        if not isinstance(quota_max, int) or quota_max <= 0:
            return
        scope = session.get("allowance_scope") or ""
        state = await self.gateway.store.quota_state(
            skey + "-" + scope if scope else skey, quota_max)
        if state is not None:
            remaining, renews_at = state
            session["quota_remaining"] = remaining
            session["quota_renews"] = int(renews_at)

    async def listing(self, params: Mapping[str, str]) -> bytes:
        """``GET /tyk/keys`` (Tyk's handleGetAllKeys)."""
        api_id = params.get("api_id", "")
        prefix = ""
        if self._hash_keys:
            if not getattr(self.gateway.config, "enable_hashed_keys_listing", True):
                raise AdminError(404, LISTING_DISABLED)
        else:
            prefix = params.get("filter", "")
            if api_id and not prefix:
                raise AdminError(400, FILTER_REQUIRED)
        keys = await self.gateway.store.list_sessions()
        if prefix:
            prefixes = (prefix, _token_org_prefix(prefix))
            keys = [k for k in keys if k.startswith(prefixes)]
        if api_id:
            keys = await self._with_access(keys, api_id)
        return replies.ok({"keys": sorted(keys)})

    async def _with_access(self, keys: list[str], api_id: str) -> list[str]:
        """The keys whose session may use ``api_id`` (empty access rights: all)."""
        store = self.gateway.store
        kept: list[str] = []
        for start in range(0, len(keys), _LISTING_BATCH):
            batch = keys[start:start + _LISTING_BATCH]
            found = await asyncio.gather(*(store.get_session(k) for k in batch))
            for skey, data in zip(batch, found, strict=True):
                if data is None:
                    continue
                rights = _stored_session(data).get("access_rights")
                if not rights or (isinstance(rights, dict) and api_id in rights):
                    kept.append(skey)
        return kept

    # -- delete -------------------------------------------------------------------

    async def delete(self, key: str, params: Mapping[str, str]) -> bytes:
        """``DELETE /tyk/keys/{key}`` (Tyk's handleDeleteKey / handleDeleteHashedKey)."""
        hashed = replies.flag(params, "hashed")
        found = await self._find(key, params.get("org_id", ""), hashed)
        if found is None:
            raise AdminError(404, "There is no such key found")
        name, skey, _session = found
        if not await self.gateway.store.delete_session(skey):
            raise AdminError(400, "Failed to remove the key")
        await self._changed(skey)
        if params.get("api_id") == "-1":
            return replies.ok(None)  # Tyk answers a delete "across all APIs" with null
        return replies.modified(name, "deleted")


# -- sessions as dicts ----------------------------------------------------------------


def without_password(session: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``session`` without ``basic_auth_data.password``."""
    shown = dict(session)
    data = shown.get("basic_auth_data")
    if isinstance(data, Mapping):
        shown["basic_auth_data"] = {k: v for k, v in data.items() if k != "password"}
    return shown


def _stored_session(data: bytes) -> dict[str, Any]:
    try:
        session = orjson.loads(data)
    except orjson.JSONDecodeError:
        return {}
    return session if isinstance(session, dict) else {}


def _org(session: Mapping[str, Any]) -> str:
    org = session.get("org_id")
    return org if isinstance(org, str) else ""


def _basic_password(session: Mapping[str, Any]) -> str | None:
    """The clear password of a Basic-auth user being written (Tyk's IsBasicAuth)."""
    data = session.get("basic_auth_data")
    if isinstance(data, Mapping):
        password = data.get("password")
        if isinstance(password, str) and password:
            return password
    return None


def _basic_data(session: Mapping[str, Any]) -> dict[str, str] | None:
    """The stored password hash and its type, when ``session`` is a Basic-auth user."""
    data = session.get("basic_auth_data")
    if isinstance(data, Mapping):
        password = data.get("password")
        hash_type = data.get("hash_type") or ""
        if isinstance(password, str) and password and isinstance(hash_type, str):
            return {"password": password, "hash_type": hash_type}
    return None


def _reset_counters(session: dict[str, Any], now: float) -> None:
    """Tyk's doAddOrUpdate without suppress_reset: a new rate and quota period."""
    session["last_updated"] = str(int(now))
    rate = session.get("quota_renewal_rate")
    session["quota_renews"] = int(now) + (rate if isinstance(rate, int) else 0)


def _keep_counters(session: dict[str, Any], original: Mapping[str, Any]) -> None:
    """``?suppress_reset=1``: keep the running rate and quota periods."""
    for name in ("quota_renews", "last_updated"):
        if name in original:
            session[name] = original[name]
        else:
            session.pop(name, None)
    old_rights = original.get("access_rights")
    new_rights = session.get("access_rights")
    if not isinstance(old_rights, Mapping) or not isinstance(new_rights, dict):
        return
    for api_id, old in old_rights.items():
        new = new_rights.get(api_id)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            continue
        old_limit, new_limit = old.get("limit"), new.get("limit")
        if isinstance(old_limit, Mapping) and isinstance(new_limit, Mapping) \
                and "quota_renews" in old_limit:
            new_rights[api_id] = {**new, "limit": {**new_limit,
                                                   "quota_renews": old_limit["quota_renews"]}}


def _go_time(now: float) -> str:
    """A timestamp as Go's encoding/json writes a UTC time.Time (RFC 3339)."""
    stamp = datetime.fromtimestamp(now, UTC).isoformat(timespec="microseconds")
    return stamp.replace("+00:00", "Z")


def _token_org_prefix(org: str) -> str:
    """The base64 prefix every Tyk-format key of ``org`` starts with
    (Tyk's ``getAllSessionKeys`` filter)."""
    encoded = base64.b64encode(f'{{"org":"{org}"'.encode()).decode().rstrip("=")
    return encoded[:-2]


def _session_error(exc: SessionError) -> str:
    field = getattr(exc, "field", "")
    message = getattr(exc, "message", "") or str(exc)
    return _prefixed(field, message)


def _prefixed(field: str, message: str) -> str:
    if not field or message.startswith(field + ":") or message.startswith(field + "."):
        return message
    return f"{field}: {message}"
