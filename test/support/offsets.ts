// How far a distributor group got, read the way the offset protocol records it: per partition, the next
// offset stored in Redis, else the offset mirrored to Kafka, else the log start (what the next claim would
// use). The protocol moves the stored offset only past finished records (delivered, or dead-lettered), so
// once every partition's stored offset reached its log end nothing below it is still owed: an id missing at
// that point is lost, not late.
import type { Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import type { Admin } from 'kafkajs'

export interface GroupTopic {
  groupId: string
  topic: string
  /** KEY_PREFIX of the services (default herald). */
  keyPrefix?: string
}

export interface PartitionBehind {
  topic: string
  partition: number
  /** Where the group would resume; undefined when it could not be read. */
  next: number | undefined
  logEnd: number
}

/** The next offsets stored in Redis for a group and topic, by partition. */
export async function storedNextOffsets(redis: Redis, target: GroupTopic): Promise<Map<number, number>> {
  const key = redisKeys(target.keyPrefix).offsets(target.groupId, target.topic)
  const hash = await redis.hgetall(key)
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
      storedNextOffsets(redis, target),
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
