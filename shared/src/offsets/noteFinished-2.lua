--[[
  Notes offsets of a partition that finished beyond its stored next, and drops the notes below next.
  Refused when the partition's offsets belong to another topic id than the caller's (a process still
  working on a topic that was deleted and recreated meanwhile): its offsets name other records now.

  KEYS[1]  offsets hash of (group, topic)
  KEYS[2]  sorted set of the partition's offsets finished beyond next
  ARGV[1]  partition
  ARGV[2]  topic id the caller claimed under ('' when unknown: not checked)
  ARGV[3]  next offset of the caller
  ARGV[4..] finished offsets

  Returns 1 written, 0 refused (another topic id)
]]
if ARGV[2] ~= '' then
  local stored = redis.call('HGET', KEYS[1], ARGV[1] .. ':topic')
  if stored and stored ~= ARGV[2] then return 0 end
end
for i = 4, #ARGV do redis.call('ZADD', KEYS[2], ARGV[i], ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[3])
return 1
