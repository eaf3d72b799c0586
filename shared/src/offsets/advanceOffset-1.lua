--[[
  Records a partition's next offset for the current token only (offset protocol, rules 4 and 6).
  In mode 'advance' only a higher offset is written, so a late or replayed call never moves next back.
  Mode 'reset' writes a lower offset too: used once after a claim found next above the log end (topic
  recreated), where keeping the stored value would skip new records.

  KEYS[1]  offsets hash of (group, topic)
  ARGV[1]  partition
  ARGV[2]  token held by the caller
  ARGV[3]  next offset (first unfinished message)
  ARGV[4]  mode: advance | reset

  Returns { status, stored next afterwards (-1 if none) }
    status  1 written, 0 not higher (nothing to do), -1 fenced (another token is current),
           -2 no token stored (Redis lost the claim: claim again)
]]
local p = ARGV[1]
local current = redis.call('HGET', KEYS[1], p .. ':token')
local stored = redis.call('HGET', KEYS[1], p)
local storedNumber = -1
if stored then storedNumber = tonumber(stored) end
if not current then return { -2, storedNumber } end
if current ~= ARGV[2] then return { -1, storedNumber } end
local wanted = tonumber(ARGV[3])
if ARGV[4] ~= 'reset' and wanted <= storedNumber then return { 0, storedNumber } end
redis.call('HSET', KEYS[1], p, ARGV[3])
return { 1, wanted }
