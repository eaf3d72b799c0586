// Reading and replaying dead letters, for operators (the `herald dlq` CLI and the api's /dead-letters).
//
// Reads go page by page from a cursor (the next offset of each partition), so what one request holds is
// bounded: at most a page of letters, plus one fetch of at most `fetchMaxBytes`, and at most
// `scanLimit` letters looked at (a filter that matches little returns a short page and a cursor).
//
// kafkajs reads only through a consumer group. A store uses one group for its lifetime (per api instance,
// per CLI run), never one per request; it commits nothing, reads run one at a time (two members of the
// group would split the partitions), and each read joins, seeks every partition to the cursor, and
// leaves. The price: each read waits for the group to form (the broker's group.initial.rebalance.delay.ms,
// 3 s by default; Herald's dev broker sets 0). A long-lived paused consumer would answer faster but keeps
// fetch buffers and a group membership for an endpoint an operator calls now and then.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Kafka } from 'kafkajs'
import type { Channel } from './config.ts'
import { HeraldPartitioner } from './partitioner.ts'
import type { StatusStore } from './status.ts'
import type { TopicNames } from './topics.ts'

export interface DeadLetterView {
  partition: number
  offset: string
  id: string | undefined
  key: string | undefined
  errorClass: string
  error: string
  attempts: number
  failedAt: string
  original: { topic: string; partition: number; offset: string }
}

export interface DeadLetterFilter {
  errorClass?: string
  since?: Date
  until?: Date
  /** Only these dead letters, as "partition:offset". */
  positions?: ReadonlySet<string>
  /** At most this many (list and replay, which read page by page up to it). */
  limit?: number
}

/** Where a read continues: the next offset to look at, per partition. */
export type DeadLetterCursor = ReadonlyMap<number, number>

export interface DeadLetterPage {
  deadLetters: DeadLetterView[]
  /** Where the next page starts; undefined once the topic was read to its end (as of this read). */
  next: DeadLetterCursor | undefined
}

/** An opaque, URL-safe text for a cursor. */
export function encodeCursor(cursor: DeadLetterCursor): string {
  const text = [...cursor]
    .sort(([a], [b]) => a - b)
    .map(([p, o]) => `${p}:${o}`)
    .join(',')
  return Buffer.from(text, 'utf8').toString('base64url')
}

/** The cursor an encodeCursor text stands for; undefined when the text is not one. */
export function decodeCursor(text: string): DeadLetterCursor | undefined {
  if (!/^[\w-]{1,4000}$/.test(text)) return undefined
  const decoded = Buffer.from(text, 'base64url').toString('utf8')
  if (!/^\d{1,6}:\d{1,19}(,\d{1,6}:\d{1,19})*$/.test(decoded)) return undefined
  const cursor = new Map<number, number>()
  for (const pair of decoded.split(',')) {
    const [p, o] = pair.split(':').map(Number) as [number, number]
    if (!Number.isSafeInteger(o) || cursor.has(p)) return undefined
    cursor.set(p, o)
  }
  return cursor
}

export interface DeadLetterStoreOptions {
  /** Most letters looked at by one read. */
  scanLimit?: number
  /** Most bytes one fetch from the broker may return (kafkajs `maxBytes`). */
  fetchMaxBytes?: number
  /** A read that makes no progress for this long gives up. */
  readTimeoutMs?: number
}

/** Largest page the store reads at once (list and replay loop over pages of this size). */
export const maxPageSize = 500

interface RawLetter {
  partition: number
  offset: string
  key: Buffer | null
  value: Buffer | null
  headers: Record<string, string>
}

function headerText(value: unknown): string {
  if (value === undefined || value === null) return ''
  if (Array.isArray(value)) return headerText(value[0])
  return Buffer.isBuffer(value) ? value.toString('utf8') : String(value)
}

function idOf(value: Buffer | null): string | undefined {
  if (!value) return undefined
  try {
    const parsed = JSON.parse(value.toString('utf8')) as { id?: unknown }
    return typeof parsed.id === 'string' ? parsed.id : undefined
  } catch {
    return undefined
  }
}

