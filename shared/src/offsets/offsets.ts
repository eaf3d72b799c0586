// The Redis side of the offset protocol (ARCHITECTURE.md, "Delivery guarantee"): claims with fencing tokens
// and advances of a partition's next offset. Invariant: the stored next is never past the partition's first
// unfinished message. The scripts beside this file are the only writers of the offsets hash.
import { callScript, defineScripts, type Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'

export interface Claim {
  partition: number
  token: number
  /** Stored next offset, or undefined when Redis has none for this partition. */
  next: number | undefined
  /**
   * Set when the partition's offsets belonged to another topic id (the topic was deleted and recreated):
   * the claim dropped its next offset, notes and attempt counters. The id they belonged to.
   */
  replacedTopicId?: string
}

export type AdvanceResult =
  | { status: 'written'; next: number }
  | { status: 'not-higher'; stored: number }
  | { status: 'fenced'; stored: number | undefined }
  | { status: 'token-missing'; stored: number | undefined }

const advanceStatus = { 1: 'written', 0: 'not-higher', [-1]: 'fenced', [-2]: 'token-missing' } as const

export class OffsetStore {
  readonly #redis: Redis
  readonly #key: string
  readonly #attemptsKey: string
  readonly #finishedKey: (partition: number) => string
  /** Topic id of this process's last claim of each partition ('' when it was unknown). */
  readonly #topicIds = new Map<number, string>()

  constructor(redis: Redis, keys: RedisKeys, group: string, topic: string) {
    this.#redis = redis
    this.#key = keys.offsets(group, topic)
    this.#attemptsKey = keys.attempts(group, topic)
    this.#finishedKey = (partition) => keys.finished(group, topic, partition)
    defineScripts(redis, new URL('./', import.meta.url))
  }

  /**
   * Claims the partitions (one script call each, pipelined) and returns their tokens and stored offsets.
   * `topicId` is the topic's current Kafka id ('' when unknown); without it, each partition's id of the
   * last claim is used (a claim again after Redis lost the first one).
   */
  async claim(partitions: readonly number[], claimant: string, topicId?: string): Promise<Claim[]> {
    const pipeline = this.#redis.pipeline()
    const ids = partitions.map((p) => topicId ?? this.#topicIds.get(p) ?? '')
    partitions.forEach((partition, i) => {
      callScript(
        pipeline,
        'claimPartition',
        [this.#key, this.#finishedKey(partition), this.#attemptsKey],
        [partition, claimant, ids[i] ?? ''],
      )
    })
    const replies = (await pipeline.exec()) ?? []
    return partitions.map((partition, i) => {
      const [error, reply] = replies[i] ?? [new Error('no reply')]
      if (error) throw error
      const [token, next, replaced] = reply as [number, number, string]
      this.#topicIds.set(partition, ids[i] ?? '')
      return {
        partition,
        token,
        next: next < 0 ? undefined : next,
        ...(replaced ? { replacedTopicId: replaced } : {}),
      }
    })
  }

  /** Writes `next` for the partition if `token` is current and (mode advance) it is higher than stored. */
  async advance(
    partition: number,
    token: number,
    next: number,
    mode: 'advance' | 'reset' = 'advance',
  ): Promise<AdvanceResult> {
    const [code, stored] = (await callScript(
      this.#redis,
      'advanceOffset',
      [this.#key],
      [partition, token, next, mode],
    )) as [1 | 0 | -1 | -2, number]
    const status = advanceStatus[code]
    switch (status) {
      case 'written':
        return { status, next: stored }
      case 'not-higher':
        return { status, stored }
      default:
        return { status, stored: stored < 0 ? undefined : stored }
    }
  }

  /**
   * Offsets at or above `next` that finished out of order (other recipients' records behind one still in
   * flight or waiting for a retry): the next claim skips them instead of delivering them again. Entries
   * below `next` are dropped. A stale writer can only add offsets that really finished, so reading them
   * never skips an unfinished record — unless the topic was recreated since its claim: notes carry the
   * topic id the partition was claimed under, and are refused once the partition belongs to another.
   */
  async noteFinished(partition: number, offsets: readonly number[], next: number): Promise<void> {
    await callScript(
      this.#redis,
      'noteFinished',
      [this.#key, this.#finishedKey(partition)],
      [partition, this.#topicIds.get(partition) ?? '', next, ...offsets],
    )
  }

  /** Offsets of the partitions that finished at or above their `next` (see noteFinished). */
  async finishedFrom(starts: ReadonlyMap<number, number>): Promise<Map<number, number[]>> {
    const pipeline = this.#redis.pipeline()
    const partitions = [...starts.keys()]
    for (const p of partitions) pipeline.zrangebyscore(this.#finishedKey(p), starts.get(p) ?? 0, '+inf')
    const replies = (await pipeline.exec()) ?? []
    return new Map(
      partitions.map((p, i) => {
        const [error, members] = replies[i] ?? [new Error('no reply')]
        if (error) throw error
        return [p, (members as string[]).map(Number)]
      }),
    )
  }

  /** Forgets the finished offsets of a partition (its log was recreated: they name other records now). */
  async forgetFinished(partition: number): Promise<void> {
    await this.#redis.del(this.#finishedKey(partition))
  }

  /** Stored next offsets by partition (for lag metrics and tests). */
  async read(): Promise<Map<number, number>> {
    const hash = await this.#redis.hgetall(this.#key)
    const offsets = new Map<number, number>()
    for (const [field, value] of Object.entries(hash)) {
      if (/^\d+$/.test(field)) offsets.set(Number(field), Number(value))
    }
    return offsets
  }
}
