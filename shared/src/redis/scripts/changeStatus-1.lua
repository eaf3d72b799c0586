--[[
  Moves a notification's status. Final states (delivered, dead_lettered, expired) never change, except by an
  explicit requeue (a dead-letter replay).

  Every applied change also appends {status, at, attempts?, lastError?, channel?} to `history`, a JSON array
  in the same hash (one key: one slot on Redis Cluster, one TTL), capped at the last 20 entries. A change
  that repeats the last entry (same status, attempts and error, e.g. throttled again) adds nothing: the
  timeline keeps when that state began. The distributor calls this for every delivery, so the work stays
  one HMGET, one HSET and one EXPIRE, and a decode and encode of at most 20 small entries.

  KEYS[1]  status hash of the notification
  ARGV[1]  new status: queued | retrying | throttled | delivered | dead_lettered | expired
  ARGV[2]  mode: create (only when no status exists) | move (unless final) | requeue (always)
  ARGV[3]  now (ISO-8601), stored as updatedAt (and createdAt when the hash is new)
  ARGV[4]  TTL in seconds for the hash
  ARGV[5..] field, value pairs to store with the change (attempts, lastError, channel, ...)

  Returns { applied (1|0), status after the call }
]]
local maxHistory = 20
local maxError = 500

local found = redis.call('HMGET', KEYS[1], 'status', 'history')
local current, history = found[1], found[2]
local mode = ARGV[2]
local final = { delivered = true, dead_lettered = true, expired = true }

local fields = { 'status', ARGV[1], 'updatedAt', ARGV[3] }
if current then
  if mode == 'create' then return { 0, current } end
  if mode == 'move' and final[current] then return { 0, current } end
else
  fields[#fields + 1] = 'createdAt'
  fields[#fields + 1] = ARGV[3]
end

local entry = { status = ARGV[1], at = ARGV[3] }
for i = 5, #ARGV, 2 do
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
local last = entries[#entries]
if
  not (
    type(last) == 'table'
    and last.status == entry.status
    and last.attempts == entry.attempts
    and last.lastError == entry.lastError
  )
then
  entries[#entries + 1] = entry
  while #entries > maxHistory do
    table.remove(entries, 1)
  end
  fields[#fields + 1] = 'history'
  fields[#fields + 1] = cjson.encode(entries)
end

redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return { 1, ARGV[1] }
