"""Validators for HTTP/1.1 header names and values (RFC 9110).

The protocol layer refuses a request whose header name is not a token or whose
header value holds a control character (400, connection closed): both are how
request smuggling and header injection start.  Both functions take exactly
``bytes`` (TypeError otherwise) and never look past the given bytes.
"""

__all__ = ["has_ctl", "is_token"]

def is_token(name: bytes) -> bool:
    """Return True when ``name`` is an RFC 9110 ``token`` (one or more ``tchar``).

    ``tchar`` is ``!#$%&'*+-.^_`|~``, a digit or an ASCII letter; the empty name
    is not a token.
    """

def has_ctl(value: bytes) -> bool:
    """Return True when ``value`` holds a control character: a byte below 0x20
    other than HTAB (0x09), or DEL (0x7F).

    Bytes 0x80-0xFF (``obs-text``) are not control characters.
    """
