-- Claim the sessions whose lifetime has ended (session_deadline.lua filed
-- them): they are removed from the set and returned, so that exactly one
-- sweeping gateway handles each.
--
-- KEYS[1]  "fastgate-session-deadlines"
-- ARGV[1]  at most this many at once
-- returns  the storage keys claimed
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now),
                       'LIMIT', 0, tonumber(ARGV[1]))
if #due > 0 then
  redis.call('ZREM', KEYS[1], unpack(due))
end
return due
