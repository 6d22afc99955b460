"""Pure-Python twin of fastgate._core.http (same interface, see http.pyi)."""

import re as _re
import string as _string

__all__ = ["has_ctl", "is_token"]

# RFC 9110 §5.6.2 tchar, and the CTLs a field value may not hold (§5.5).
_TCHARS = (
    b"!#$%&'*+-.^_`|~" + _string.digits.encode("ascii") + _string.ascii_letters.encode("ascii")
)
_CTL = _re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _require_bytes(value: object, name: str) -> None:
    if type(value) is not bytes:
        raise TypeError(
            f"Argument '{name}' has incorrect type (expected bytes, got {type(value).__name__})"
        )


def is_token(name: bytes) -> bool:
    """Return True when ``name`` is an RFC 9110 token (one or more tchar)."""
    _require_bytes(name, "name")
    # Deleting every tchar leaves nothing exactly when all bytes are tchars.
    return bool(name) and not name.translate(None, _TCHARS)


def has_ctl(value: bytes) -> bool:
    """Return True when ``value`` holds a byte < 0x20 other than HTAB, or 0x7F."""
    _require_bytes(value, "value")
    return _CTL.search(value) is not None
