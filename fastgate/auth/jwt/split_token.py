"""The split-token flow, built in: the client never holds the JWT.

Tyk documents this as a JavaScript virtual endpoint plus a global header;
fastgate does it with one section of the API definition (fastgate's own)::

    "split_token": {
        "enabled": true,
        "idp_token_url": "https://idp.example/realms/r/protocol/openid-connect/token",
        "token_path": "/token",
        "timeout": 10,
        "apply_policies": ["gold"]
    }

* ``POST <listen_path><token_path>`` (default ``/token``) is answered by the
  gateway, before any authentication: the request's body, ``Content-Type``
  and ``Authorization`` (``client_secret_basic``) go to ``idp_token_url``
  through the gateway's outbound client, bounded by ``timeout`` seconds
  (default 10).  Another method on that path gets 405.
* The IdP's 2xx answer must be JSON whose ``access_token`` is a compact JWS.
  The gateway stores a key whose id is the JWT's signature (the third part),
  with ``meta_data.jwt`` the whole JWT, ``alias`` its ``sub``, ``expires``
  its ``exp`` (else now + the answer's ``expires_in``), and access to this
  API -- through ``apply_policies`` when given, else an ``access_rights``
  entry with no limits of its own.  The record lives in the store until the
  JWT expires, so every node sees it.
* The client gets the IdP's JSON with ``access_token`` replaced by the
  signature (``refresh_token`` and ``refresh_expires_in`` left out, as in
  Tyk's example: a refresh token would hand the client a whole JWT), with
  ``Cache-Control: no-store`` (RFC 6749 §5.1).
* The IdP's 4xx answers are passed through (status, body, content type): the
  client sees why its credentials were refused.  A 5xx, an unreachable or
  slow IdP, or an answer without a JWT gives 502.
* Protected requests present the signature as an auth-token key (the API
  must use the auth token, ``use_standard_auth`` or Tyk's default); once the
  key is found and passes its checks and limits, the request goes upstream
  with ``Authorization: Bearer <the JWT>`` in place of the client's
  credential.  The same can be written as Tyk does it, with the global header
  ``Authorization: Bearer $tyk_meta.jwt`` (:mod:`fastgate.middleware.headers`).

The JWT is the IdP's answer over the gateway's own client; it is not
verified again here (the upstream, or a JWT-protected API, verifies it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from fastgate import responses
from fastgate._core import jws
from fastgate.outbound import OutboundError
from fastgate.services import store_unavailable
from fastgate.session import key_lifetime, make_key, parse_session, storage_key
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["SplitTokenConfig", "SplitTokenEndpoint", "SplitTokenUpstream",
           "parse_split_token"]

DEFAULT_TIMEOUT = 10.0
#: The largest token request forwarded (a client-credentials form is tiny).
MAX_REQUEST_BODY = 64 * 1024
_NO_STORE = ((b"Cache-Control", b"no-store"), (b"Pragma", b"no-cache"))
METHOD_NOT_ALLOWED = responses.json_response(
    405, {"error": "Method Not Allowed: the token endpoint takes POST"},
    extra_headers=((b"Allow", b"POST"),))
TOO_LARGE = responses.error_response(413, "Request body too large for the token endpoint")
_MAX_JWT = 16 * 1024


@dataclass(frozen=True, slots=True)
class SplitTokenConfig:
    """An API's ``split_token`` section (see the module docstring)."""

    idp_token_url: str
    token_path: str = "/token"  # noqa: S105 (a path, not a secret)
    timeout: float = DEFAULT_TIMEOUT
    apply_policies: tuple[str, ...] = ()


def parse_split_token(top: FieldReader, *, keyless: bool,
                      uses_auth_token: bool) -> SplitTokenConfig | None:
    """The section, or None when absent or off (ConfigError names the field)."""
    section = top.section("split_token")
    if not section.boolean("enabled"):
        return None
    url = section.string("idp_token_url")
    if not url.lower().startswith(("http://", "https://")):
        raise section.error("idp_token_url", "is required: the IdP's token endpoint, "
                                             "an http:// or https:// URL")
    path = section.string("token_path", "/token")
    if not path.startswith("/") or "?" in path or "#" in path or " " in path:
        raise section.error("token_path", f"{path!r}: a path under the listen path, "
                                          "starting with '/'")
    timeout = section.number("timeout", DEFAULT_TIMEOUT)
    if not timeout > 0 or not math.isfinite(timeout):
        raise section.error("timeout", "must be a positive number of seconds")
    policies = section.string_list("apply_policies")
    if keyless or not uses_auth_token:
        raise section.error("enabled", "the split token is presented as an auth-token key:"
                                       " the API needs use_standard_auth (and not keyless)")
    return SplitTokenConfig(idp_token_url=url, token_path=path, timeout=timeout,
                            apply_policies=policies)


def _endpoint_path(listen_path: str, token_path: str) -> bytes:
    return (listen_path.rstrip("/") + token_path).encode("ascii")


