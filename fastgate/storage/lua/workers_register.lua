-- A worker's heartbeat in the sorted set of live workers.
--
-- KEYS[1]  "fastgate-workers": member = worker id, score = when its
--          registration lapses (unix ms, server clock)
-- ARGV[1]  worker id
-- ARGV[2]  ttl, seconds (> 0)
-- returns  the number of live workers, this one included
--
-- Lapsed members are dropped first; the set itself expires with its
-- longest-lived member, so a cluster that stopped leaves nothing behind.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = math.max(1, math.ceil(tonumber(ARGV[2]) * 1000))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], tonumber(last[2]))
return redis.call('ZCARD', KEYS[1])
