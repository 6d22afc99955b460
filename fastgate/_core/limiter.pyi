"""Local (in-process) rate limits and quotas, one instance per worker.

Keys are strings (storage keys, possibly suffixed with an API id).  Times are
seconds as floats, from whatever clock the caller uses consistently
(``time.monotonic()`` for rate limits; ``time.time()`` for quotas, whose
``renews_at`` is reported as a unix time).  The formulas are at the top of
``limiter.pyx``.

Every method raises TypeError for a non-number argument (a quota count must be
an integer: a float is refused, not truncated), OverflowError for an integer
outside a C ``long long`` (or a double), and ValueError for a NaN, an infinite
``now`` or a ``per`` of +inf.

Memory is bounded by ``max_keys`` entries per instance.  Inserting one more into
a full table frees ``max_keys // 16`` slots (at least one): entries whose state
no longer matters (a bucket full again, a quota period over) first; when those
are too few, the live entries that matter least (the buckets that would be
full soonest, the quota periods that started first).  A forgotten live entry
starts afresh: its key gets a full bucket or a full quota.
"""

BENCHMARKED: tuple[str, ...]

class RateLimiter:
    """Local rate limits: GCRA, the exact equivalent of a token bucket with
    capacity ``rate`` refilled continuously at ``rate / per`` per second.

    A refused request consumes nothing (Tyk's rolling limiter counts refusals,
    so clients under load never recover; fastgate does not).  Burst = rate: a
    key idle for ``per`` seconds may send ``rate`` requests at once, then one
    every ``per / rate`` seconds.  A fractional rate below 1 has a capacity of
    one request (one every ``per / rate`` seconds).
    """

    def __init__(self, max_keys: int = 1_000_000) -> None:
        """Raises ValueError when ``max_keys`` < 1."""

    def hit(self, key: str, rate: float, per: float, now: float) -> tuple[bool, int, float, float]:
        """Take one request for ``key`` at time ``now``.

        Returns ``(allowed, remaining, reset_after, retry_after)``: remaining =
        whole requests still allowed right now after this one (0 when
        refused); reset_after = seconds until the bucket is full again;
        retry_after = seconds until the next request would be allowed (0.0 when
        allowed).  ``rate <= 0``, ``per <= 0`` or an infinite rate mean
        unlimited: ``(True, -1, 0.0, 0.0)`` without storing anything.  A ``now``
        earlier than the key's last allowed request counts as that instant.
        The rate may change from one call to the next; the requests already
        taken stay taken.
        """

    def peek(self, key: str, rate: float, per: float, now: float) -> tuple[int, float]:
        """``(remaining, reset_after)`` as :meth:`hit` would see them, without
        taking a request; a key never seen: ``(floor(max(rate, 1)), 0.0)``;
        unlimited: ``(-1, 0.0)``."""

    def forget(self, key: str) -> None:
        """Drop ``key``'s bucket (its next request finds it full); no error if absent."""

    def __len__(self) -> int:
        """The number of keys with a stored bucket."""

class QuotaCounter:
    """Local quotas: ``quota_max`` requests per renewal period.

    The request numbered ``quota_max + 1`` in a period is the first refused; a
    refused request does not count; ``renewal_rate <= 0`` (or infinite) never
    renews; ``quota_max <= 0`` is unlimited.  A period starts at the first
    request (Tyk creates the quota key with a TTL of renewal_rate at first use)
    and the first request at or after its end starts the next one.
    """

    def __init__(self, max_keys: int = 1_000_000) -> None:
        """Raises ValueError when ``max_keys`` < 1."""

    def hit(
        self, key: str, quota_max: int, renewal_rate: float, now: float
    ) -> tuple[bool, int, float]:
        """Count one request for ``key`` at unix time ``now``.

        Returns ``(allowed, remaining, renews_at)``: remaining after this
        request (0 when refused), computed against this call's ``quota_max``
        (Tyk: a changed quota_max applies to the live period at once);
        renews_at = unix time of the next renewal (0.0 when it never renews).
        The renewal time is fixed when a period starts: a later change of
        ``renewal_rate`` applies from the next period.  Unlimited:
        ``(True, -1, 0.0)`` without storing anything.
        """

    def state(self, key: str, quota_max: int, now: float) -> tuple[int, float]:
        """``(remaining, renews_at)`` without counting; a key never used, or
        whose period is over: ``(quota_max, 0.0)``; unlimited: ``(-1, 0.0)``."""

    def reset(self, key: str) -> None:
        """Drop ``key``'s period: its next request starts a new one with the
        full quota (Tyk's quota reset); no error if absent."""

    def __len__(self) -> int:
        """The number of keys with a live or stored period."""
