"""Constant-time comparison of secrets; the contract is in compare.pyi."""

from libc.stdint cimport uint64_t
from libc.string cimport memcpy

__all__ = ["constant_time_equals"]

cdef extern from *:
    """
    /* FG_VALUE_BARRIER(x): the optimiser may assume nothing about x afterwards,
       so it cannot turn the comparison loop into one that stops at the first
       difference (the accumulator could be anything).  An empty asm statement
       costs nothing; elsewhere, a round trip through volatile memory. */
    #if defined(__GNUC__) || defined(__clang__)
    #  define FG_VALUE_BARRIER(x) __asm__ __volatile__("" : "+r"(x))
    #else
    static void fg_value_barrier(unsigned long long *x) {
        volatile unsigned long long v = *x;
        *x = v;
    }
    #  define FG_VALUE_BARRIER(x) fg_value_barrier((unsigned long long *)&(x))
    #endif
    """
    void FG_VALUE_BARRIER(uint64_t x) noexcept nogil


cdef bint ct_memeq(const unsigned char *a, Py_ssize_t alen,
                   const unsigned char *b, Py_ssize_t blen) noexcept nogil:
    # Same shape as CPython's hmac.compare_digest: when the lengths differ, b is
    # compared with itself so the loop still runs over blen bytes and the result
    # is forced to "different".  Eight bytes at a time, then the rest.
    cdef const unsigned char *left = a
    cdef uint64_t acc = 0
    cdef uint64_t wa, wb
    cdef Py_ssize_t i = 0
    if alen != blen:
        left = b
        acc = 1
    while i + 8 <= blen:
        memcpy(&wa, left + i, 8)
        memcpy(&wb, b + i, 8)
        acc |= wa ^ wb
        FG_VALUE_BARRIER(acc)
        i += 8
    while i < blen:
        acc |= left[i] ^ b[i]
        FG_VALUE_BARRIER(acc)
        i += 1
    return acc == 0


def constant_time_equals(bytes a not None, bytes b not None):
    return ct_memeq(<const unsigned char *>a, len(a), <const unsigned char *>b, len(b))
