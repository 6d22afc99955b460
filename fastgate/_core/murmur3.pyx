"""MurmurHash3 as Go's github.com/spaolacci/murmur3 computes it; see murmur3.pyi.

Blocks are read little-endian whatever the host (the Go code reads them in
native order on x86/arm64, i.e. little-endian); the byte-by-byte load below is
recognised by the C compiler and becomes a single load.
"""

from cpython.long cimport PyLong_Check
from cpython.number cimport PyNumber_Index
from libc.stdint cimport uint32_t, uint64_t

__all__ = [
    "murmur32",
    "murmur32_hex",
    "murmur64",
    "murmur64_hex",
    "murmur128",
    "murmur128_hex",
]

cdef uint32_t C1_32 = 0xcc9e2d51
cdef uint32_t C2_32 = 0x1b873593
cdef uint64_t C1_128 = 0x87c37b91114253d5
cdef uint64_t C2_128 = 0x4cf5ad432745937f
cdef const char *HEXDIGITS = b"0123456789abcdef"


cdef inline uint32_t _seed(object seed) except? 0xFFFFFFFF:
    # Same rule as the twin: integers only (operator.index), OverflowError when
    # outside uint32.  Cython's own coercion would also take a float.
    if not PyLong_Check(seed):
        seed = PyNumber_Index(seed)
    return seed


cdef inline uint32_t _load32(const unsigned char *p) noexcept nogil:
    return (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef inline uint64_t _load64(const unsigned char *p) noexcept nogil:
    return (<uint64_t>p[0] | (<uint64_t>p[1] << 8) | (<uint64_t>p[2] << 16)
            | (<uint64_t>p[3] << 24) | (<uint64_t>p[4] << 32) | (<uint64_t>p[5] << 40)
            | (<uint64_t>p[6] << 48) | (<uint64_t>p[7] << 56))


cdef inline uint32_t _rotl32(uint32_t x, int r) noexcept nogil:
    return (x << r) | (x >> (32 - r))


cdef inline uint64_t _rotl64(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))


cdef inline uint64_t _fmix64(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= <uint64_t>0xff51afd7ed558ccd
    k ^= k >> 33
    k *= <uint64_t>0xc4ceb9fe1a85ec53
    k ^= k >> 33
    return k


cdef uint32_t _murmur32(const unsigned char *data, Py_ssize_t n, uint32_t seed) noexcept nogil:
    cdef uint32_t h1 = seed
    cdef uint32_t k1
    cdef Py_ssize_t i
    cdef Py_ssize_t nblocks = n >> 2
    cdef const unsigned char *tail = data + (nblocks << 2)
    cdef Py_ssize_t rem = n & 3

    for i in range(nblocks):
        k1 = _load32(data + (i << 2))
        k1 *= C1_32
        k1 = _rotl32(k1, 15)
        k1 *= C2_32
        h1 ^= k1
        h1 = _rotl32(h1, 13)
        h1 = h1 * 5 + <uint32_t>0xe6546b64

    k1 = 0
    if rem == 3:
        k1 ^= <uint32_t>tail[2] << 16
    if rem >= 2:
        k1 ^= <uint32_t>tail[1] << 8
    if rem >= 1:
        k1 ^= <uint32_t>tail[0]
        k1 *= C1_32
        k1 = _rotl32(k1, 15)
        k1 *= C2_32
        h1 ^= k1

    h1 ^= <uint32_t>n
    h1 ^= h1 >> 16
    h1 *= <uint32_t>0x85ebca6b
    h1 ^= h1 >> 13
    h1 *= <uint32_t>0xc2b2ae35
    h1 ^= h1 >> 16
    return h1


cdef void _murmur128(const unsigned char *data, Py_ssize_t n, uint32_t seed,
                     uint64_t *out) noexcept nogil:
    cdef uint64_t h1 = seed
    cdef uint64_t h2 = seed
    cdef uint64_t k1, k2
    cdef Py_ssize_t i
    cdef Py_ssize_t nblocks = n >> 4
    cdef const unsigned char *block
    cdef const unsigned char *tail = data + (nblocks << 4)
    cdef Py_ssize_t rem = n & 15

    for i in range(nblocks):
        block = data + (i << 4)
        k1 = _load64(block)
        k2 = _load64(block + 8)

        k1 *= C1_128
        k1 = _rotl64(k1, 31)
        k1 *= C2_128
        h1 ^= k1
        h1 = _rotl64(h1, 27)
        h1 += h2
        h1 = h1 * 5 + 0x52dce729

        k2 *= C2_128
        k2 = _rotl64(k2, 33)
        k2 *= C1_128
        h2 ^= k2
        h2 = _rotl64(h2, 31)
        h2 += h1
        h2 = h2 * 5 + 0x38495ab5

    # The tail: bytes 8..14 go into k2, bytes 0..7 into k1 (the reference's
    # fall-through switch, unrolled as a loop from the top byte down).
    k1 = 0
    k2 = 0
    if rem > 8:
        for i in range(rem - 1, 7, -1):
            k2 = (k2 << 8) | tail[i]
        k2 *= C2_128
        k2 = _rotl64(k2, 33)
        k2 *= C1_128
        h2 ^= k2
    if rem > 0:
        for i in range((rem if rem < 8 else 8) - 1, -1, -1):
            k1 = (k1 << 8) | tail[i]
        k1 *= C1_128
        k1 = _rotl64(k1, 31)
        k1 *= C2_128
        h1 ^= k1

    h1 ^= <uint64_t>n
    h2 ^= <uint64_t>n
    h1 += h2
    h2 += h1
    h1 = _fmix64(h1)
    h2 = _fmix64(h2)
    h1 += h2
    h2 += h1
    out[0] = h1
    out[1] = h2


cdef inline void _hex(uint64_t v, int ndigits, char *out) noexcept nogil:
    cdef int i
    for i in range(ndigits - 1, -1, -1):
        out[i] = HEXDIGITS[v & 0xF]
        v >>= 4


def murmur32(bytes data not None, seed=0):
    return _murmur32(<const unsigned char *>data, len(data), _seed(seed))


def murmur64(bytes data not None, seed=0):
    cdef uint64_t h[2]
    _murmur128(<const unsigned char *>data, len(data), _seed(seed), h)
    return h[0]


def murmur128(bytes data not None, seed=0):
    cdef uint64_t h[2]
    _murmur128(<const unsigned char *>data, len(data), _seed(seed), h)
    return (h[0], h[1])


def murmur32_hex(bytes data not None, seed=0):
    cdef char buf[8]
    _hex(_murmur32(<const unsigned char *>data, len(data), _seed(seed)), 8, buf)
    return buf[:8].decode("ascii")


def murmur64_hex(bytes data not None, seed=0):
    cdef uint64_t h[2]
    cdef char buf[16]
    _murmur128(<const unsigned char *>data, len(data), _seed(seed), h)
    _hex(h[0], 16, buf)
    return buf[:16].decode("ascii")


def murmur128_hex(bytes data not None, seed=0):
    cdef uint64_t h[2]
    cdef char buf[32]
    _murmur128(<const unsigned char *>data, len(data), _seed(seed), h)
    _hex(h[0], 16, buf)
    _hex(h[1], 16, buf + 16)
    return buf[:32].decode("ascii")
