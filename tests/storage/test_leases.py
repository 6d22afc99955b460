"""The lease scripts on a real redis-server (and the 3-master cluster):
``lease.lua`` and ``lease_return.lua`` against their Python statement
(fastgate.limits.model, which the simulation runs), ``lease.lua`` with one
unit against ``limits.lua``, and the store's lease methods."""

from __future__ import annotations

import functools
import math
import random

import pytest

from fastgate.limits.model import EPOCH, ScriptModel
from fastgate.storage import scripts

from .conftest import SHARED_KINDS

pytestmark = pytest.mark.redis


def _load_state(client, model: ScriptModel, key: str) -> None:
    rl, quota = f"rl-{{{key}}}", f"quota-{{{key}}}"
    raw = client.get(rl)
    model.rate.pop(key, None)
    if raw is not None:
        model.rate[key] = raw.decode()
    fields = client.hgetall(quota)
    model.quota.pop(key, None)
    if fields:
        model.quota[key] = {k.decode(): v.decode() for k, v in fields.items()}


def _time_of(stamp: str) -> tuple[int, int] | None:
    """The (sec, usec) a script read from TIME, given the stamp it wrote."""
    now = float(stamp)
    whole = math.floor(now)
    usec = round((now - whole) * 1e6)
    for u in (usec - 1, usec, usec + 1):
        if 0 <= u < 1000000 and "%.17g" % ((whole) + u / 1000000) == stamp:
            return EPOCH + whole, u
    return None


def _norm(reply: list) -> list:
    return [v.decode() if isinstance(v, bytes) else v for v in reply]


