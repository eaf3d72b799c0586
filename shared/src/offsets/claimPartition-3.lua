--[[
  Claims a partition for a consumer (offset protocol, rule 1): issues a new fencing token, higher than any
  before it for this partition, and returns the stored next offset.

  Offsets and notes are tied to the topic's identity (Kafka's topic id): when the stored id differs from
  the current one, the topic was deleted and recreated, and the stored next, the notes of finished offsets
  and the attempt counters of the partition name records of the old topic. They are dropped, so the caller
  starts at the log start of the new one. With no id stored (offsets written before ids were recorded)
  the current id is adopted; an empty id (unknown) checks nothing.

  KEYS[1]  offsets hash of (group, topic)
  KEYS[2]  sorted set of the partition's offsets finished beyond next
  KEYS[3]  attempts hash of (group, topic): fields <partition>:<offset>:...
  ARGV[1]  partition
  ARGV[2]  claimant (member id, for operators)
  ARGV[3]  topic id ('' when unknown)

  Fields: <p> = next offset, <p>:epoch = last token issued, <p>:token = current token, <p>:owner = claimant,
  <p>:topic = id of the topic the offset and notes belong to.
  Returns { token, next or -1 when no offset is stored, id found for another topic or '' }
]]
local p = ARGV[1]
local token = redis.call('HINCRBY', KEYS[1], p .. ':epoch', 1)
redis.call('HSET', KEYS[1], p .. ':token', token, p .. ':owner', ARGV[2])
local replaced = ''
if ARGV[3] ~= '' then
  local stored = redis.call('HGET', KEYS[1], p .. ':topic')
  if stored and stored ~= ARGV[3] then
    replaced = stored
    redis.call('HDEL', KEYS[1], p)
    redis.call('DEL', KEYS[2])
    local prefix = p .. ':'
    for _, field in ipairs(redis.call('HKEYS', KEYS[3])) do
      if string.sub(field, 1, #prefix) == prefix then redis.call('HDEL', KEYS[3], field) end
    end
  end
  redis.call('HSET', KEYS[1], p .. ':topic', ARGV[3])
end
local nextOffset = redis.call('HGET', KEYS[1], p)
if not nextOffset then return { token, -1, replaced } end
return { token, tonumber(nextOffset), replaced }
