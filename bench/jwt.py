"""JWT benchmark material: signing keys, minted token pools, the token feed, HAProxy's rules.

Two kinds of JWT load:

* **cached**: 1,000 tokens (1,000 distinct ``sub``) rotating, so a gateway with a
  verified-token cache verifies each once; a generated rotating-requests script.
* **new**: every request a token the gateway has never seen.  The tokens are minted
  ahead into a *pool*: a file of fixed-length lines under the cache directory
  (``--cache-dir``, else ``$FASTGATE_BENCH_CACHE``, else ``bench/results/cache``,
  git-ignored), keyed by algorithm, signing key and token layout, so a later run
  reuses what an earlier one minted and only mints the difference.
  ``bench/wrk/token_feed.lua`` reads the pool line by line from a given index (wrk
  would hold 500,000 tokens in memory as Lua strings otherwise), and reports at the
  end how many tokens it used and how many it had to reuse.  ``TokenFeed`` hands
  each wrk run its starting index: for fastgate (which caches verified tokens) the
  first one no earlier run used; before a run it grows the pool to what the run will
  need at the rate the target's previous run measured (so a gateway that got
  faster never wraps round), and a run that still reused tokens is flagged as no
  benchmark.  Peers without a cache (nginx, HAProxy) start at the pool's beginning
  every run: a repeated token costs them the same as a new one.

A token is ``{"alg": ..., "typ": "JWT"}`` over ``iss``, ``sub``, ``aud``, ``iat``,
``exp`` (2100-01-01, so a cached pool never expires) and ``jti``; tokens differ in
``jti`` (unique) and ``sub`` (one of 1,000 users: new tokens of a known population,
as real traffic has).  Every field is fixed-width, so every token of a pool has the
same length and the pool needs no index.

RS256 signing costs ~0.35 ms a token in Python (RSA-2048 private-key operations),
so a pool of 500,000 costs ~3 CPU-minutes, once: minting runs in a process pool on
every CPU the harness was given at import time (the proxies are idle meanwhile).
ES256 signs in ~30 µs.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from bench.spec import FeedRun

#: Bumped whenever a token's layout changes: a pool of the old layout is not reused.
TOKEN_LAYOUT = 1
ISSUER = "https://idp.bench.example/"
AUDIENCE = "fastgate-bench"
ISSUED_AT = 1_700_000_000
EXPIRES = 4_102_444_800  # 2100-01-01T00:00:00Z
#: The user population every pool's ``sub`` is drawn from (index modulo this).
SUBJECTS = 1_000

#: alg -> (Tyk's jwt_signing_method, HAProxy can verify it)
ALGORITHMS = {"RS256": "rsa", "ES256": "ecdsa"}

#: The CPUs minting may use: the harness later pins itself to the load core, and a
#: process pool would inherit that; the proxies are idle whenever minting runs.
MINT_CPUS = tuple(sorted(os.sched_getaffinity(0)))
MINT_CHUNK = 2_000

FEED_LINE = re.compile(r"^token-feed thread=(\d+) used=(\d+) repeats=(\d+)$", re.MULTILINE)


def default_cache_dir() -> Path:
    """Where minted pools and signing keys are kept between runs:
    ``$FASTGATE_BENCH_CACHE``, else ``bench/results/cache`` (git-ignored, beside the
    results)."""
    explicit = os.environ.get("FASTGATE_BENCH_CACHE")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent / "results" / "cache"


# ---------------------------------------------------------------- keys and tokens


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    """A private key (PEM, PKCS#8) for ``alg`` and its public key (PEM, SPKI)."""

    alg: str
    private_pem: bytes
    public_pem: bytes

    @property
    def family(self) -> str:
        """Tyk's ``jwt_signing_method`` for this key."""
        return ALGORITHMS[self.alg]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.public_pem).hexdigest()[:16]

    def load(self) -> PrivateKeyTypes:
        return serialization.load_pem_private_key(self.private_pem, password=None)


def _generate(alg: str) -> PrivateKeyTypes:
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    raise ValueError(f"no signing key for {alg!r}; known: {', '.join(ALGORITHMS)}")


def signing_key(alg: str, directory: Path) -> SigningKey:
    """The key for ``alg`` kept in ``directory`` (made on first use, then reused so a
    pool minted with it stays valid)."""
    if alg not in ALGORITHMS:
        raise ValueError(f"no signing key for {alg!r}; known: {', '.join(ALGORITHMS)}")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{alg}.key.pem"
    with _locked(directory / f"{alg}.key.lock"):
        if not path.exists():
            private_pem = _generate(alg).private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(private_pem)
            tmp.chmod(0o600)
            tmp.replace(path)
    private_pem = path.read_bytes()
    key = serialization.load_pem_private_key(private_pem, password=None)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return SigningKey(alg, private_pem, public_pem)


