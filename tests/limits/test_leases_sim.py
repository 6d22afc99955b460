"""The lease scheme simulated: several nodes, each running the gateway's own
lease code (fastgate.limits.leases.Leases), on one modelled Redis
(fastgate.limits.model.ScriptModel: the scripts restated, checked against the
real ones in tests/storage/test_leases.py), with random network delays (some
longer than a lease's lifetime), drifting node clocks, random request
schedules (slow keys, bursts, hammering), killed nodes, and mixed limits.

The invariants checked on every schedule, on the server's clock:

* rate: in every window [a, b] at most cap + (b - a)·rate/per admissions
  (GCRA's bound), over all nodes;
* quota: at most quota_max admissions in every period; and the accounting is
  exact: once every lease has ended, the server's ``used`` counter equals the
  admissions plus the units held by killed nodes (at most one block each).
"""

from __future__ import annotations

import heapq
import math
import random
from typing import Any

import pytest

from fastgate.limits.leases import Leases
from fastgate.limits.model import EPOCH, ScriptModel

T0 = EPOCH + 100_000_000.0  # the server's clock at the start


class SimFuture:
    """The little of asyncio.Future the lease code and its caller use."""

    __slots__ = ("_callbacks", "_done", "_exc", "_result")

    def __init__(self) -> None:
        self._done = False
        self._result: Any = None
        self._exc: BaseException | None = None
        self._callbacks: list[Any] = []

    def done(self) -> bool:
        return self._done

    def set_result(self, result: Any) -> None:
        self._done, self._result = True, result
        for cb in self._callbacks:
            cb(self)

    def set_exception(self, exc: BaseException) -> None:
        self._done, self._exc = True, exc
        for cb in self._callbacks:
            cb(self)

    def result(self) -> Any:
        if self._exc is not None:
            raise self._exc
        return self._result

    def add_done_callback(self, cb: Any) -> None:
        if self._done:
            cb(self)
        else:
            self._callbacks.append(cb)


class Sim:
    """Events on one global clock (the server's); the server executes each
    script when its request arrives."""

    def __init__(self, rng: random.Random, spikes: bool) -> None:
        self.rng = rng
        self.now = T0
        self.events: list[tuple[float, int, Any, tuple[Any, ...]]] = []
        self.seq = 0
        self.model = ScriptModel()
        self.spikes = spikes
        #: Where admissions made by the reply being delivered happened.
        self.context = T0
        #: Quota periods the server started: key -> [(start, renews_s)].
        self.periods: dict[str, list[tuple[float, float]]] = {}
        self.scripts = 0

    def at(self, when: float, fn: Any, *args: Any) -> None:
        self.seq += 1
        heapq.heappush(self.events, (max(when, self.now), self.seq, fn, args))

    def delay(self, lifetime: float) -> float:
        if self.spikes and self.rng.random() < 0.02:
            return self.rng.uniform(0, 3 * lifetime)  # a stalled network
        return self.rng.uniform(0.00005, 0.002)

    def run_until(self, end: float) -> None:
        while self.events and self.events[0][0] <= end:
            when, _, fn, args = heapq.heappop(self.events)
            self.now = when
            fn(*args)
        self.now = max(self.now, end)

    def server_time(self) -> tuple[int, int]:
        sec = math.floor(self.now)
        return sec, math.floor((self.now - sec) * 1e6)


