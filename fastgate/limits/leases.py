"""Leased blocks of rate and quota: Redis limit decisions with less than one
round trip per request for hot keys, still exact (gateway config
``limit_leases``, with ``rate_limiter: "redis"``; docs/leases.md).

How it works
------------
A node decides each key's requests one of two ways:

* a **slow key** (fewer than about two requests per lease lifetime L, as the
  node sees it) is decided per request by ``limits.lua``, exactly as without
  leases;
* a **hot key** takes a block of B units (one unit = one rate token and one
  quota unit) in one atomic ``lease.lua`` call and spends it locally: those
  decisions are synchronous (no Task, no future, no round trip).  When the
  block runs out the next request takes the next block; while one block
  request is in flight, the key's other requests wait for it (never two block
  requests per key per node).  B follows the key's consumption: the first
  block after turning hot is at most 16, then at most twice the last one,
  about what the key used in L (``max_block`` at most); the script grants
  fewer when the rate or the quota has less left.  A block is spent only
  until its deadline (below); unspent quota is then given back
  (``lease_return.lua``), and at shutdown.  A key idle for 2 L, or whose
  block expired with fewer than two units used, is slow again.

A block refused (nothing conforms, or the quota is spent) answers every
waiting request with the script's refusal, and the node refuses that key
locally for at most L (for the rate: at most until the block it would ask
for conforms): a refusal consumes nothing, so refusing more is always safe;
it is bounded so that a quota reset or another node's give-back is seen
within L.

Exactness (the proof; all times on the Redis server's clock, assumed not to
step backwards for a key, as the per-request script already assumes)
------------------------------------------------------------------------
GCRA in the virtual-scheduling form: emission interval T = per/rate,
tolerance tau = (cap-1)·T, cap = max(rate, 1); limits.lua's state (level,
stamp) is TAT = stamp + level·T.  A request at t conforms iff
max(TAT, t) - t <= tau, then TAT = max(TAT, t) + T.

A lease decided at server time t for B units, lifetime L: the node spends its
units only at times in [t, t + L].  Its local deadline is the monotonic time
read *before* sending the script plus L·(1 - 10⁻³) (the margin covers clock
rates drifting by up to 1000 ppm), and the send precedes t, so the deadline
falls no later than t + L.  The script checks at the earliest time and
charges at the latest:

    conforming iff max(TAT, t) - t <= tau - (B-1)·T        (level' + B <= cap)
    then TAT = max(TAT, t + L) + B·T

A per-request decision is the same with B = 1, L = 0 (and gives exactly
limits.lua's results), so both kinds mix on one key, from any number of
nodes.  Claim: in any window [a, b], at most cap + (b-a)/T units are spent.
Let k0 be the first decision (in the server's order) with a unit spent in
[a, b]; every later decision with a unit spent there has t_k <= b.  After
k0, TAT >= t_k0 + L_k0 + B_k0·T >= a + B_k0·T (its window reaches a), and
every decision adds at least its B·T to TAT (max(TAT, ...) >= TAT).  So
for the last such decision m, TAT before it is >= a + S·T, S being the units
of k0..m-1, and it conformed: a + S·T <= max(TAT, t_m) <= t_m + tau -
(B_m-1)·T <= b + tau - (B_m-1)·T, hence S + B_m <= (b-a)/T + cap.  A single
decision (k0 = m) gives B <= cap.  ∎

Unspent rate tokens are not given back: taking B·T off TAT is only sound if
no decision since has re-based TAT (the max with t + L or t); the loss is
bounded by the block (and the L charged ahead when the bucket was fuller
than L/T), and a hot key's blocks are sized to what it spends.

Quota: ``used`` counts units granted minus units given back; a grant never
takes it past quota_max.  A unit is spent only before the period's renewal:
the block's deadline is also at most the local time before sending plus
(renews - server_now - 1 ms)·(1 - 10⁻³) (server_now is floored to the ms).
A give-back returns only units the node has already removed from its block
(so they are never spent), and only into the period they came from: the
period is named by ``ps``, the server time of its first lease, kept in the
quota hash (a renewed or reset period has none, or another).  So at any
time admitted <= granted - returned - still held <= used <= quota_max.  ∎

The bound on a dead node: a node killed while holding a block loses what it
had not spent -- for the quota at most one block per key (<= max_block, and
about L times the key's rate on that node) until the period renews; for the
rate at most one block plus L of time.  Nothing is ever over-admitted.

Headers: a leased decision's ``remaining`` is the node's view -- what the
bucket (or quota) had left once this block is spent, plus the units this
node still holds; other nodes' blocks are not seen.  Reset times come from
the block's grant.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from fastgate.storage.base import StoreError

__all__ = ["CLOCK_MARGIN", "FIRST_BLOCK", "Leases"]

log = logging.getLogger("fastgate.limits")

#: Relative margin on local durations: clocks may run up to 1000 ppm apart.
CLOCK_MARGIN = 1e-3
#: The largest first block of a key that just turned hot.
FIRST_BLOCK = 16
#: Keys tracked before the idle ones are forgotten.
_PRUNE_AT = 10_000
_INF = float("inf")

Limits = tuple[bool, int, float, float, bool, int, float]


class _Key:
    """One key's lease state on this node."""

    __slots__ = (
        "bound", "deadline", "emptied", "gap", "generation", "granted", "granted_at", "hot",
        "last", "pending", "per", "period", "quota_base", "quota_max", "rate", "rate_base",
        "refusal", "refused_at", "refused_until", "renewal", "renews_at", "reset_at", "size",
        "units", "waiters",
    )

    def __init__(self, rate: float, per: float, quota_max: int, renewal: int) -> None:
        self.rate = rate
        self.per = per
        self.quota_max = quota_max
        self.renewal = renewal
        self.units = 0  # left in the block
        self.deadline = 0.0
        self.rate_base = -1
        self.quota_base = -1
        self.reset_at = 0.0
        self.renews_at = 0.0
        self.period: bytes = b""
        self.granted = 0  # the last block's size, as granted
        self.granted_at = 0.0
        self.emptied = -_INF  # when the last block was spent (-inf: not yet)
        self.bound = 0
        self.size = 2  # the next block asked for
        self.hot = False
        self.last = -_INF  # the last request not decided from a block
        self.gap = _INF  # average gap between such requests
        self.pending = False
        self.waiters: list[Any] = []
        self.refused_until = -_INF
        self.refused_at = 0.0
        self.refusal: Limits | None = None
        self.generation = 0


