"""What the micro-benchmarks measure, and the speed-up each compiled function must keep.

``SPEEDUPS`` maps every public function of every ``fastgate._core`` module
(``"<module>.<function>"``), and every method its ``BENCHMARKED`` names
(``"<module>.<Class>.<method>"``), to the minimum ratio *twin time / compiled
time* it must keep.  The floors sit well below the ratios measured when they were set
(noted next to each, 2-core x86-64 VM, CPython 3.11, ``python -m bench.micro``),
because CI machines are noisy and other CPUs differ; a regression that matters
(a loop falling back to Python objects, an extra copy) costs far more than that
margin.  A new ``_core`` function (a name in its module's ``__all__``) needs a
floor here and at least one case below, or the runner fails; a module whose hot
path is not a function says so, and why, in ``MEASURED_ELSEWHERE``.
"""

from __future__ import annotations

from dataclasses import dataclass

_TYK_FIELDS = {b"date": b"Fri, 04 Dec 2026 17:58:35 GMT"}
_TYK_MESSAGE = b"(request-target): get /orders?page=2\ndate: Fri, 04 Dec 2026 17:58:35 GMT"
_TYK_SIGNATURE = b"Qk9GQ0VJRUZKQ0VGSU9FSkZPSVdFSkZPSVdFRkpPV0lFSkY%3D"
_TYK_SIGNATURE_HEADER = (b'Signature keyId="hmac-bench-00042",algorithm="hmac-sha256",'
                         b'headers="(request-target) date",signature="' + _TYK_SIGNATURE + b'"')

SPEEDUPS: dict[str, float] = {
    # trailing comments: the ratio measured when the floor was set (--short), on an
    # idle machine / with two busy processes on its two cores
    "compare.constant_time_equals": 1.5,  # 3.6x / 3.6x
    "http.is_token": 2.5,  # 6.3x / 6.3x
    "http.has_ctl": 2.5,  # 6.7x / 6.7x
    "murmur3.murmur32": 40.0,  # 113x / 104-113x
    "murmur3.murmur64": 40.0,  # 113x / 111x
    "murmur3.murmur128": 25.0,  # 63-70x / 66x
    "murmur3.murmur32_hex": 40.0,  # 94-120x / 112-116x
    "murmur3.murmur64_hex": 30.0,  # 74-90x / 86x
    "murmur3.murmur128_hex": 25.0,  # 63-89x / 82-84x
    # The proxy module is Cython's pure-Python mode (one source for both); its
    # protocol classes are measured end to end by tools/bench (wrk).
    "proxy.build_request_head": 1.3,  # measured below
    "proxy.connection_tokens": 1.1,  # measured below
    # The limiter's hot path is two classes; limiter.BENCHMARKED names the
    # methods timed here, each bound to a fresh instance (bench/micro/runner.py).
    "limiter.RateLimiter.hit": 2.0,  # 3.9-5.9x / 5.4-5.9x (70-85 ns compiled)
    "limiter.QuotaCounter.hit": 2.0,  # 4.4-5.0x / 4.8-5.0x (60-78 ns compiled)
    # Cython's pure-Python mode, like proxy (one source for both): the decoding
    # loop is C over the buffers compiled, Python ints interpreted; parse is
    # three b64url_decode calls, two orjson.loads and the Token.
    "jws.b64url_decode": 30.0,  # 93x (0.26 us compiled) / not measured
    "jws.parse": 8.0,  # 22x (2.1 us compiled) / not measured
    # Pure-Python mode too.  The parser and the %xx decoder are byte loops;
    # the MAC itself is OpenSSL's either way (hmac.digest), so sign_hmac and
    # encode_signature (two C calls) only must not fall far behind the twin.
    "signing.parse_parameters": 3.0,  # 7.4x (1.4 us compiled) / with two busy cores
    "signing.decode_signature": 2.5,  # 5.2x (0.6 us)
    "signing.signing_string": 1.0,  # 1.3x (0.4 us)
    "signing.matches": 2.0,  # decode_signature + the comparison
    "signing.verify_hmac": 1.2,  # 1.9x (2.8 us: 1.9 of them OpenSSL's HMAC)
    "signing.sign_hmac": 0.6,  # 0.9x
    "signing.encode_signature": 0.4,  # 0.7x (0.37 us)
}


#: Modules with no function-level floor, and where they are measured instead.
MEASURED_ELSEWHERE: dict[str, str] = {}


@dataclass(frozen=True)
class Case:
    """One call to time: ``function`` applied to ``args``.

    ``function`` is ``"<module>.<function>"``, or ``"<module>.<Class>.<method>"``
    for a method, timed on one new instance (so repeated calls share its state).
    """

    function: str
    label: str
    args: tuple[object, ...]

    @property
    def id(self) -> str:
        return f"{self.function}[{self.label}]"


