--[[
  Claims a partition for a consumer (offset protocol, rule 1): issues a new fencing token, higher than any
  before it for this partition, and returns the stored next offset.

  KEYS[1]  offsets hash of (group, topic)
  ARGV[1]  partition
  ARGV[2]  claimant (member id, for operators)

  Fields: <p> = next offset, <p>:epoch = last token issued, <p>:token = current token, <p>:owner = claimant.
  Returns { token, next or -1 when no offset is stored }
]]
local p = ARGV[1]
local token = redis.call('HINCRBY', KEYS[1], p .. ':epoch', 1)
redis.call('HSET', KEYS[1], p .. ':token', token, p .. ':owner', ARGV[2])
local nextOffset = redis.call('HGET', KEYS[1], p)
if not nextOffset then return { token, -1 } end
return { token, tonumber(nextOffset) }
