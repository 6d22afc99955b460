"""Tyk's JavaScript plugins (``driver: "otto"``): middleware and virtual endpoints.

:mod:`.runtime` runs an API's scripts in QuickJS worker processes
(:mod:`.worker`) with Tyk's ``TykJS`` API (:mod:`.shim`) and host functions;
:mod:`.middleware` is the ``pre`` / ``post_key_auth`` / ``post`` chain step,
:mod:`.virtual` the ``extended_paths.virtual`` one.  See
``docs/plugins-javascript.md``.
"""
