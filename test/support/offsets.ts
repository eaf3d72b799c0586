// How far a distributor group got, and what a topic holds, for checks after a run. A group's resume point
// per partition is read the way the offset protocol records it: the next offset stored in Redis, else the
// offset mirrored to Kafka, else the log start (what the next claim would use). The protocol moves the
// stored offset only past finished records (delivered, or dead-lettered, their statuses and events
// written), so once every partition's resume point reached its log end nothing below it is still owed: an
// id missing at that point is lost, not late, and a check of absence is not a race with a slow delivery.
import { randomUUID } from 'node:crypto'
import type { Channel } from '@herald/shared/config'
import type { Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Admin, Kafka } from 'kafkajs'
import type { TestNamespace } from './fixtures.ts'

export interface GroupTopic {
  groupId: string
  topic: string
  /** KEY_PREFIX of the services (default herald). */
  keyPrefix?: string
}

/** A channel's distributor group and main topic in a test namespace. */
export function channelGroup(ns: TestNamespace, channel: Channel): GroupTopic {
  return { groupId: ns.groupId(channel), topic: ns.topics.main(channel), keyPrefix: ns.prefix }
}

export interface PartitionBehind {
  topic: string
  partition: number
  /** Where the group would resume; undefined when it could not be read. */
  next: number | undefined
  logEnd: number
}

/** The next offsets stored in Redis for a group and topic, by partition. */
export async function storedOffsets(redis: Redis, target: GroupTopic): Promise<Map<number, number>> {
  const hash = await redis.hgetall(redisKeys(target.keyPrefix).offsets(target.groupId, target.topic))
  return new Map(
    Object.entries(hash)
      .filter(([field]) => /^\d+$/.test(field))
      .map(([field, value]) => [Number(field), Number(value)]),
  )
}

/** The partitions whose resume point is still below the log end (empty: the group consumed everything). */
export async function partitionsBehind(
  admin: Admin,
  redis: Redis,
  targets: readonly GroupTopic[],
): Promise<PartitionBehind[]> {
  const behind: PartitionBehind[] = []
  for (const target of targets) {
    const [bounds, stored, mirrored] = await Promise.all([
      admin.fetchTopicOffsets(target.topic),
      storedOffsets(redis, target),
      admin.fetchOffsets({ groupId: target.groupId, topics: [target.topic] }),
    ])
    const committed = new Map(
      (mirrored[0]?.partitions ?? [])
        .filter((p) => Number(p.offset) >= 0)
        .map((p) => [p.partition, Number(p.offset)]),
    )
    for (const { partition, low, high } of bounds) {
      const next = stored.get(partition) ?? committed.get(partition) ?? Number(low)
      if (next < Number(high)) behind.push({ topic: target.topic, partition, next, logEnd: Number(high) })
    }
  }
  return behind
}

/**
 * Waits until every partition of every target reached its log end, polling; a read that fails (a broker
 * or Redis coming back) counts as not there yet. Returns what is still behind at the bound (empty when all
 * were consumed): a stall to report as such, not as loss.
 */
export async function waitUntilConsumed(
  admin: Admin,
  redis: Redis,
  targets: readonly GroupTopic[],
  options: { timeoutMs: number; intervalMs?: number },
): Promise<PartitionBehind[]> {
  const deadline = Date.now() + options.timeoutMs
  let behind: PartitionBehind[] = targets.map((t) => ({
    topic: t.topic,
    partition: -1,
    next: undefined,
    logEnd: 0,
  }))
  for (;;) {
    try {
      behind = await partitionsBehind(admin, redis, targets)
      if (behind.length === 0) return []
    } catch {}
    if (Date.now() >= deadline) return behind
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 250))
  }
}

/** `waitUntilConsumed` for one channel of a test namespace, failing when a partition is still behind. */
export async function waitForStoredOffsetsAtEnd(
  admin: Admin,
  redis: Redis,
  ns: TestNamespace,
  channel: Channel,
  timeoutMs = 90_000,
): Promise<void> {
  const behind = await waitUntilConsumed(admin, redis, [channelGroup(ns, channel)], {
    timeoutMs,
    intervalMs: 100,
  })
  if (behind.length > 0) {
    const left = behind.map((b) => `partition ${b.partition} at ${b.next ?? 'unknown'} of ${b.logEnd}`)
    throw new Error(`${ns.topics.main(channel)}: not consumed within ${timeoutMs} ms (${left.join(', ')})`)
  }
}

export interface TopicRecord {
  partition: number
  offset: number
  key: string | undefined
  value: string
  /** The dead-letter header herald-error-class ('' on other topics). */
  errorClass: string
}

/**
 * Every record of some topics, from their log start to their log end as of the call, read by a consumer
 * group of its own (deleted after). Nothing is asserted inside the consumer's callback: an exception there
 * is retried by kafkajs, not reported as a test failure.
 */
export async function readTopics(
  kafka: Kafka,
  topics: readonly string[],
  options: { timeoutMs?: number } = {},
): Promise<Map<string, TopicRecord[]>> {
  const timeoutMs = options.timeoutMs ?? 120_000
  const admin = kafka.admin()
  await admin.connect()
  const groupId = `topic-reader-${randomUUID().slice(0, 8)}`
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 200 })
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
              found.get(batch.topic)?.push({
                partition: batch.partition,
                offset,
                key: m.key?.toString('utf8'),
                value: m.value?.toString('utf8') ?? '',
                errorClass: String(m.headers?.['herald-error-class'] ?? ''),
              })
              if (offset === end - 1) ends.delete(at)
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

/** `readTopics` for one topic. */
export async function readTopic(kafka: Kafka, topic: string): Promise<TopicRecord[]> {
  return (await readTopics(kafka, [topic])).get(topic) ?? []
}
