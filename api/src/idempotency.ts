// Idempotency-Key handling: one Lua script decides, so two concurrent requests never both produce.
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { NotificationInput } from '@herald/shared/notification'
import { callScript, defineScripts, type Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'

export interface StoredAnswer {
  status: number
  body: { id: string; channel: string; status: string }
  location: string
}

export type Claim =
  | { kind: 'new'; owner: string }
  | { kind: 'acked'; answer: StoredAnswer }
  | { kind: 'mismatch' }
  | { kind: 'busy' }

export function fingerprint(input: NotificationInput): string {
  return createHash('sha256')
    .update(JSON.stringify([input.channel, input.to, input.subject ?? null, input.message]))
    .digest('hex')
}

export class IdempotencyStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #pendingTtlMs: number
  readonly #ackedTtlSeconds: number

  constructor(redis: Redis, keys: RedisKeys, options: { pendingTtlMs: number; ackedTtlSeconds: number }) {
    this.#redis = redis
    this.#keys = keys
    this.#pendingTtlMs = options.pendingTtlMs
    this.#ackedTtlSeconds = options.ackedTtlSeconds
    defineScripts(redis, new URL('./scripts/', import.meta.url))
  }

  async #run(key: string, op: string, owner: string, print: string, answer = ''): Promise<string[]> {
    return (await callScript(
      this.#redis,
      'idempotency',
      [key],
      [op, owner, print, this.#pendingTtlMs, this.#ackedTtlSeconds, answer],
    )) as string[]
  }

  /**
   * Takes the key for this request, or says why not. A request that finds the key pending polls for the
   * holder's outcome up to `waitMs`: acked (replayed), released after a failed write or expired after a
   * crash (then this request takes it over), or still pending (busy).
   */
  async begin(apiKeyName: string, key: string, print: string, waitMs: number): Promise<Claim> {
    const redisKey = this.#keys.idempotency(apiKeyName, key)
    const owner = randomUUID()
    const deadline = Date.now() + waitMs
    for (let pause = 10; ; pause = Math.min(100, pause * 2)) {
      const [state, answer] = await this.#run(redisKey, 'begin', owner, print)
      if (state === 'new') return { kind: 'new', owner }
      if (state === 'mismatch') return { kind: 'mismatch' }
      if (state === 'acked') return { kind: 'acked', answer: JSON.parse(answer ?? '{}') as StoredAnswer }
      const left = deadline - Date.now()
      if (left <= 0) return { kind: 'busy' }
      await sleep(Math.min(pause, left))
    }
  }

  /** Records the answer for replay; false when another request took the key over meanwhile. */
  async ack(
    apiKeyName: string,
    key: string,
    owner: string,
    print: string,
    answer: StoredAnswer,
  ): Promise<boolean> {
    const [state] = await this.#run(
      this.#keys.idempotency(apiKeyName, key),
      'ack',
      owner,
      print,
      JSON.stringify(answer),
    )
    return state === 'acked'
  }

  /** Frees a pending key after a failed write, so a retry can take it; false when no longer ours. */
  async release(apiKeyName: string, key: string, owner: string, print: string): Promise<boolean> {
    const [state] = await this.#run(this.#keys.idempotency(apiKeyName, key), 'release', owner, print)
    return state === 'released'
  }
}