class Node:
    """One gateway node: its Leases on a drifting local clock."""

    def __init__(self, sim: Sim, name: str, lifetime: float, max_block: int) -> None:
        self.sim = sim
        self.name = name
        self.alive = True
        self.drift = sim.rng.uniform(-5e-4, 5e-4)
        self.offset = sim.rng.uniform(-1000, 1000)
        self.lifetime = lifetime
        #: Per key: single decisions sent and not answered yet.
        self.singles: dict[str, int] = {}
        #: Per key: the server time the block being spent was decided at.
        self.block_at: dict[str, float] = {}
        self.leases = Leases(lifetime=lifetime, max_block=max_block, clock=self.clock,
                             call_at=self.call_at, new_future=SimFuture,
                             lease_with=self.lease_with, limits_with=self.limits_with,
                             lease_return=self.lease_return)

    def clock(self) -> float:
        return (self.sim.now - T0) * (1 + self.drift) + self.offset

    def call_at(self, when: float, fn: Any, *args: Any) -> None:
        self.sim.at(T0 + (when - self.offset) / (1 + self.drift), self._alive, fn, args)

    def _alive(self, fn: Any, args: tuple[Any, ...]) -> None:
        if self.alive:
            fn(*args)

    def _deliver(self, done: Any, reply: Any, context: float,
                 block: tuple[str, float] | None = None) -> None:
        if self.alive:
            if block is not None:
                self.block_at[block[0]] = block[1]
            self.sim.context = context
            done(reply)

    def _quota_before(self, key: str) -> dict[str, str] | None:
        state = self.sim.model.quota.get(key)
        return dict(state) if state is not None else None

    def lease_with(self, key: str, rate: float, per: float, quota_max: int, renewal: int,
                   want: int, lifetime: float, done: Any) -> None:
        sim = self.sim

        def execute() -> None:
            before = self._quota_before(key)
            sim.scripts += 1
            raw = sim.model.lease(key, rate, per, quota_max, renewal, want, lifetime,
                                  *sim.server_time())
            self._note_period(key, before)
            reply = (raw[0], raw[1] == 1, raw[2], float(raw[3]), float(raw[4]), raw[5] == 1,
                     raw[6], raw[7] / 1e3, raw[8], raw[9].encode(), raw[10])
            # A unit of a one-unit grant counts when it was decided; a
            # block's units when the node hands them out.
            at = sim.now + sim.delay(self.lifetime)
            sim.at(at, self._deliver, done, reply, sim.now if raw[0] == 1 else at,
                   (key, sim.now) if raw[0] > 1 else None)

        sim.at(sim.now + sim.delay(self.lifetime), execute)

    def limits_with(self, key: str, rate: float, per: float, quota_max: int, renewal: int,
                    done: Any) -> None:
        sim = self.sim
        self.singles[key] = self.singles.get(key, 0) + 1

        def answered(reply: Any) -> None:
            self.singles[key] -= 1
            done(reply)

        def execute() -> None:
            before = self._quota_before(key)
            sim.scripts += 1
            raw = sim.model.limits(key, rate, per, quota_max, renewal, *sim.server_time())
            self._note_period(key, before)
            reply = (raw[0] == 1, raw[1], float(raw[2]), float(raw[3]), raw[4] == 1, raw[5],
                     raw[6] / 1e3)
            sim.at(sim.now + sim.delay(self.lifetime), self._deliver, answered, reply, sim.now)

        sim.at(sim.now + sim.delay(self.lifetime), execute)

    def lease_return(self, key: str, units: int, period: bytes) -> None:
        sim = self.sim

        def execute() -> None:
            sim.scripts += 1
            sim.model.lease_return(key, units, period.decode())

        sim.at(sim.now + sim.delay(self.lifetime), execute)

    def _note_period(self, key: str, before: dict[str, str] | None) -> None:
        """Log the quota period a script just started (a fresh hash)."""
        after = self.sim.model.quota.get(key)
        if after is not None and (before is None or before.get("renews") != after["renews"]):
            renews = int(after["renews"])
            self.sim.periods.setdefault(key, []).append(
                (self.sim.now, renews / 1e3 if renews else math.inf))


