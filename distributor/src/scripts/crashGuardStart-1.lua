--[[
  Crash guard, before a delivery starts: notes that this process started the record and counts the
  processes that died while the record was in flight. Only a death counts: a failed batch, a Redis error
  or a second live consumer (a zombie) starting the same offset again does not.

  A process's liveness key (see crash-guard.ts) holds `alive` with a short TTL that the process refreshes
  while it runs, or `stopped` once it stopped cleanly with nothing in flight. A starter whose liveness key
  is gone died (or stopped while a delivery of it never settled): that is a crash of this record.
  Starters stay listed until the record finishes (the field is deleted then) or the process hands the
  record back on purpose (crashGuardHandBack), so every crash keeps counting on later starts.

  Liveness keys are built here from ARGV[3], not passed in KEYS: which ones are read depends on the hash.
  They carry the same hash tag as KEYS[1] ({<group>:<topic>}), so on Redis Cluster they are in its slot.

  KEYS[1]  attempts hash of (group, topic); fields <partition>:<offset>:starters, :attempts, :notBefore
  ARGV[1]  <partition>:<offset>
  ARGV[2]  this process's instance id (no commas)
  ARGV[3]  liveness key prefix, <prefix>:{<group>:<topic>}:alive: (+ instance id = a liveness key)
  ARGV[4]  liveness TTL in milliseconds (this process's key is set alive with it)

  Returns { crashes: starters that died with the record in flight, attempts: failed attempts so far,
            notBefore: epoch ms before which the next attempt must not start (Retry-After, backoff), or 0 }
]]
local field = ARGV[1] .. ':starters'
local me = ARGV[2]
local prefix = ARGV[3]

-- Alive before being listed: another process must never see this one listed without its liveness key.
redis.call('SET', prefix .. me, 'alive', 'PX', tonumber(ARGV[4]))

local listed = redis.call('HGET', KEYS[1], field)
local crashes = 0
local seen = false
if listed then
  for starter in string.gmatch(listed, '[^,]+') do
    if starter == me then
      seen = true
    elseif redis.call('EXISTS', prefix .. starter) == 0 then
      crashes = crashes + 1
    end
  end
end
if not seen then
  redis.call('HSET', KEYS[1], field, listed and (listed .. ',' .. me) or me)
end

local attempts = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':attempts') or '0') or 0
local notBefore = tonumber(redis.call('HGET', KEYS[1], ARGV[1] .. ':notBefore') or '0') or 0
return { crashes, attempts, notBefore }