def test_lease_script_is_its_model_and_one_unit_is_limits_lua(redis_flush):
    """Random calls of the three scripts on a few keys: whenever the script's
    clock can be read back (from the stamp it wrote), its reply and the data
    it leaves are exactly the model's at that time; otherwise the decision
    (granted, allowed, counts) is the model's at a time within the call."""
    client = redis_flush.client()
    rng = random.Random(1405)
    model = ScriptModel()
    lease = client.register_script(scripts.LEASE.source)
    limits = client.register_script(scripts.LIMITS.source)
    give_back = client.register_script(scripts.LEASE_RETURN.source)
    exact = blocks = 0
    periods: dict[str, list[str]] = {}
    rates = {"k0": (0.0, 0.0), "k1": (5.0, 1.0), "k2": (1000.0, 0.5),
             "k3": rng.choice([(100.0, 1.0), (0.5, 1.0)])}
    for step in range(600):
        key = f"k{rng.randrange(4)}"
        rl, quota = f"rl-{{{key}}}", f"quota-{{{key}}}"
        # One rate per key (a bucket read under another rate than it was
        # written with may expire before the model says it is full).
        rate, per = rates[key]
        quota_max, renewal = rng.choice([(0, 0), (12, 0), (40, 1), (1000, 3600)])
        _load_state(client, model, key)
        before_t = client.time()
        kind = rng.random()
        if kind < 0.15 and periods.get(key):
            ps = rng.choice(periods[key])
            units = rng.randrange(1, 6)
            real = give_back(keys=[quota], args=[units, ps])
            assert real == model.lease_return(key, units, ps), step
            _load_state(client, model, key)
            continue
        rate_args = [repr(rate) if rate > 0 else "0", repr(per) if rate > 0 else "0"]
        if kind < 0.45:
            want, life = 1, 0.0
            real = _norm(limits(keys=[rl, quota], args=[*rate_args, quota_max, renewal]))
            run = functools.partial(model.limits, key, rate, per, quota_max, renewal)
        else:
            want, life = rng.choice([1, 2, 7, 50]), rng.choice([0.0, 0.05, 1.0])
            real = _norm(lease(keys=[rl, quota],
                               args=[*rate_args, quota_max, renewal, want, repr(life)]))
            run = functools.partial(model.lease, key, rate, per, quota_max, renewal, want, life)
        after = client.get(rl)
        written = after.decode() if after is not None else None
        saved = (dict(model.rate), {k: dict(v) for k, v in model.quota.items()})
        at = _time_of(written.split(" ")[1]) if written and written != saved[0].get(key) \
            else None
        if at is None and len(real) == 11 and rate <= 0:
            # No rate limit: the reply names the clock (ps, else now_ms).
            sec, _, usec = str(real[9]).partition("-")
            fresh = real[9] and real[9] != saved[1].get(key, {}).get("ps")
            at = (int(sec), int(usec)) if fresh else (real[8] // 1000, real[8] % 1000 * 1000)
        if at is not None:
            predicted = run(*at)
            assert predicted == real, (step, predicted, real)
            assert model.rate.get(key) == written
            fields = {k.decode(): v.decode() for k, v in client.hgetall(quota).items()}
            sec_after, usec_after = client.time()
            renews = int(model.quota.get(key, {}).get("renews", 0))
            if not (fields == {} and 0 < renews <= sec_after * 1000 + usec_after // 1000):
                # (unless the period ended, and Redis expired it, since the call)
                assert model.quota.get(key, {}) == fields, (step, fields)
            exact += 1
            blocks += len(real) == 11 and real[0] > 1
        else:
            # Decisions and counts agree with the model at the call's start or
            # at its end (times in between may differ by the call's length).
            integer_fields = [0, 4, 5] if len(real) == 7 else [0, 1, 2, 5, 6, 10]
            expected = [real[i] for i in integer_fields]
            after_t = client.time()
            outcomes = []
            for sec, usec in (before_t, after_t):
                model.rate, model.quota = dict(saved[0]), {k: dict(v) for k, v in
                                                           saved[1].items()}
                predicted = run(int(sec), int(usec))
                outcomes.append([predicted[i] for i in integer_fields])
            assert expected in outcomes, (step, outcomes, real)
            model.rate, model.quota = saved
        if len(real) == 11 and real[9]:
            periods.setdefault(key, []).append(real[9])
    assert exact > 80 and blocks > 20, (exact, blocks)  # many compared exactly


def test_one_unit_lease_writes_what_limits_lua_writes(redis_flush):
    """The same state, then limits.lua on one copy and lease.lua (want 1) on
    another: the stored states differ only by the script's clock."""
    client = redis_flush.client()
    lease = client.register_script(scripts.LEASE.source)
    limits = client.register_script(scripts.LIMITS.source)
    for rate, per, quota_max, renewal in [(10.0, 1.0, 5, 3600), (3.0, 2.0, 0, 0),
                                          (0.0, 0.0, 7, 0)]:
        client.flushall()
        rate_args = [repr(rate) if rate > 0 else "0", repr(per) if rate > 0 else "0"]
        replies = []
        for script, tag, extra in ((limits, "a", []), (lease, "b", [1, "0.05"])):
            replies.append([_norm(script(keys=[f"rl-{{{tag}}}", f"quota-{{{tag}}}"],
                                         args=[*rate_args, quota_max, renewal, *extra]))
                            for _ in range(12)])
        for old, new in zip(*replies, strict=True):
            # limits.lua: {allowed, remaining, reset, retry, q_allowed, q_remaining, renews}
            assert new[0] == (1 if old[0] == 1 and old[4] == 1 else 0)
            assert (new[1], new[2], new[5], new[6]) == (old[0], old[1], old[4], old[5])
            assert abs(float(new[3]) - float(old[2])) < 0.01
        assert client.hget("quota-{a}", "used") == client.hget("quota-{b}", "used")
        assert client.hget("quota-{b}", "ps") is None  # one unit is not a lease


@SHARED_KINDS
def test_store_lease_grants_blocks_and_takes_back_unspent_quota(store_backend, run):
    """RedisStore.lease / lease_with / lease_return on one server and the
    cluster: a block, capped by the quota, a refusal, a give-back into the
    same period only."""
    import asyncio

    store = store_backend.new()

    async def scenario() -> None:
        reply = await store.lease("lk1", 0.0, 0.0, 30, 3600, 20, 0.05)
        granted, _, _, _, _, q_ok, q_remaining, renews_at, now_ms, period, bound = reply
        assert (granted, q_ok, q_remaining, bound) == (20, True, 10, 0)
        assert period and renews_at * 1e3 - now_ms == pytest.approx(3600_000, abs=1)
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        store.lease_with("lk1", 0.0, 0.0, 30, 3600, 20, 0.05, fut.set_result)
        second = await fut
        assert (second[0], second[6], second[9], second[10]) == (10, 0, period, 2)
        refused = await store.lease("lk1", 0.0, 0.0, 30, 3600, 5, 0.05)
        assert (refused[0], refused[5]) == (0, False)
        assert await store.lease_return("lk1", 7, period) == 7
        assert await store.lease_return("lk1", 7, b"1-2") == 0  # another period: nothing
        assert (await store.quota_state("lk1", 30))[0] == 7
        rate_block = await store.lease("lk2", 100.0, 1.0, 0, 0, 40, 0.05)
        assert rate_block[0] == 40 and rate_block[2] == 60
        await store.reset_quota("lk1")
        assert await store.lease_return("lk1", 3, period) == 0  # the period is gone

    run(scenario())


@SHARED_KINDS
def test_lease_scripts_lost_by_the_server_are_sent_again(store_backend, run, request):
    """SCRIPT FLUSH (a restarted or flushed server): a block request and a
    give-back answered NOSCRIPT are sent again (they did not run) and count
    once."""
    import asyncio

    store = store_backend.new()
    if store_backend.kind == "redis":
        nodes = [request.getfixturevalue("redis_server")]
    else:
        nodes = request.getfixturevalue("redis_cluster").nodes

    async def scenario() -> None:
        first = await store.lease("lf1", 0.0, 0.0, 100, 3600, 30, 0.05)
        assert first[0] == 30
        for node in nodes:
            node.client().script_flush()
        assert await store.lease_return("lf1", 10, first[9]) == 10
        for node in nodes:
            node.client().script_flush()
        fut = asyncio.get_running_loop().create_future()
        store.lease_with("lf1", 0.0, 0.0, 100, 3600, 30, 0.05, fut.set_result)
        second = await fut
        assert (second[0], second[6]) == (30, 50)  # 30 - 10 + 30 used

    run(scenario())
