"""MurmurHash3, bit for bit as Go's ``github.com/spaolacci/murmur3`` computes it.

Tyk hashes API keys with it when ``hash_keys`` is on (``hash_key_function``
``murmur32``/``murmur64``/``murmur128``) and stores
``hex.EncodeToString(h.Sum(nil))``; the ``*_hex`` functions return exactly that
string, so fastgate finds the keys a Tyk installation stored.

Caveat, murmur32 only: Tyk before 5.0 (its fork TykTechnologies/murmur3 at
1915e68) stored for ``murmur32`` -- and for the default, empty
``hash_key_function`` on legacy keys -- the *unfinished* 32-bit state: the
whole 4-byte blocks mixed, the 1-3 trailing bytes, the length and the final mix
left out (Tyk issue #1309: keys differing only in their last characters
collide).  ``murmur32`` here is the standard function; murmur64 and murmur128
are the same in every Tyk version.

MurmurHash3 is not a cryptographic hash: it obfuscates keys at rest, it does not
protect them.  Every function takes ``data`` as exactly ``bytes`` (TypeError
otherwise) and an optional ``seed``, an integer in ``range(0, 2**32)``
(TypeError for a non-integer, OverflowError outside the range); Tyk uses seed 0.
"""

__all__ = [
    "murmur32",
    "murmur32_hex",
    "murmur64",
    "murmur64_hex",
    "murmur128",
    "murmur128_hex",
]

def murmur32(data: bytes, seed: int = 0) -> int:
    """MurmurHash3 x86_32 of ``data`` (spaolacci's ``Sum32WithSeed``), in ``range(0, 2**32)``."""

def murmur64(data: bytes, seed: int = 0) -> int:
    """``h1`` of MurmurHash3 x64_128 (spaolacci's ``Sum64WithSeed``), in ``range(0, 2**64)``."""

def murmur128(data: bytes, seed: int = 0) -> tuple[int, int]:
    """MurmurHash3 x64_128 of ``data`` as ``(h1, h2)`` (spaolacci's ``Sum128WithSeed``)."""

def murmur32_hex(data: bytes, seed: int = 0) -> str:
    """``murmur32`` as 8 lower-case hex digits, big-endian: Tyk's ``HashStr(k, "murmur32")``."""

def murmur64_hex(data: bytes, seed: int = 0) -> str:
    """``murmur64`` as 16 lower-case hex digits, big-endian: Tyk's ``HashStr(k, "murmur64")``."""

def murmur128_hex(data: bytes, seed: int = 0) -> str:
    """``h1`` then ``h2``, 16 hex digits each, big-endian: Tyk's ``HashStr(k, "murmur128")``."""
