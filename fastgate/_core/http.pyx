"""Validators for HTTP/1.1 header names and values; the contract is in http.pyi."""

__all__ = ["has_ctl", "is_token"]

# RFC 9110 §5.6.2:
#   token  = 1*tchar
#   tchar  = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
#            "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA
# RFC 9110 §5.5: field values never contain CTLs other than HTAB; obs-text
# (0x80-0xFF) is allowed through.
cdef unsigned char TCHAR[256]
cdef unsigned char CTL[256]

cdef int _c
for _c in range(256):
    TCHAR[_c] = 0
    CTL[_c] = (_c < 0x20 and _c != 0x09) or _c == 0x7F
for _c in b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz":
    TCHAR[_c] = 1


def is_token(bytes name not None):
    cdef const unsigned char *p = <const unsigned char *>name
    cdef Py_ssize_t n = len(name)
    cdef Py_ssize_t i
    if n == 0:
        return False
    for i in range(n):
        if not TCHAR[p[i]]:
            return False
    return True


def has_ctl(bytes value not None):
    cdef const unsigned char *p = <const unsigned char *>value
    cdef Py_ssize_t n = len(value)
    cdef Py_ssize_t i
    for i in range(n):
        if CTL[p[i]]:
            return True
    return False
