// A run's records: preloading a topic partition by partition, reading output topics back (log ends, and every
// record up to the end with its key, value (null for a tombstone) and Kafka timestamp), and deleting a run's
// Redis keys.
import { randomUUID } from 'node:crypto'
import type { Channel } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { ensureTopics, type TopicNames, topicNames, topicSpecs } from '@herald/shared/topics'
import { type Admin, Kafka, logLevel, type Message, Partitioners } from 'kafkajs'
import { type Stack, stackFromEnv, startStack, stopStack } from '../dev/lib/stack.ts'

/**
 * Writes `count` records, `build(n)` each, one send per partition and 2,000 records at most: kafkajs retries
 * a whole produce request when one of its partitions fails, which on a just-created topic duplicates the
 * records of the partitions that succeeded. Returns what the topic holds.
 */
export async function preloadByPartition(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  count: number,
  build: (n: number) => { partition: number; message: Message },
): Promise<number> {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  const byPartition = new Map<number, Message[]>()
  for (let n = 0; n < count; n++) {
    const { partition, message } = build(n)
    const list = byPartition.get(partition)
    if (list) list.push(message)
    else byPartition.set(partition, [message])
  }
  for (const [partition, messages] of byPartition) {
    for (let i = 0; i < messages.length; i += 2000) {
      await producer.send({
        topic,
        acks: -1,
        messages: messages.slice(i, i + 2000).map((m) => ({ ...m, partition })),
      })
    }
  }
  await producer.disconnect()
  return logEnd(admin, topic)
}

/** Deletes a run's Redis keys (statuses, offsets, attempts) without blocking the shared server. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  for await (const keys of redis.scanStream({ match: pattern, count: 1000 })) {
    if ((keys as string[]).length > 0) await redis.unlink(...(keys as string[]))
  }
}

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

/** What a process benchmark sets up: the stack (adopted or started), clients, and its own topics. */
export interface BenchStack {
  stack: Stack
  up: Awaited<ReturnType<typeof startStack>>
  prefix: string
  names: TopicNames
  kafka: Kafka
  admin: Admin
  redis: Redis
  /** Deletes the run's topics, disconnects, and stops the stack if this run started it. */
  close(): Promise<void>
}

/** The stack of `npm run infra:up` (or started for this run), and topics `<prefix>.…` of `channels`. */
export async function openBenchStack(
  label: string,
  channels: Channel[],
  partitions: number,
): Promise<BenchStack> {
  const stack = stackFromEnv()
  const up = await startStack(stack, (l) => console.log(`[infra] ${l}`), { adoptRunning: true })
  const prefix = `bench${randomUUID().slice(0, 6)}-${label}`
  const names = topicNames(prefix)
  const kafka = new Kafka({ clientId: 'bench', brokers: [up.brokers], logLevel: logLevel.NOTHING })
  const admin = kafka.admin()
  await admin.connect()
  const redis = createRedis(up.redisUrl)
  await redis.connect()
  await ensureTopics(admin, {
    specs: topicSpecs(names, channels, 1),
    partitions,
    replication: 1,
    brokers: [up.brokers],
    logger: createLogger({ service: 'bench', level: 'silent' }),
  })
  return {
    stack,
    up,
    prefix,
    names,
    kafka,
    admin,
    redis,
    close: async () => {
      await admin
        .deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) })
        .catch(() => {})
      await admin.disconnect()
      redis.disconnect()
      if (up.startedKafka || up.startedRedis)
        await stopStack(stack, { kafka: up.startedKafka, redis: up.startedRedis })
    },
  }
}
