// Topics, records and cleanup for tests that run Herald's services on their own topic and key prefix.
import { randomUUID } from 'node:crypto'
import type { Channel } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { type NotificationRecord, normaliseRecipient } from '@herald/shared/notification'
import type { Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { ensureTopics, topicNames, topicSpecs } from '@herald/shared/topics'
import { type Admin, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs'
import { eventually } from './service-process.ts'

export interface TestNamespace {
  prefix: string
  topics: ReturnType<typeof topicNames>
  groupId: (channel: Channel) => string
}

export function namespace(label: string): TestNamespace {
  const prefix = `t${randomUUID().slice(0, 8)}-${label}`
  return { prefix, topics: topicNames(prefix), groupId: (channel) => `${prefix}.distributor.${channel}` }
}

export function testKafka(brokers: string): Kafka {
  return new Kafka({ clientId: 'herald-test', brokers: [brokers], logLevel: logLevel.NOTHING })
}

/**
 * Creates the namespace's topics with Herald's settings. Returns once every partition has a leader that
 * answers offset requests (ensureTopics waits for that); a topic made by hand waits with `waitForLeaders`
 * from @herald/shared/topics.
 */
export async function createTopics(
  admin: Admin,
  ns: TestNamespace,
  partitions: number,
  brokers: string,
): Promise<void> {
  await ensureTopics(admin, {
    specs: topicSpecs(ns.topics, ['email', 'sms', 'slack'], 1),
    partitions,
    replication: 1,
    brokers: [brokers],
    logger: createLogger({ service: 'test', level: 'silent' }),
  })
}

export async function deleteNamespace(
  admin: Admin,
  redis: Redis | undefined,
  ns: TestNamespace,
): Promise<void> {
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${ns.prefix}.`))
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
  if (redis) {
    const keys = await redis.keys(`${ns.prefix}:*`)
    if (keys.length > 0) await redis.del(...keys)
  }
}

export function emailRecord(
  id: string,
  to: string,
  extra: Partial<NotificationRecord> = {},
): NotificationRecord {
  return {
    v: 1,
    id,
    channel: 'email',
    to,
    subject: `test ${id}`,
    message: `body of ${id}`,
    createdAt: new Date().toISOString(),
    ...extra,
  }
}

export async function newProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    allowAutoTopicCreation: false,
    createPartitioner: Partitioners.DefaultPartitioner,
  })
  await producer.connect()
  return producer
}

/** Produces records with acks=all, keyed by recipient, optionally to one partition. */
export async function produceRecords(
  producer: Producer,
  topic: string,
  records: NotificationRecord[],
  partition?: number,
): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: records.map((r) => ({
      key: normaliseRecipient(r.channel, r.to),
      value: JSON.stringify(r),
      ...(partition !== undefined ? { partition } : {}),
    })),
  })
}

/** Low and high watermark per partition. */
export async function watermarks(
  admin: Admin,
  topic: string,
): Promise<Map<number, { low: number; high: number }>> {
  const offsets = await admin.fetchTopicOffsets(topic)
  return new Map(offsets.map((o) => [o.partition, { low: Number(o.low), high: Number(o.high) }]))
}

/** Next offset per partition that the channel's distributor group stored in Redis. */
export async function storedOffsets(
  redis: Redis,
  ns: TestNamespace,
  channel: Channel,
): Promise<Map<number, number>> {
  const hash = await redis.hgetall(redisKeys(ns.prefix).offsets(ns.groupId(channel), ns.topics.main(channel)))
  return new Map(
    Object.entries(hash)
      .filter(([field]) => /^\d+$/.test(field))
      .map(([field, value]) => [Number(field), Number(value)]),
  )
}

/**
 * Waits until the channel's stored offset of every partition reached the log end as it is now. The
 * distributor stores an offset only after the records below it finished (statuses, events and dead letters
 * written), so from then on whatever the records produced so far cause has happened: a check of absence
 * after this is not a race with a slow delivery.
 */
export async function waitForStoredOffsetsAtEnd(
  admin: Admin,
  redis: Redis,
  ns: TestNamespace,
  channel: Channel,
  timeoutMs = 90_000,
): Promise<void> {
  const ends = await watermarks(admin, ns.topics.main(channel))
  await eventually(
    `${ns.topics.main(channel)}: stored offsets at the log end`,
    async () => {
      const stored = await storedOffsets(redis, ns, channel)
      return [...ends].every(([p, { low, high }]) => high === low || (stored.get(p) ?? 0) >= high)
        ? true
        : undefined
    },
    timeoutMs,
    100,
  )
}

export interface ReadRecord {
  partition: number
  offset: number
  key: string | undefined
  value: string
}

/**
 * Every record of a topic from its log start up to its log end as it is when called, read by a consumer
 * group of its own (deleted after). Nothing is asserted inside the consumer's callback: an exception there
 * is retried by kafkajs, not reported as a test failure.
 */
export async function readTopic(
  kafka: Kafka,
  admin: Admin,
  topic: string,
  timeoutMs = 30_000,
): Promise<ReadRecord[]> {
  const remaining = new Map(
    [...(await watermarks(admin, topic))].filter(([, w]) => w.high > w.low).map(([p, w]) => [p, w.high]),
  )
  const records: ReadRecord[] = []
  if (remaining.size === 0) return records
  const groupId = `${topic}.reader-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false })
  await consumer.connect()
  try {
    await consumer.subscribe({ topic, fromBeginning: true })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const left = [...remaining].map(([p, end]) => `partition ${p} to ${end}`).join(', ')
        reject(new Error(`${topic}: not read to its end within ${timeoutMs} ms (${left} left)`))
      }, timeoutMs)
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ partition, message }) => {
            const end = remaining.get(partition)
            const offset = Number(message.offset)
            if (end === undefined || offset >= end) return
            records.push({
              partition,
              offset,
              key: message.key?.toString('utf8'),
              value: message.value?.toString('utf8') ?? '',
            })
            if (offset === end - 1) remaining.delete(partition)
            if (remaining.size === 0) {
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
  } finally {
    await consumer.disconnect()
    await admin.deleteGroups([groupId]).catch(() => {})
  }
  return records
}

/** Counts how often each value occurs. */
export function countBy<T>(values: Iterable<T>): Map<T, number> {
  const counts = new Map<T, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  return counts
}

/** Environment for a Herald service on a test namespace, pointed at the given stand-ins. */
export function serviceEnv(
  ns: TestNamespace,
  standIns: Record<string, string>,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    KAFKA_BROKERS: process.env.KAFKA_BROKERS ?? '127.0.0.1:9092',
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    TOPIC_PREFIX: ns.prefix,
    KEY_PREFIX: ns.prefix,
    TOPIC_PARTITIONS: '4',
    METRICS_PORT: '0',
    SESSION_TIMEOUT_MS: '6000',
    SHUTDOWN_TIMEOUT_MS: '5000',
    RETRY_BASE_MS: '100',
    LOG_LEVEL: 'info',
    ...standIns,
    ...extra,
  }
}
