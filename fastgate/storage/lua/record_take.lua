-- Read and delete one record atomically (Store.take_record): GETDEL for
-- servers older than Redis 6.2.
--
-- KEYS[1]  "fastgate-record-<table>:<key>"
-- returns  the value, or false (nil) when there was none
local value = redis.call('GET', KEYS[1])
if value then
  redis.call('DEL', KEYS[1])
end
return value
