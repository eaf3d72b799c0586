--[[
  Moves notifications' statuses: one change per key, applied in order (a caller that changes many statuses at
  once, the api after a produce request or a distributor at a flush, sends them in one call on a single Redis
  server; on Redis Cluster every call has one key, since the keys lie in different slots). Final states
  (delivered, dead_lettered, expired) never change, except by an explicit requeue (a dead-letter replay).

  Every applied change also appends {status, at, attempts?, lastError?, channel?} to `history`, a JSON array
  in the same hash (one key: one slot on Redis Cluster, one TTL), capped at the last 20 entries. A change
  that repeats the last entry (same status, attempts and error, e.g. throttled again) adds nothing: the
  timeline keeps when that state began. The distributor calls this for every delivery, so the work stays
  one HMGET, one HSET and one EXPIRE per key, and a decode and encode of at most 20 small entries.

  KEYS[1..n]  status hash of each notification
  ARGV[1]     now (ISO-8601), stored as updatedAt (and createdAt when the hash is new)
  ARGV[2]     TTL in seconds for the hashes
  ARGV[3..]   per key, in the order of KEYS:
                new status: queued | retrying | throttled | delivered | dead_lettered | expired
                mode: create (only when no status exists) | move (unless final) | requeue (always)
                p, the number of field, value pairs that follow
                p field, value pairs to store with the change (attempts, lastError, channel, ...)

  Returns { applied, status after the change } per key, flattened: applied is 1 or 0, or -1 when the change
  failed (then the second value is the error), so that one bad key fails only its own change.
]]
local maxHistory = 20
local maxError = 500
local final = { delivered = true, dead_lettered = true, expired = true }
local now, ttl = ARGV[1], tonumber(ARGV[2])

-- The change of `key` to `status`, its field, value pairs at ARGV[first..last].
local function change(key, status, mode, first, last)
  local found = redis.call('HMGET', key, 'status', 'history')
  local current, history = found[1], found[2]

  local fields = { 'status', status, 'updatedAt', now }
  if current then
    if mode == 'create' then return 0, current end
    if mode == 'move' and final[current] then return 0, current end
  else
    fields[#fields + 1] = 'createdAt'
    fields[#fields + 1] = now
  end

  local entry = { status = status, at = now }
  for i = first, last, 2 do
    local name, value = ARGV[i], ARGV[i + 1]
    fields[#fields + 1] = name
    fields[#fields + 1] = value
    if name == 'attempts' then
      entry.attempts = tonumber(value)
    elseif name == 'channel' then
      entry.channel = value
    elseif name == 'lastError' and value ~= '' then
      -- A requeue clears lastError with ''; the entry then has none.
      entry.lastError = string.sub(value, 1, maxError)
    end
  end

  local entries = {}
  if history then
    -- A history that is not a JSON array (written by hand?) is started again rather than failing the change.
    local ok, decoded = pcall(cjson.decode, history)
    if ok and type(decoded) == 'table' then entries = decoded end
  end
  local last_entry = entries[#entries]
  if
    not (
      type(last_entry) == 'table'
      and last_entry.status == entry.status
      and last_entry.attempts == entry.attempts
      and last_entry.lastError == entry.lastError
    )
  then
    entries[#entries + 1] = entry
    while #entries > maxHistory do
      table.remove(entries, 1)
    end
    fields[#fields + 1] = 'history'
    fields[#fields + 1] = cjson.encode(entries)
  end

  redis.call('HSET', key, unpack(fields))
  redis.call('EXPIRE', key, ttl)
  return 1, status
end

local out = {}
local at = 3
for k = 1, #KEYS do
  local status, mode, count = ARGV[at], ARGV[at + 1], tonumber(ARGV[at + 2])
  local first = at + 3
  local last = first + 2 * count - 1
  local ok, applied, after = pcall(change, KEYS[k], status, mode, first, last)
  if ok then
    out[#out + 1] = applied
    out[#out + 1] = after
  else
    out[#out + 1] = -1
    out[#out + 1] = type(applied) == 'table' and tostring(applied.err) or tostring(applied)
  end
  at = last + 1
end
return out
