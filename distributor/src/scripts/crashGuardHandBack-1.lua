--[[
  Crash guard, when a process hands a record back unfinished on purpose (a backoff, the breaker, a
  shutdown, a failed batch): it no longer has the record in flight, so its later death is no crash of it.
  Removes this process from the record's starters (the field goes when nobody is left).

  KEYS[1]  attempts hash of (group, topic)
  ARGV[1]  <partition>:<offset>
  ARGV[2]  this process's instance id

  Returns 1 when this process was listed, else 0
]]
local field = ARGV[1] .. ':starters'
local listed = redis.call('HGET', KEYS[1], field)
if not listed then return 0 end
local kept = {}
local found = 0
for starter in string.gmatch(listed, '[^,]+') do
  if starter == ARGV[2] then found = 1 else kept[#kept + 1] = starter end
end
if #kept == 0 then
  redis.call('HDEL', KEYS[1], field)
else
  redis.call('HSET', KEYS[1], field, table.concat(kept, ','))
end
return found
