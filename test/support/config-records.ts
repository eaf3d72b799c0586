// Every record of a configuration topic (or any topic) with its partition and headers, read from the log
// start to the log end.
import { randomUUID } from 'node:crypto'
import type { Kafka } from 'kafkajs'

export interface ConfigRecord {
  partition: number
  offset: number
  key: string
  value: string | null
  headers: Record<string, string>
}

export async function readConfigRecords(
  kafka: Kafka,
  topic: string,
  timeoutMs = 60_000,
): Promise<ConfigRecord[]> {
  const admin = kafka.admin()
  await admin.connect()
  const groupId = `config-records-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
  const found: ConfigRecord[] = []
  try {
    const ends = new Map<number, number>()
    for (const p of await admin.fetchTopicOffsets(topic)) {
      if (Number(p.high) > Number(p.low)) ends.set(p.partition, Number(p.high))
    }
    if (ends.size === 0) return found
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${topic} not read to its end in ${timeoutMs} ms`)),
        timeoutMs,
      )
      consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch }) => {
            const end = ends.get(batch.partition)
            if (end === undefined) return
            for (const m of batch.messages) {
              const offset = Number(m.offset)
              if (offset >= end) break
              const headers: Record<string, string> = {}
              for (const [k, v] of Object.entries(m.headers ?? {})) headers[k] = String(v)
              found.push({
                partition: batch.partition,
                offset,
                key: m.key?.toString('utf8') ?? '',
                value: m.value?.toString('utf8') ?? null,
                headers,
              })
              if (offset === end - 1) ends.delete(batch.partition)
            }
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
    await admin.disconnect().catch(() => {})
  }
}
