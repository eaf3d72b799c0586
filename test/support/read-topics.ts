// Reading whole topics for checks: every record from the log start to the log end as of the call, with
// one throwaway consumer group (deleted afterwards).
import type { Kafka } from 'kafkajs'

export interface TopicRecord {
  partition: number
  offset: number
  value: string
  /** The dead-letter header herald-error-class ('' on other topics). */
  errorClass: string
}

/** Every record of some topics, from their start to their end as of now, with one throwaway consumer. */
export async function readTopics(
  kafka: Kafka,
  topics: readonly string[],
): Promise<Map<string, TopicRecord[]>> {
  const admin = kafka.admin()
  await admin.connect()
  const groupId = `topic-reader-${Math.random().toString(36).slice(2)}`
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 200 })
  const found = new Map(topics.map((t) => [t, [] as TopicRecord[]]))
  try {
    const ends = new Map<string, number>()
    for (const topic of topics) {
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > Number(p.low)) ends.set(`${topic}:${p.partition}`, Number(p.high))
      }
    }
    if (ends.size === 0) return found
    await consumer.connect()
    await consumer.subscribe({ topics: [...topics], fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`reading ${topics.join(', ')} timed out`)), 120_000)
      void consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const at = `${batch.topic}:${batch.partition}`
            const end = ends.get(at) ?? 0
            for (const m of batch.messages) {
              if (Number(m.offset) < end)
                found.get(batch.topic)?.push({
                  partition: batch.partition,
                  offset: Number(m.offset),
                  value: m.value?.toString('utf8') ?? '',
                  errorClass: String(m.headers?.['herald-error-class'] ?? ''),
                })
              if (Number(m.offset) >= end - 1) ends.delete(at)
            }
            if (ends.size === 0) {
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
