-- When a session's lifetime ends: its record apikey-<key> was just SET with
-- PX <ttl>; this files the moment Redis drops it, so that a sweep can tell
-- every gateway's cache to forget the key (sessions_due.lua).
--
-- KEYS[1]  "fastgate-session-deadlines": member = storage key, score = unix
--          ms (server clock) from which the record is gone
-- ARGV[1]  storage key
-- ARGV[2]  ttl, ms (> 0)
-- returns  1
--
-- A later deadline for the same key replaces the earlier one (ZADD).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], string.format('%.0f', now + tonumber(ARGV[2])), ARGV[1])
return 1
