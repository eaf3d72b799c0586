// Consumer lag an autoscaler can trust, for every service that consumes with the offset protocol
// (distributors, router): per partition, the log end minus the stored next offset (Redis, the source of
// truth; else the offset mirrored to Kafka; else the log start), and the age of the oldest unfinished record
// of the topic, read from the broker's record timestamps (so it needs nothing from the record's contents).
// Only the group leader exports them, for every partition of the topic — held or not — so each partition has
// exactly one series across replicas; a replica that stops leading removes its series. Series carry the
// topic: one process may follow several topics in groups of their own (the router), each with its exporter.
import type { Admin } from 'kafkajs'
import type { Logger } from '../logger.ts'
import type { OffsetMetrics } from './metrics.ts'
import type { OffsetStore } from './offsets.ts'

export interface PartitionLag {
  partition: number
  next: number
  high: number
  lag: number
}

export class LagExporter {
  readonly #admin: Admin
  readonly #offsets: OffsetStore
  readonly #topic: string
  readonly #groupId: string
  readonly #metrics: Pick<OffsetMetrics, 'lag' | 'oldestUnfinishedAge'>
  readonly #log: Logger
  /** Partitions whose lag series this exporter set (removed again when it stops leading). */
  readonly #exported = new Set<number>()
  #leader = false
  #timer: NodeJS.Timeout | undefined
  #running: Promise<void> | undefined

  constructor(options: {
    admin: Admin
    offsets: OffsetStore
    topic: string
    groupId: string
    metrics: Pick<OffsetMetrics, 'lag' | 'oldestUnfinishedAge'>
    logger: Logger
  }) {
    this.#admin = options.admin
    this.#offsets = options.offsets
    this.#topic = options.topic
    this.#groupId = options.groupId
    this.#metrics = options.metrics
    this.#log = options.logger
  }

  /** Called on every group join. */
  setLeader(leader: boolean): void {
    if (this.#leader && !leader) this.#clear()
    this.#leader = leader
  }

  start(intervalMs: number): void {
    this.#timer = setInterval(() => {
      if (!this.#leader || this.#running) return
      this.#running = this.collect()
        .then(() => {})
        .catch((error: unknown) => this.#log.warn({ err: error }, 'lag collection failed'))
        .finally(() => {
          this.#running = undefined
        })
    }, intervalMs)
    this.#timer.unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    this.#clear()
  }

  /** Removes this exporter's series only: another exporter of the process (another topic) keeps its own. */
  #clear(): void {
    const topic = this.#topic
    for (const partition of this.#exported) this.#metrics.lag.remove({ topic, partition: String(partition) })
    this.#exported.clear()
    this.#metrics.oldestUnfinishedAge.remove({ topic })
  }

  /** Reads the lag of every partition and, for the lagging ones, the age of the record at `next`. */
  async collect(): Promise<PartitionLag[]> {
    const lags = await readPartitionLags(this.#admin, this.#offsets, this.#topic, this.#groupId)
    if (!this.#leader) return lags
    const topic = this.#topic
    for (const l of lags) {
      this.#metrics.lag.set({ topic, partition: String(l.partition) }, l.lag)
      this.#exported.add(l.partition)
    }
    const now = Date.now()
    const times = await Promise.all(
      lags
        .filter((l) => l.lag > 0)
        .map((l) => recordTimeOf(this.#admin, this.#topic, l.partition, l.next, now)),
    )
    this.#metrics.oldestUnfinishedAge.set({ topic }, Math.max(0, ...times.map((t) => (now - t) / 1000)))
    return lags
  }
}

/**
 * The lag of every partition of `topic` for a group that stores its offsets in Redis: the log end minus the
 * stored next (else the offset mirrored to Kafka, else the log start). Shared by the exporter and the api.
 */
export async function readPartitionLags(
  admin: Admin,
  offsets: Pick<OffsetStore, 'read'>,
  topic: string,
  groupId: string,
): Promise<PartitionLag[]> {
  const bounds = await admin.fetchTopicOffsets(topic)
  const stored = await offsets.read()
  const committed = new Map<number, number>()
  if (bounds.some((b) => !stored.has(b.partition))) {
    const [found] = await admin.fetchOffsets({ groupId, topics: [topic] })
    for (const p of found?.partitions ?? [])
      if (Number(p.offset) >= 0) committed.set(p.partition, Number(p.offset))
  }
  return bounds.map((b) => {
    const low = Number(b.low)
    const high = Number(b.high)
    const next = Math.max(low, stored.get(b.partition) ?? committed.get(b.partition) ?? low)
    return { partition: b.partition, next, high, lag: Math.max(0, high - next) }
  })
}

/**
 * When the record at `offset` was written (ms, to one second), from its broker timestamp: the latest time T
 * whose first offset at or after T is still at or below `offset`, found by bisection over the last 90 days.
 */
export async function recordTimeOf(
  admin: Admin,
  topic: string,
  partition: number,
  offset: number,
  now = Date.now(),
): Promise<number> {
  let lo = now - 90 * 24 * 3600 * 1000
  let hi = now
  while (hi - lo > 1000) {
    const mid = Math.floor((lo + hi) / 2)
    const found = (await admin.fetchTopicOffsetsByTimestamp(topic, mid)).find(
      (p) => p.partition === partition,
    )
    const first = Number(found?.offset ?? -1)
    if (first >= 0 && first <= offset) lo = mid
    else hi = mid
  }
  return lo
}
