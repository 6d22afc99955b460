"""API definitions: Tyk Classic JSON → :class:`ApiSpec`.

Theory of operation
-------------------
A definition file holds one Tyk Classic API definition, bare or wrapped the
way the Tyk Dashboard exports it (``{"api_definition": {...}, "api_model":
...}``).  fastgate implements a growing subset of the format, and knows the
whole of it: :mod:`.tyk_fields` lists every field name of Tyk's Go structs
(read from a named Tyk commit).  Each field of a definition is, in
:mod:`.fields`:

* **implemented** (:data:`IMPLEMENTED_FIELDS`, inside ``proxy``
  :data:`IMPLEMENTED_PROXY_FIELDS`): validated (a wrong type or value is a
  ConfigError naming the file and the dotted field) and compiled into the
  ``ApiSpec`` by :mod:`.parse`;
* **refused**: an access control fastgate does not enforce yet (below), in
  ``ApiSpec.unsupported_auth``;
* **known, not implemented**: accepted, so a Tyk export loads, and listed in
  ``ApiSpec.ignored_fields`` when it would change what Tyk does;
* **unknown**: not a Tyk field at all, listed in ``ApiSpec.unknown_fields``
  with the closest known name, whatever its value.  Tyk ignores such names,
  so they are warnings; a name that is a Tyk field but for its case is
  refused (Tyk would read it, fastgate would not).

The gateway warns about ignored and unknown fields and refusals once per
change: at start, and on a reload only for a definition that is new or whose
content changed (:mod:`fastgate.server.gateway`).

Security: never serve open what Tyk would protect
-------------------------------------------------
An ignored *feature* degrades gracefully; an ignored *protection* would serve
an API to everyone.  ``ApiSpec.unsupported_auth`` therefore lists every
access control the definition turns on that fastgate does not enforce yet,
and the server answers requests to such an API with 501 instead of proxying
them.  Its settings are not listed again as ignored: the refusal is said
once.  It holds, by field name:

* the auth methods enabled and not implemented yet: every switch of a
  :data:`fastgate.auth.REGISTRY` entry without a builder (``use_openid``,
  ``enable_coprocess_auth``, ``use_go_plugin_auth``,
  ``custom_plugin_auth_enabled`` today; auth token, Basic auth, JWT, HMAC,
  HTTP message signatures, OAuth 2.0 and external OAuth are implemented);
* ``"use_keyless=false"`` when ``use_keyless`` is false and no method is
  enabled, while the registry's fallback (auth token, Tyk's default) is not
  implemented -- it is;
* as in Tyk, ``use_keyless: true`` switches every method above off; the
  following apply to keyless APIs too: ``internal``
  (reachable only from other APIs, never from clients),
  ``enable_ip_whitelisting`` / ``enable_ip_blacklisting`` with a non-empty
  list, endpoint ``white_list`` / ``black_list`` entries in a version
  (``version_data.versions.<v>.extended_paths.black_list``, ...) and
  endpoints marked ``internal`` (``extended_paths.internal``);
* plugins (``custom_middleware``): any hook that would run
  (``custom_middleware.pre``, ``.post``, ``.post_key_auth``, ``.response``
  entries not ``disabled``, a named ``auth_check``, an ``id_extractor`` with
  ``extract_with``) and a ``custom_middleware_bundle``: a ``pre`` hook can be
  an access check.  An empty or all-disabled ``custom_middleware`` is inert.

The auth methods' switches, their own fields (``basic_auth``, ``jwt_*``...),
which of them are implemented and the ``base_identity_provided_by`` values all
come from :data:`fastgate.auth.REGISTRY`: implementing a method is its module
and its registry line, nothing here.  Other access controls, when they land,
add their switch to :mod:`.fields`.
"""

from __future__ import annotations

from fastgate.apidef.fields import (
    AUTH_METHODS,
    IMPLEMENTED_AUTH,
    IMPLEMENTED_FIELDS,
    IMPLEMENTED_PROXY_FIELDS,
    IMPLICIT_STANDARD_AUTH,
)
from fastgate.apidef.load import load_api_definitions
from fastgate.apidef.parse import parse_api_definition
from fastgate.apidef.spec import ApiSpec, AuthEntry

__all__ = [
    "AUTH_METHODS",
    "IMPLEMENTED_AUTH",
    "IMPLEMENTED_FIELDS",
    "IMPLEMENTED_PROXY_FIELDS",
    "IMPLICIT_STANDARD_AUTH",
    "ApiSpec",
    "AuthEntry",
    "load_api_definitions",
    "parse_api_definition",
]
