"""What the REST API may use of the gateway: :class:`Control`.

The ``/tyk/`` handlers manage what is in service -- keys in the store, policies,
API definitions, caches -- and need the gateway for exactly this much; they are
given this interface (the gateway implements it) and never the gateway itself,
so they cannot reach into the listeners, the pools or the chains.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.auth.jwt.jwks import JwksCache
    from fastgate.auth.oauth2.model import OAuthStore
    from fastgate.config import GatewayConfig
    from fastgate.observability.metrics import Metrics
    from fastgate.session.cache import SessionCache
    from fastgate.storage.base import Store
    from fastgate.storage.certificates import CertificateCache

__all__ = ["Control"]


class Control(Protocol):
    """The gateway as the REST API sees it."""

    @property
    def config(self) -> GatewayConfig:
        """The gateway configuration (read only)."""

    @property
    def store(self) -> Store:
        """Keys, policies and organisation sessions, and change notifications."""

    @property
    def sessions(self) -> SessionCache:
        """This worker's session cache (a change drops its entry at once)."""

    @property
    def jwks(self) -> JwksCache:
        """This worker's JWK Sets, by URL (flushed by ``/tyk/cache/jwks``)."""

    @property
    def certificates(self) -> CertificateCache:
        """The certificate store's records, as this worker has read them."""

    @property
    def oauth(self) -> OAuthStore:
        """The OAuth 2.0 provider's clients, codes and tokens."""

    @property
    def metrics(self) -> Metrics:
        """This worker's metrics (``/metrics``)."""

    @property
    def specs(self) -> Sequence[ApiSpec]:
        """Every API definition loaded, active or not."""

    @property
    def policies(self) -> dict[str, dict[str, Any]]:
        """The policies in service, by id (files and store)."""

    @property
    def file_policy_ids(self) -> frozenset[str]:
        """The ids of the policies that come from policy files (read only here)."""

    #: Tells the other workers of this node to reload (None with one worker).
    on_reload: Callable[[], None] | None

    def reload(self) -> str | None:
        """Reload API definitions and policies; the error, or None."""

    async def refresh_policies(self) -> None:
        """Re-read the policies kept in the store; raises StoreError."""