function toView(raw: RawLetter): DeadLetterView {
  const h = raw.headers
  return {
    partition: raw.partition,
    offset: raw.offset,
    id: idOf(raw.value),
    key: raw.key?.toString('utf8'),
    errorClass: h['herald-error-class'] ?? '',
    error: h['herald-error'] ?? '',
    attempts: Number(h['herald-attempts'] ?? 0),
    failedAt: h['herald-failed-at'] ?? '',
    original: {
      topic: h['herald-original-topic'] ?? '',
      partition: Number(h['herald-original-partition'] ?? -1),
      offset: h['herald-original-offset'] ?? '',
    },
  }
}

function matches(view: DeadLetterView, filter: DeadLetterFilter): boolean {
  if (filter.positions && !filter.positions.has(`${view.partition}:${view.offset}`)) return false
  if (filter.errorClass && view.errorClass !== filter.errorClass) return false
  const at = Date.parse(view.failedAt)
  if (filter.since && !(at >= filter.since.getTime())) return false
  if (filter.until && !(at <= filter.until.getTime())) return false
  return true
}

interface Found {
  raw: RawLetter
  view: DeadLetterView
}

export class DeadLetterStore {
  readonly #kafka: Kafka
  readonly #topics: TopicNames
  readonly #statuses: StatusStore | undefined
  readonly #groupId = `herald.dlq-reader.${hostname()}.${randomUUID().slice(0, 8)}`
  readonly #scanLimit: number
  readonly #fetchMaxBytes: number
  readonly #readTimeoutMs: number
  /** Reads run one after another: they share one consumer group. */
  #turn: Promise<unknown> = Promise.resolve()

  constructor(
    kafka: Kafka,
    topics: TopicNames,
    statuses?: StatusStore,
    options: DeadLetterStoreOptions = {},
  ) {
    this.#kafka = kafka
    this.#topics = topics
    this.#statuses = statuses
    this.#scanLimit = options.scanLimit ?? 10_000
    this.#fetchMaxBytes = options.fetchMaxBytes ?? 1024 * 1024
    this.#readTimeoutMs = options.readTimeoutMs ?? 20_000
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#turn.then(work, work)
    this.#turn = run.catch(() => {})
    return run
  }

