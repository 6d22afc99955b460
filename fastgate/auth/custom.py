"""Custom authentication by a plugin (Tyk's ``custom_plugin_auth_enabled`` /
``enable_coprocess_auth``): the API's ``custom_middleware.auth_check`` hook
decides, in Tyk's chain order (after JWT and OIDC, before the auth token),
with the identity name ``custom_auth``.

The hook itself is loaded by :mod:`fastgate.plugins` (Python:
:class:`fastgate.plugins.python.middleware.PythonAuth`); an API that turns
the method on without naming an ``auth_check`` is refused when it is
loaded (Tyk would answer every request 403).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fastgate.auth.method import AuthMethod, AuthMethodSpec
from fastgate.config import ConfigError

if TYPE_CHECKING:
    from fastgate.apidef.spec import ApiSpec
    from fastgate.config import FieldReader
    from fastgate.services import Services

__all__ = ["METHOD"]


def _parse(_top: FieldReader) -> bool:
    return True  # the hooks are read with the plugins (a bundle's manifest may name them)


def _build(spec: ApiSpec, _settings: Any, services: Services) -> AuthMethod:
    from fastgate.plugins.runtime import plugins_for

    plugins = plugins_for(spec, services)
    if plugins is None or plugins.auth is None:
        raise ConfigError(spec.source, "custom_plugin_auth_enabled",
                          "custom authentication is on but no plugin auth_check is named "
                          "(custom_middleware.auth_check, or the bundle's manifest)")
    method: AuthMethod = plugins.auth
    return method


METHOD = AuthMethodSpec("custom", ("enable_coprocess_auth", "custom_plugin_auth_enabled"), 70,
                        "custom_auth", parse=_parse, build=_build)
