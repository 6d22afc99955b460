"""The shape every authentication method has (Kong's handler + schema +
PRIORITY, as data).

A method lives in its own module (or folder) under ``fastgate/auth/`` and
declares one :class:`AuthMethodSpec` named ``METHOD``: its name, the
API-definition switch(es) that enable it, its place in Tyk's chain, the
definition fields it reads, the ``base_identity_provided_by`` value naming it,
a parser for its settings and a factory for the middleware.
:data:`fastgate.auth.REGISTRY` lists them; the API-definition loader and the
chain builder read the registry and never name a method.

The middleware a factory builds is an :class:`AuthMethod`: ``process(request)``
answers synchronously when it can and hands back an awaitable only when it
needs I/O (a session not cached, a JWKS fetch).  It finds a session and hands
it to the request through :class:`fastgate.auth.identity.Identity` -- and
returns what ``Identity.accept`` answers: a key that is not the base identity
may still be refused there (expired, inactive).  ``present(request)`` says,
without running the method, whether the request carries its credential: an
API with ``auth_mode: "any"`` (:mod:`fastgate.middleware.any_auth`) hands the
request to the first method whose credential is present.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from fastgate.apidef.spec import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Outcome, Request, Services

__all__ = ["AuthMethod", "AuthMethodSpec"]


class AuthMethod(Protocol):
    """One authentication step of an API's chain."""

    name: ClassVar[str]

    def process(self, req: Request, /) -> Outcome:
        """Refuse (a prepared response), go on (None) or wait (an awaitable).

        The session found goes to the request through
        :meth:`fastgate.auth.identity.Identity.accept`, whose answer is
        returned (a refusal of a non-base key that is expired or inactive).
        """

    def present(self, req: Request, /) -> bool:
        """Whether the request carries this method's credential -- where
        ``process`` would read it, without reading, stripping or verifying
        anything: cheap, synchronous, no I/O and no side effect.

        False exactly when ``process`` would answer its "missing credential"
        refusal; a credential that is present but wrong is present.  Used by
        ``auth_mode: "any"``: the first method (in chain order) whose
        credential is present decides the request.  Every method implements
        it: the auth token and JWT (their credential source reads something;
        JWT: something shaped like a JWS), Basic (its header in the Basic
        scheme, or a body to extract from), HMAC (its signature header), the
        client certificate for the mTLS methods.
        """


@dataclass(frozen=True, slots=True)
class AuthMethodSpec:
    """One registry entry."""

    #: The method's name ("auth_token"), also the middleware's ``name``.
    name: str
    #: The API-definition switches that enable it (any of them), dotted for a
    #: section's switch ("external_oauth.enabled").
    enabled_by: tuple[str, ...]
    #: Its place in Tyk's chain: lower runs first (all enabled methods must pass).
    order: int
    #: The ``base_identity_provided_by`` value that names it ("" for none).
    identity: str
    #: Top-level definition fields only this method reads (its switches are
    #: implied); they act only while the method is on.
    fields: frozenset[str] = frozenset()
    #: Reads the method's settings from the definition (a ConfigError names the
    #: field); None while the method is not implemented -- an API enabling it is
    #: then refused (501), never served open.
    parse: Callable[[FieldReader], Any] | None = None
    #: Builds the middleware from the API, the parsed settings and the services.
    build: Callable[[ApiSpec, Any, Services], AuthMethod] | None = None
    #: Enabled when the definition enables no method at all and is not
    #: keyless (Tyk's auth token).
    fallback: bool = False

    @property
    def implemented(self) -> bool:
        return self.parse is not None and self.build is not None