def claims(index: int, prefix: str = "n") -> dict[str, Any]:
    """Token ``index``'s claims: every value fixed-width, so all tokens are as long."""
    return {
        "iss": ISSUER,
        "sub": f"user-{index % SUBJECTS:06d}",
        "aud": AUDIENCE,
        "iat": ISSUED_AT,
        "exp": EXPIRES,
        "jti": f"{prefix}{index:012d}",
    }


def mint(key: PrivateKeyTypes, alg: str, payload: Mapping[str, Any]) -> str:
    """A JWS compact token over ``payload`` (ECDSA signatures in JOSE's r||s form)."""
    header = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(payload, separators=(",", ":")).encode())
    signing_input = f"{header}.{body}".encode()
    if alg == "RS256":
        assert isinstance(key, rsa.RSAPrivateKey)
        signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        r, s = decode_dss_signature(key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        raise ValueError(f"cannot mint {alg!r}")
    return f"{header}.{body}.{b64url(signature)}"


def mint_range(key: SigningKey, start: int, stop: int, prefix: str = "n") -> list[str]:
    """Tokens ``start`` .. ``stop - 1`` in one process."""
    private = key.load()
    return [mint(private, key.alg, claims(i, prefix)) for i in range(start, stop)]


# -- the process pool's side

_worker_key: tuple[str, PrivateKeyTypes] | None = None


def _worker_init(alg: str, private_pem: bytes, cpus: Sequence[int]) -> None:
    global _worker_key
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, set(cpus))
    _worker_key = (alg, serialization.load_pem_private_key(private_pem, password=None))


def _worker_mint(bounds: tuple[int, int]) -> bytes:
    assert _worker_key is not None
    alg, private = _worker_key
    start, stop = bounds
    return "".join(mint(private, alg, claims(i)) + "\n" for i in range(start, stop)).encode()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so two benchmark runs never mint into one pool at once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- the pool


class TokenPool:
    """Tokens ``0 .. len - 1`` of one key, one per fixed-length line of ``path``."""

    def __init__(self, key: SigningKey, directory: Path) -> None:
        self.key = key
        self.dir = directory / f"{key.alg}-{key.fingerprint}-layout{TOKEN_LAYOUT}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "tokens.txt"
        #: Bytes per line, newline included.
        self.record_len = len(mint_range(key, 0, 1)[0]) + 1
        self.path.touch()
        self._trim()

    def _trim(self) -> None:
        # A run interrupted while appending leaves a partial last line.
        size = self.path.stat().st_size
        if size % self.record_len:
            with self.path.open("r+b") as handle:
                handle.truncate(size - size % self.record_len)

    def __len__(self) -> int:
        return self.path.stat().st_size // self.record_len

    def token(self, index: int) -> str:
        with self.path.open("rb") as handle:
            handle.seek(index * self.record_len)
            return handle.read(self.record_len - 1).decode()

    def grow_to(self, count: int, log: bool = True) -> int:
        """Mint tokens until the pool holds ``count``; returns how many were minted."""
        with _locked(self.dir / "lock"):
            self._trim()
            have = len(self)
            if have >= count:
                return 0
            missing = count - have
            if log:
                print(f"  minting {missing:,} {self.key.alg} tokens into {self.path} "
                      f"(kept for later runs) on {len(MINT_CPUS)} CPU(s) ...", flush=True)
            started = time.monotonic()
            chunks = [(i, min(i + MINT_CHUNK, count)) for i in range(have, count, MINT_CHUNK)]
            context = multiprocessing.get_context("spawn")
            done = 0
            with ProcessPoolExecutor(max_workers=max(1, len(MINT_CPUS)), mp_context=context,
                                     initializer=_worker_init,
                                     initargs=(self.key.alg, self.key.private_pem,
                                               MINT_CPUS)) as executor, \
                    self.path.open("ab") as out:
                next_report = 0.1
                for (start, stop), data in zip(chunks, executor.map(_worker_mint, chunks),
                                               strict=True):
                    if len(data) != (stop - start) * self.record_len:
                        raise RuntimeError("a minted token has another length than the pool's")
                    out.write(data)
                    done += stop - start
                    if log and done / missing >= next_report and done < missing:
                        print(f"    {done / missing:.0%}", flush=True)
                        next_report += 0.1
            if log:
                print(f"  minted {missing:,} tokens in {time.monotonic() - started:.0f}s",
                      flush=True)
            return missing


