--[[
  One Idempotency-Key of one API key. The key gets its notification id when first taken and keeps it for
  its whole life, so every write made for the key carries the same id (the distributor folds repeats of
  one id): at most one id exists per key, whatever timed out.

  state pending   a request holds the key and its write is in flight, until `until` (ms, Redis clock)
  state released  the write failed: the next request takes the key over and writes the same id again
  state acked     Kafka acknowledged a record with the key's id: the answer is replayed

  KEYS[1]  the idempotency hash (fields: state, owner, fingerprint, id, until, answer)
  ARGV[1]  operation: begin | ack | release
  ARGV[2]  owner (a random token of the request that holds the key)
  ARGV[3]  fingerprint of the request (sha256 of channel, to, subject, message; or of recipient, channel,
           subject, message for a notification sent to a recipient)
  ARGV[4]  pending window in ms: how long a holder's write may stay in flight before the holder is presumed
           dead (crashed) and another request may take the key over
  ARGV[5]  TTL of the whole key in seconds (24 h)
  ARGV[6]  begin: the id for a key seen for the first time | ack: the id Kafka acknowledged
  ARGV[7]  ack: the answer to replay (JSON)

  begin   → { 'new', id } (the caller holds the key now and writes `id`) | { 'pending', id }
            | { 'acked', answer } | { 'mismatch' }
  ack     → { 'acked' } | { 'lost' } (the key is gone or has another id)
  release → { 'released' } | { 'lost' } (no longer held by this owner)
]]
local op = ARGV[1]
local state = redis.call('HGET', KEYS[1], 'state')
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

if op == 'begin' then
  if not state then
    redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[2], 'fingerprint', ARGV[3], 'id', ARGV[6],
      'until', now + tonumber(ARGV[4]))
    redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
    return { 'new', ARGV[6] }
  end
  if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[3] then return { 'mismatch' } end
  if state == 'acked' then return { 'acked', redis.call('HGET', KEYS[1], 'answer') } end
  local id = redis.call('HGET', KEYS[1], 'id')
  if state == 'released' or now >= tonumber(redis.call('HGET', KEYS[1], 'until')) then
    redis.call('HSET', KEYS[1], 'state', 'pending', 'owner', ARGV[2], 'until', now + tonumber(ARGV[4]))
    return { 'new', id }
  end
  return { 'pending', id }
end

if op == 'ack' then
  -- Any writer of the key's id may ack: a record with that id is in Kafka, whoever holds the key now.
  if state == 'acked' then return { 'acked' } end
  if not state or redis.call('HGET', KEYS[1], 'id') ~= ARGV[6] then return { 'lost' } end
  redis.call('HSET', KEYS[1], 'state', 'acked', 'answer', ARGV[7])
  redis.call('HDEL', KEYS[1], 'owner', 'until')
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
  return { 'acked' }
end

if op == 'release' and state == 'pending' and redis.call('HGET', KEYS[1], 'owner') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'state', 'released')
  redis.call('HDEL', KEYS[1], 'owner', 'until')
  return { 'released' }
end
return { 'lost' }
