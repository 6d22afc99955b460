"""Pure-Python twin of fastgate._core.compare (same interface, see compare.pyi)."""

from hmac import compare_digest as _compare_digest

__all__ = ["constant_time_equals"]


def constant_time_equals(a: bytes, b: bytes) -> bool:
    """Return True when ``a`` and ``b`` hold the same bytes, in constant time.

    Raises TypeError unless both arguments are exactly ``bytes`` (as the compiled
    module does; hmac.compare_digest alone would also accept str and buffers).
    """
    if type(a) is not bytes:
        raise TypeError(f"Argument 'a' has incorrect type (expected bytes, got {type(a).__name__})")
    if type(b) is not bytes:
        raise TypeError(f"Argument 'b' has incorrect type (expected bytes, got {type(b).__name__})")
    return _compare_digest(a, b)
