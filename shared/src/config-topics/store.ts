// A typed map kept on a compacted Kafka topic: the key is the entry's name, the value its JSON (validated
// by a zod schema), a tombstone deletes it. Writes go out with acks=all and audit headers; every process
// reads the whole topic from the beginning at start and then follows it, so Kafka is the only copy that
// matters and the audit log of every change.
//
// `ready` means caught up: every partition was read up to the log end captured when the store started.
// A `put` or `delete` resolves once this process's reader has read its own write back (bounded by
// `readBackTimeoutMs`), so a write is visible to this process's next read.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Batch, Consumer, IHeaders, Kafka, Producer } from 'kafkajs'
import type { z } from 'zod'
import { HeraldError } from '../errors.ts'
import type { Logger } from '../logger.ts'

/** Who made a change: written as the record's headers. */
export interface Audit {
  /** The API key's name, or the CLI user. */
  user: string
  /** What wrote it, e.g. `api` or `cli`. */
  source: string
  host?: string
}

export interface ConfigTopicStoreOptions<T> {
  topic: string
  schema: z.ZodType<T>
  /** A connected producer; the store sends with acks=all and never disconnects it. */
  producer: Producer
  logger: Logger
  /** Prefix of the reader's own consumer group (one group per store instance, nothing committed). */
  groupPrefix?: string
  /** How long a write waits for its own record to be read back before it resolves anyway. */
  readBackTimeoutMs?: number
  /** The broker's wait for the in-sync replicas of a write. */
  ackTimeoutMs?: number
  /** How long `stop()` waits for the reader to leave its group. */
  stopTimeoutMs?: number
}

export interface ConfigPage<T> {
  items: T[]
  /** Name of the last item, to pass as `after` for the next page; undefined on the last page. */
  next: string | undefined
}

interface Waiter {
  partition: number
  offset: number
  resolve: () => void
}

export class ConfigStoreNotReadyError extends HeraldError {
  constructor(topic: string) {
    super('HERALD_CONFIG_NOT_READY', `${topic} is still being read from the beginning`, { retryable: true })
  }
}

export class ConfigTopicStore<T> {
  readonly topic: string
  readonly #kafka: Kafka
  readonly #schema: z.ZodType<T>
  readonly #producer: Producer
  readonly #logger: Logger
  readonly #groupId: string
  readonly #readBackTimeoutMs: number
  readonly #ackTimeoutMs: number
  readonly #stopTimeoutMs: number
  readonly #entries = new Map<string, T>()
  /** The audit headers of the record that set each entry (what `auditOf` answers). */
  readonly #audits = new Map<string, Required<Audit>>()
  /** Next offset to read, per partition. */
  readonly #position = new Map<number, number>()
  /** Log end per partition when the store started: `ready` once every position reached it. */
  #target = new Map<number, number>()
  #waiters: Waiter[] = []
  #consumer: Consumer | undefined
  #restartTimer: NodeJS.Timeout | undefined
  #ready = false
  #readyPromise: Promise<void>
  #markReady: () => void = () => {}
  #stopped: Promise<void> | undefined

