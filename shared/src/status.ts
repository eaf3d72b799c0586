// Notification statuses in Redis, changed only through the changeStatus script. The changes asked for in one
// pass of the event loop's tick queue go to Redis together: one script call for all of them on a single
// server (the api's statuses after a produce request, a distributor's at a flush), one call per key on Redis
// Cluster (its keys lie in different slots). ioredis' per-command work (a command, its promise, its reply)
// was about a tenth of the api's CPU per accepted request, one status call each.
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

/** A change waiting for the next script call: its key, its arguments, and its caller. */
interface PendingChange {
  key: string
  args: string[]
  resolve: (result: { applied: boolean; status: Status }) => void
  reject: (error: Error) => void
}

/** The most changes in one script call (a call blocks Redis while it runs: about a millisecond for these). */
const maxChangesPerCall = 256

export class StatusStore {
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #ttlSeconds: number
  readonly #oneKeyPerCall: boolean
  #pending: PendingChange[] = []

  constructor(redis: Redis, keys: RedisKeys, ttlSeconds: number) {
    this.#redis = redis
    this.#keys = keys
    this.#ttlSeconds = ttlSeconds
    this.#oneKeyPerCall = (redis as { isCluster?: boolean }).isCluster === true
  }

  /**
   * Applies a status change; returns whether it applied and the status afterwards. Changes asked for
   * before the tick queue runs (process.nextTick: after the promise callbacks that asked for them, before
   * any further I/O) are sent together, in the order asked, so Redis has them before this process answers
   * anything that comes after.
   */
  set(
    id: string,
    status: Status,
    mode: StatusMode,
    fields: Record<string, string | number> = {},
  ): Promise<{ applied: boolean; status: Status }> {
    const pairs = Object.entries(fields).flatMap(([k, v]) => [k, String(v)])
    return new Promise((resolve, reject) => {
      if (this.#pending.length === 0) process.nextTick(() => this.#flush())
      this.#pending.push({
        key: this.#keys.status(id),
        args: [status, mode, String(pairs.length / 2), ...pairs],
        resolve,
        reject,
      })
    })
  }

  #flush(): void {
    const changes = this.#pending
    this.#pending = []
    const now = new Date().toISOString()
    const size = this.#oneKeyPerCall ? 1 : maxChangesPerCall
    for (let i = 0; i < changes.length; i += size) {
      const group = changes.slice(i, i + size)
      let reply: Promise<unknown>
      try {
        reply = callScript(
          this.#redis,
          'changeStatus',
          group.map((c) => c.key),
          [now, this.#ttlSeconds, ...group.flatMap((c) => c.args)],
        )
      } catch (error) {
        reply = Promise.reject(error)
      }
      reply.then(
        (values) => {
          const flat = values as Array<number | string>
          for (const [j, c] of group.entries()) {
            const applied = flat[2 * j]
            const after = flat[2 * j + 1]
            if (applied === -1 || applied === undefined) {
              c.reject(new Error(`status change of ${c.key} failed: ${String(after ?? 'no answer')}`))
            } else c.resolve({ applied: applied === 1, status: after as Status })
          }
        },
        (error: Error) => {
          for (const c of group) c.reject(error)
        },
      )
    }
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
