-- One request's rate-limit and quota decision, atomically, in one round trip.
-- The rate part is GCRA and the quota part a counter per period, with the
-- same formulas, float operations and order as fastgate._core.limiter
-- (RateLimiter.hit, QuotaCounter.hit), on the server's clock (TIME), so the
-- gateways' clocks never matter. Nothing is written unless the request is
-- allowed by both: a refused request consumes neither a token nor quota.
--
-- KEYS[1]  "rl-{<key>}": "<level> <stamp>" -- the requests still owed (level,
--          0 = a full bucket) at the last allowed request (stamp, seconds
--          since EPOCH); absent = full. Expires when the bucket is full again.
-- KEYS[2]  "quota-{<key>}": hash {used, renews (unix ms, 0 = never)};
--          expires when the period ends.
--          (One {hash tag} for both, so the script runs on Redis Cluster.)
-- ARGV[1]  rate (<= 0: no rate limit)      ARGV[2]  per, seconds
-- ARGV[3]  quota_max (<= 0: no quota)      ARGV[4]  renewal, seconds (<= 0: never)
-- returns  {rate_allowed 0|1, remaining, reset_after, retry_after,
--           quota_allowed 0|1, quota_remaining, renews_ms}
--          (times as "%.17g" strings: a Lua number reply is truncated)
--
-- rate:  level' = max(0, level - (now - stamp) * rate / per)
--        allowed iff level' + 1 <= cap, cap = max(rate, 1)
--        then level = level' + 1, stamp = now
--        remaining = floor(cap - level); reset_after = level * per / rate;
--        retry_after = (level' + 1 - cap) * per / rate (0 when allowed)
-- quota: a period starts with the first request when none is running:
--        used = 0, renews = now + renewal; allowed iff used < quota_max, then
--        used + 1; remaining = quota_max - used. The request numbered
--        quota_max + 1 in a period is the first refused.
local EPOCH = 1700000000

local rate = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local quota_max = tonumber(ARGV[3])
local renewal = tonumber(ARGV[4])
local t = redis.call('TIME')

-- Rate: decide, write later.
local rate_on = rate > 0 and per > 0
local level = 0.0
local now = (tonumber(t[1]) - EPOCH) + tonumber(t[2]) / 1000000
local cap = rate
if cap < 1.0 then
    cap = 1.0
end
if rate_on then
    local state = redis.call('GET', KEYS[1])
    if state then
        local stored_level, stamp = string.match(state, '^(%S+) (%S+)$')
        level = tonumber(stored_level)
        stamp = tonumber(stamp)
        if now > stamp then
            level = level - (now - stamp) * rate / per
            if level < 0.0 then
                level = 0.0
            end
        else
            now = stamp  -- time does not run backwards for a bucket
        end
    end
    if level + 1.0 > cap then
        return {0, 0, string.format('%.17g', level * per / rate),
                string.format('%.17g', (level + 1.0 - cap) * per / rate), 1, -1, 0}
    end
end

-- Quota: decide.
local quota_on = quota_max > 0
local used = 0
local renews = 0
local new_period = false
if quota_on then
    local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    local state = redis.call('HMGET', KEYS[2], 'used', 'renews')
    used = tonumber(state[1])
    renews = tonumber(state[2]) or 0
    if used == nil or (renews > 0 and now_ms >= renews) then
        used = 0
        renews = 0
        if renewal > 0 then
            renews = now_ms + math.floor(renewal * 1000)
        end
        new_period = true
    end
    if used >= quota_max then
        return {1, 0, '0', '0', 0, 0, renews}
    end
end

-- Allowed by both: count the request.
local remaining = -1
local reset_after = 0.0
if rate_on then
    level = level + 1.0
    reset_after = level * per / rate
    redis.call('SET', KEYS[1], string.format('%.17g %.17g', level, now),
               'PX', math.ceil(reset_after * 1000))
    remaining = cap - level
    if remaining < 1.0 then
        remaining = 0
    else
        remaining = math.floor(remaining)
    end
end
local quota_remaining = -1
if quota_on then
    used = used + 1
    if new_period then
        redis.call('HSET', KEYS[2], 'used', used, 'renews', renews)
        if renews > 0 then
            redis.call('PEXPIREAT', KEYS[2], renews)
        end
    else
        redis.call('HINCRBY', KEYS[2], 'used', 1)
    end
    quota_remaining = quota_max - used
end
return {1, remaining, string.format('%.17g', reset_after), '0', 1, quota_remaining, renews}