# ---------------------------------------------------------------- the feed


@dataclass
class TokenFeed:
    """Per-run arguments of ``bench/wrk/token_feed.lua`` over one ``TokenPool``.

    Targets in ``fresh_targets`` cache verified tokens: each of their runs starts at
    the first token no earlier run of theirs used (the cursor), and a run that had
    to reuse tokens is a problem.  Before every such run the pool is grown to what
    the run needs at ``margin`` times the highest rate that target's runs measured
    (``first_rate`` before any).  A round that ran out anyway (a warm-up is slower
    than the rounds: fastgate makes each user's session then) asks to be run again,
    once per round: the pool is grown by then.
    """

    pool: TokenPool
    threads: int
    connections: int
    fresh_targets: frozenset[str] = frozenset({"fastgate"})
    first_rate: float = 30_000.0
    margin: float = 1.5
    cursor: int = 0
    _top_rate: dict[str, float] = field(default_factory=dict)
    _retried: set[tuple[str, int]] = field(default_factory=set)
    _issued: dict[str, tuple[int, int]] = field(default_factory=dict)

    def needed(self, target: str, duration_s: int) -> int:
        """Tokens a run of ``duration_s`` at the expected rate may use."""
        rate = self._top_rate.get(target, self.first_rate)
        return int(rate * self.margin * duration_s) + 2 * self.connections + 100

    def script_args(self, target: str, round_no: int, duration_s: int) -> tuple[str, ...]:
        # Grown before any run (a peer's first): then it is ready for a caching
        # target's next run, and never empty.
        self.pool.grow_to(self.cursor + max(
            (self.needed(t, duration_s) for t in self.fresh_targets), default=1))
        first = self.cursor if target in self.fresh_targets else 0
        count = len(self.pool) - first
        self._issued[target] = (first, count)
        return (str(self.pool.path), str(self.pool.record_len), str(first), str(count),
                str(self.threads))

    def after_run(self, target: str, round_no: int, stdout: str, requests_per_sec: float
                  ) -> FeedRun:
        first, count = self._issued.pop(target)
        reports = [(int(t), int(u), int(r)) for t, u, r in FEED_LINE.findall(stdout)]
        if len(reports) != self.threads:
            return FeedRun(problems=(
                f"the token feed reported {len(reports)} thread(s), expected {self.threads}: "
                "the script did not run as written",))
        used = sum(u for _, u, _ in reports)
        repeats = sum(r for _, _, r in reports)
        if requests_per_sec > 0:
            self._top_rate[target] = max(requests_per_sec, self._top_rate.get(target, 0.0))
        info = {"pool": str(self.pool.path), "pool_size": len(self.pool), "first_token": first,
                "tokens_used": used, "tokens_reused": repeats}
        problems: tuple[str, ...] = ()
        notes: tuple[str, ...] = ()
        retry = False
        if target in self.fresh_targets:
            # Thread t took tokens first + t, first + t + threads, ...: the next run
            # starts past the furthest any thread went.
            furthest = max(u for _, u, _ in reports)
            self.cursor = min(first + furthest * self.threads, first + count)
            if repeats:
                text = (f"{repeats:,} requests carried a token this target had already seen "
                        f"(the pool of {count:,} ran out): not every request was a new token")
                if round_no == 0:
                    notes = (f"warm-up: {text}",)
                else:
                    problems = (text,)
                    retry = (target, round_no) not in self._retried
                    self._retried.add((target, round_no))
        return FeedRun(info=info, problems=problems, notes=notes, retry=retry)


# ---------------------------------------------------------------- HAProxy


def haproxy_jwt_rules(alg: str, public_key_path: Path) -> str:
    """HAProxy 2.6 frontend rules verifying the bearer token of every request with
    ``jwt_verify`` (OpenSSL, in C) against ``public_key_path`` (a PEM public key);
    a token of another algorithm, or one that does not verify, is denied (403).
    HAProxy checks no claim: fastgate does more work per token than this."""
    if alg not in ALGORITHMS:
        raise ValueError(f"HAProxy rules for {alg!r}? known: {', '.join(ALGORITHMS)}")
    key = str(public_key_path)
    if '"' in key or "\\" in key:
        raise ValueError(f"cannot quote {key!r} in an HAProxy config")
    return (
        "    http-request set-var(txn.bearer) http_auth_bearer\n"
        "    http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg')\n"
        f"    http-request deny unless {{ var(txn.jwt_alg) -m str {alg} }}\n"
        f'    http-request deny unless {{ var(txn.bearer),jwt_verify(txn.jwt_alg,"{key}") '
        "-m int 1 }\n"
    )
