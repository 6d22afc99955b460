"""Building and running an API's middleware chain.

The chain of an API is data, compiled once when the API is loaded: static
mTLS (the client certificate's allow-list, when on), the API-wide rate
limit, the split-token endpoint (when on), the OAuth 2.0 provider's
endpoints (with ``use_oauth2``), then the authentication methods
the definition enables -- ``spec.auth``, which the definition loader took
from :data:`fastgate.auth.REGISTRY`, filtered and sorted by Tyk's chain
order; all of them must pass (with ``auth_mode: "any"`` one step tries them
instead, static mTLS among them: :mod:`fastgate.middleware.any_auth`) --
then the checks on the session they found (inactive, expiry, access rights),
its limits, and last the headers sent upstream (the split token's JWT, the
global headers), virtual endpoints, the plugins' ``post`` hooks, request
signing, and the step registering the ``response`` hooks.  The plugins'
``pre`` hooks come first of all, their ``post_key_auth`` hooks between the
session checks and the limits (:mod:`fastgate.plugins`).  Nothing here
names a method.

Running the chain costs no Task while every step answers synchronously; the
first step that needs I/O turns the rest of the chain into one coroutine.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, ClassVar, Protocol

from fastgate._core.proxy import Chain
from fastgate.auth.hmac.request_signing import RequestSigning
from fastgate.auth.jwt.split_token import SplitTokenEndpoint, SplitTokenUpstream
from fastgate.auth.oauth2.endpoints import OAuthEndpoints
from fastgate.config import ConfigError, FieldReader
from fastgate.middleware.any_auth import Alternative, AnyOf, WhenSession
from fastgate.middleware.headers import GlobalHeaders
from fastgate.middleware.limits import GlobalRateLimit, SessionLimits
from fastgate.middleware.mtls import CertificateCheck
from fastgate.middleware.session_checks import SessionChecks
from fastgate.plugins.runtime import plugins_for

if TYPE_CHECKING:
    from fastgate.apidef import ApiSpec
    from fastgate.services import Outcome, Request, Services

__all__ = ["Chain", "Middleware", "build_chain"]


class Middleware(Protocol):
    """One step of a chain."""

    name: ClassVar[str]

    def process(self, req: Request, /) -> Outcome: ...


def build_chain(spec: ApiSpec, services: Services) -> Chain | None:
    """The chain for ``spec``, or None when nothing applies (keyless, no limit).

    Raises ConfigError when the API's plugins or virtual endpoints cannot be
    loaded (the definition is then not put into service)."""
    steps: list[Middleware] = []
    tracing = services.config.observability.tracing
    if tracing.enabled:  # first, so that refused requests are traced too
        from fastgate.observability.tracing import TraceStep
        steps.append(TraceStep(tracing))
    plugins = plugins_for(spec, services)
    if plugins is not None:
        steps += plugins.pre
    mtls = CertificateCheck.for_api(spec, services) \
        if spec.client_certificates is not None else None
    auth: list[Alternative] = []
    for method, settings in spec.auth:
        assert method.build is not None  # the loader keeps implemented methods only
        auth.append(method.build(spec, settings, services))
    any_of = spec.auth_mode == "any" and len(auth) + (mtls is not None) > 1
    if mtls is not None and not any_of:
        steps.append(mtls)
    if spec.global_rate_limit is not None:
        steps.append(GlobalRateLimit(spec, services))
    if spec.split_token is not None:
        steps.append(SplitTokenEndpoint(spec, spec.split_token, services))
    oauth = spec.auth_settings("oauth2")
    if oauth is not None:
        steps.append(OAuthEndpoints(spec, oauth, services))
    if auth:
        checks: list[Middleware] = [SessionChecks(spec, services),
                                    *(plugins.post_key_auth if plugins is not None else ()),
                                    SessionLimits(spec, services)]
        if not any_of:
            steps += auth
        elif mtls is None:
            steps.append(AnyOf(auth))
        else:
            steps.append(AnyOf([mtls, *auth]))
            # A request static mTLS admitted on its own has no session to check.
            checks = [WhenSession(step) for step in checks]
        steps += checks
    if spec.split_token is not None:
        steps.append(SplitTokenUpstream())
    if spec.global_headers or spec.global_headers_remove:
        steps.append(GlobalHeaders(spec))
    virtual = virtual_endpoints(spec, services)
    if virtual is not None:
        steps.append(virtual)
    if plugins is not None:
        steps += plugins.post
    if spec.request_signing is not None:
        steps.append(RequestSigning(spec, spec.request_signing, services))
    if plugins is not None and plugins.response is not None:
        steps.append(plugins.response)
    return Chain(steps) if steps else None


def virtual_endpoints(spec: ApiSpec, services: Services) -> Middleware | None:
    """The served version's JavaScript virtual endpoints (``extended_paths.virtual``),
    scripts read from the gateway configuration's directory as Tyk reads them
    from its working directory; None for none.  ConfigError when one cannot
    be loaded, or when ``enable_jsvm`` is off."""
    versions = spec.version_data.get("versions") or {}
    name = next(iter(versions)) if len(versions) == 1 else "Default"
    version = versions.get(name)
    if not isinstance(version, dict) or not isinstance(version.get("extended_paths"), dict) \
            or not version["extended_paths"].get("virtual"):
        return None
    from fastgate.plugins.js.virtual import VirtualEndpoints, parse_virtual_endpoints

    top = FieldReader(spec.raw, spec.source)
    endpoints = parse_virtual_endpoints(top, {"name": name, **version},
                                        os.path.dirname(services.config.path))
    if not endpoints:
        return None
    if not services.config.plugins.enable_jsvm:
        raise ConfigError(spec.source, endpoints[0].where,
                          "virtual endpoints need enable_jsvm: true in the gateway "
                          f"configuration ({services.config.path})")
    step: Middleware = VirtualEndpoints(spec, endpoints, services)  # type: ignore[assignment]
    return step
