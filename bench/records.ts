// Reading a run's output topics back: log ends, and every record up to the end with its key, value
// (null for a tombstone) and Kafka timestamp.
import { randomUUID } from 'node:crypto'
import type { Admin, Kafka } from 'kafkajs'

export interface ReadRecord {
  topic: string
  partition: number
  offset: number
  key: string
  /** null for a tombstone. */
  value: string | null
  /** The record's Kafka timestamp (the producer's clock, ms). */
  timestamp: number
}

/** Sum of the high watermarks of a topic. */
export async function logEnd(admin: Admin, topic: string): Promise<number> {
  return (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0)
}

/** Every record of `topics` up to their log ends now, in offset order per partition. */
export async function readRecords(
  kafka: Kafka,
  admin: Admin,
  topics: readonly string[],
  timeoutMs = 180_000,
): Promise<ReadRecord[]> {
  const ends = new Map<string, number>()
  for (const topic of topics)
    for (const p of await admin.fetchTopicOffsets(topic))
      if (Number(p.high) > Number(p.low)) ends.set(`${topic}:${p.partition}`, Number(p.high))
  const found: ReadRecord[] = []
  if (ends.size === 0) return found
  const groupId = `bench-reader-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
  try {
    await consumer.connect()
    await consumer.subscribe({ topics: [...topics], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const left = [...ends].map(([at, end]) => `${at} to ${end}`).join(', ')
        reject(new Error(`not read to the end within ${timeoutMs} ms (${left} left)`))
      }, timeoutMs)
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const at = `${batch.topic}:${batch.partition}`
            const end = ends.get(at)
            if (end === undefined) return
            for (const m of batch.messages) {
              const offset = Number(m.offset)
              if (offset >= end) break
              found.push({
                topic: batch.topic,
                partition: batch.partition,
                offset,
                key: m.key?.toString('utf8') ?? '',
                value: m.value === null ? null : m.value.toString('utf8'),
                timestamp: Number(m.timestamp),
              })
            }
            if (Number(batch.lastOffset()) >= end - 1) ends.delete(at)
            if (ends.size === 0) {
              clearTimeout(timer)
              resolve()
            }
          },
        })
        .catch((error: unknown) => {
          clearTimeout(timer)
          reject(error)
        })
    })
    return found
  } finally {
    await consumer.disconnect().catch(() => {})
    await admin.deleteGroups([groupId]).catch(() => {})
  }
}
