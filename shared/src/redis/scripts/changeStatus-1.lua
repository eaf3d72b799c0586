--[[
  Moves a notification's status. Final states (delivered, dead_lettered, expired) never change, except by an
  explicit requeue (a dead-letter replay).

  KEYS[1]  status hash of the notification
  ARGV[1]  new status: queued | retrying | throttled | delivered | dead_lettered | expired
  ARGV[2]  mode: create (only when no status exists) | move (unless final) | requeue (always)
  ARGV[3]  now (ISO-8601), stored as updatedAt (and createdAt when the hash is new)
  ARGV[4]  TTL in seconds for the hash
  ARGV[5..] field, value pairs to store with the change (attempts, lastError, channel, ...)

  Returns { applied (1|0), status after the call }
]]
local current = redis.call('HGET', KEYS[1], 'status')
local mode = ARGV[2]
local final = { delivered = true, dead_lettered = true, expired = true }

if current then
  if mode == 'create' then return { 0, current } end
  if mode == 'move' and final[current] then return { 0, current } end
else
  redis.call('HSET', KEYS[1], 'createdAt', ARGV[3])
end

redis.call('HSET', KEYS[1], 'status', ARGV[1], 'updatedAt', ARGV[3])
for i = 5, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return { 1, ARGV[1] }
