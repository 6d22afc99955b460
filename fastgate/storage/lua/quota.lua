-- One quota decision: a counter per period that renews `renewal` seconds
-- after the period's first request.
--
-- KEYS[1]  "quota-{<key>}": a hash {used = requests counted this period,
--          renews = unix time in ms when the period ends, 0 = never}; it
--          expires (PEXPIREAT) when the period ends, so idle keys go away
-- ARGV[1]  quota_max (> 0)
-- ARGV[2]  renewal rate, seconds (<= 0: never renews)
-- returns  {allowed 0|1, remaining, renews_ms (0 = never)}
--
-- A period starts with the first request when there is none (or it ended):
-- used = 0, renews = now + renewal (fixed for the period: a changed renewal
-- rate applies from the next one). A request is allowed while
-- used < quota_max and then counted; a refusal counts nothing. So the
-- request numbered quota_max + 1 in a period is the first refused; remaining
-- is computed against each call's quota_max. The same rules as
-- fastgate._core.limiter.QuotaCounter.hit, on the server's clock.
local quota_max = tonumber(ARGV[1])
local renewal = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local state = redis.call('HMGET', KEYS[1], 'used', 'renews')
local used = tonumber(state[1])
local renews = tonumber(state[2]) or 0
local new_period = false
if used == nil or (renews > 0 and now >= renews) then
    used = 0
    renews = 0
    if renewal > 0 then
        renews = now + math.floor(renewal * 1000)
    end
    new_period = true
end

if used >= quota_max then
    return {0, 0, renews}
end
used = used + 1
if new_period then
    redis.call('HSET', KEYS[1], 'used', used, 'renews', renews)
    if renews > 0 then
        redis.call('PEXPIREAT', KEYS[1], renews)
    end
else
    redis.call('HINCRBY', KEYS[1], 'used', 1)
end
return {1, quota_max - used, renews}
