"""Plugins: Tyk's Python and JavaScript middleware, run in the gateway's own process.

An API definition's ``custom_middleware`` section (or the ``manifest.json``
of the bundle its ``custom_middleware_bundle`` names) lists hooks by kind:

* ``pre`` -- before authentication (before the static mTLS check and the
  API-wide rate limit, as in Tyk);
* ``auth_check`` -- the registry's ``custom`` authentication method, in its
  chain order (with ``custom_plugin_auth_enabled`` / ``enable_coprocess_auth``);
* ``post_key_auth`` -- after the session checks (inactive, expiry, access
  rights), before the session's rate limit and quota;
* ``post`` -- last before the upstream (after the global headers, before
  request signing);
* ``response`` -- on the upstream's answer.

:mod:`.settings` parses the section; :mod:`.changes` applies what a hook did
to the request (headers, URL, query, body, method) and turns Tyk's
``return_overrides`` into an answer -- shared by the two drivers:
:mod:`.python` (``driver: "python"``, Tyk's coprocess API: ``@Hook``,
``TykGateway``) and :mod:`.js` (``driver: "otto"``, Tyk's JSVM API, and
virtual endpoints).  :mod:`.bundles` fetches, verifies and unpacks bundles.
"""
