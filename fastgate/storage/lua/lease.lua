-- A block of one identity's rate tokens and quota units, atomically, in one
-- round trip: the lease a gateway node spends locally (fastgate.limits.leases,
-- where the proof of exactness is; docs/leases.md). With want = 1 this is
-- limits.lua exactly: the same formulas, float operations, writes and reply
-- values (a lease of one unit is decided as a single request, lifetime 0).
--
-- KEYS[1]  "rl-{<key>}"    as limits.lua: "<level> <stamp>"
-- KEYS[2]  "quota-{<key>}" as limits.lua: hash {used, renews}; a lease adds
--          the field ps (the period's first lease: "<sec>-<usec>" of TIME), the
--          period's identity for lease_return.lua.
-- ARGV[1]  rate (<= 0: no rate limit)      ARGV[2]  per, seconds
-- ARGV[3]  quota_max (<= 0: no quota)      ARGV[4]  renewal, seconds (<= 0: never)
-- ARGV[5]  want: units asked for (>= 1)    ARGV[6]  lifetime L, seconds (>= 0)
-- returns  {granted (0 = refused), rate_allowed 0|1, remaining, reset_after,
--           retry_after, quota_allowed 0|1, quota_remaining, renews_ms,
--           now_ms, ps, bound}
--          remaining / quota_remaining: what is left once the block is spent
--          (-1: not limited); bound: what capped the grant below want
--          (0 nothing, 1 the rate, 2 the quota); ps: "" unless a lease.
--
-- Rate, in GCRA terms (T = per/rate, TAT = stamp + level*T, tau = (cap-1)*T):
-- the block of B tokens may be spent anywhere in [now, now + L], so it is
-- checked at the earliest time and charged at the latest:
--   conforming iff level' + B <= cap      (TAT - now <= tau - (B-1)*T)
--   then level = max(level', L/T) + B, stamp = now
--                                         (TAT = max(TAT, now + L) + B*T)
-- B is the most tokens that conform, at most want; a grant of one is made
-- with L = 0 (a single request's decision).
-- Quota: a period starts as in limits.lua; B is also at most quota_max - used,
-- and used += B. Nothing is written unless B >= 1.
local EPOCH = 1700000000

local rate = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local quota_max = tonumber(ARGV[3])
local renewal = tonumber(ARGV[4])
local want = math.floor(tonumber(ARGV[5]))
local life = tonumber(ARGV[6])
if want < 1 then
    want = 1
end
if life < 0 then
    life = 0.0
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

-- Rate: decide, write later.
local rate_on = rate > 0 and per > 0
local level = 0.0
local now = (tonumber(t[1]) - EPOCH) + tonumber(t[2]) / 1000000
local cap = rate
if cap < 1.0 then
    cap = 1.0
end
local room = want
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
        return {0, 0, 0, string.format('%.17g', level * per / rate),
                string.format('%.17g', (level + 1.0 - cap) * per / rate), 1, -1, 0, now_ms,
                '', 1}
    end
    room = math.floor(cap - level)
    while room > 1 and level + room > cap do  -- float noise at the edge
        room = room - 1
    end
    if room < 1 then
        room = 1
    end
end

-- Quota: decide.
local quota_on = quota_max > 0
local used = 0
local renews = 0
local new_period = false
local quota_room = want
if quota_on then
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
        return {0, 1, 0, '0', '0', 0, 0, renews, now_ms, '', 2}
    end
    quota_room = quota_max - used
end

-- The block.
local granted = want
local bound = 0
if room < granted then
    granted = room
    bound = 1
end
if quota_room < granted then
    granted = quota_room
    bound = 2
end
if granted <= 1 then
    granted = 1
    life = 0.0
end

local remaining = -1
local reset_after = 0.0
if rate_on then
    local charged = level
    local lead = life * rate / per
    if charged < lead then
        charged = lead
    end
    charged = charged + granted
    reset_after = charged * per / rate
    redis.call('SET', KEYS[1], string.format('%.17g %.17g', charged, now),
               'PX', math.ceil(reset_after * 1000))
    remaining = cap - (level + granted)
    if remaining < 1.0 then
        remaining = 0
    else
        remaining = math.floor(remaining)
    end
end
local quota_remaining = -1
local ps = ''
if quota_on then
    used = used + granted
    if life > 0 then
        if not new_period then
            ps = redis.call('HGET', KEYS[2], 'ps') or ''
        end
        if ps == '' then
            ps = t[1] .. '-' .. t[2]
            if not new_period then
                redis.call('HSET', KEYS[2], 'ps', ps)
            end
        end
    end
    if new_period then
        if ps ~= '' then
            redis.call('HSET', KEYS[2], 'used', used, 'renews', renews, 'ps', ps)
        else
            redis.call('HSET', KEYS[2], 'used', used, 'renews', renews)
        end
        if renews > 0 then
            redis.call('PEXPIREAT', KEYS[2], renews)
        end
    else
        redis.call('HINCRBY', KEYS[2], 'used', granted)
    end
    quota_remaining = quota_max - used
end
return {granted, 1, remaining, string.format('%.17g', reset_after), '0', 1, quota_remaining,
        renews, now_ms, ps, bound}
