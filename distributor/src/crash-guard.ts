// The crash guard (ARCHITECTURE.md, "Failures"): a record whose delivery keeps killing the process is
// dead-lettered as `crash-loop` instead of blocking its partition, and only deaths count. Before each
// delivery one script notes "this process started (partition, offset)" and counts the earlier starters that
// died with the record in flight (scripts/crashGuardStart-1.lua; one call covers the starts of an event-loop
// turn). In the same round trip the notification's status is read: a record whose notification already
// finished is skipped instead of delivered again.
//
// Every process has a liveness key: `alive` with a TTL it refreshes while it runs, `stopped` once it stopped
// with nothing in flight. A crashed member's partitions move to another member only after its session timed
// out; the TTL is shorter than the session timeout, so by then its key is gone and the next starter counts
// the crash. A live process never counts: not a batch that failed and is retried, not a Redis error, not
// a zombie still delivering the offset another member claimed.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Logger } from '@herald/shared/logger'
import { callScript, defineScripts, type Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'
import { finalStatuses, type Status, type StatusStore } from '@herald/shared/status'
import type { IHeaders } from 'kafkajs'

/**
 * How long a stopped process's `stopped` mark is kept: longer than the main topics' retention (≥ 14 days),
 * so records it handed back without removing itself (Redis was failing) never see it as a crash.
 */
const stoppedTtlSeconds = 30 * 86_400

/** Liveness TTL for a session timeout: two thirds of it, so a dead member's key is gone when it is expelled. */
export function livenessTtlFor(sessionTimeoutMs: number): number {
  return Math.max(1000, Math.floor((sessionTimeoutMs * 2) / 3))
}

/** A dead-letter replay (shared/src/dead-letters.ts) marks its records with this header. */
export function isReplay(headers: IHeaders | undefined): boolean {
  return headers?.['herald-replay-of'] !== undefined
}

export interface CrashGuardOptions {
  redis: Redis
  keys: RedisKeys
  statuses: StatusStore
  groupId: string
  topic: string
  livenessTtlMs: number
  /** Aborted when the process stops: it is marked stopped as soon as nothing is in flight. */
  signal: AbortSignal
  logger: Logger
  instanceId?: string
}

export interface StartCheck {
  /** Processes that died while this record was in flight. */
  crashes: number
  /** Failed delivery attempts recorded so far. */
  attempts: number
  /** Epoch ms before which the next attempt must not start (a Retry-After or backoff wait), or 0. */
  notBefore: number
  /** The notification's status when it is already final (delivered, dead-lettered or expired). */
  finished: { status: Status; attempts: number } | undefined
}

export class CrashGuard {
  readonly instanceId: string
  readonly #redis: Redis
  readonly #statuses: StatusStore
  readonly #log: Logger
  readonly #hash: string
  readonly #livenessPrefix: string
  readonly #ttlMs: number
  readonly #signal: AbortSignal
  /** Starts waiting for this tick's script call (#flushStarts). */
  readonly #pendingStarts: Array<{
    at: string
    id: string | undefined
    resolve: (check: StartCheck) => void
    reject: (error: unknown) => void
  }> = []
  /** Records this process started and has not finished or handed back, by "<partition>:<offset>". */
  readonly #inFlight = new Map<string, number>()
  #timer: NodeJS.Timeout | undefined
  #markedStopped = false

  constructor(options: CrashGuardOptions) {
    this.instanceId = options.instanceId ?? `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`
    if (/[,{}]/.test(this.instanceId)) throw new Error(`crash guard instance id ${this.instanceId}: no , { }`)
    this.#redis = options.redis
    this.#statuses = options.statuses
    this.#log = options.logger
    this.#hash = options.keys.attempts(options.groupId, options.topic)
    this.#livenessPrefix = options.keys.liveness(options.groupId, options.topic, '')
    this.#ttlMs = options.livenessTtlMs
    this.#signal = options.signal
    this.#signal.addEventListener('abort', () => this.#markStoppedIfIdle(), { once: true })
    defineScripts(options.redis, new URL('./scripts/', import.meta.url))
  }

  /**
   * Notes that this process starts delivering the record and returns its crash count and attempts; with
   * `id`, also the notification's status when it is already final (read in the same round trip). Starts
   * are gathered until the event loop's I/O callbacks of this turn ran (setImmediate): the answers that
   * arrived together free slots together, and all of their starts go to Redis as one script call and their
   * status reads in the same pipelined write, instead of a write per answer.
   */
  async start(partition: number, offset: number, id?: string): Promise<StartCheck> {
    const at = `${partition}:${offset}`
    this.#inFlight.set(at, (this.#inFlight.get(at) ?? 0) + 1)
    this.#markedStopped = false
    this.#timer ??= setInterval(() => this.#refresh(), Math.max(250, Math.floor(this.#ttlMs / 4))).unref()
    try {
      return await new Promise<StartCheck>((resolve, reject) => {
        if (this.#pendingStarts.length === 0) setImmediate(() => this.#flushStarts())
        this.#pendingStarts.push({ at, id, resolve, reject })
      })
    } catch (error) {
      this.#settle(at)
      throw error
    }
  }

  #flushStarts(): void {
    const batch = this.#pendingStarts.splice(0)
    // Issued in one tick: ioredis' auto-pipelining writes the script call and every status read at once.
    const counts = callScript(
      this.#redis,
      'crashGuardStart',
      [this.#hash],
      [this.instanceId, this.#livenessPrefix, this.#ttlMs, ...batch.map((s) => s.at)],
    ) as Promise<Array<number | string>>
    for (const [i, s] of batch.entries()) {
      const status = s.id === undefined ? undefined : this.#statuses.peek(s.id)
      Promise.all([counts, status]).then(
        ([c, st]) =>
          s.resolve({
            crashes: Number(c[3 * i]),
            attempts: Number(c[3 * i + 1]),
            notBefore: Number(c[3 * i + 2] ?? 0),
            finished: st && finalStatuses.has(st.status) ? st : undefined,
          }),
        s.reject,
      )
    }
  }

  /** The delivery ended with an outcome: the record is no longer in flight (its entry goes with `forget`). */
  ended(partition: number, offset: number): void {
    this.#settle(`${partition}:${offset}`)
  }

  /** Handed back unfinished on purpose: a later death of this process is no crash of this record. */
  async handBack(partition: number, offset: number): Promise<void> {
    const at = `${partition}:${offset}`
    try {
      await callScript(this.#redis, 'crashGuardHandBack', [this.#hash], [at, this.instanceId])
    } catch (error) {
      // Harmless while this process lives; its `stopped` mark covers it after a clean stop.
      this.#log.warn({ err: error, partition, offset }, 'crash guard: could not remove a handed-back start')
    } finally {
      this.#settle(at)
    }
  }

  /** Finished records (their outcome is recorded): their counters are deleted. */
  async forget(partition: number, offsets: readonly number[]): Promise<void> {
    if (offsets.length === 0) return
    const fields = offsets.flatMap((offset) => [
      `${partition}:${offset}:starters`,
      `${partition}:${offset}:attempts`,
      `${partition}:${offset}:notBefore`,
      `${partition}:${offset}:starts`, // written by distributors before the crash guard
    ])
    await this.#redis.hdel(this.#hash, ...fields)
  }

  #settle(at: string): void {
    const count = this.#inFlight.get(at) ?? 0
    if (count > 1) this.#inFlight.set(at, count - 1)
    else this.#inFlight.delete(at)
    this.#markStoppedIfIdle()
  }

  #refresh(): void {
    if (this.#markedStopped) return
    this.#redis
      .set(this.#livenessPrefix + this.instanceId, 'alive', 'PX', this.#ttlMs)
      .catch((error: unknown) =>
        this.#log.warn({ err: error }, 'crash guard: could not refresh this process liveness key'),
      )
  }

  /**
   * After the stop signal, once nothing is in flight: a clean stop. A delivery that never settles keeps
   * the mark away, so when the process exits with it, its liveness expires and the record counts a crash.
   */
  #markStoppedIfIdle(): void {
    // No timer: nothing was ever started (nothing to mark), or the mark is written already.
    if (!this.#signal.aborted || this.#inFlight.size > 0 || this.#timer === undefined) return
    this.#markedStopped = true
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#redis
      .set(this.#livenessPrefix + this.instanceId, 'stopped', 'EX', stoppedTtlSeconds)
      .catch((error: unknown) =>
        this.#log.warn({ err: error }, 'crash guard: could not mark this process stopped'),
      )
  }
}
