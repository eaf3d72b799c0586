// Reading and replaying dead letters, for operators (the `herald dlq` CLI and the api's /dead-letters).
import { randomUUID } from 'node:crypto'
import type { Kafka } from 'kafkajs'
import { Partitioners } from 'kafkajs'
import type { Channel } from './config.ts'
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
  limit?: number
}

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

export class DeadLetterStore {
  readonly #kafka: Kafka
  readonly #topics: TopicNames
  readonly #statuses: StatusStore | undefined

  constructor(kafka: Kafka, topics: TopicNames, statuses?: StatusStore) {
    this.#kafka = kafka
    this.#topics = topics
    this.#statuses = statuses
  }

  /** Reads the dead-letter topic from its start up to its end as of now (a snapshot), with a throwaway group. */
  async #read(
    channel: Channel,
    filter: DeadLetterFilter,
  ): Promise<Array<{ raw: RawLetter; view: DeadLetterView }>> {
    const topic = this.#topics.deadLetter(channel)
    const admin = this.#kafka.admin()
    await admin.connect()
    const groupId = `herald.dlq-reader.${randomUUID()}`
    const consumer = this.#kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
    const found: Array<{ raw: RawLetter; view: DeadLetterView }> = []
    try {
      if (!(await admin.listTopics()).includes(topic)) {
        throw new Error(`topic ${topic} does not exist (is TOPIC_PREFIX right? services create it at start)`)
      }
      const ends = new Map(
        (await admin.fetchTopicOffsets(topic))
          .filter((p) => Number(p.high) > Number(p.low))
          .map((p) => [p.partition, Number(p.high)]),
      )
      if (ends.size === 0) return []
      await consumer.connect()
      await consumer.subscribe({ topic, fromBeginning: true })
      const remaining = new Set(ends.keys())
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`reading ${topic} timed out`)), 60_000)
        void consumer
          .run({
            autoCommit: false,
            eachMessage: async ({ partition, message }) => {
              const end = ends.get(partition) ?? 0
              if (Number(message.offset) < end) {
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
                if (matches(view, filter) && found.length < (filter.limit ?? Number.POSITIVE_INFINITY))
                  found.push({ raw, view })
              }
              if (Number(message.offset) >= end - 1) remaining.delete(partition)
              if (remaining.size === 0) {
                clearTimeout(timer)
                resolve()
              }
            },
          })
          .catch(reject)
      })
      return found
    } finally {
      await consumer.disconnect().catch(() => {})
      await admin.deleteGroups([groupId]).catch(() => {})
      await admin.disconnect().catch(() => {})
    }
  }

  async list(channel: Channel, filter: DeadLetterFilter = {}): Promise<DeadLetterView[]> {
    return (await this.#read(channel, filter)).map((f) => f.view)
  }

  /**
   * Writes the chosen dead letters back to the channel's main topic (same bytes, same id, acks=all) and
   * sets their status back to `queued`. Returns what was replayed.
   */
  async replay(channel: Channel, filter: DeadLetterFilter): Promise<DeadLetterView[]> {
    const chosen = await this.#read(channel, filter)
    if (chosen.length === 0) return []
    const producer = this.#kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner,
    })
    await producer.connect()
    try {
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
    } finally {
      await producer.disconnect()
    }
    if (this.#statuses) {
      for (const { view } of chosen) {
        if (view.id)
          await this.#statuses.set(view.id, 'queued', 'requeue', { channel, attempts: 0, lastError: '' })
      }
    }
    return chosen.map((c) => c.view)
  }
}
