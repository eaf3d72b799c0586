--[[
  Takes one token from a recipient's token bucket (RATE_LIMIT_<CHANNEL>): `capacity` tokens, refilled evenly
  over `period` ms, so bursts of up to `capacity` go at once and the long-run rate is capacity per period.
  Time comes from the server (TIME), not from the callers' clocks, so every replica sees one bucket.

  KEYS[1]  bucket hash: tokens (fractional), at (ms of the last refill)
  ARGV[1]  capacity (tokens)
  ARGV[2]  period (ms)

  Returns 0 when a token was taken, else the ms until one will be there (nothing taken).
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local capacity = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local perMs = capacity / period

local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
-- A server clock that went back (a failover) refills nothing rather than draining the bucket.
if now > at then
  tokens = math.min(capacity, tokens + (now - at) * perMs)
  at = now
end

if tokens >= 1 then
  tokens = tokens - 1
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
  -- A bucket refills completely within a period: an expired bucket reads as full, which it would be.
  redis.call('PEXPIRE', KEYS[1], math.ceil(period) + 1000)
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(period) + 1000)
return math.max(1, math.ceil((1 - tokens) / perMs))