# A 40-byte credential, as an API key or a bearer token arrives in a header; the
# equal case compares two distinct objects with the same bytes.
TOKEN = b"eyJvcmciOiJkZWZhdWx0IiwiaWQiOiI0NmMxZjNh"
assert len(TOKEN) == 40

# An RS256 access token as an identity provider issues it: a header with a kid,
# eight claims, a 256-byte signature (601 bytes in all).
_JWT_HEADER = b"eyJhbGciOiJSUzI1NiIsImtpZCI6IjJmMWM5YTJlNWIiLCJ0eXAiOiJKV1QifQ"
_JWT_CLAIMS = (
    b"eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLmNvbSIsInN1YiI6IjQ2YzFmM2EiLCJhdWQiOiJhcGki"
    b"LCJleHAiOjE3MzMyMzIwMDAsImlhdCI6MTczMzIyODQwMCwianRpIjoiNWYxYzlhMmUiLCJzY29wZSI6"
    b"InJlYWQgd3JpdGUiLCJwb2wiOiJnb2xkIn0"
)
_JWT_SIGNATURE = (b"AQID" * 85)[:340] + b"Qg"
JWT = _JWT_HEADER + b"." + _JWT_CLAIMS + b"." + _JWT_SIGNATURE

CASES: list[Case] = [
    Case("compare.constant_time_equals", "40 B equal", (TOKEN, TOKEN[:20] + TOKEN[20:])),
    Case("http.is_token", "19 B name", (b"X-Tyk-Authorization",)),
    Case("http.has_ctl", "47 B value", (b"Bearer " + TOKEN,)),
    Case("murmur3.murmur32", "40 B", (TOKEN,)),
    Case("murmur3.murmur64", "40 B", (TOKEN,)),
    Case("murmur3.murmur128", "40 B", (TOKEN,)),
    Case("murmur3.murmur32_hex", "40 B", (TOKEN,)),
    Case("murmur3.murmur64_hex", "40 B", (TOKEN,)),
    Case("murmur3.murmur128_hex", "40 B", (TOKEN,)),
    Case(
        "proxy.build_request_head",
        "8 headers",
        (
            b"GET",
            b"/v1/orders?page=2",
            [
                (b"host", b"Host", b"api.example.com"),
                (b"user-agent", b"User-Agent", b"curl/8.5.0"),
                (b"accept", b"Accept", b"application/json"),
                (b"authorization", b"Authorization", b"Bearer " + TOKEN),
                (b"connection", b"Connection", b"keep-alive"),
                (b"x-forwarded-for", b"X-Forwarded-For", b"203.0.113.7"),
                (b"x-request-id", b"X-Request-Id", b"5f1c9a2e"),
                (b"accept-encoding", b"Accept-Encoding", b"gzip"),
            ],
            b"backend.internal:8080",
            b"198.51.100.4",
            b"http",
        ),
    ),
    Case("proxy.connection_tokens", "listing fields", (b"keep-alive, X-Debug, Upgrade",)),
    # A stored key hit again at the same instant: a rate so high it is always
    # allowed, and 1 per hour, refused after the first call.
    Case("limiter.RateLimiter.hit", "allowed", ("key:" + TOKEN.decode(), 1e15, 1.0, 1000.0)),
    Case("limiter.RateLimiter.hit", "refused", ("key:" + TOKEN.decode(), 1.0, 3600.0, 1000.0)),
    Case("limiter.QuotaCounter.hit", "allowed", ("key:" + TOKEN.decode(), 10**15, 3600.0, 1e9)),
    Case("limiter.QuotaCounter.hit", "refused", ("key:" + TOKEN.decode(), 1, 3600.0, 1e9)),
    Case("jws.b64url_decode", "342 B signature", (_JWT_SIGNATURE,)),
    Case("jws.parse", "RS256 token", (JWT, 8192)),
    Case("signing.parse_parameters", "Tyk HMAC header", (_TYK_SIGNATURE_HEADER,)),
    Case("signing.decode_signature", "URL-escaped base64", (_TYK_SIGNATURE,)),
    Case("signing.signing_string", "(request-target) date",
         (b"GET", b"/orders?page=2", ["(request-target)", "date"], _TYK_FIELDS.get)),
    Case("signing.verify_hmac", "hmac-sha256",
         ("hmac-sha256", b"c2VjcmV0LTAwMDQy", _TYK_MESSAGE, _TYK_SIGNATURE)),
    Case("signing.matches", "32 B MAC", (b"\x00" * 32, _TYK_SIGNATURE)),
    Case("signing.sign_hmac", "hmac-sha256", ("hmac-sha256", b"c2VjcmV0LTAwMDQy", _TYK_MESSAGE)),
    Case("signing.encode_signature", "32 B MAC", (b"\xfb" * 32,)),
]
