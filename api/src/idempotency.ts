// Idempotency-Key handling: one Lua script decides, so two concurrent requests never both produce, and a
// key keeps one notification id for its whole life, so no retry can create a second one.
import { createHash, randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { NotificationRequest } from '@herald/shared/notification'
import { callScript, defineScripts, type Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'

export interface StoredAnswer {
  status: number
  /** `channel` for one notification; `recipient` and `children` for one sent to a recipient. */
  body: {
    id: string
    status: string
    channel?: string
    recipient?: string
    children?: Array<{ id: string; channel: string }>
  }
  location: string
}

export type Claim =
  /** The caller holds the key and writes the record with this id (the key's id, new or kept). */
  | { kind: 'new'; owner: string; id: string }
  | { kind: 'acked'; answer: StoredAnswer }
  | { kind: 'mismatch' }
  | { kind: 'busy' }

export function fingerprint(input: NotificationRequest): string {
  const fields =
    'recipient' in input
      ? ['recipient', input.recipient, input.channel ?? null, input.subject ?? null, input.message]
      : [input.channel, input.to, input.subject ?? null, input.message]
  return createHash('sha256').update(JSON.stringify(fields)).digest('hex')
}

export interface IdempotencyOptions {
  /**
   * How long a holder's write may stay in flight (kafkajs retrying after the request's deadline) before
   * the holder is presumed dead and another request may take the key over, writing the same id.
   */
  pendingWindowMs: number
  /** How long a key lives (IDEMPOTENCY_TTL_SECONDS): its id, and its answer once acked. */
  ttlSeconds: number
}

export class IdempotencyStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #options: IdempotencyOptions

  constructor(redis: Redis, keys: RedisKeys, options: IdempotencyOptions) {
    this.#redis = redis
    this.#keys = keys
    this.#options = options
    defineScripts(redis, new URL('./scripts/', import.meta.url))
  }

  async #run(key: string, op: string, owner: string, print: string, ...rest: string[]): Promise<string[]> {
    return (await callScript(
      this.#redis,
      'idempotency',
      [key],
      [op, owner, print, this.#options.pendingWindowMs, this.#options.ttlSeconds, ...rest],
    )) as string[]
  }

  /**
   * Takes the key for this request, or says why not. A key seen for the first time gets `newId`; a key
   * taken over (its last write failed, or its holder died) keeps the id it has. A request that finds the
   * key pending polls for the holder's outcome up to `waitMs`: acked (replayed), released (taken over),
   * or still pending (busy).
   */
  async begin(apiKeyName: string, key: string, print: string, waitMs: number, newId: string): Promise<Claim> {
    const redisKey = this.#keys.idempotency(apiKeyName, key)
    const owner = randomUUID()
    const deadline = Date.now() + waitMs
    for (let pause = 10; ; pause = Math.min(100, pause * 2)) {
      const [state, value] = await this.#run(redisKey, 'begin', owner, print, newId)
      if (state === 'new') return { kind: 'new', owner, id: value ?? newId }
      if (state === 'mismatch') return { kind: 'mismatch' }
      if (state === 'acked') return { kind: 'acked', answer: JSON.parse(value ?? '{}') as StoredAnswer }
      const left = deadline - Date.now()
      if (left <= 0) return { kind: 'busy' }
      await sleep(Math.min(pause, left))
    }
  }

  /**
   * Records that Kafka acknowledged the key's id, with the answer to replay. Any writer of that id may
   * ack, also one whose hold was taken over meanwhile; false when the key is gone or has another id.
   */
  async ack(apiKeyName: string, key: string, answer: StoredAnswer): Promise<boolean> {
    const [state] = await this.#run(
      this.#keys.idempotency(apiKeyName, key),
      'ack',
      '',
      '',
      answer.body.id,
      JSON.stringify(answer),
    )
    return state === 'acked'
  }

  /**
   * After a failed write: frees the key for the next request, which writes the same id again (the failed
   * write may still have reached Kafka). False when this owner no longer holds the key.
   */
  async release(apiKeyName: string, key: string, owner: string): Promise<boolean> {
    const [state] = await this.#run(this.#keys.idempotency(apiKeyName, key), 'release', owner, '')
    return state === 'released'
  }
}