  constructor(kafka: Kafka, options: ConfigTopicStoreOptions<T>) {
    this.#kafka = kafka
    this.topic = options.topic
    this.#schema = options.schema
    this.#producer = options.producer
    this.#logger = options.logger.child({ component: 'config-store', topic: options.topic })
    this.#groupId = `${options.groupPrefix ?? 'herald'}.config-reader.${hostname()}.${randomUUID().slice(0, 8)}`
    this.#readBackTimeoutMs = options.readBackTimeoutMs ?? 5000
    this.#ackTimeoutMs = options.ackTimeoutMs ?? 5000
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 3000
    this.#readyPromise = new Promise((resolve) => {
      this.#markReady = resolve
    })
  }

  get ready(): boolean {
    return this.#ready
  }

  /** Resolves once the topic was read up to the log end captured at start. */
  whenReady(): Promise<void> {
    return this.#readyPromise
  }

  /**
   * Captures the log end, joins a private consumer group and starts reading from the beginning. A start
   * that fails leaves nothing running and may be tried again.
   */
  async start(): Promise<void> {
    if (this.#stopped) throw new Error(`the store of ${this.topic} was stopped`)
    const admin = this.#kafka.admin()
    await admin.connect()
    try {
      for (const { partition, high, low } of await admin.fetchTopicOffsets(this.topic)) {
        if (!this.#position.has(partition)) this.#position.set(partition, Number(low))
        this.#target.set(partition, Number(high))
      }
    } finally {
      await admin.disconnect().catch(() => {})
    }
    this.#checkReady()
    await this.#follow()
  }

  /**
   * Joins the store's group and reads. kafkajs would restart a crashed consumer by itself, even after a
   * disconnect; here a crash ends that consumer and the store starts a new one (same group, positions kept)
   * unless it was stopped, so `stop()` leaves nothing running.
   */
  async #follow(): Promise<void> {
    const consumer = this.#kafka.consumer({
      groupId: this.#groupId,
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 250,
      retry: { restartOnFailure: async () => false },
    })
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (this.#consumer !== consumer) return
      this.#consumer = undefined
      void consumer.disconnect().catch(() => {})
      if (this.#stopped) return
      this.#logger.warn({ err: payload.error }, 'config reader crashed; following again in 1 s')
      this.#restartSoon()
    })
    try {
      await consumer.connect()
      await consumer.subscribe({ topic: this.topic, fromBeginning: true })
      await consumer.run({ autoCommit: false, eachBatch: async ({ batch }) => this.#read(batch) })
    } catch (error) {
      await consumer.disconnect().catch(() => {})
      throw error
    }
    this.#consumer = consumer
    // stop() during the start found no consumer to disconnect.
    if (this.#stopped) await consumer.disconnect().catch(() => {})
  }

  #restartSoon(): void {
    clearTimeout(this.#restartTimer)
    this.#restartTimer = setTimeout(() => {
      if (this.#stopped) return
      this.#follow().catch((error: unknown) => {
        this.#logger.warn({ err: error }, 'config reader could not follow again; retrying in 1 s')
        this.#restartSoon()
      })
    }, 1000)
  }

  #read(batch: Batch): void {
    const { partition } = batch
    for (const message of batch.messages) {
      const offset = Number(message.offset)
      // After a rejoin the group has no committed offset and reads from the beginning again.
      if (offset < (this.#position.get(partition) ?? 0)) continue
      this.#apply(message.key?.toString('utf8'), message.value, offset, message.headers)
      this.#position.set(partition, offset + 1)
    }
    const last = Number(batch.lastOffset())
    if (last + 1 > (this.#position.get(partition) ?? 0)) this.#position.set(partition, last + 1)
    this.#wake()
    this.#checkReady()
  }

  #apply(name: string | undefined, value: Buffer | null, offset: number, headers?: IHeaders): void {
    if (name === undefined || name === '') {
      this.#logger.warn({ offset }, 'record without a key ignored')
      return
    }
    if (value === null) {
      this.#entries.delete(name)
      this.#audits.delete(name)
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(value.toString('utf8'))
    } catch {
      this.#logger.warn({ offset, name }, 'record is not JSON; ignored (the previous value stays)')
      return
    }
    const result = this.#schema.safeParse(parsed)
    if (!result.success) {
      const first = result.error.issues[0]
      this.#logger.warn(
        { offset, name, reason: `${first?.path.join('.') ?? ''} ${first?.message ?? ''}`.trim() },
        'record fails the schema; ignored (the previous value stays)',
      )
      return
    }
    this.#entries.set(name, result.data)
    this.#audits.set(name, auditOfHeaders(headers))
  }

  #checkReady(): void {
    if (this.#ready) return
    for (const [partition, end] of this.#target) {
      if ((this.#position.get(partition) ?? 0) < end) return
    }
    this.#ready = true
    this.#logger.debug({ entries: this.#entries.size }, 'config topic read to its end')
    this.#markReady()
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if ((this.#position.get(w.partition) ?? 0) <= w.offset) return true
      w.resolve()
      return false
    })
  }

  /** Waits until the reader passed `offset` of `partition`, or the read-back bound. */
  #readBack(partition: number, offset: number): Promise<void> {
    if ((this.#position.get(partition) ?? 0) > offset) return Promise.resolve()
    return new Promise((resolve) => {
      const waiter: Waiter = { partition, offset, resolve: () => {} }
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== waiter)
        this.#logger.warn(
          { partition, offset, ms: this.#readBackTimeoutMs },
          'write acknowledged but not read back in time',
        )
        resolve()
      }, this.#readBackTimeoutMs)
      waiter.resolve = () => {
        clearTimeout(timer)
        resolve()
      }
      this.#waiters.push(waiter)
    })
  }

  async #write(name: string, value: string | null, audit: Audit): Promise<void> {
    const headers: IHeaders = {
      'herald-user': audit.user,
      'herald-source': audit.source,
      'herald-host': audit.host ?? hostname(),
    }
    const [meta] = await this.#producer.send({
      topic: this.topic,
      acks: -1,
      timeout: this.#ackTimeoutMs,
      messages: [{ key: name, value, headers }],
    })
    if (meta) await this.#readBack(meta.partition, Number(meta.baseOffset))
  }

  #requireReady(): void {
    if (!this.#ready) throw new ConfigStoreNotReadyError(this.topic)
  }

  /** Writes `value` under `name` (acks=all). `created` is true when the name was unknown before. */
  async put(name: string, value: T, audit: Audit): Promise<{ created: boolean }> {
    this.#requireReady()
    const created = !this.#entries.has(name)
    await this.#write(name, JSON.stringify(value), audit)
    return { created }
  }

  /** Writes a tombstone for `name`. False (and nothing written) when the name is unknown. */
  async delete(name: string, audit: Audit): Promise<boolean> {
    this.#requireReady()
    if (!this.#entries.has(name)) return false
    await this.#write(name, null, audit)
    return true
  }

  get(name: string): T | undefined {
    return this.#entries.get(name)
  }

  /** Who wrote the current value of `name` (its record's audit headers; "-" for a header it lacks). */
  auditOf(name: string): Required<Audit> | undefined {
    return this.#audits.get(name)
  }

  has(name: string): boolean {
    return this.#entries.has(name)
  }

  get size(): number {
    return this.#entries.size
  }

  /** Every entry, by name. */
  entries(): Array<[string, T]> {
    return [...this.#entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }

  /** Up to `limit` entries by name, after the name `after` (exclusive). */
  page(options: { limit: number; after?: string }): ConfigPage<T> {
    const sorted = this.entries()
    const after = options.after
    const start = after === undefined ? 0 : sorted.findIndex(([name]) => name > after)
    const slice = start < 0 ? [] : sorted.slice(start, start + options.limit)
    const more = start >= 0 && start + options.limit < sorted.length
    return { items: slice.map(([, v]) => v), next: more ? slice.at(-1)?.[0] : undefined }
  }

  /** Stops following the topic. Returns the same promise on every call. */
  stop(): Promise<void> {
    this.#stopped ??= (async () => {
      for (const w of this.#waiters) w.resolve()
      this.#waiters = []
      clearTimeout(this.#restartTimer)
      const consumer = this.#consumer
      if (!consumer) return
      // Leaving the group waits for the broker; a frozen or unreachable one must not hold up a shutdown.
      let timer: NodeJS.Timeout | undefined
      const bound = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          this.#logger.warn({ ms: this.#stopTimeoutMs }, 'config reader did not leave its group in time')
          resolve()
        }, this.#stopTimeoutMs)
      })
      await Promise.race([consumer.disconnect().catch(() => {}), bound])
      clearTimeout(timer)
    })()
    return this.#stopped
  }
}

function auditOfHeaders(headers: IHeaders | undefined): Required<Audit> {
  const text = (name: string): string => {
    const value = headers?.[name]
    const first = Array.isArray(value) ? value[0] : value
    return first === undefined ? '-' : first.toString()
  }
  return { user: text('herald-user'), source: text('herald-source'), host: text('herald-host') }
}
