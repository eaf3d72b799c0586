// Per-recipient rate limits (RATE_LIMIT_<CHANNEL>, seed 001's plan): one token bucket per (channel,
// recipient) in Redis, shared by every replica. A record over the limit is not dropped: it waits, its
// recipient's later records wait behind it, and other recipients flow (consumer.ts keeps the waits).
import { createHash } from 'node:crypto'
import type { RateLimit } from '@herald/shared/config'
import { callScript, type Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'

export class RateLimiter {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #channel: string
  readonly #limit: RateLimit

  /** Uses the `takeToken` script of sharedScripts (defined on `redis` by the process). */
  constructor(redis: Redis, keys: RedisKeys, channel: string, limit: RateLimit) {
    this.#redis = redis
    this.#keys = keys
    this.#channel = channel
    this.#limit = limit
  }

  /**
   * Takes a token for `recipient` (the record's key: its normalised address). Returns 0 when it may go now,
   * else the ms until it may (nothing taken). The address is hashed: Redis key names carry no personal data.
   */
  async take(recipient: string): Promise<number> {
    const hashed = createHash('sha256').update(recipient).digest('base64url').slice(0, 22)
    const wait = await callScript(
      this.#redis,
      'takeToken',
      [this.#keys.rateLimit(this.#channel, hashed)],
      [this.#limit.limit, this.#limit.perMs],
    )
    return Number(wait)
  }
}
