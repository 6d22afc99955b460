-- Give back the unspent quota units of a lease (lease.lua), atomically: only
-- into the period they were taken from, matched by its ps stamp (a period
-- that renewed, or was reset, has another stamp or none: nothing is
-- returned), and never below zero. Unspent rate tokens are not returned (see
-- fastgate.limits.leases: a TAT re-based since the lease cannot take them back).
--
-- KEYS[1]  "quota-{<key>}"     ARGV[1]  units     ARGV[2]  ps of the lease
-- returns  the units given back
local state = redis.call('HMGET', KEYS[1], 'used', 'ps')
local used = tonumber(state[1])
if used == nil or state[2] ~= ARGV[2] then
    return 0
end
local units = math.floor(tonumber(ARGV[1]))
if units > used then
    units = used
end
if units <= 0 then
    return 0
end
redis.call('HINCRBY', KEYS[1], 'used', -units)
return units
