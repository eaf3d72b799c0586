--[[
  Crash guard, before deliveries start: notes that this process started each record and counts the
  processes that died while the record was in flight. Only a death counts: a failed batch, a Redis error
  or a second live consumer (a zombie) starting the same offset again does not. One call covers every
  record this process started in the same tick (crash-guard.ts batches them): one round trip, one script.

  A process's liveness key (see crash-guard.ts) holds `alive` with a short TTL that the process refreshes
  while it runs, or `stopped` once it stopped cleanly with nothing in flight. A starter whose liveness key
  is gone died (or stopped while a delivery of it never settled): that is a crash of this record.
  Starters stay listed until the record finishes (the field is deleted then) or the process hands the
  record back on purpose (crashGuardHandBack), so every crash keeps counting on later starts.

  Liveness keys are built here from ARGV[2], not passed in KEYS: which ones are read depends on the hash.
  They carry the same hash tag as KEYS[1] ({<group>:<topic>}), so on Redis Cluster they are in its slot.

  KEYS[1]  attempts hash of (group, topic); fields <partition>:<offset>:starters, :attempts, :notBefore
  ARGV[1]  this process's instance id (no commas)
  ARGV[2]  liveness key prefix, <prefix>:{<group>:<topic>}:alive: (+ instance id = a liveness key)
  ARGV[3]  liveness TTL in milliseconds (this process's key is set alive with it)
  ARGV[4…] <partition>:<offset> of each record started

  Returns, for each record in order, three numbers: crashes (starters that died with the record in flight),
  attempts (failed attempts so far), notBefore (epoch ms before which the next attempt must not start, or 0)
]]
local me = ARGV[1]
local prefix = ARGV[2]

-- Alive before being listed: another process must never see this one listed without its liveness key.
redis.call('SET', prefix .. me, 'alive', 'PX', tonumber(ARGV[3]))

local out = {}
local dead = {}
for i = 4, #ARGV do
  local at = ARGV[i]
  local field = at .. ':starters'
  local listed = redis.call('HGET', KEYS[1], field)
  local crashes = 0
  local seen = false
  if listed then
    for starter in string.gmatch(listed, '[^,]+') do
      if starter == me then
        seen = true
      else
        if dead[starter] == nil then dead[starter] = redis.call('EXISTS', prefix .. starter) == 0 end
        if dead[starter] then crashes = crashes + 1 end
      end
    end
  end
  if not seen then
    redis.call('HSET', KEYS[1], field, listed and (listed .. ',' .. me) or me)
  end
  local counts = redis.call('HMGET', KEYS[1], at .. ':attempts', at .. ':notBefore')
  out[#out + 1] = crashes
  out[#out + 1] = tonumber(counts[1] or '0') or 0
  out[#out + 1] = tonumber(counts[2] or '0') or 0
end
return out
