# C-level entry point of fastgate._core.compare, for other Cython modules:
#
#     from fastgate._core.compare cimport ct_memeq
#
# ct_memeq(a, alen, b, blen) is true when the two buffers hold the same bytes.
# Its running time depends on blen only, never on the contents, and not on alen
# beyond the fact that it differs from blen: pass the attacker-controlled value
# (the presented MAC, token, password hash) as ``b``.  It never raises.

cdef bint ct_memeq(const unsigned char *a, Py_ssize_t alen,
                   const unsigned char *b, Py_ssize_t blen) noexcept nogil
