// Notification statuses in Redis, changed only through the changeStatus script.
import type { Channel } from './config.ts'
import { callScript, type Redis } from './redis/client.ts'
import type { RedisKeys } from './redis/keys.ts'

/** `throttled`: over its recipient's rate limit (RATE_LIMIT_<CHANNEL>), waiting until `notBefore`. */
export const statuses = ['queued', 'retrying', 'throttled', 'delivered', 'dead_lettered', 'expired'] as const
export type Status = (typeof statuses)[number]
export const finalStatuses: ReadonlySet<Status> = new Set(['delivered', 'dead_lettered', 'expired'])

export type StatusMode = 'create' | 'move' | 'requeue'

/** The most entries a status keeps in `history` (the changeStatus script drops the oldest beyond it). */
export const maxHistory = 20

/** One applied status change, as the changeStatus script records it. */
export interface StatusEntry {
  status: Status
  /** When the change was applied (ISO-8601). */
  at: string
  attempts?: number
  lastError?: string
  channel?: Channel
}

export interface StatusView {
  id: string
  status: Status
  channel?: Channel
  attempts: number
  lastError?: string
  /** While throttled: the time it may go (ISO-8601). */
  notBefore?: string
  createdAt?: string
  updatedAt?: string
  /** The last changes, oldest first (at most maxHistory); empty for a status written before it was kept. */
  history: StatusEntry[]
}

export class StatusStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #ttlSeconds: number

  constructor(redis: Redis, keys: RedisKeys, ttlSeconds: number) {
    this.#redis = redis
    this.#keys = keys
    this.#ttlSeconds = ttlSeconds
  }

  /** Applies a status change; returns whether it applied and the status afterwards. */
  async set(
    id: string,
    status: Status,
    mode: StatusMode,
    fields: Record<string, string | number> = {},
  ): Promise<{ applied: boolean; status: Status }> {
    const pairs = Object.entries(fields).flatMap(([k, v]) => [k, String(v)])
    const [applied, after] = (await callScript(
      this.#redis,
      'changeStatus',
      [this.#keys.status(id)],
      [status, mode, new Date().toISOString(), this.#ttlSeconds, ...pairs],
    )) as [number, Status]
    return { applied: applied === 1, status: after }
  }

  /** The status and attempt count only (one HMGET): what a distributor checks before each delivery. */
  async peek(id: string): Promise<{ status: Status; attempts: number } | undefined> {
    const [status, attempts] = await this.#redis.hmget(this.#keys.status(id), 'status', 'attempts')
    if (!status) return undefined
    return { status: status as Status, attempts: Number(attempts ?? 0) }
  }

  async get(id: string): Promise<StatusView | undefined> {
    const hash = await this.#redis.hgetall(this.#keys.status(id))
    if (!hash.status) return undefined
    return {
      id,
      status: hash.status as Status,
      ...(hash.channel ? { channel: hash.channel as Channel } : {}),
      attempts: Number(hash.attempts ?? 0),
      ...(hash.lastError ? { lastError: hash.lastError } : {}),
      ...(hash.status === 'throttled' && hash.notBefore ? { notBefore: hash.notBefore } : {}),
      ...(hash.createdAt ? { createdAt: hash.createdAt } : {}),
      ...(hash.updatedAt ? { updatedAt: hash.updatedAt } : {}),
      history: historyOf(hash.history),
    }
  }
}

/** The `history` field; a missing or unreadable one is no history rather than a failed read. */
function historyOf(text: string | undefined): StatusEntry[] {
  if (!text) return []
  try {
    const parsed: unknown = JSON.parse(text)
    return Array.isArray(parsed) ? (parsed as StatusEntry[]) : []
  } catch {
    return []
  }
}
