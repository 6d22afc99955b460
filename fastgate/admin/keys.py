"""``/tyk/keys``: sessions (keys) through the Gateway REST API.

Follows Tyk's ``keyHandler``, ``handleAddOrUpdate``, ``doAddOrUpdate``,
``createKeyHandler``, ``handleGetDetail``, ``handleDeleteKey``,
``handleGetAllKeys`` and ``policyUpdateHandler`` (``gateway/api.go``):

* ``POST /tyk/keys/create`` and ``POST /tyk/keys`` create a key with a
  generated name; ``POST /tyk/keys/{key}`` creates (or replaces: Tyk does not
  check) the custom key ``{key}``, stored -- as Tyk does -- under
  ``generateToken(org_id, {key})``: ``org_id + {key}`` without a
  ``hash_key_function`` (just ``{key}`` for a key without org), else the
  base64 JSON token of that org and id.  A session carrying
  ``basic_auth_data.password`` is a Basic-auth user, named the same way; its
  password is stored as bcrypt.  Reply ``{"key", "status": "ok", "action":
  "added", "key_hash"}``: ``key`` is the name the key is stored under (what
  a client presents, though the auth-token middleware also finds a custom key
  by the name given), ``key_hash`` only with ``hash_keys``, and then a
  Basic-auth user's ``key`` is empty, as in Tyk.
* ``PUT /tyk/keys/{key}`` replaces an existing session (404 "Key is not
  found" otherwise), keeping its ``date_created`` and, without a new
  password, its Basic-auth password hash.  Action ``modified``.
* **Client certificates** (Tyk's rules): ``POST /tyk/keys/create`` with
  ``"certificate": "<cert id>"`` names the key ``generateToken(org, cert
  id)`` (dynamic mTLS finds it by the certificate): 500 "Failed to create key
  - Key with given certificate already found:<key>" when it exists, 400 "Key
  must be used with an existent certificate" when the id is not in the
  certificate store (**fastgate differs**: Tyk checks that on PUT only).  A
  PUT changing the certificate: 400 "Key cannot be used without a
  certificate" when it removes it, the same 400 for one not stored.
  ``mtls_static_certificate_bindings`` (new ids, on PUT): each must start
  with the key's org (400 "invalid certificate ID: <id>") and be stored (400
  "certificate not found: <id>").
* Both reset the key's quota -- the live counters, session-level and per-API
  (``allowance_scope``), and ``quota_renews`` / ``last_updated`` -- as Tyk's
  ``doAddOrUpdate`` calls ``ResetQuota``; ``?suppress_reset=1`` keeps them.
* **Master keys**: a key whose effective access rights (its own, or those
  its policies give) are empty opens every API.  Unless the gateway's
  ``allow_master_keys`` is true, every create path and PUT refuse one with
  400 "Failed to create key, keys must have at least one Access Rights
  record set." (Tyk's ``createKeyHandler`` message).  Access rights naming an
  API that is not loaded are stored, as Tyk does ("Can't find active API,
  storing anyway"), and the reply says so in ``"warnings"``: a list of
  ``"access_rights.<api_id>: Can't find active API, storing anyway"``
  (present only when not empty; Tyk clients ignore unknown fields).
* **Lifetime**: the record is stored with Tyk's key lifetime (``ApplyLifetime``:
  the largest ``session_lifetime`` over the loaded APIs of the key's access
  rights, -1 = for ever; the gateway's ``global_session_lifetime`` with
  ``force_global_session_lifetime``; see :func:`fastgate.session.key_lifetime`),
  so the store deletes it when that ends and the key is then unknown (403 at
  the gateway, 404 here).
* ``GET /tyk/keys/{key}``: the session as stored, minus
  ``basic_auth_data.password``, with the live ``quota_remaining`` and
  ``quota_renews``; 404 "Key not found".
* ``DELETE /tyk/keys/{key}``: 404 "There is no such key found"; action
  ``deleted`` (``?api_id=-1``: ``null``, as Tyk).  The key's quota counters
  go with it.
* ``GET /tyk/keys``: ``{"keys": [...]}`` -- storage keys, hence hashes with
  ``hash_keys``, and then only with ``enable_hashed_keys_listing`` (404
  otherwise, as Tyk); ``?filter=`` (key prefix, also matching Tyk's base64
  key format of that org) and ``?api_id=``.
* ``POST /tyk/keys/policy/{key hash}`` (Tyk's ``policyUpdateHandler``): body
  ``{"apply_policies": [...], "policy": "<id>"}`` (``policy`` is appended);
  the key is addressed by its storage key (its hash with ``hash_keys``) and
  its ``apply_policies`` replaced.  400 "Couldn't decode instruction", 404
  "Key not found"; reply action ``updated``.
* ``?hashed=1``: the path segment is the key's hash, used as the storage key
  as it is (GET refuses it without ``hash_keys``, as Tyk).
* A key is looked up as Tyk's ``SessionDetail`` does: when it does not carry
  the org (``?org_id=``, the body's ``org_id`` for PUT, the org of
  ``?api_id=`` for GET), under ``generateToken(org, key)`` first, then as
  given -- so ``GET /tyk/keys/alice?org_id=acme`` finds acme's Basic-auth
  user ``alice``.

**fastgate differs**:

* When the key names no org and the request gives none, fastgate also tries
  ``generateToken(org, key)`` for the org of every loaded API (Tyk answers
  404): ``GET /tyk/keys/bob`` finds the Basic-auth user ``bob`` of the only
  organisation that has one; when several organisations have such a key, the
  answer is 400 asking for ``?org_id=`` rather than a guess.  And a custom key
  of the org given is found by its name even when the name carries that org
  (Tyk looks only for the name as given then).
* PUT of a master key is refused with the same 400 as a create (Tyk answers
  500 "Failed to create key, ensure security settings are correct."); POST
  ``/tyk/keys[/{key}]`` answers that 400 too, where Tyk answers the same 500.
* A master key's lifetime is the largest over every loaded API (Tyk's is that
  of whichever API it saves last, in Go's random map order).
* ``POST /tyk/keys/policy/{key}`` keeps the key's lifetime (Tyk stores it
  without one) and refuses policies that do not exist.
* Tyk replaces an ``expires`` in the past by the stored key's (0, never
  expires, for a new key); fastgate stores it as given, so a key created
  expired is refused (401 "Key has expired, please renew").

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
from fastgate.middleware.limits import limits_for
from fastgate.session import (
    PolicyError,
    SessionError,
    apply_policies,
    generate_key,
    key_lifetime,
    key_org,
    make_key,
    parse_session,
    storage_key,
)
from fastgate.session.basic import hash_password

if TYPE_CHECKING:
    from fastgate.admin.control import Control
    from fastgate.apidef import ApiSpec

#: Sessions read at once when ``?api_id=`` filters a listing.
_LISTING_BATCH = 100

HASHED_WITHOUT_HASHING = "Key requested by hash but key hashing is not enabled"
LISTING_DISABLED = "Hashed key listing is disabled in config (enable_hashed_keys_listing)"
FILTER_REQUIRED = ("The 'filter' parameter (Org ID) is required when filtering by 'api_id' "
                   "in legacy mode")
MASTER_KEY_REFUSED = "Failed to create key, keys must have at least one Access Rights record set."
API_NOT_LOADED = "Can't find active API, storing anyway"
BAD_INSTRUCTION = "Couldn't decode instruction"


class KeysApi:
    """The ``/tyk/keys`` handlers; each returns a complete response or raises
    :class:`AdminError` (or StoreError, answered 503 by the dispatcher)."""

    def __init__(self, gateway: Control) -> None:
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

    def _token_name(self, org_id: str, key: str) -> str | None:
        """Tyk's ``generateToken(org_id, key)``; None when ``key`` is just the org
        (Tyk would make a random name up, which names no stored key)."""
        if org_id and key == org_id:
            return None
        return make_key(org_id, key, self._hash_function)

    def _active_specs(self) -> dict[str, ApiSpec]:
        return {spec.api_id: spec for spec in self.gateway.specs if spec.active}

    def _api_orgs(self) -> list[str]:
        """The organisations of the loaded APIs, in the order the APIs load."""
        return list(dict.fromkeys(spec.org_id for spec in self.gateway.specs
                                  if spec.active and spec.org_id))

    async def _find(self, key: str, org_id: str, hashed: bool
                    ) -> tuple[str, str, dict[str, Any]] | None:
        """(name, storage key, stored session) of the key ``key`` names, or None.

        Tyk's ``SessionDetail``: by hash as given; else, when ``key`` does
        not carry ``org_id``, ``generateToken(org_id, key)`` then ``key``
        (when it does: ``key``, then -- fastgate's addition --
        ``generateToken(org_id, key)``); then, for a key naming no org when
        no org is given, ``generateToken(org, key)`` for the org of each
        loaded API -- AdminError(400) when several organisations have one.
        Every candidate is asked for at once (one round trip on Redis).
        """
        names: list[str]
        by_org: dict[str, str] = {}  # name -> the loaded API's org it was made for
        if hashed:
            names = [key]
        else:
            own = key_org(key)
            token = self._token_name(org_id, key)
            names = [key] if token is None else \
                [token, key] if (own or "") != org_id else [key, token]
            if own is None and not org_id:
                for org in self._api_orgs():
                    name = self._token_name(org, key)
                    if name is not None and name not in names:
                        by_org.setdefault(name, org)
        names = list(dict.fromkeys(names))
        candidates = names + list(by_org)
        skeys = [key] if hashed else [self._storage_key(name) for name in candidates]
        store = self.gateway.store
        found = await asyncio.gather(*(store.get_session(skey) for skey in skeys))
        hits = [index for index, data in enumerate(found) if data is not None]
        if not hits:
            return None
        if hits[0] >= len(names) and len(hits) > 1:
            orgs = ", ".join(by_org[candidates[index]] for index in hits)
            raise AdminError(400, (f"the key matches keys of several organisations ({orgs}): "
                                   "name one with ?org_id="))
        index = hits[0]
        data = found[index]
        assert data is not None
        return candidates[index], skeys[index], _stored_session(data)

    def _parse(self, body: bytes, malformed: str = replies.MALFORMED) -> dict[str, Any]:
        obj = replies.decode_object(body, malformed)
        try:
            session = parse_session(obj)
        except SessionError as exc:
            raise AdminError(400, _session_error(exc)) from None
        # parse_session may hand back the object it was given: never alias it.
        return dict(session)

    def _effective(self, session: Mapping[str, Any]) -> dict[str, Any]:
        """The session with its policies applied (what the gateway enforces);
        AdminError(400) for a policy that does not exist or cannot apply, and
        for a master key the gateway does not allow."""
        try:
            effective = apply_policies(dict(session), self.gateway.policies)
        except PolicyError as exc:
            raise AdminError(400, _prefixed("apply_policies", str(exc))) from None
        if not effective.get("access_rights") and not self.gateway.config.allow_master_keys:
            raise AdminError(400, MASTER_KEY_REFUSED)
        return effective

    def _warnings(self, effective: Mapping[str, Any]) -> list[str]:
        """Tyk's "Can't find active API, storing anyway", once per API not loaded."""
        loaded = self._active_specs()
        return [f"access_rights.{api_id}: {API_NOT_LOADED}"
                for api_id in effective.get("access_rights") or {} if api_id not in loaded]

    def _lifetime(self, effective: Mapping[str, Any]) -> float:
        """Seconds the store keeps the key (0: for ever): Tyk's ``ApplyLifetime``,
        the largest lifetime over the loaded APIs of the key's access rights
        (every loaded API for a master key), -1 from any of them winning."""
        config = self.gateway.config
        loaded = self._active_specs()
        rights = effective.get("access_rights") or {}
        specs = [loaded[api_id] for api_id in rights if api_id in loaded] if rights \
            else list(loaded.values())
        now = time.time()
        lifetime = 0
        for spec in specs:
            seconds = key_lifetime(
                effective, now, api_lifetime=spec.session_lifetime,
                respects_expiration=spec.session_lifetime_respects_key_expiration,
                force_global=config.force_global_session_lifetime,
                global_lifetime=config.global_session_lifetime)
            if seconds == -1:
                return 0  # Tyk's "never delete"
            lifetime = max(lifetime, seconds)
        return float(lifetime)

    async def _hash_password(self, password: str) -> dict[str, str]:
        # bcrypt takes ~50 ms of CPU: off the event loop, which serves traffic.
        loop = asyncio.get_running_loop()
        try:
            hashed = await loop.run_in_executor(None, hash_password, password)
        except ValueError as exc:
            raise AdminError(400, f"basic_auth_data.password: {exc}") from None
        return {"password": hashed, "hash_type": "bcrypt"}

    async def _write(self, skey: str, session: Mapping[str, Any],
                     effective: Mapping[str, Any]) -> None:
        await self.gateway.store.set_session(skey, orjson.dumps(session),
                                             self._lifetime(effective))

    async def _reset_quotas(self, skey: str, *sessions: Mapping[str, Any]) -> None:
        """Forget the live quota counters the limiter keeps for ``skey`` under the
        limits of each effective session given (Tyk's ``ResetQuota``: the
        session-level counter and one per ``allowance_scope``)."""
        counters = {skey}
        for session in sessions:
            for api_id in session.get("access_rights") or {"": None}:
                scope = limits_for(dict(session), api_id)[4]
                counters.add(skey + "-" + scope if scope else skey)
        store = self.gateway.store
        for counter in sorted(counters):
            await store.reset_quota(counter)

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
        key = ""
        certificate = session.get("certificate")
        if certificate:
            # Dynamic mTLS: the key is named after its certificate, so that the
            # certificate finds it (generateToken(org, certificate id)).
            await self._check_certificate(certificate)
            key = certificate
            name = make_key(_org(session), key, self._hash_function)
            if await self.gateway.store.get_session(self._storage_key(name)) is not None:
                raise AdminError(500, "Failed to create key - Key with given certificate "
                                      "already found:" + name)
        name, skey, warnings = await self._add(session, key, params, hashed=False)
        return replies.modified(name, "added", skey if self._hash_keys else "", warnings)

    async def _check_certificate(self, certificate: str) -> None:
        if await self.gateway.store.get_certificate(certificate) is None:
            raise AdminError(400, "Key must be used with an existent certificate")

    async def add(self, key: str, params: Mapping[str, str], body: bytes) -> bytes:
        """``POST /tyk/keys[/{key}]`` (Tyk's handleAddOrUpdate, POST)."""
        hashed = replies.flag(params, "hashed")
        session = self._parse(body)
        min_length = self.gateway.config.min_token_length
        if key and len(key) < min_length:
            raise AdminError(400, (
                f"custom key ID length {len(key)} is less than min_token_length "
                f"({min_length}); the key would be unreachable at auth time. Use an ID of "
                "at least min_token_length characters, or lower min_token_length in the "
                "gateway configuration."))
        is_basic = _basic_password(session) is not None
        name, skey, warnings = await self._add(session, key, params, hashed=hashed)
        key_hash = ""
        if self._hash_keys:
            key_hash = skey
            if is_basic:
                name = ""  # Tyk answers a Basic-auth user's key only by hash
        return replies.modified(name, "added", key_hash, warnings)

    async def _check_bindings(self, session: Mapping[str, Any],
                              original: Mapping[str, Any] | None = None) -> None:
        """Tyk's ``validateMtlsStaticCertificateBindings``: every certificate id
        in ``mtls_static_certificate_bindings`` (those new since ``original``
        on an update) carries the key's org and is in the certificate store;
        AdminError(400) naming the first that does not."""
        bound = session.get("mtls_static_certificate_bindings") or []
        before = set((original or {}).get("mtls_static_certificate_bindings") or [])
        new = [cert_id for cert_id in bound if cert_id not in before]
        org_id = _org(session)
        for cert_id in new:
            if org_id and not cert_id.startswith(org_id):
                raise AdminError(400, f"invalid certificate ID: {cert_id}")
        for cert_id in new:
            if await self.gateway.store.get_certificate(cert_id) is None:
                raise AdminError(400, f"certificate not found: {cert_id}")

    async def _add(self, session: dict[str, Any], key: str, params: Mapping[str, str],
                   *, hashed: bool) -> tuple[str, str, list[str]]:
        """Validate, name and store a new session; its (name, storage key, warnings)."""
        effective = self._effective(session)
        await self._check_bindings(session)
        org_id = _org(session)
        now = time.time()
        session["date_created"] = _go_time(now)
        reset = params.get("suppress_reset") != "1"
        if reset:
            _reset_counters(session, now)
        password = _basic_password(session)
        if password is not None:
            session["basic_auth_data"] = await self._hash_password(password)
        if hashed and key:
            name = skey = key
        else:
            # Tyk's generateToken: a custom key (and a Basic-auth user) is
            # filed under its org, a generated one gets a random id.
            name = make_key(org_id, key, self._hash_function) if key \
                else generate_key(org_id, self._hash_function)
            skey = self._storage_key(name)
        await self._write(skey, session, effective)
        if reset and key:
            # A custom key may replace one whose quota is partly spent.
            await self._reset_quotas(skey, effective)
        await self._changed(skey)
        return name, skey, self._warnings(effective)

    # -- update -------------------------------------------------------------------

    async def update(self, key: str, params: Mapping[str, str], body: bytes) -> bytes:
        """``PUT /tyk/keys/{key}`` (Tyk's handleAddOrUpdate, PUT)."""
        hashed = replies.flag(params, "hashed")
        session = self._parse(body)
        found = await self._find(key, _org(session), hashed)
        if found is None:
            raise AdminError(404, "Key is not found")
        name, skey, original = found
        effective = self._effective(session)
        await self._check_bindings(session, original)
        certificate = session.get("certificate") or ""
        if certificate != (original.get("certificate") or ""):
            # Tyk's rule for a key's certificate (dynamic mTLS).
            if not certificate:
                raise AdminError(400, "Key cannot be used without a certificate")
            await self._check_certificate(certificate)
        if "date_created" in original:
            session["date_created"] = original["date_created"]
        reset = params.get("suppress_reset") != "1"
        if reset:
            _reset_counters(session, time.time())
        else:
            _keep_counters(session, original)
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
        await self._write(skey, session, effective)
        if reset:
            # The counters the old limits used and those the new ones will use.
            await self._reset_quotas(skey, self._quiet_effective(original), effective)
        await self._changed(skey)
        return replies.modified(name, "modified", warnings=self._warnings(effective))

    def _quiet_effective(self, session: dict[str, Any]) -> dict[str, Any]:
        """The effective session of a stored key, as well as it can be worked out
        (its policies may have changed since)."""
        try:
            return apply_policies(session, self.gateway.policies)
        except (PolicyError, TypeError, ValueError, AttributeError):
            return session

    async def policies(self, key: str, body: bytes) -> bytes:
        """``POST /tyk/keys/policy/{key}`` (Tyk's policyUpdateHandler):
        replace the key's policies; ``{key}`` is its storage key (its hash
        with ``hash_keys``)."""
        obj = replies.decode_object(body, BAD_INSTRUCTION)
        ids = obj.get("apply_policies")
        single = obj.get("policy")
        if ids is None:
            ids = []
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) \
                or not isinstance(single, str | None):
            raise AdminError(400, BAD_INSTRUCTION)
        if single:
            ids = [*ids, single]
        found = await self._find(key, "", hashed=True)
        if found is None:
            raise AdminError(404, "Key not found")
        name, skey, session = found
        session["apply_policies"] = list(ids)
        session["apply_policy_id"] = ""
        session["last_updated"] = str(int(time.time()))
        effective = self._effective(session)
        await self._write(skey, session, effective)
        await self._changed(skey)
        return replies.modified(name, "updated")

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
            if not self.gateway.config.enable_hashed_keys_listing:
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
        name, skey, session = found
        if not await self.gateway.store.delete_session(skey):
            raise AdminError(400, "Failed to remove the key")
        # Tyk resets the quota of a deleted key: a key made again later starts afresh.
        await self._reset_quotas(skey, self._quiet_effective(session))
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
