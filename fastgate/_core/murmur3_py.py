"""Pure-Python twin of fastgate._core.murmur3 (same interface, see murmur3.pyi)."""

from operator import index as _index
from struct import unpack_from as _unpack_from

__all__ = [
    "murmur32",
    "murmur32_hex",
    "murmur64",
    "murmur64_hex",
    "murmur128",
    "murmur128_hex",
]

_M32 = 0xFFFFFFFF
_M64 = 0xFFFFFFFFFFFFFFFF
_C1_32 = 0xCC9E2D51
_C2_32 = 0x1B873593
_C1_128 = 0x87C37B91114253D5
_C2_128 = 0x4CF5AD432745937F


def _check(data: object, seed: int) -> int:
    if type(data) is not bytes:
        raise TypeError(
            f"Argument 'data' has incorrect type (expected bytes, got {type(data).__name__})"
        )
    seed = _index(seed)
    if not 0 <= seed <= _M32:
        raise OverflowError("seed must be in range(0, 2**32)")
    return seed


def _rotl32(x: int, r: int) -> int:
    return ((x << r) | (x >> (32 - r))) & _M32


def _rotl64(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix64(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M64
    k ^= k >> 33
    return k


def _murmur32(data: bytes, seed: int) -> int:
    n = len(data)
    nblocks = n >> 2
    h1 = seed
    for k1 in _unpack_from(f"<{nblocks}I", data):
        k1 = (k1 * _C1_32) & _M32
        k1 = _rotl32(k1, 15)
        k1 = (k1 * _C2_32) & _M32
        h1 ^= k1
        h1 = _rotl32(h1, 13)
        h1 = (h1 * 5 + 0xE6546B64) & _M32
    tail = data[nblocks << 2 :]
    if tail:
        k1 = int.from_bytes(tail, "little")
        k1 = (k1 * _C1_32) & _M32
        k1 = _rotl32(k1, 15)
        k1 = (k1 * _C2_32) & _M32
        h1 ^= k1
    h1 ^= n & _M32
    h1 ^= h1 >> 16
    h1 = (h1 * 0x85EBCA6B) & _M32
    h1 ^= h1 >> 13
    h1 = (h1 * 0xC2B2AE35) & _M32
    h1 ^= h1 >> 16
    return h1


def _murmur128(data: bytes, seed: int) -> tuple[int, int]:
    n = len(data)
    nblocks = n >> 4
    h1 = h2 = seed
    words = _unpack_from(f"<{2 * nblocks}Q", data)
    for i in range(0, 2 * nblocks, 2):
        k1 = words[i]
        k2 = words[i + 1]
        k1 = (k1 * _C1_128) & _M64
        k1 = _rotl64(k1, 31)
        k1 = (k1 * _C2_128) & _M64
        h1 ^= k1
        h1 = _rotl64(h1, 27)
        h1 = (h1 + h2) & _M64
        h1 = (h1 * 5 + 0x52DCE729) & _M64
        k2 = (k2 * _C2_128) & _M64
        k2 = _rotl64(k2, 33)
        k2 = (k2 * _C1_128) & _M64
        h2 ^= k2
        h2 = _rotl64(h2, 31)
        h2 = (h2 + h1) & _M64
        h2 = (h2 * 5 + 0x38495AB5) & _M64
    tail = data[nblocks << 4 :]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        k2 = (k2 * _C2_128) & _M64
        k2 = _rotl64(k2, 33)
        k2 = (k2 * _C1_128) & _M64
        h2 ^= k2
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        k1 = (k1 * _C1_128) & _M64
        k1 = _rotl64(k1, 31)
        k1 = (k1 * _C2_128) & _M64
        h1 ^= k1
    h1 ^= n & _M64
    h2 ^= n & _M64
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1 = _fmix64(h1)
    h2 = _fmix64(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


def murmur32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data``, as spaolacci's ``Sum32WithSeed``."""
    return _murmur32(data, _check(data, seed))


def murmur64(data: bytes, seed: int = 0) -> int:
    """``h1`` of MurmurHash3 x64_128, as spaolacci's ``Sum64WithSeed``."""
    return _murmur128(data, _check(data, seed))[0]


def murmur128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """MurmurHash3 x64_128 of ``data`` as ``(h1, h2)``, as spaolacci's ``Sum128WithSeed``."""
    return _murmur128(data, _check(data, seed))


def murmur32_hex(data: bytes, seed: int = 0) -> str:
    """``murmur32`` as 8 lower-case hex digits (big-endian), as Tyk's ``HashStr``."""
    return f"{_murmur32(data, _check(data, seed)):08x}"


def murmur64_hex(data: bytes, seed: int = 0) -> str:
    """``murmur64`` as 16 lower-case hex digits (big-endian), as Tyk's ``HashStr``."""
    return f"{_murmur128(data, _check(data, seed))[0]:016x}"


def murmur128_hex(data: bytes, seed: int = 0) -> str:
    """``h1`` then ``h2``, each as 16 lower-case hex digits, as Tyk's ``HashStr``."""
    h1, h2 = _murmur128(data, _check(data, seed))
    return f"{h1:016x}{h2:016x}"