class SplitTokenEndpoint:
    """Answers ``POST <listen_path><token_path>``; other requests go on."""

    name: ClassVar[str] = "split_token_endpoint"

    def __init__(self, spec: ApiSpec, config: SplitTokenConfig, services: Services) -> None:
        self.spec = spec
        self.config = config
        self.services = services
        self.path = _endpoint_path(spec.listen_path, config.token_path)

    def process(self, req: Request) -> Outcome:
        if req.path != self.path:
            return None
        if req.method != b"POST":
            return METHOD_NOT_ALLOWED
        length = req.header(b"content-length")
        if length is not None and length.isdigit() and int(length) > MAX_REQUEST_BODY:
            return TOO_LARGE
        headers = {"Accept": "application/json"}
        for lname, name in ((b"content-type", "Content-Type"),
                            (b"authorization", "Authorization")):
            value = req.header(lname)
            if value is not None:
                headers[name] = value.decode("latin-1")
        return self._exchange(req.read_body(), headers)

    async def _exchange(self, body_pending: Any, headers: dict[str, str]) -> bytes:
        body = await body_pending
        if body is None or len(body) > MAX_REQUEST_BODY:
            return TOO_LARGE
        config = self.config
        try:
            answer = await self.services.http.request(
                "POST", config.idp_token_url, headers=headers, body=body,
                timeout=config.timeout, max_body=256 * 1024)
        except OutboundError as exc:
            return responses.error_response(502, f"Token endpoint unavailable: {exc}")
        if 400 <= answer.status < 500:
            content_type = answer.header("content-type") or "application/json"
            return _passthrough(answer.status, answer.body, content_type)
        if not 200 <= answer.status < 300:
            return responses.error_response(
                502, f"Token endpoint unavailable: the identity provider answered "
                     f"{answer.status}")
        try:
            grant = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            grant = None
        token = grant.get("access_token") if isinstance(grant, dict) else None
        parsed = (jws.parse(token.encode("utf-8"), _MAX_JWT)
                  if isinstance(token, str) else "no access_token")
        if isinstance(parsed, str):
            return responses.error_response(
                502, "Token endpoint unavailable: the identity provider's answer holds "
                     "no JWT access_token")
        assert isinstance(grant, dict) and isinstance(token, str)
        signature = token.rsplit(".", 1)[1]
        try:
            await self._store(signature, token, parsed.claims, grant)
        except StoreError as exc:
            return store_unavailable(exc)
        except ValueError as exc:
            return responses.error_response(500, f"failed to create key: {exc}")
        reply = {name: value for name, value in grant.items()
                 if name not in ("refresh_token", "refresh_expires_in")}
        reply["access_token"] = signature
        return responses.json_response(answer.status, reply, extra_headers=_NO_STORE)

    async def _store(self, signature: str, token: str, claims: dict[str, Any],
                     grant: dict[str, Any]) -> None:
        """Writes the key named by the signature (every node sees it)."""
        services = self.services
        spec = self.spec
        now = services.clock()
        exp = claims.get("exp")
        expires_in = grant.get("expires_in")
        if isinstance(exp, int | float) and not isinstance(exp, bool):
            expires = int(exp)
        elif isinstance(expires_in, int | float) and not isinstance(expires_in, bool) \
                and expires_in > 0:
            expires = int(now + expires_in)
        else:
            expires = 0
        sub = claims.get("sub")
        session: dict[str, Any] = {
            "org_id": spec.org_id,
            "alias": sub if isinstance(sub, str) else "",
            "expires": expires,
            "meta_data": {"jwt": token},
            "quota_max": -1,
        }
        if self.config.apply_policies:
            session["apply_policies"] = list(self.config.apply_policies)
        else:
            session["access_rights"] = {spec.api_id: {
                "api_id": spec.api_id, "api_name": spec.name, "versions": ["Default"]}}
        record = parse_session(session)
        config = services.config
        skey = storage_key(make_key(spec.org_id, signature, services.hash_key_function),
                           hash_keys=services.hash_keys,
                           hash_key_function=services.hash_key_function)
        if config.force_global_session_lifetime:
            lifetime = config.global_session_lifetime
        elif expires > now:
            lifetime = int(expires - now) + 1  # the key is the JWT: it lives as long
        else:
            lifetime = key_lifetime(
                record, now, api_lifetime=spec.session_lifetime,
                respects_expiration=spec.session_lifetime_respects_key_expiration,
                force_global=False, global_lifetime=config.global_session_lifetime)
        await services.sessions.save(skey, orjson.dumps(record),
                                     0 if lifetime <= 0 else lifetime)


def _passthrough(status: int, body: bytes, content_type: str) -> bytes:
    head = [responses.STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n",
            b"Cache-Control: no-store\r\n",
            b"Content-Length: %d\r\n\r\n" % len(body)]
    return b"".join(head) + body


class SplitTokenUpstream:
    """Sends the key's JWT upstream (``Authorization: Bearer <jwt>``)."""

    name: ClassVar[str] = "split_token_upstream"

    def process(self, req: Request) -> None:
        found = req.session
        if found is None:
            return
        meta = found.session.get("meta_data")
        token = meta.get("jwt") if isinstance(meta, dict) else None
        if not isinstance(token, str) or not token:
            return
        value = token.encode("utf-8")
        if b"\r" in value or b"\n" in value or b"\x00" in value:
            return
        req.remove_header(b"authorization")
        req.add_header(b"Authorization", b"Bearer " + value)
