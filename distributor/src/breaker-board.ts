// What a distributor replica's breakers are doing, published to Redis for the api (GET /api/v1/channels) and
// the console: one hash per channel (RedisKeys.breakers), a field per replica and destination.
//
// Nothing here may slow or block a delivery: breakers call changed() synchronously, which only starts a write
// in the background; at most one write runs at a time (a change meanwhile is written right after it); every
// failure is dropped (the next change or refresh writes again). A periodic refresh rewrites every field with
// a new expiry and the key's TTL, so a replica that died without removing its fields drops out of the view
// within ttlMs (and the refresh removes such fields), and the key goes once no replica is left.
import type { Logger } from '@herald/shared/logger'
import type { Redis } from '@herald/shared/redis/client'
import type { Breaker } from './breaker.ts'

/** One field's value. `destination` is null for the channel's own breaker (the provider as a whole). */
export interface PublishedBreaker {
  destination: string | null
  state: Breaker['state']
  /** When an open breaker lets a probe through (ISO 8601); null unless open. */
  openUntil: string | null
  reason: string
  replica: string
  /** After this the field is stale (its replica stopped refreshing): readers skip it (ms since the epoch). */
  expiresAt: number
}

export class BreakerBoard {
  readonly #redis: Redis
  readonly #key: string
  readonly #replica: string
  readonly #refreshMs: number
  readonly #ttlMs: number
  readonly #log: Logger
  readonly #breakers = new Map<string | null, Breaker>()
  /** The write running now, if any. */
  #writing: Promise<void> | undefined
  #again = false
  #timer: NodeJS.Timeout | undefined
  #stopped = false

  constructor(options: {
    redis: Redis
    key: string
    replica: string
    logger: Logger
    /** How often every field is written again (default 5 s). */
    refreshMs?: number
    /** How long a field counts without a refresh (default three refreshes). */
    ttlMs?: number
  }) {
    this.#redis = options.redis
    this.#key = options.key
    this.#replica = options.replica
    this.#log = options.logger
    this.#refreshMs = options.refreshMs ?? 5000
    this.#ttlMs = options.ttlMs ?? 3 * this.#refreshMs
  }

  /** Publishes `breaker` under `destination` (null: the channel's breaker) from now on. */
  watch(destination: string | null, breaker: Breaker): void {
    this.#breakers.set(destination, breaker)
    if (this.#timer) this.changed()
  }

  start(): void {
    this.#timer = setInterval(() => {
      this.changed()
      this.#sweep().catch((error: unknown) =>
        this.#log.debug({ err: error }, 'removing stale breaker states failed'),
      )
    }, this.#refreshMs)
    this.#timer.unref()
    this.changed()
  }

  /** Stops refreshing and removes this replica's fields (best effort: else they expire). */
  stop(): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#stopped = true
    const fields = [...this.#breakers.keys()].map((d) => this.#field(d))
    if (fields.length === 0) return
    // After a write still running, or it would put the fields back.
    void (this.#writing ?? Promise.resolve())
      .then(() => this.#redis.hdel(this.#key, ...fields))
      .catch(() => {})
  }

  /** A breaker changed (or it is time to refresh): write every field soon, in the background. */
  changed(): void {
    if (this.#stopped) return
    if (this.#writing) {
      this.#again = true
      return
    }
    this.#again = false
    this.#writing = this.#write()
      .catch((error: unknown) => this.#log.debug({ err: error }, 'publishing the breaker states failed'))
      .finally(() => {
        this.#writing = undefined
        if (this.#again) this.changed()
      })
  }

  async #write(): Promise<void> {
    if (this.#breakers.size === 0 || this.#stopped) return
    const now = Date.now()
    const values: Record<string, string> = {}
    for (const [destination, breaker] of this.#breakers) {
      const value: PublishedBreaker = {
        destination,
        state: breaker.state,
        openUntil: breaker.state === 'open' ? new Date(breaker.openUntil).toISOString() : null,
        reason: breaker.state === 'closed' ? '' : breaker.reason.slice(0, 300),
        replica: this.#replica,
        expiresAt: now + this.#ttlMs,
      }
      values[this.#field(destination)] = JSON.stringify(value)
    }
    await this.#redis.multi().hset(this.#key, values).pexpire(this.#key, this.#ttlMs).exec()
  }

  /** Removes fields past their expiry (replicas that died): the hash does not grow with every restart. */
  async #sweep(): Promise<void> {
    const now = Date.now()
    const stale = Object.entries(await this.#redis.hgetall(this.#key))
      .filter(([, value]) => {
        try {
          return !((JSON.parse(value) as PublishedBreaker).expiresAt > now)
        } catch {
          return true
        }
      })
      .map(([field]) => field)
    if (stale.length > 0) await this.#redis.hdel(this.#key, ...stale)
  }

  #field(destination: string | null): string {
    return `${this.#replica} ${destination ?? '*'}`
  }
}