  /**
   * Reads matching letters from `from` (or the log start) up to `limit`, or to the end of each partition as
   * of the start of the read, or until `scanLimit` letters were looked at, whichever comes first.
   */
  #read(
    channel: Channel,
    filter: DeadLetterFilter,
    limit: number,
    from: DeadLetterCursor | undefined,
  ): Promise<{ found: Found[]; next: DeadLetterCursor | undefined }> {
    return this.#exclusive(() => this.#readNow(channel, filter, limit, from))
  }

  async #readNow(
    channel: Channel,
    filter: DeadLetterFilter,
    limit: number,
    from: DeadLetterCursor | undefined,
  ): Promise<{ found: Found[]; next: DeadLetterCursor | undefined }> {
    const topic = this.#topics.deadLetter(channel)
    const admin = this.#kafka.admin()
    await admin.connect()
    let consumer: ReturnType<Kafka['consumer']> | undefined
    try {
      if (!(await admin.listTopics()).includes(topic)) {
        throw new Error(`topic ${topic} does not exist (is TOPIC_PREFIX right? services create it at start)`)
      }
      // Per partition: the next offset to look at, and the end (exclusive) of this read.
      const position = new Map<number, number>()
      const end = new Map<number, number>()
      const wanted = positionsByPartition(filter.positions)
      const partitions = await admin.fetchTopicOffsets(topic)
      for (const { partition, low, high } of partitions) {
        let start = Math.max(Number(low), from?.get(partition) ?? 0)
        let stop = Number(high)
        const range = wanted?.get(partition)
        if (wanted) {
          if (!range) continue
          start = Math.max(start, range.min)
          stop = Math.min(stop, range.max + 1)
        }
        position.set(partition, start)
        end.set(partition, Math.max(start, stop))
      }
      const open = new Set([...position].filter(([p, at]) => at < (end.get(p) ?? 0)).map(([p]) => p))
      const cursor = () => (open.size === 0 ? undefined : new Map(position))
      const found: Found[] = []
      if (open.size === 0) return { found, next: cursor() }

      consumer = this.#kafka.consumer({
        groupId: this.#groupId,
        allowAutoTopicCreation: false,
        maxWaitTimeInMs: 200,
        maxBytes: this.#fetchMaxBytes,
        maxBytesPerPartition: Math.min(this.#fetchMaxBytes, 256 * 1024),
      })
      const reader = consumer
      await reader.connect()
      await reader.subscribe({ topic, fromBeginning: true })
      let scanned = 0
      await new Promise<void>((resolve, reject) => {
        let done = false
        let timer: NodeJS.Timeout | undefined
        const finish = (error?: Error) => {
          if (done) return
          done = true
          clearTimeout(timer)
          if (error) reject(error)
          else resolve()
        }
        const watch = () => {
          clearTimeout(timer)
          timer = setTimeout(
            () =>
              found.length > 0 || scanned > 0
                ? finish()
                : finish(new Error(`reading ${topic} made no progress in ${this.#readTimeoutMs} ms`)),
            this.#readTimeoutMs,
          )
        }
        const close = (partition: number) => {
          open.delete(partition)
          reader.pause([{ topic, partitions: [partition] }])
          if (open.size === 0) finish()
        }
        watch()
        reader
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              const offset = Number(message.offset)
              const at = position.get(partition)
              // Letters before the cursor (read before the seek took effect, or again after it) and
              // partitions this read does not need are skipped.
              if (done || !open.has(partition) || at === undefined || offset < at) return
              const stop = end.get(partition) ?? 0
              if (offset >= stop) {
                position.set(partition, stop)
                return close(partition)
              }
              position.set(partition, offset + 1)
              scanned++
              watch()
              const headers: Record<string, string> = {}
              for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = headerText(v)
              const raw = {
                partition,
                offset: message.offset,
                key: message.key,
                value: message.value,
                headers,
              }
              const view = toView(raw)
              if (matches(view, filter)) found.push({ raw, view })
              if (offset + 1 >= stop) close(partition)
              if (found.length >= limit || scanned >= this.#scanLimit) finish()
            },
          })
          .then(() => {
            if (done) return
            const idle = partitions.map((p) => p.partition).filter((p) => !open.has(p))
            if (idle.length > 0) reader.pause([{ topic, partitions: idle }])
            for (const p of open) reader.seek({ topic, partition: p, offset: String(position.get(p)) })
          })
          .catch((error: Error) => finish(error))
      })
      found.sort((a, b) => a.raw.partition - b.raw.partition || Number(a.raw.offset) - Number(b.raw.offset))
      return { found, next: cursor() }
    } finally {
      await consumer?.disconnect().catch(() => {})
      await admin.disconnect().catch(() => {})
    }
  }

  /** One page of matching letters from `cursor` (or the start), at most `limit` (up to maxPageSize). */
  async page(
    channel: Channel,
    options: { filter?: DeadLetterFilter; limit: number; cursor?: DeadLetterCursor },
  ): Promise<DeadLetterPage> {
    const limit = Math.min(options.limit, maxPageSize)
    const { found, next } = await this.#read(channel, options.filter ?? {}, limit, options.cursor)
    return { deadLetters: found.map((f) => f.view), next }
  }

  /** Every matching letter, up to `filter.limit`, read page by page (the CLI). */
  async list(channel: Channel, filter: DeadLetterFilter = {}): Promise<DeadLetterView[]> {
    const views: DeadLetterView[] = []
    let cursor: DeadLetterCursor | undefined
    do {
      const left = (filter.limit ?? Number.POSITIVE_INFINITY) - views.length
      const page = await this.page(channel, {
        filter,
        limit: Math.min(left, maxPageSize),
        ...cursorOption(cursor),
      })
      views.push(...page.deadLetters)
      cursor = page.next
    } while (cursor && views.length < (filter.limit ?? Number.POSITIVE_INFINITY))
    return views
  }

  /**
   * Replays one page: writes the chosen dead letters back to the channel's main topic (same bytes, same id,
   * acks=all), sets their status back to `queued`, and says where the next page starts.
   */
  async replayPage(
    channel: Channel,
    options: { filter: DeadLetterFilter; limit: number; cursor?: DeadLetterCursor },
  ): Promise<{ replayed: DeadLetterView[]; next: DeadLetterCursor | undefined }> {
    const limit = Math.min(options.limit, maxPageSize)
    const { found, next } = await this.#read(channel, options.filter, limit, options.cursor)
    if (found.length > 0) await this.#write(channel, found)
    return { replayed: found.map((f) => f.view), next }
  }

  /** Replays every matching letter, up to `filter.limit`, page by page (the CLI). */
  async replay(channel: Channel, filter: DeadLetterFilter): Promise<DeadLetterView[]> {
    const views: DeadLetterView[] = []
    let cursor: DeadLetterCursor | undefined
    do {
      const left = (filter.limit ?? Number.POSITIVE_INFINITY) - views.length
      const page = await this.replayPage(channel, {
        filter,
        limit: Math.min(left, maxPageSize),
        ...cursorOption(cursor),
      })
      views.push(...page.replayed)
      cursor = page.next
    } while (cursor && views.length < (filter.limit ?? Number.POSITIVE_INFINITY))
    return views
  }

  async #write(channel: Channel, chosen: Found[]): Promise<void> {
    // The status goes back to queued before the record is written: a distributor that delivers the replay at
    // once must find a status it may move to delivered (dead_lettered is final and would refuse it).
    const requeued = chosen.flatMap(({ view }) => (view.id ? [view.id] : []))
    if (this.#statuses)
      for (const id of requeued)
        await this.#statuses.set(id, 'queued', 'requeue', { channel, attempts: 0, lastError: '' })
    const producer = this.#kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: HeraldPartitioner,
    })
    try {
      await producer.connect()
      await producer.send({
        topic: this.#topics.main(channel),
        acks: -1,
        messages: chosen.map(({ raw }) => ({
          key: raw.key,
          value: raw.value,
          headers: {
            'herald-source': 'replay',
            'herald-replay-of': `${this.#topics.deadLetter(channel)}:${raw.partition}:${raw.offset}`,
          },
        })),
      })
    } catch (error) {
      // Not replayed: the dead letters stay where they are, and so does their status.
      if (this.#statuses)
        for (const id of requeued)
          await this.#statuses
            .set(id, 'dead_lettered', 'move', { channel, lastError: 'replay failed' })
            .catch(() => {})
      throw error
    } finally {
      await producer.disconnect().catch(() => {})
    }
  }

  /** Removes this store's consumer group from the broker (at shutdown). */
  async close(): Promise<void> {
    await this.#exclusive(async () => {
      const admin = this.#kafka.admin()
      await admin.connect()
      try {
        await admin.deleteGroups([this.#groupId]).catch(() => {})
      } finally {
        await admin.disconnect().catch(() => {})
      }
    })
  }
}

function cursorOption(cursor: DeadLetterCursor | undefined): { cursor?: DeadLetterCursor } {
  return cursor ? { cursor } : {}
}

/** The lowest and highest wanted offset per partition, for a filter by position. */
function positionsByPartition(
  positions: ReadonlySet<string> | undefined,
): Map<number, { min: number; max: number }> | undefined {
  if (!positions) return undefined
  const ranges = new Map<number, { min: number; max: number }>()
  for (const at of positions) {
    const [p, o] = at.split(':').map(Number)
    if (p === undefined || o === undefined || !Number.isSafeInteger(p) || !Number.isSafeInteger(o)) continue
    const range = ranges.get(p)
    ranges.set(p, range ? { min: Math.min(range.min, o), max: Math.max(range.max, o) } : { min: o, max: o })
  }
  return ranges
}
