"""Constant-time comparison of secrets.

This is fastgate's one helper for comparing a secret (a MAC, a token, a password
hash, the admin secret) with the value a client presented.  Never use ``==`` on
those: it returns at the first differing byte and so tells an attacker, through
timing, how much of a guess is right.
"""

def constant_time_equals(a: bytes, b: bytes) -> bool:
    """Return True when ``a`` and ``b`` hold the same bytes.

    The time taken depends on ``len(b)`` only, not on the contents of either
    argument; when the lengths differ the result is False, still without an
    early exit.  Pass the client-supplied value as ``b``.

    Raises TypeError unless both arguments are exactly ``bytes``.
    """
