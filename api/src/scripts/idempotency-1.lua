--[[
  One Idempotency-Key of one API key: pending while the write is in flight, acked afterwards.

  KEYS[1]  the idempotency hash
  ARGV[1]  operation: begin | ack | release
  ARGV[2]  owner (a random token of the request that holds the key)
  ARGV[3]  fingerprint of the request (sha256 of channel, to, subject, message)
  ARGV[4]  pending TTL in ms (the produce deadline plus a margin): a crashed holder never blocks the key
  ARGV[5]  acked TTL in seconds (24 h)
  ARGV[6]  answer to replay (JSON), for ack

  begin   → { 'new' } (the caller holds it now) | { 'pending' } | { 'acked', answer } | { 'mismatch' }
  ack     → { 'acked' } | { 'lost' } (another request took the key over)
  release → { 'released' } | { 'lost' }
]]
local op = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')

if op == 'begin' then
  if not state then
    redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[2], 'fingerprint', ARGV[3])
    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]))
    return { 'new' }
  end
  if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[3] then return { 'mismatch' } end
  if state == 'acked' then return { 'acked', redis.call('HGET', KEYS[1], 'answer') } end
  return { 'pending' }
end

if redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then return { 'lost' } end

if op == 'ack' then
  redis.call('HSET', KEYS[1], 'state', 'acked', 'answer', ARGV[6])
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  return { 'acked' }
end

if op == 'release' and state == 'pending' then
  redis.call('DEL', KEYS[1])
  return { 'released' }
end
return { 'lost' }
