-- One rate-limit decision: GCRA, the exact equivalent of a token bucket
-- holding `rate` requests refilled continuously at rate/per a second, where a
-- refused request takes nothing. Same formulas, in the same float operations
-- and order, as fastgate._core.limiter.RateLimiter.hit (see limiter.pyx), so
-- Redis and the memory store decide alike.
--
-- KEYS[1]  "rl-{<key>}": "<level> <stamp>" -- the theoretical arrival time
--          TAT = stamp + level * per/rate kept as the requests still owed
--          (level, 0 = full) at the last allowed request (stamp, seconds since
--          EPOCH on the server's clock); absent = a full bucket. It expires
--          when the bucket is full again.
-- ARGV[1]  rate (> 0, finite, may be fractional)
-- ARGV[2]  per, seconds (> 0, finite)
-- returns  {allowed 0|1, remaining, reset_after, retry_after}, the two times
--          as strings (seconds, "%.17g": a Lua number would be truncated)
--
--   level'      = max(0, level - (now - stamp) * rate / per)
--   allowed     iff level' + 1 <= cap, cap = max(rate, 1)
--   then        level = level' + 1, stamp = now
--   remaining   = floor(cap - level)                      (0 when refused)
--   reset_after = level * per / rate                      (until level is 0)
--   retry_after = (level' + 1 - cap) * per / rate         (0 when allowed)
--
-- Counting in requests keeps a burst exact (level steps 0, 1, 2, ... exactly);
-- the clock is the server's (TIME), so the gateways' clocks never matter.
local EPOCH = 1700000000

local rate = tonumber(ARGV[1])
local per = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = (tonumber(t[1]) - EPOCH) + tonumber(t[2]) / 1000000
local cap = rate
if cap < 1.0 then
    cap = 1.0
end

local level = 0.0
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
            string.format('%.17g', (level + 1.0 - cap) * per / rate)}
end
level = level + 1.0
local reset_after = level * per / rate
redis.call('SET', KEYS[1], string.format('%.17g %.17g', level, now),
           'PX', math.ceil(reset_after * 1000))
local remaining = cap - level
if remaining < 1.0 then
    remaining = 0
else
    remaining = math.floor(remaining)
end
return {1, remaining, string.format('%.17g', reset_after), '0'}
