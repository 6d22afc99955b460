"""One RFC 7662 introspection call, and what its answer means.

:func:`introspect` POSTs Tyk's form -- ``token``, ``client_id``,
``client_secret`` (``application/x-www-form-urlencoded``; the client
credentials in the form, RFC 6749 §2.3.1's ``client_secret_post``, as Tyk
sends them) -- through the gateway's outbound client, bounded by
``request_timeout`` in all, and returns the answer's JSON object.  It raises
:class:`ProviderFault` for everything that is the authorization server's
fault, each with the complete response the client gets (never a 500):

* unreachable (refused, reset, TLS failure, closed mid-answer): 502;
* no answer within ``request_timeout``: 504;
* a status other than 200: 502;
* a body that is not a JSON object: 502.

:func:`judge` reads an answer (fresh or cached): ``active`` must be a
boolean (else 502 -- Tyk panics); ``active: false`` is 401 "access token is
not valid"; an ``exp`` that is not a number is 502; an ``exp`` in the past
is 401 "key not authorized: token has expired"; then the identity
(``identity_base_field``, else ``sub``; Tyk's messages, 403 as for JWT).

:func:`cache_until` is how long an active answer may be reused: until the
token's ``exp`` and at most ``cache.timeout`` seconds; a timeout of 0 means
"until ``exp``" -- **fastgate differs**: Tyk keeps it forever -- and an
answer without ``exp`` under timeout 0 is kept :data:`DEFAULT_CACHE_SECONDS`.

Messages never hold the token, the client secret or the endpoint's
userinfo and query; the client sees a fixed text, the log the reason.
"""

from __future__ import annotations

import asyncio
import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson

from fastgate.auth.jwt.sessions import IdentityError, identity_of
from fastgate.outbound import OutboundError
from fastgate.responses import error_response

if TYPE_CHECKING:
    from fastgate.auth.external_oauth.config import IntrospectionConfig
    from fastgate.outbound import HttpClient

__all__ = [
    "DEFAULT_CACHE_SECONDS",
    "EXPIRED",
    "NOT_VALID",
    "ProviderFault",
    "cache_until",
    "introspect",
    "judge",
]

#: Seconds an active answer without ``exp`` is kept when ``cache.timeout`` is 0.
DEFAULT_CACHE_SECONDS = 60.0
#: Largest introspection answer read (bytes).
MAX_ANSWER = 256 * 1024

NOT_VALID = error_response(401, "access token is not valid")
EXPIRED = error_response(401, "key not authorized: token has expired")
_PREFIX = "access token validation failed: "

_HEADERS = {"Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json"}


class ProviderFault(Exception):
    """The authorization server failed us; ``response`` is the client's answer
    (502 or 504), the message the reason (for the log)."""

    def __init__(self, status: int, public: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.response = error_response(status, _PREFIX + public)


def fault(status: int, public: str, reason: str = "") -> ProviderFault:
    """A fault whose client text is ``public`` (the log gets ``reason`` or it)."""
    return ProviderFault(status, public, reason or public)


async def introspect(http: HttpClient, config: IntrospectionConfig, token: bytes) -> dict[str, Any]:
    """The authorization server's answer about ``token`` (a JSON object).

    Raises :class:`ProviderFault` (see the module docstring).
    """
    body = urlencode({"token": token, "client_id": config.client_id,
                      "client_secret": config.client_secret}).encode("ascii")
    bound = config.request_timeout
    try:
        # Our own bound fires first (the client's is a backstop), so that a
        # slow server is told from an unreachable one.
        async with asyncio.timeout(bound):
            answer = await http.request("POST", config.url, headers=_HEADERS, body=body,
                                        timeout=bound + 1.0, max_body=MAX_ANSWER)
    except TimeoutError:
        raise fault(504, f"the authorization server did not answer within {bound:g} s") \
            from None
    except OutboundError as exc:
        raise fault(502, "the authorization server cannot be reached", str(exc)) from None
    if answer.status != 200:
        raise fault(502, f"the authorization server answered {answer.status}")
    try:
        claims = orjson.loads(answer.body)
    except orjson.JSONDecodeError:
        claims = None
    if not isinstance(claims, dict):
        raise fault(502, "the authorization server's answer is not a JSON object")
    return claims


def expiry_of(claims: dict[str, Any]) -> float | None:
    """The answer's ``exp`` (None: none); raises ProviderFault when it is no number."""
    exp = claims.get("exp")
    if exp is None:
        return None
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not math.isfinite(exp):
        raise fault(502, "the introspection answer's \"exp\" is not a number")
    return float(exp)


def judge(claims: dict[str, Any], identity_field: str,
          now: float) -> bytes | tuple[str, float | None]:
    """What an answer means: a refusal, or (identity, ``exp`` or None).

    Raises :class:`ProviderFault` for an answer that breaks RFC 7662
    (``active`` not a boolean, ``exp`` not a number).
    """
    active = claims.get("active")
    if active is not True and active is not False:
        raise fault(502, "the introspection answer has no boolean \"active\" member")
    if not active:
        return NOT_VALID
    exp = expiry_of(claims)
    if exp is not None and exp <= now:
        return EXPIRED
    try:
        return identity_of(claims, identity_field), exp
    except IdentityError as exc:
        return error_response(403, str(exc))


def cache_until(now: float, exp: float | None, timeout: int) -> float:
    """Until when an active answer may be reused (see the module docstring)."""
    if timeout > 0:
        until = now + timeout
        return until if exp is None else min(until, exp)
    return now + DEFAULT_CACHE_SECONDS if exp is None else exp