def run_schedule(seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    sim = Sim(rng, spikes=rng.random() < 0.5)
    lifetime = rng.choice([0.005, 0.02, 0.05])
    max_block = rng.choice([4, 50, 1000])
    nodes = [Node(sim, f"n{i}", lifetime, max_block) for i in range(rng.randint(2, 5))]
    keys = {}
    for k in range(rng.randint(1, 3)):
        rate, per = rng.choice([(0.0, 0.0), (5.0, 1.0), (200.0, 1.0), (3000.0, 1.0),
                                (50.0, 0.1)])
        quota_max, renewal = rng.choice([(0, 0), (40, 0), (500, 0), (3000, 0), (300, 1),
                                         (200000, 0)])
        if rate <= 0 and quota_max <= 0:
            quota_max = 700
        keys[f"key{k}"] = (rate, per, quota_max, renewal)
    duration = rng.uniform(0.5, 2.0)
    admitted: dict[str, list[float]] = {key: [] for key in keys}
    decided = {"sync": 0, "async": 0}
    requests = 0

    def record(key: str, decision: Any, when: float, node: Node | None = None) -> None:
        if decision[0] and decision[4]:
            admitted[key].append(when)
            if node is not None:  # spent from a block: within its lifetime
                assert when <= node.block_at[key] + lifetime, (when, node.block_at[key])

    def on_done(key: str, fut: SimFuture) -> None:
        record(key, fut.result(), sim.context)

    def arrive(node: Node, key: str) -> None:
        nonlocal requests
        if not node.alive:
            return
        requests += 1
        decision = node.leases.limits(key, *keys[key])
        if isinstance(decision, tuple):
            decided["sync"] += 1
            record(key, decision, sim.now, node)
        else:
            decided["async"] += 1
            decision.add_done_callback(lambda fut: on_done(key, fut))

    # Per node and key: phases of random request rates (slow, bursty, hammering).
    for node in nodes:
        for key in keys:
            t = T0
            while t < T0 + duration:
                phase_end = t + rng.uniform(0.05, 0.5)
                per_second = rng.choice([0.0, 2.0, 40.0, 400.0, 4000.0])
                while per_second and t < phase_end:
                    t += rng.expovariate(per_second)
                    if rng.random() < 0.05:  # a burst of concurrent requests
                        for _ in range(rng.randint(2, 30)):
                            sim.at(t, arrive, node, key)
                    sim.at(t, arrive, node, key)
                t = max(t, phase_end)
    killed: list[Node] = []
    if rng.random() < 0.4:
        victim = rng.choice(nodes)
        sim.run_until(T0 + rng.uniform(0.1, duration))
        # What the victim takes with it: its block's units, and at most one
        # block request and its single decisions in flight.
        held = {key: (victim.leases.held(key), max_block + victim.singles.get(key, 0))
                for key in keys}
        victim.alive = False
        killed.append(victim)
        sim.killed_held = held  # type: ignore[attr-defined]
    sim.run_until(math.inf)  # every arrival, reply, expiry and give-back
    return {"sim": sim, "keys": keys, "admitted": admitted, "nodes": nodes,
            "killed": killed, "decided": decided, "requests": requests,
            "lifetime": lifetime, "max_block": max_block}


def check_rate(times: list[float], rate: float, per: float) -> None:
    """No window [a, b] has more than cap + (b - a)·rate/per admissions."""
    if not times:
        return
    cap = max(rate, 1.0)
    interval = per / rate
    times = sorted(times)
    best = -math.inf  # max over i <= j of t_i/T - i
    for j, t in enumerate(times):
        best = max(best, (t - T0) / interval - j)
        excess = (j + 1) - (t - T0) / interval + best
        assert excess <= cap + 1e-6, (j, excess, cap)


def check_quota(times: list[float], periods: list[tuple[float, float]], quota_max: int,
                lost: tuple[int, int], used: int, renewal: int) -> None:
    times = sorted(times)
    if not periods:
        assert not times
        return
    bounds = [start for start, _ in periods] + [math.inf]
    for index, (_start, renews) in enumerate(periods):
        inside = [t for t in times if bounds[index] <= t < bounds[index + 1]]
        assert all(t < renews for t in inside), "a unit spent after its period renewed"
        assert len(inside) <= quota_max, (len(inside), quota_max)
    assert times[0] >= bounds[0]
    if renewal == 0:
        # Once every lease has ended, used == admitted, but for what a killed
        # node took with it: at least the units it held, at most one block
        # and the single decisions it had in flight.
        least, most = lost
        assert least <= used - len(times) <= most, (used, len(times), lost)


SEEDS = range(48)


@pytest.mark.parametrize("seed", SEEDS)
def test_leases_never_over_admit(seed: int) -> None:
    out = run_schedule(seed)
    sim: Sim = out["sim"]
    for key, (rate, per, quota_max, renewal) in out["keys"].items():
        times = out["admitted"][key]
        if rate > 0:
            check_rate(times, rate, per)
        if quota_max > 0:
            lost = getattr(sim, "killed_held", {}).get(key, (0, 0))
            assert lost[0] <= out["max_block"]
            check_quota(times, sim.periods.get(key, []), quota_max, lost,
                        sim.model.used(key), renewal)
    # No node leaves a block request unanswered or a unit held past its end.
    for node in out["nodes"]:
        if node.alive:
            assert all(not st.pending and not st.units for st in node.leases._keys.values())


def test_a_hot_key_costs_far_fewer_scripts_than_requests() -> None:
    """The simulated gateway side of the claim: 3 nodes hammering one key with
    a large quota and rate decide most requests from blocks."""
    rng = random.Random(7)
    sim = Sim(rng, spikes=False)
    nodes = [Node(sim, f"n{i}", 0.05, 1000) for i in range(3)]
    admitted = 0

    def arrive(node: Node) -> None:
        nonlocal admitted
        decision = node.leases.limits("hot", 100000.0, 1.0, 10_000_000, 0)
        if isinstance(decision, tuple):
            admitted += decision[0] and decision[4]

    for node in nodes:
        t = T0
        for _ in range(6000):
            t += rng.expovariate(3000.0)
            sim.at(t, arrive, node)
    sim.run_until(math.inf)
    assert admitted > 0.9 * 18000  # decided synchronously, from blocks
    assert sim.scripts * 20 < 18000, sim.scripts


@pytest.mark.parametrize("seed", range(24))
def test_the_scripts_accounting_holds_for_any_spending_pattern(seed: int) -> None:
    """The claim the proof makes about lease.lua alone: whatever times in
    [t, t + L] a block's units are spent at -- all at the start, all at the
    end, anywhere -- mixed with single decisions, no window over-admits."""
    rng = random.Random(seed)
    model = ScriptModel()
    rate, per = rng.choice([(5.0, 1.0), (200.0, 1.0), (3000.0, 1.0), (50.0, 0.1), (0.5, 1.0)])
    micros = 0
    spends: list[float] = []
    for _ in range(600):
        micros += int(rng.expovariate(rate / per * rng.choice([0.2, 1.0, 5.0])) * 1e6)
        sec, usec = divmod(micros, 1_000_000)
        want = rng.choice([1, 1, 2, 5, 60])
        life = rng.choice([0.0, 0.001, 0.05, 0.3])
        granted = model.lease("k", rate, per, 0, 0, want, life, int(T0) + sec, usec)[0]
        t = T0 + micros / 1e6
        span = life if granted > 1 else 0.0
        where = rng.choice(["start", "end", "spread"])
        for _ in range(granted):
            offset = {"start": 0.0, "end": span}.get(where, rng.uniform(0, span))
            spends.append(t + offset)
    check_rate(spends, rate, per)
