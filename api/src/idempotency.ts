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
   * Takes the key for this request, or says why not. A request that finds the key pending waits for the
   * holder's outcome up to `waitMs` (it is acked, released, or expires and can be taken over).
   */
  async begin(apiKeyName: string, key: string, print: string, waitMs: number): Promise<Claim> {
    const redisKey = this.#keys.idempotency(apiKeyName, key)
    const owner = randomUUID()
    const deadline = Date.now() + waitMs
    for (;;) {
      const [state, answer] = await this.#run(redisKey, 'begin', owner, print)
      if (state === 'new') return { kind: 'new', owner }
      if (state === 'mismatch') return { kind: 'mismatch' }
      if (state === 'acked') return { kind: 'acked', answer: JSON.parse(answer ?? '{}') as StoredAnswer }
      if (Date.now() >= deadline) return { kind: 'busy' }
      await sleep(50)
    }
  }

  async ack(
    apiKeyName: string,
    key: string,
    owner: string,
    print: string,
    answer: StoredAnswer,
  ): Promise<void> {
    await this.#run(this.#keys.idempotency(apiKeyName, key), 'ack', owner, print, JSON.stringify(answer))
  }

  async release(apiKeyName: string, key: string, owner: string, print: string): Promise<void> {
    await this.#run(this.#keys.idempotency(apiKeyName, key), 'release', owner, print)
  }
}
