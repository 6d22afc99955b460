"""``auth_mode: "any"``: the OR of an API's authentication methods.

fastgate's own API-definition field (Tyk Classic chains are AND-only; the OR
is TykTechnologies/tyk#2623).  With ``"all"`` (the default) every method
must pass, in Tyk's chain order; with ``"any"`` one step replaces them:

* the alternatives are static mTLS (``use_mutual_tls_auth``, when on) and
  then the enabled methods, in Tyk's chain order (Basic, HMAC, JWT, auth
  token);
* per request, the **first alternative whose credential the request
  carries** (its ``present``) decides: the request goes on when it passes
  and is refused with that method's answer when it does not.  A later method
  is never tried after a failure: a wrong credential is not retried under
  another method, and one request costs at most one verification;
* an alternative whose credential is missing is skipped;
* when the request carries none, the **last** alternative answers -- its
  "missing credential" refusal (the auth token's 401 "Authorization field
  missing" whenever it is on).  Tyk's own OR (OAS ``securityProcessingMode:
  compliant``) answers the last method's error too, and the last of Tyk's
  order is the method every Tyk client knows.

The method that decides provides the request's identity whatever
``base_identity_provided_by`` says (:func:`fastgate.auth.identity.base_identity`).
Static mTLS proves no identity: a request it admits has no session, so the
session checks and the key's limits are skipped for it (:class:`WhenSession`)
and only the API-wide rate limit applies -- as on a keyless API with mTLS.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Protocol

if TYPE_CHECKING:
    from fastgate.services import Outcome, Request

__all__ = ["Alternative", "AnyOf", "WhenSession"]

#: The values of ``auth_mode``: every method must pass (Tyk's), or any one.
AUTH_MODES = ("all", "any")


class Alternative(Protocol):
    """One way in: an auth method (:class:`fastgate.auth.method.AuthMethod`)
    or static mTLS."""

    name: ClassVar[str]

    def present(self, req: Request, /) -> bool: ...

    def process(self, req: Request, /) -> Outcome: ...


class _Step(Protocol):
    name: ClassVar[str]

    def process(self, req: Request, /) -> Outcome: ...


class AnyOf:
    """The first alternative whose credential is present decides (see the module docstring)."""

    name: ClassVar[str] = "auth_any"

    __slots__ = ("alternatives", "last")

    def __init__(self, alternatives: Sequence[Alternative]) -> None:
        assert alternatives
        self.alternatives = tuple(alternatives)
        self.last = self.alternatives[-1]

    def process(self, req: Request) -> Outcome:
        for method in self.alternatives:
            if method.present(req):
                return method.process(req)
        return self.last.process(req)


class WhenSession:
    """Runs ``step`` for a request with a session only (not one static mTLS
    admitted on its own)."""

    name: ClassVar[str] = "when_session"

    __slots__ = ("step",)

    def __init__(self, step: _Step) -> None:
        self.step = step

    def process(self, req: Request) -> Outcome:
        return None if req.session is None else self.step.process(req)
