-- The number of live workers (registrations that have not lapsed yet).
--
-- KEYS[1]  "fastgate-workers" (see workers_register.lua)
-- returns  the count (0 when none)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
