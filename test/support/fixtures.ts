// Topics, records and cleanup for tests that run Herald's services on their own topic and key prefix.
import { randomUUID } from 'node:crypto'
import type { Channel } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { type NotificationRecord, normaliseRecipient } from '@herald/shared/notification'
import type { Redis } from '@herald/shared/redis/client'
import { ensureTopics, topicNames, topicSpecs } from '@herald/shared/topics'
import { type Admin, Kafka, logLevel, Partitioners, type Producer } from 'kafkajs'
import { type Sandbox, startSandbox } from '../../dev/standins/index.ts'

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
  return new Kafka({ clientId: 'herald-test', brokers: brokers.split(','), logLevel: logLevel.NOTHING })
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
  // 1 on the single-node stack; npm run test:cluster sets 3.
  const replication = Number(process.env.TOPIC_REPLICATION ?? 1)
  await ensureTopics(admin, {
    specs: topicSpecs(ns.topics, ['email', 'sms', 'slack'], replication),
    partitions,
    replication,
    brokers: brokers.split(','),
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

/** An SMS record; its text is `sms <id>` unless `extra` says otherwise. */
export function smsRecord(
  id: string,
  to: string,
  extra: Partial<NotificationRecord> = {},
): NotificationRecord {
  return { v: 1, id, channel: 'sms', to, message: `sms ${id}`, createdAt: new Date().toISOString(), ...extra }
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

/** Counts how often each value occurs. */
export function countBy<T>(values: Iterable<T>): Map<T, number> {
  const counts = new Map<T, number>()
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1)
  return counts
}

/** The stand-ins (SMTP, Twilio, Slack, webhook) on free ports, quiet. */
export function startTestSandbox(): Promise<Sandbox> {
  return startSandbox({ quiet: true, ports: { smtp: 0, smtpHttp: 0, twilio: 0, slack: 0, webhook: 0 } })
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
    // On the clustered stack (npm run test:cluster): the Redis Cluster and replicated topics.
    ...(process.env.REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES } : {}),
    ...(process.env.TOPIC_REPLICATION ? { TOPIC_REPLICATION: process.env.TOPIC_REPLICATION } : {}),
    ...standIns,
    ...extra,
  }
}
