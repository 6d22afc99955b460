"""Constant-time comparison of secrets; the contract is in compare.pyi."""

__all__ = ["constant_time_equals"]


cdef bint ct_memeq(const unsigned char *a, Py_ssize_t alen,
                   const unsigned char *b, Py_ssize_t blen) noexcept nogil:
    # Same shape as CPython's hmac.compare_digest: when the lengths differ, b is
    # compared with itself so the loop still runs blen times and the result is
    # forced to "different".  The accumulator is volatile so the compiler cannot
    # turn the loop into one that stops at the first difference.
    cdef volatile unsigned char acc = 0
    cdef const unsigned char *left = a
    cdef Py_ssize_t i
    if alen != blen:
        left = b
        acc = 1
    for i in range(blen):
        acc |= left[i] ^ b[i]
    return acc == 0


def constant_time_equals(bytes a not None, bytes b not None):
    return ct_memeq(<const unsigned char *>a, len(a), <const unsigned char *>b, len(b))
