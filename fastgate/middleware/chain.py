"""Building and running an API's middleware chain.

Order follows Tyk's: the authentication methods in Tyk's chain order
(OAuth 2.0, external OAuth, Basic, HMAC, JWT, OIDC, custom, auth token — all
enabled ones must pass), then the checks on the session they found (inactive,
expiry, access rights).  Running the chain costs no Task while every step
answers synchronously; the first step that needs I/O turns the rest of the
chain into one coroutine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.server.gateway import Gateway

Outcome = bytes | None | Awaitable[bytes | None]


class Middleware(Protocol):
    """One step of a chain."""

    name: str

    def process(self, ex: Any) -> Outcome: ...


class Chain:
    """Runs its steps in order until one refuses the request."""

    __slots__ = ("steps",)

    def __init__(self, steps: Sequence[Middleware]) -> None:
        self.steps = tuple(steps)

    def __call__(self, ex: Any) -> Outcome:
        steps = self.steps
        for index in range(len(steps)):
            result = steps[index].process(ex)
            if result is None:
                continue
            if result.__class__ is bytes:
                return result
            if index == len(steps) - 1:
                return result  # the last step: its awaitable is the chain's
            return self._resume(result, index + 1, ex)  # type: ignore[arg-type]
        return None

    async def _resume(self, pending: Awaitable[bytes | None], start: int, ex: Any) -> bytes | None:
        result = await pending
        if result is not None:
            return result
        for step in self.steps[start:]:
            outcome = step.process(ex)
            if outcome is None:
                continue
            if isinstance(outcome, bytes):
                return outcome
            result = await outcome
            if result is not None:
                return result
        return None


#: Authentication methods by the name ApiSpec.auth_methods uses, in Tyk's order.
AuthFactory = Callable[["ApiSpec", "Gateway"], Middleware]


def _auth_factories() -> dict[str, AuthFactory]:
    from fastgate.auth.auth_token import AuthToken
    from fastgate.auth.basic_auth import BasicAuth

    return {"basic_auth": BasicAuth, "auth_token": AuthToken}


def build_chain(spec: ApiSpec, gateway: Gateway) -> Chain | None:
    """The chain for ``spec``, or None when nothing applies (keyless, no limit)."""
    from fastgate.middleware.limits import GlobalRateLimit, SessionLimits
    from fastgate.middleware.session_checks import SessionChecks

    factories = _auth_factories()
    steps: list[Middleware] = []
    if spec.global_rate_limit is not None:
        steps.append(GlobalRateLimit(spec, gateway))
    auth = [factories[name](spec, gateway) for name in spec.auth_methods]
    if auth:
        steps += auth
        steps.append(SessionChecks(spec, gateway))
        steps.append(SessionLimits(spec, gateway))
    return Chain(steps) if steps else None