class Leases:
    """A node's leased blocks, one per hot key (see the module docstring).

    Wired to its environment by callables, so that the same code runs in the
    gateway (the Redis store, the event loop, ``time.monotonic``) and in the
    simulation test:

    * ``clock()``: monotonic seconds; ``call_at(when, fn, *args)``: a timer;
      ``new_future()``: an awaitable the request path can wait on;
    * ``lease_with(key, rate, per, quota_max, renewal, want, lifetime, done)``:
      ``lease.lua``, ``done`` getting its reply tuple or an exception;
    * ``limits_with(key, rate, per, quota_max, renewal, done)``: one
      request's decision (``limits.lua``);
    * ``lease_return(key, units, period)``: give quota back (may raise
      StoreError; returns an awaitable or None).
    """

    def __init__(self, *, lifetime: float, max_block: int, clock: Callable[[], float],
                 call_at: Callable[..., Any], new_future: Callable[[], Any],
                 lease_with: Callable[..., None], limits_with: Callable[..., None],
                 lease_return: Callable[[str, int, bytes], Any]) -> None:
        if not lifetime > 0:
            raise ValueError("lifetime must be > 0")
        self.lifetime = lifetime
        self.max_block = max(2, max_block)
        self._span = lifetime * (1.0 - CLOCK_MARGIN)
        self._clock = clock
        self._call_at = call_at
        self._new_future = new_future
        self._lease_with = lease_with
        self._limits_with = limits_with
        self._lease_return = lease_return
        self._keys: dict[str, _Key] = {}
        self._prune_at = _PRUNE_AT
        #: Give-backs sent and not yet answered (awaited by :meth:`drain`).
        self.returns: set[Any] = set()
        #: Counters: blocks asked for, units granted in blocks, decisions sent
        #: one by one, units given back.
        self.blocks = 0
        self.units_granted = 0
        self.singles = 0
        self.units_returned = 0

    # -- the request path --
    def limits(self, key: str, rate: float, per: float, quota_max: int,
               renewal: int) -> Limits | Any:
        """A request's rate and quota decision: the tuple itself when the key's
        block has a unit left, else an awaitable of it."""
        st = self._keys.get(key)
        if st is not None and st.units:
            now = self._clock()
            if (now < st.deadline and st.rate == rate and st.quota_max == quota_max
                    and st.per == per and st.renewal == renewal):
                units = st.units - 1
                st.units = units
                if not units:
                    st.emptied = now
                rate_base = st.rate_base
                quota_base = st.quota_base
                reset_at = st.reset_at
                return (True, rate_base + units if rate_base >= 0 else -1,
                        reset_at - now if reset_at > now else 0.0, 0.0, True,
                        quota_base + units if quota_base >= 0 else -1, st.renews_at)
        return self._decide(st, key, rate, per, quota_max, renewal)

    def _decide(self, st: _Key | None, key: str, rate: float, per: float, quota_max: int,
                renewal: int) -> Limits | Any:
        now = self._clock()
        if st is None:
            if len(self._keys) >= self._prune_at:
                self._prune(now)
            st = self._keys[key] = _Key(rate, per, quota_max, renewal)
        elif (st.rate != rate or st.per != per or st.quota_max != quota_max
              or st.renewal != renewal):
            # New limits (the session changed): the block was taken under the
            # old ones; give it back and start over.
            self._give_back(key, st)
            st.rate, st.per, st.quota_max, st.renewal = rate, per, quota_max, renewal
            st.refused_until = -_INF
            st.hot = False
        if st.units:  # past its deadline (its timer has not run yet)
            self._expired(key, st)
        if now < st.refused_until:
            return self._refused(st, now)
        if st.pending:
            fut = self._new_future()
            st.waiters.append(fut)
            return fut
        gap = now - st.last
        st.last = now
        if st.hot and gap > 2 * self.lifetime:
            st.hot = False  # idle: decided per request again
            st.gap = _INF
        if not st.hot:
            st.gap = gap if st.gap == _INF else (st.gap + gap) / 2
            if st.gap * 2 > self.lifetime:
                return self._single(key, st)
            st.hot = True
            st.granted = 0
            st.size = max(2, min(FIRST_BLOCK, self.max_block,
                                 math.ceil(self.lifetime / st.gap) if st.gap > 0 else FIRST_BLOCK))
        fut = self._new_future()
        st.waiters.append(fut)
        self._request(key, st, now)
        return fut

    def _single(self, key: str, st: _Key) -> Any:
        fut = self._new_future()
        self.singles += 1
        self._limits_with(key, st.rate, st.per, st.quota_max, st.renewal,
                          functools.partial(_settle, fut))
        return fut

    def _refused(self, st: _Key, now: float) -> Limits:
        refusal = st.refusal
        assert refusal is not None
        if not refusal[0]:  # the rate's: its times run down
            elapsed = now - st.refused_at
            return (False, 0, max(0.0, refusal[2] - elapsed), max(0.0, refusal[3] - elapsed),
                    True, -1, 0.0)
        return refusal

    def _request(self, key: str, st: _Key, now: float) -> None:
        """Ask for the next block (none is in flight)."""
        if st.granted and st.emptied > -_INF and st.bound == 0:
            # The last block was spent, all of it: size the next one by how
            # fast (at most twice as big, about what L takes).
            elapsed = st.emptied - st.granted_at
            size = 2 * st.granted
            if elapsed > 0:
                size = min(size, math.ceil(st.granted * self.lifetime / elapsed))
            st.size = max(2, min(self.max_block, size))
        want = min(self.max_block, max(st.size, len(st.waiters)))
        st.pending = True
        self.blocks += 1
        limits = (st.rate, st.per, st.quota_max, st.renewal)
        self._lease_with(key, *limits, want, self.lifetime,
                         functools.partial(self._granted, key, st, now, limits))

    def _granted(self, key: str, st: _Key, sent_at: float,
                 limits: tuple[float, float, int, int], reply: Any) -> None:
        """A block request's reply: hand its units to the waiting requests,
        keep the rest until the deadline."""
        st.pending = False
        now = self._clock()
        waiters, st.waiters = st.waiters, []
        if isinstance(reply, BaseException):
            for fut in waiters:
                _settle(fut, reply)
            return
        (granted, rate_allowed, remaining, reset_after, retry_after, _quota_allowed,
         quota_remaining, renews_at, now_ms, period, bound) = reply
        if not granted:
            if not rate_allowed:
                refusal: Limits = (False, 0, reset_after, retry_after, True, -1, 0.0)
                interval = st.per / st.rate
                hold = retry_after + (min(st.size, max(st.rate, 1.0)) - 1) * interval
            else:
                refusal = (True, 0, 0.0, 0.0, False, 0, renews_at)
                hold = self.lifetime
                if renews_at > 0:
                    hold = min(hold, renews_at - now_ms / 1e3)
            self._refuse(st, refusal, min(self.lifetime, hold), now)
            for fut in waiters:
                _settle(fut, refusal)
            return
        self.units_granted += granted
        deadline = now
        if granted > 1:
            span = self._span
            if st.quota_max > 0 and renews_at > 0:
                span = min(span, (renews_at * 1e3 - now_ms - 1) / 1e3 * (1.0 - CLOCK_MARGIN))
            deadline = sent_at + span
            if now >= deadline or limits != (st.rate, st.per, st.quota_max, st.renewal):
                # Too late to spend any of it (or taken under limits that
                # changed since): give the quota back and decide the waiting
                # requests one by one.
                st.units, st.period = granted, period
                self._give_back(key, st)
                for fut in waiters:
                    self.singles += 1
                    self._limits_with(key, st.rate, st.per, st.quota_max, st.renewal,
                                      functools.partial(_settle, fut))
                return
        units = granted
        rate_base = remaining if remaining >= 0 else -1
        quota_base = quota_remaining if quota_remaining >= 0 else -1
        reset_at = now + reset_after
        st.rate_base, st.quota_base = rate_base, quota_base
        st.reset_at, st.renews_at = reset_at, renews_at
        served = 0
        for fut in waiters:
            if not units:
                break
            units -= 1
            served += 1
            _settle(fut, (True, rate_base + units if rate_base >= 0 else -1, reset_after, 0.0,
                          True, quota_base + units if quota_base >= 0 else -1, renews_at))
        st.granted, st.granted_at, st.bound = granted, now, bound
        st.units, st.deadline, st.period = units, deadline, period
        st.emptied = now if not units else -_INF
        if units:
            st.generation += 1
            self._call_at(deadline, self._expire, key, st, st.generation)
        rest = waiters[served:]
        if not rest:
            return
        if bound == 0:  # more requests came than asked for: the next block
            st.waiters = rest
            self._request(key, st, now)
            return
        if bound == 1:
            refusal = (False, 0, reset_after, st.per / st.rate, True, -1, 0.0)
            self._refuse(st, refusal, min(self.lifetime, st.per / st.rate), now)
        else:
            refusal = (True, 0, 0.0, 0.0, False, 0, renews_at)
            self._refuse(st, refusal, self.lifetime, now)
        for fut in rest:
            _settle(fut, refusal)

    def _refuse(self, st: _Key, refusal: Limits, hold: float, now: float) -> None:
        st.refusal = refusal
        st.refused_at = now
        st.refused_until = now + max(0.0, hold)

    # -- ends of blocks --
    def _expire(self, key: str, st: _Key, generation: int) -> None:
        if st.generation == generation and st.units and self._keys.get(key) is st:
            self._expired(key, st)

    def _expired(self, key: str, st: _Key) -> None:
        """The block's deadline passed: give back what is left; a key that used
        fewer than two units of it is decided per request again."""
        used = st.granted - st.units
        self._give_back(key, st)
        if used < 2:
            st.hot = False
            st.gap = _INF
        else:
            st.size = max(2, used)
        st.granted = 0

    def _give_back(self, key: str, st: _Key) -> None:
        units, st.units = st.units, 0
        st.generation += 1
        if units <= 0 or st.quota_max <= 0 or not st.period:
            return
        try:
            pending = self._lease_return(key, units, st.period)
        except StoreError as exc:
            log.warning("giving back %d leased quota units failed: %s", units, exc)
            return
        self.units_returned += units
        if pending is not None and hasattr(pending, "add_done_callback"):
            self.returns.add(pending)
            pending.add_done_callback(self.returns.discard)

    def _prune(self, now: float) -> None:
        idle = now - 4 * self.lifetime
        for key in [key for key, st in self._keys.items()
                    if not st.units and not st.pending and st.last < idle
                    and st.refused_until < now]:
            del self._keys[key]
        self._prune_at = max(_PRUNE_AT, 2 * len(self._keys))

    def give_back_all(self) -> None:
        """Give back every block's unspent quota (shutdown); the give-backs are
        sent at once, :attr:`returns` holds the ones not answered yet."""
        blocks = units = 0
        for key, st in list(self._keys.items()):
            if st.units:
                blocks += 1
                units += st.units
                self._give_back(key, st)
        if blocks:
            log.info("giving back %d unspent quota units of %d leased blocks", units, blocks)

    def held(self, key: str) -> int:
        """Units of ``key``'s block this node still holds (0 past its deadline)."""
        st = self._keys.get(key)
        if st is None or not st.units or self._clock() >= st.deadline:
            return 0
        return st.units


def _settle(fut: Any, outcome: Any) -> None:
    if fut.done():
        return
    if isinstance(outcome, BaseException):
        fut.set_exception(outcome)
    else:
        fut.set_result(outcome)
