-- Every request carries the next token of a pool file ("Authorization: Bearer <token>").
-- The harness (bench/jwt.py, TokenFeed) passes, after "--":
--   <pool file> <bytes per line, newline included> <first index> <tokens available> <threads>
-- Thread t of T sends tokens first + t, first + t + T, ... (so threads never share one);
-- when it runs past the available ones it starts over and counts the repeats.  At the end
-- each thread's count is printed as "token-feed thread=N used=U repeats=R", which the
-- harness reads to start the next run past every token used.  The file is read as the
-- run goes (a 500,000-token pool would not fit wrk's Lua heap as strings).
local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

local file, reclen, first, nthreads, available
local prefix, suffix
local k = 0        -- this thread's next token, counted from its first
used = 0           -- globals, read by done() through thread:get()
repeats = 0

local function seek_to(index)
  file:seek("set", index * reclen)
end

function init(args)
  local path = args[1]
  reclen = tonumber(args[2])
  first = tonumber(args[3])
  local count = tonumber(args[4])
  nthreads = tonumber(args[5])
  assert(path and reclen and first and count and nthreads,
         "token_feed.lua: arguments <file> <reclen> <first> <count> <threads>")
  file = assert(io.open(path, "rb"))
  -- Tokens first + id + j * nthreads for j < available.
  available = math.floor((count - id + nthreads - 1) / nthreads)
  assert(available > 0, "token_feed.lua: no token for thread " .. id)
  seek_to(first + id)
  -- One request formatted by wrk with a marker, split around it: request() then only
  -- joins three strings.
  local headers = {}
  for name, value in pairs(wrk.headers) do headers[name] = value end
  headers["Authorization"] = "Bearer \001"
  local formatted = wrk.format(nil, nil, headers)
  local at = string.find(formatted, "\001", 1, true)
  prefix = string.sub(formatted, 1, at - 1)
  suffix = string.sub(formatted, at + 1)
end

function request()
  if k >= available then
    -- Out of tokens: start this thread's share over (the harness flags the repeats).
    k = 0
    seek_to(first + id)
  end
  if used >= available then
    repeats = repeats + 1
  end
  used = used + 1
  if nthreads > 1 then
    seek_to(first + id + k * nthreads)
  end
  k = k + 1
  local line = file:read(reclen)
  return prefix .. string.sub(line, 1, reclen - 1) .. suffix
end

function done(summary, latency, requests)
  for _, thread in ipairs(threads) do
    io.write(string.format("token-feed thread=%d used=%d repeats=%d\n",
                           thread:get("id"), thread:get("used"), thread:get("repeats")))
  end
end
