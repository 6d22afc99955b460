"""What a middleware may use, and what it sees of the request.

Every middleware (authentication methods, session checks, limits) is built
from an API's :class:`~fastgate.apidef.ApiSpec`, its own parsed settings and a
:class:`Services` object -- never from the gateway itself.  :class:`Services`
is the whole of what the chain depends on: the gateway configuration (read
only), the store, the session cache, key naming and hashing, the limiter, the
clock, the outbound HTTP client (token introspection), the JWKS cache and
the plugin bundles on disk.

A middleware sees the request as a :class:`Request`
(:class:`fastgate._core.proxy.Exchange` implements it) and answers an
:data:`Outcome`: ``None`` (go on), ``bytes`` (a complete response: refused),
or an awaitable of either when it needs I/O.  :func:`then` chains a step onto
a value that may or may not be awaitable, so that the synchronous path stays
free of coroutines (the hot path rule: a Task only when I/O is needed).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fastgate import responses
from fastgate.storage.base import StoreError

if TYPE_CHECKING:
    from fastgate.auth.jwt.jwks import JwksCache
    from fastgate.auth.oauth2.model import OAuthStore
    from fastgate.certs import ClientCertificate
    from fastgate.config import GatewayConfig
    from fastgate.limits import Limiter
    from fastgate.outbound import HttpClient
    from fastgate.plugins.bundles import BundleCache
    from fastgate.session.cache import CachedSession, SessionCache
    from fastgate.storage.base import Store
    from fastgate.storage.certificates import CertificateCache

__all__ = ["BodyCheck", "Outcome", "Request", "Services", "store_unavailable", "then"]

#: What a middleware answers: go on (None), a complete response (refused), or
#: an awaitable of either.
Outcome = bytes | None | Awaitable[bytes | None]


class BodyCheck(Protocol):
    """A check over a request body as it streams through the proxy
    (:class:`fastgate.auth.hmac.digest.DigestCheck`): see :meth:`Request.check_body`."""

    def update(self, data: bytes, /) -> None:
        """The next piece of the body (after transfer decoding), in order."""

    def finish(self) -> bytes | None:
        """The body has ended: None to forward its end, or a complete
        response refusing the request."""


class Request(Protocol):
    """What a middleware sees of the request (``fastgate._core.proxy.Exchange``).

    ``method``, ``path`` (percent-encoded, without the query), ``query`` (after
    the ``?``) and ``client_ip`` are bytes as received.  ``session`` and
    ``session_key`` are set by the authentication method that establishes the
    request's identity (:class:`fastgate.auth.identity.Identity`).
    """

    @property
    def method(self) -> bytes: ...
    @property
    def path(self) -> bytes: ...
    @property
    def query(self) -> bytes: ...
    @property
    def client_ip(self) -> bytes: ...
    @property
    def request_headers(self) -> list[tuple[bytes, bytes, bytes]]:
        """Every field of the header section as received, in order:
        ``(lower-cased name, name, value)`` (RFC 9421 signs all the values
        of a field, not only the first)."""

    session: CachedSession | None
    session_key: str | None
    #: Context variables recorded by earlier middleware (``jwt_claims_<name>``...),
    #: Tyk's ``$tyk_context.*``; None until one is set.
    context: dict[str, Any] | None
    #: ``Name: value\r\n`` lines added to the upstream's response (limit headers).
    response_headers: bytes
    #: The certificate-store id the client certificate was admitted by (mTLS), or None.
    certificate_id: str | None
    #: ``(step name, refusal)`` once a chain step refused the request (metrics).
    refused_by: tuple[str | None, bytes] | None

    @property
    def tls(self) -> bool:
        """The request came over TLS."""
    @property
    def client_certificate(self) -> ClientCertificate | None:
        """The certificate the TLS client presented (read once per
        connection), or None (none, or plain HTTP)."""

    def header(self, lname: bytes, /) -> bytes | None:
        """The first value of the field named ``lname`` (lower case), or None."""

    def remove_header(self, lname: bytes, /) -> None:
        """Drop every field named ``lname`` from the request forwarded upstream."""

    def add_header(self, name: bytes, value: bytes, /) -> None:
        """Add a field to the request forwarded upstream."""

    def set_query(self, query: bytes, /) -> None:
        """Replace the query string forwarded upstream."""

    def set_path(self, path: bytes, /) -> None:
        """Forward ``path`` (the client's form: listen path included,
        percent-encoded, no query) instead of the client's; ValueError for
        an unusable path (:meth:`fastgate._core.proxy.Exchange.set_path`)."""

    def set_method(self, method: bytes, /) -> None:
        """Forward ``method`` instead of the client's (an RFC 9110 token, else
        ValueError); the answer's framing follows the client's method."""

    def set_body(self, body: bytes, /) -> None:
        """Forward ``body`` (with Content-Length) instead of the client's;
        only once :meth:`read_body` resolved to bytes, or without a body
        (else RuntimeError)."""

    def on_response(self, hook: Callable[[int, list[tuple[bytes, bytes]], bytes | None], Any],
                    body: bool, /) -> None:
        """Show the upstream's answer to ``hook`` before the client gets it
        (the whole body when ``body``); it answers None (unchanged), a
        replacement or an awaitable of either
        (:meth:`fastgate._core.proxy.Exchange.on_response` says what exactly)."""

    def read_body(self) -> Awaitable[bytes | None]:
        """The whole body (None when larger than the proxy buffers); call it
        from ``process()`` itself, before awaiting anything else."""

    def check_body(self, check: BodyCheck, /) -> bytes | None:
        """Run ``check`` over the body as it arrives, without buffering it:
        every byte goes to ``check.update`` and on upstream as usual, except
        the last piece received, held back until ``check.finish()`` accepts
        it; a refusal answers the client instead and the upstream connection
        (holding an incomplete request) is closed.  Bytes that arrived before
        the call (the chain waited) are fed first.  When the body is already
        complete (none, or all of it received), returns ``check.finish()`` at
        once; else None.  Call it before the chain decides (from
        ``process()``, or after an await in it); RuntimeError once the
        request is being forwarded."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Everything a middleware may use (built once per gateway)."""

    config: GatewayConfig
    store: Store
    sessions: SessionCache
    limiter: Limiter
    http: HttpClient
    #: The policies in service, by id (they change on reload and through the API).
    policies: Callable[[], dict[str, dict[str, Any]]]
    #: Wall-clock time (seconds since the epoch); a test may replace it.
    clock: Callable[[], float] = field(default=time.time)
    #: The gateway's JWK Sets by URL (:mod:`fastgate.auth.jwt.jwks`).
    jwks: JwksCache
    #: The certificate store's records (:mod:`fastgate.storage.certificates`).
    certificates: CertificateCache
    #: The OAuth 2.0 provider's clients, codes and tokens
    #: (:mod:`fastgate.auth.oauth2.model`).
    oauth: OAuthStore
    #: The plugin bundles on disk (:mod:`fastgate.plugins.bundles`):
    #: ``bundles.get(...)`` while compiling an API's chain.
    bundles: BundleCache

    @property
    def hash_keys(self) -> bool:
        return self.config.hash_keys

    @property
    def hash_key_function(self) -> str:
        return self.config.hash_key_function


def store_unavailable(exc: Exception) -> bytes:
    """The answer when the session store cannot be asked (never a guess either way)."""
    return responses.error_response(503, f"Session store unavailable: {exc}")


def then(value: Any, step: Callable[[Any], Outcome]) -> Outcome:
    """``step(value)`` now when ``value`` is ready, else an awaitable doing it
    once ``value`` resolves (awaiting what ``step`` returns, too).

    A StoreError raised while waiting becomes :func:`store_unavailable`'s
    answer: a middleware never lets the store's failure escape as a 500.
    """
    if not hasattr(value, "__await__"):
        return step(value)
    return _then(value, step)


async def _then(pending: Awaitable[Any], step: Callable[[Any], Outcome]) -> bytes | None:
    try:
        value = await pending
        outcome = step(value)
        if outcome is None or isinstance(outcome, bytes):
            return outcome
        return await outcome
    except StoreError as exc:
        return store_unavailable(exc)
