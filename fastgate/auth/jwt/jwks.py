"""JWKS: the signing keys of JWT issuers, fetched from configured URLs and cached.

One :class:`JwksCache` per gateway (worker), shared by every API, keyed by
URL.  The JWT method asks it for the key a token names --
``cache.key(url, kid, api_id)`` -- and gets the :class:`VerifyKey` at once when
the set is cached, or an awaitable when the answer needs a fetch.  What it
promises:

* **Only configured URLs are fetched.**  The URLs come from API definitions
  (``jwt_source``), never from a token: a token's ``jku``, ``x5u`` or embedded
  ``jwk`` header is never fetched or trusted (the JWT method ignores them;
  nothing here takes a URL from a token).
* **Never blocking.**  Fetches go through the gateway's outbound client
  (:class:`fastgate.outbound.HttpClient`, asynchronous) as background tasks;
  at most one fetch per URL is in flight, and every request that needs its
  answer waits for that same one.  A fetch -- connect, both documents of an
  OpenID discovery, bodies -- is bounded by ``fetch_timeout`` seconds in all
  (gateway config ``jwks.fetch_timeout``, default 5), so a request waiting
  for a key gets an answer (the key, or None) within that bound.
* **TTL with stale-while-revalidate.**  A set is fresh for ``ttl`` seconds
  (Tyk's ``jwks.cache.timeout``, 0 meaning 240).  Past it, the set is still
  served -- synchronously -- while one background refresh runs; a refresh
  that fails (endpoint down, slow, answering garbage) keeps the set in
  service, and is logged once per attempt, never per request.  **fastgate
  differs**: Tyk drops the set at its TTL and fetches in the request, so a
  JWKS endpoint that is down fails every token.
* **Unknown kid: refetch at once, rate-limited.**  A ``kid`` the set does not
  have starts a refetch at once and waits for it -- a rotated key works on its
  first token (**fastgate differs**: Tyk never refetches on a kid miss,
  TykTechnologies/tyk#6378).  The rule, per URL: a fetch in flight, whatever
  started it, is joined; otherwise a new fetch starts only when the previous
  one (of any cause) started at least ``refetch_interval`` seconds ago
  (gateway config ``jwks.refetch_interval``, default 5), else the kid is
  unknown at once (None).  So a burst of tokens with made-up kids costs at
  most one fetch per ``refetch_interval`` per URL, an endpoint that is down is
  asked at most that often, and the first use of a URL (nothing fetched yet)
  is never delayed.  The same interval spaces the background refreshes of a
  stale set after a failure.
* **One bad JWK is skipped, never fatal.**  Keys are parsed by
  :func:`fastgate.auth.jwt.keys.parse_jwks`; a JWK it cannot use is skipped
  and reported (logged when the list of skipped keys changes, and in
  :meth:`JwksCache.status`); the others work (**fastgate differs**: one
  unparsable key fails Tyk's whole set).  A fetch *fails*, and the set in
  service stays, when the answer is not 200, not JSON, not a JWK Set (an
  object with a ``keys`` array), or a non-empty set none of whose keys can be
  used.  Redirects are not followed (a 3xx is a failure).
* **Retired keys.**  When a refresh drops a kid, or changes the JWK under
  it, or a flush drops the set, the old key object gets ``retired = True``:
  the verified-token cache (:class:`fastgate.auth.jwt.tokens.TokenCache`)
  stops honouring tokens it verified.  A key whose JWK is unchanged keeps its
  object, so a refresh does not invalidate cached tokens.
* **Flush.**  :meth:`JwksCache.flush` drops every set, or those an API used
  (``api_id`` as passed to :meth:`JwksCache.key`); the next token fetches
  again.  A URL is shared by the APIs that name it, so flushing one API also
  makes the others refetch it.  ``DELETE /tyk/cache/jwks[/{api_id}]``
  (:mod:`fastgate.admin.cache`) flushes on every worker and node.

A URL is a JWKS or an OpenID Connect issuer; which one is decided here, by
the ``discovery`` argument (the same URL under two kinds is two entries):

* ``discovery=False``: the URL serves the JWK Set.
* ``discovery=True``: the URL is an issuer.  Its discovery document is
  ``<issuer>/.well-known/openid-configuration`` (a terminating ``/`` of the
  issuer removed first, OpenID Connect Discovery §4.1) -- or the URL itself
  when it already ends with that path, the issuer being the URL without it
  (with or without a ``/``).  The document's ``issuer`` must be identical to
  the configured issuer (§4.3; a mismatch is a failed fetch), its
  ``jwks_uri`` must be an absolute http(s) URL, and the keys come from there.
  The discovery document is read again on every fetch (both requests within
  ``fetch_timeout``).
* ``discovery=None`` (the default, what ``jwt_source`` gets): a URL whose
  path ends with ``/.well-known/openid-configuration`` is an issuer's
  document; any other is fetched first as a JWKS, and when it answers with
  something that is not a JWK Set (another status, not JSON, no ``keys``
  array -- not when it cannot be reached), it is taken as an issuer and
  discovery is tried in the same fetch.  The first successful fetch settles
  the kind for good: later fetches go straight to the JWKS, or through
  discovery, and a JWKS URL that later answers something else has simply
  failed.

Messages name URLs without userinfo or query (either may hold a secret);
no token ever reaches this module.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import orjson

from fastgate.auth.jwt.keys import parse_jwks
from fastgate.outbound import OutboundError
from fastgate.stats import cache_stats

if TYPE_CHECKING:
    from fastgate.auth.jwt.keys import VerifyKey
    from fastgate.outbound import HttpClient

__all__ = [
    "DEFAULT_FETCH_TIMEOUT",
    "DEFAULT_REFETCH_INTERVAL",
    "DEFAULT_TTL",
    "DISCOVERY_PATH",
    "JwksCache",
    "JwksError",
    "JwksStatus",
]

log = logging.getLogger("fastgate.jwks")

#: Tyk's default JWKS cache timeout, seconds (``jwks.cache.timeout: 0``).
DEFAULT_TTL = 240.0
#: Seconds a fetch (both documents of a discovery) may take in all.
DEFAULT_FETCH_TIMEOUT = 5.0
#: Least seconds between the starts of two fetches of one URL (kid misses,
#: retries after a failure); the first fetch of a URL is never held back.
DEFAULT_REFETCH_INTERVAL = 5.0
#: Largest JWKS or discovery document read (bytes).
MAX_DOCUMENT = 1024 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"

_JWKS = "jwks"
_ISSUER = "issuer"
_ACCEPT = {"Accept": "application/json"}


class JwksError(Exception):
    """A fetch failed; the message is safe to log (no userinfo, no query)."""


class _NotJwks(JwksError):
    """The URL answered, with something that is not a JWK Set."""


@dataclass(frozen=True, slots=True)
class JwksStatus:
    """What the cache holds for one URL (:meth:`JwksCache.status`)."""

    url: str
    #: "jwks", "issuer", or "" while no fetch has told (``discovery=None``).
    kind: str
    #: Where the keys come from: the URL itself, or the issuer's ``jwks_uri``.
    jwks_uri: str
    #: The issuer (``discovery``), as its document names it; "" otherwise.
    issuer: str
    #: The kids of the set in service, in document order.
    kids: tuple[str, ...]
    #: Keys of the set in service that have no kid (a token must name one).
    keys_without_kid: int
    #: Why JWKs of the set in service were skipped, one text each.
    skipped: tuple[str, ...]
    #: Why the last fetch failed; "" when it succeeded (or none ran yet).
    failure: str
    #: ``clock()`` when the set in service was fetched; None: never.
    fetched_at: float | None
    #: The APIs that asked for this URL.
    apis: frozenset[str]


class _Entry:
    """One URL: the set in service, and the fetch in flight."""

    __slots__ = (
        "apis",
        "attempted_at",
        "discovery",
        "failure",
        "fetched_at",
        "fingerprints",
        "issuer",
        "jwks_uri",
        "keys",
        "keys_without_kid",
        "kind",
        "skipped",
        "stale_at",
        "task",
        "url",
    )

    def __init__(self, url: str, discovery: bool | None) -> None:
        self.url = url
        self.discovery = discovery
        if discovery is False:
            self.kind = _JWKS
        elif discovery is True or _is_discovery_document(url):
            self.kind = _ISSUER
        else:
            self.kind = ""
        #: The set in service (None: nothing fetched yet).
        self.keys: dict[str, VerifyKey] | None = None
        self.keys_without_kid = 0
        #: kid -> the JWKs carrying it, canonical JSON: tells an unchanged key.
        self.fingerprints: dict[str, bytes] = {}
        self.skipped: tuple[str, ...] = ()
        self.failure = ""
        self.jwks_uri = url if self.kind == _JWKS else ""
        self.issuer = ""
        self.fetched_at = -math.inf
        #: clock() past which the set is stale (a refresh is due).
        self.stale_at = -math.inf
        #: clock() when the last fetch started.
        self.attempted_at = -math.inf
        self.task: asyncio.Task[None] | None = None
        self.apis: set[str] = set()


class _Fetched:
    """One successful fetch, before it is put in service."""

    __slots__ = ("by_kid", "fingerprints", "issuer", "jwks_uri", "kind", "skipped",
                 "without_kid")

    def __init__(self, by_kid: dict[str, VerifyKey], without_kid: int,
                 skipped: tuple[str, ...], fingerprints: dict[str, bytes]) -> None:
        self.by_kid = by_kid
        self.without_kid = without_kid
        self.skipped = skipped
        self.fingerprints = fingerprints
        self.kind = _JWKS
        self.jwks_uri = ""
        self.issuer = ""


class JwksCache:
    """The JWK Sets of one gateway, by URL (see the module docstring).

    ``clock`` (seconds, monotonic) measures TTLs and intervals; a test may
    replace it.  ``ttl``, ``fetch_timeout`` and ``refetch_interval`` are in
    seconds and must be positive.  Use it from the event loop's thread only.
    """

    def __init__(self, http: HttpClient, clock: Callable[[], float] = time.monotonic, *,
                 ttl: float = DEFAULT_TTL, fetch_timeout: float = DEFAULT_FETCH_TIMEOUT,
                 refetch_interval: float = DEFAULT_REFETCH_INTERVAL,
                 max_document: int = MAX_DOCUMENT) -> None:
        for name, value in (("ttl", ttl), ("fetch_timeout", fetch_timeout),
                            ("refetch_interval", refetch_interval)):
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self._http = http
        self._clock = clock
        self.ttl = float(ttl)
        self.fetch_timeout = float(fetch_timeout)
        self.refetch_interval = float(refetch_interval)
        #: Key lookups answered from a cached set (hits) or not, for the metrics.
        self.stats = cache_stats("jwks")
        self._max_document = max_document
        self._entries: dict[tuple[str, bool | None], _Entry] = {}
        self._closed = False

    # -- what the JWT method calls -------------------------------------------------

    def key(self, url: str, kid: str | None, api_id: str, *,
            discovery: bool | None = None) -> VerifyKey | Awaitable[VerifyKey | None] | None:
        """The key named ``kid`` in the set at ``url``, for API ``api_id``.

        Synchronous (a key or None) when the set is cached, also when it is
        stale (a background refresh starts, see the module docstring); an
        awaitable when the answer needs the fetch in flight or a new one (first
        use, unknown kid), resolving within ``fetch_timeout`` to the key or
        None.  ``kid`` None (the token names no key) is None at once, as Tyk
        fails such a token.  Call it from the running event loop (a fetch is a
        task of it); it raises nothing then, whatever the endpoint does.
        """
        if kid is None:
            return None
        entry = self._entries.get((url, discovery))
        if entry is None:
            entry = self._entries[(url, discovery)] = _Entry(url, discovery)
        entry.apis.add(api_id)
        keys = entry.keys
        if keys is not None:
            if entry.task is None and self._clock() >= entry.stale_at:
                self._start_due(entry)
            found = keys.get(kid)
            if found is not None:
                self.stats.hits += 1
                return found
        self.stats.misses += 1
        task = entry.task
        if task is None:
            now = self._clock()
            if now - entry.attempted_at < self.refetch_interval or self._closed:
                return None  # fetched a moment ago: this kid is not there
            task = self._start(entry, now)
        return self._answer(entry, kid, task)

    def prefetch(self, url: str, api_id: str, *, discovery: bool | None = None) -> None:
        """Start fetching the set at ``url`` unless it is cached or being
        fetched (when an API is loaded, so its first token need not wait).
        Does nothing outside a running event loop."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        entry = self._entries.get((url, discovery))
        if entry is None:
            entry = self._entries[(url, discovery)] = _Entry(url, discovery)
        entry.apis.add(api_id)
        now = self._clock()
        if (entry.keys is None and entry.task is None and not self._closed
                and now - entry.attempted_at >= self.refetch_interval):
            self._start(entry, now)

    def flush(self, api_id: str | None = None) -> int:
        """Drop every set (``api_id`` None) or those API ``api_id`` asked for;
        how many were dropped.  Their keys are retired; the next token of any
        API using one of those URLs fetches it again.  A fetch in flight runs
        to its end for the requests waiting on it, but its keys are retired
        at once and never put in service."""
        doomed = [name for name, entry in self._entries.items()
                  if api_id is None or api_id in entry.apis]
        for name in doomed:
            entry = self._entries.pop(name)
            for old in (entry.keys or {}).values():
                old.retired = True
        return len(doomed)

    def status(self, url: str, *, discovery: bool | None = None) -> JwksStatus | None:
        """What is held for ``url`` (None when it was never asked for)."""
        entry = self._entries.get((url, discovery))
        if entry is None:
            return None
        keys = entry.keys or {}
        return JwksStatus(
            url=entry.url, kind=entry.kind, jwks_uri=entry.jwks_uri, issuer=entry.issuer,
            kids=tuple(keys), keys_without_kid=entry.keys_without_kid,
            skipped=entry.skipped, failure=entry.failure,
            fetched_at=None if entry.keys is None else entry.fetched_at,
            apis=frozenset(entry.apis))

    def urls(self, api_id: str | None = None) -> list[str]:
        """The URLs held (those ``api_id`` asked for, when given)."""
        return [entry.url for entry in self._entries.values()
                if api_id is None or api_id in entry.apis]

    async def close(self) -> None:
        """Cancel the fetches in flight and start no more (gateway shutdown)."""
        self._closed = True
        tasks = [entry.task for entry in self._entries.values() if entry.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- fetching ------------------------------------------------------------------

    def _start_due(self, entry: _Entry) -> None:
        """The set is stale: refresh it in the background, unless the last
        attempt (a failure) is too recent."""
        now = self._clock()
        if now - entry.attempted_at >= self.refetch_interval and not self._closed:
            self._start(entry, now)

    def _start(self, entry: _Entry, now: float) -> asyncio.Task[None]:
        entry.attempted_at = now
        task = asyncio.get_running_loop().create_task(self._refresh(entry))
        entry.task = task
        return task

    async def _answer(self, entry: _Entry, kid: str,
                      task: asyncio.Task[None]) -> VerifyKey | None:
        try:
            # Shielded: a request that goes away must not cancel the fetch
            # the others wait for.
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # this request was cancelled, not the fetch
            return None
        keys = entry.keys
        return None if keys is None else keys.get(kid)

    async def _refresh(self, entry: _Entry) -> None:
        """One fetch of ``entry``'s set, put in service when it succeeds."""
        where = _display(entry.url)
        try:
            try:
                async with asyncio.timeout(self.fetch_timeout):
                    fetched = await self._fetch(entry)
            except TimeoutError:
                raise JwksError(f"no answer within {self.fetch_timeout:g} s") from None
        except JwksError as exc:
            entry.failure = str(exc)
            if entry.keys is not None:
                log.warning("JWKS %s: fetch failed, the %d keys fetched before stay in "
                            "service: %s", where, len(entry.keys), exc)
            else:
                log.warning("JWKS %s: fetch failed, no keys known yet: %s", where, exc)
        except Exception:
            # parse_jwks promises not to raise; if it does, the set in
            # service stays and the next attempt may do better.
            entry.failure = "internal error (see the log)"
            log.exception("JWKS %s: fetch failed", where)
        else:
            self._install(entry, fetched)
        finally:
            entry.task = None

    def _install(self, entry: _Entry, fetched: _Fetched) -> None:
        current = self._entries.get((entry.url, entry.discovery)) is entry
        old = entry.keys or {}
        keys: dict[str, VerifyKey] = {}
        for kid, new in fetched.by_kid.items():
            kept = old.get(kid)
            same = entry.fingerprints.get(kid) == fetched.fingerprints.get(kid)
            keys[kid] = kept if kept is not None and same and not kept.retired else new
        for kid, kept in old.items():
            if keys.get(kid) is not kept:
                kept.retired = True
        if fetched.skipped and fetched.skipped != entry.skipped:
            log.warning("JWKS %s: %d keys skipped: %s", _display(entry.url),
                        len(fetched.skipped), "; ".join(fetched.skipped))
        now = self._clock()
        entry.keys = keys
        entry.keys_without_kid = fetched.without_kid
        entry.fingerprints = fetched.fingerprints
        entry.skipped = fetched.skipped
        entry.failure = ""
        entry.kind = fetched.kind
        entry.jwks_uri = fetched.jwks_uri
        entry.issuer = fetched.issuer
        entry.fetched_at = now
        entry.stale_at = now + self.ttl
        if not current:
            # Flushed while this fetch ran: answer the requests waiting on it,
            # but nothing they verify may outlive the flush.
            for key in keys.values():
                key.retired = True

    async def _fetch(self, entry: _Entry) -> _Fetched:
        url = entry.url
        if entry.kind == _JWKS:
            fetched = await self._read_jwks(url)
            fetched.jwks_uri = url
            return fetched
        if entry.kind == _ISSUER:
            return await self._through_discovery(url)
        try:
            fetched = await self._read_jwks(url)
        except _NotJwks as not_jwks:
            try:
                return await self._through_discovery(url)
            except JwksError as exc:
                raise JwksError(f"{not_jwks}; as an OpenID issuer: {exc}") from None
        fetched.jwks_uri = url
        return fetched

    async def _through_discovery(self, url: str) -> _Fetched:
        issuer, jwks_uri = await self._discover(url)
        fetched = await self._read_jwks(jwks_uri)
        fetched.kind = _ISSUER
        fetched.jwks_uri = jwks_uri
        fetched.issuer = issuer
        return fetched

    async def _get(self, url: str) -> tuple[int, object]:
        """GET ``url``: (status, decoded JSON or None when it is not JSON)."""
        try:
            response = await self._http.request("GET", url, headers=_ACCEPT,
                                                timeout=self.fetch_timeout,
                                                max_body=self._max_document)
        except OutboundError as exc:
            raise JwksError(str(exc)) from None
        if response.status != 200:
            return response.status, None
        try:
            return 200, orjson.loads(response.body)
        except orjson.JSONDecodeError:
            return 200, None

    async def _discover(self, url: str) -> tuple[str, str]:
        """(issuer, jwks_uri) from the discovery document of issuer ``url``."""
        parts = urlsplit(url)
        if parts.query or parts.fragment:
            raise JwksError("an issuer URL has no query or fragment (OpenID Connect "
                            "Discovery 4.1)")
        issuers: tuple[str, ...]
        if parts.path.endswith(DISCOVERY_PATH):
            document = url
            base = urlunsplit(parts._replace(path=parts.path[:-len(DISCOVERY_PATH)]))
            issuers = (base, base + "/")
        else:
            document = urlunsplit(parts._replace(path=parts.path.rstrip("/") + DISCOVERY_PATH))
            issuers = (url,)
        where = _display(document)
        status, doc = await self._get(document)
        if status != 200:
            raise JwksError(f"{where} answered {status}")
        if not isinstance(doc, dict):
            raise JwksError(f"{where} is not a JSON object")
        issuer = doc.get("issuer")
        if not isinstance(issuer, str) or issuer not in issuers:
            named = repr(issuer[:200]) if isinstance(issuer, str) else "no issuer"
            raise JwksError(f"{where} names {named}, not the issuer {issuers[0]!r} "
                            "(OpenID Connect Discovery 4.3)")
        jwks_uri = doc.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not _is_http_url(jwks_uri):
            raise JwksError(f"{where}: jwks_uri is not an http(s) URL")
        return issuer, jwks_uri

    async def _read_jwks(self, url: str) -> _Fetched:
        """The JWK Set at ``url``: raises _NotJwks when the answer is not one,
        JwksError when none of its keys can be used or it cannot be had."""
        where = _display(url)
        status, doc = await self._get(url)
        if status != 200:
            raise _NotJwks(f"{where} answered {status}")
        if doc is None:
            raise _NotJwks(f"{where}: the answer is not JSON")
        jwks = doc.get("keys") if isinstance(doc, dict) else None
        if not isinstance(jwks, list):
            raise _NotJwks(f'{where}: the answer is not a JWK Set (no "keys" array)')
        by_kid, without_kid, errors = parse_jwks(doc)
        if jwks and not by_kid and not without_kid:
            raise JwksError(f"{where}: none of its {len(jwks)} keys can be used: "
                            + "; ".join(errors))
        return _Fetched(dict(by_kid), len(without_kid), tuple(errors), _fingerprints(jwks))


def _fingerprints(jwks: list[object]) -> dict[str, bytes]:
    """kid -> canonical JSON of every JWK carrying that kid: equal fingerprints
    parse to the same key (or, for a kid published twice, to none)."""
    grouped: dict[str, list[object]] = {}
    for jwk in jwks:
        if isinstance(jwk, dict):
            kid = jwk.get("kid")
            if isinstance(kid, str):
                grouped.setdefault(kid, []).append(jwk)
    out: dict[str, bytes] = {}
    for kid, same in grouped.items():
        try:
            out[kid] = orjson.dumps(same, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # not expected of decoded JSON; then never "unchanged"
            out[kid] = b""
    return out


def _is_discovery_document(url: str) -> bool:
    return urlsplit(url).path.endswith(DISCOVERY_PATH)


def _is_http_url(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def _display(url: str) -> str:
    """``url`` for a message: no userinfo, no query (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
