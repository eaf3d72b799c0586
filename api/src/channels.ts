// What GET /api/v1/channels answers: per channel, the distributors' lag on every partition (log end minus the
// next offset they stored in Redis, as their own lag exporter computes it), the age of the oldest unfinished
// record, how many replicas are in the channel's consumer group, and the throughput: records the distributors
// finished per second (delivered, dead-lettered or skipped), from how far the sum of their stored next offsets
// moved between this api's snapshots over the last ten seconds. The next offsets are what the distributors
// commit once a record is done, so this counts work finished, not records written; and it needs no extra
// reads, unlike asking the events topic. And the state of every breaker of the distributor replicas (the
// channel's own and one per named destination), as they publish them (distributor/src/breaker-board.ts).
//
// Consoles poll this, possibly several at once: one snapshot is computed at a time and reused for a second,
// and the write time of the record at a stuck `next` is remembered, so a distributor that stopped costs one
// bisection of broker timestamps, not one per poll.
import type { Channel } from '@herald/shared/config'
import { readPartitionLags, recordTimeOf } from '@herald/shared/offsets/lag'
import { OffsetStore } from '@herald/shared/offsets/offsets'
import type { Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'
import type { TopicNames } from '@herald/shared/topics'
import type { Admin } from 'kafkajs'

export interface PartitionView {
  partition: number
  /** The first offset not finished yet (what the distributors stored). */
  next: number
  /** The log end: the offset the next record written will get. */
  end: number
  lag: number
  /** Age of the record at `next`, when the partition lags; else null. */
  oldestUnfinishedAgeSeconds: number | null
}

export interface BreakerView {
  /** The destination (a Slack or webhook name); null for the channel's own breaker (the provider). */
  destination: string | null
  state: 'closed' | 'open' | 'half-open'
  /** When an open breaker lets a probe through; else null. */
  openUntil: string | null
  reason: string
  /** The distributor replica whose breaker this is: each replica keeps its own. */
  replica: string
}

export interface ChannelView {
  channel: Channel
  topic: string
  group: string
  /** Members of the consumer group (distributor replicas), null when the broker could not tell. */
  replicas: number | null
  lag: number
  oldestUnfinishedAgeSeconds: number | null
  /**
   * Records finished per second (the sum of stored next offsets, per second, between this snapshot and the
   * oldest one of the last ten seconds, else the previous one); null on the first snapshot.
   */
  deliveriesPerSecond: number | null
  /** Breakers the live replicas published, by destination (the channel's first) then replica. */
  breakers: BreakerView[]
  partitions: PartitionView[]
}

/** How far back throughput looks: long enough to smooth one-second polls, short enough to follow a burst. */
const throughputWindowMs = 10_000

export interface ChannelsSnapshot {
  at: string
  channels: ChannelView[]
}

/** The consumer group of a channel's distributors (distributor/src/main.ts names it the same way). */
export const distributorGroup = (keyPrefix: string, channel: Channel) => `${keyPrefix}.distributor.${channel}`

export class ChannelLagReader {
  readonly #admin: Admin
  readonly #topics: TopicNames
  readonly #channels: readonly Channel[]
  readonly #keyPrefix: string
  readonly #redis: Redis
  readonly #keys: RedisKeys
  readonly #stores = new Map<Channel, OffsetStore>()
  /** `topic:partition:offset` → when that record was written (ms). */
  readonly #recordTimes = new Map<string, number>()
  /** Per channel, (time, sum of stored next offsets) of recent snapshots, oldest first. */
  readonly #finished = new Map<Channel, Array<{ at: number; next: number }>>()
  #last: { at: number; snapshot: Promise<ChannelsSnapshot> } | undefined

  constructor(options: {
    admin: Admin
    redis: Redis
    keys: RedisKeys
    topics: TopicNames
    channels: readonly Channel[]
    keyPrefix: string
  }) {
    this.#admin = options.admin
    this.#topics = options.topics
    this.#channels = options.channels
    this.#keyPrefix = options.keyPrefix
    this.#redis = options.redis
    this.#keys = options.keys
    for (const channel of options.channels) {
      const group = distributorGroup(options.keyPrefix, channel)
      this.#stores.set(
        channel,
        new OffsetStore(options.redis, options.keys, group, options.topics.main(channel)),
      )
    }
  }

  /** Every channel's lag, at most a second old. */
  snapshot(): Promise<ChannelsSnapshot> {
    const now = Date.now()
    if (this.#last && now - this.#last.at < 1000) return this.#last.snapshot
    const snapshot = this.#read(now)
    this.#last = { at: now, snapshot }
    // A failure is not kept: the next request tries again.
    snapshot.catch(() => {
      if (this.#last?.snapshot === snapshot) this.#last = undefined
    })
    return snapshot
  }

  async #read(now: number): Promise<ChannelsSnapshot> {
    const groups = this.#channels.map((c) => distributorGroup(this.#keyPrefix, c))
    const members = await this.#admin
      .describeGroups(groups)
      .then((d) => new Map(d.groups.map((g) => [g.groupId, g.members.length])))
      .catch(() => undefined)
    const wanted = new Set<string>()
    const channels = await Promise.all(
      this.#channels.map(async (channel): Promise<ChannelView> => {
        const topic = this.#topics.main(channel)
        const group = distributorGroup(this.#keyPrefix, channel)
        const store = this.#stores.get(channel) as OffsetStore
        const [read, breakers] = await Promise.all([
          readPartitionLags(this.#admin, store, topic, group),
          this.#breakers(channel, now),
        ])
        const lags = read.sort((a, b) => a.partition - b.partition)
        const partitions = await Promise.all(
          lags.map(async (l): Promise<PartitionView> => {
            if (l.lag === 0) return { ...this.#view(l), oldestUnfinishedAgeSeconds: null }
            const key = `${topic}:${l.partition}:${l.next}`
            wanted.add(key)
            let time = this.#recordTimes.get(key)
            if (time === undefined) {
              time = await recordTimeOf(this.#admin, topic, l.partition, l.next, now)
              this.#recordTimes.set(key, time)
            }
            return {
              ...this.#view(l),
              oldestUnfinishedAgeSeconds: Math.max(0, Math.round((now - time) / 1000)),
            }
          }),
        )
        const ages = partitions.map((p) => p.oldestUnfinishedAgeSeconds).filter((a) => a !== null)
        const next = partitions.reduce((sum, p) => sum + p.next, 0)
        return {
          channel,
          topic,
          group,
          replicas: members?.get(group) ?? null,
          lag: partitions.reduce((sum, p) => sum + p.lag, 0),
          oldestUnfinishedAgeSeconds: ages.length > 0 ? Math.max(...ages) : null,
          deliveriesPerSecond: this.#throughput(channel, now, next),
          breakers,
          partitions,
        }
      }),
    )
    // Forget the offsets the distributors moved past.
    for (const key of this.#recordTimes.keys()) if (!wanted.has(key)) this.#recordTimes.delete(key)
    return { at: new Date(now).toISOString(), channels }
  }

  /** The breakers published for a channel, without those whose replica stopped refreshing them. */
  async #breakers(channel: Channel, now: number): Promise<BreakerView[]> {
    const hash = await this.#redis.hgetall(this.#keys.breakers(channel))
    const views: BreakerView[] = []
    for (const value of Object.values(hash)) {
      let parsed: (BreakerView & { expiresAt?: unknown }) | undefined
      try {
        parsed = JSON.parse(value)
      } catch {
        continue
      }
      if (!parsed || typeof parsed.expiresAt !== 'number' || parsed.expiresAt <= now) continue
      const { destination, state, openUntil, reason, replica } = parsed
      views.push({ destination, state, openUntil, reason, replica })
    }
    const order = (d: string | null) => (d === null ? '' : ` ${d}`)
    return views.sort(
      (a, b) =>
        order(a.destination).localeCompare(order(b.destination)) || a.replica.localeCompare(b.replica),
    )
  }

  /** Records finished per second on a channel, from its earlier snapshots; remembers this one. */
  #throughput(channel: Channel, now: number, next: number): number | null {
    const samples = this.#finished.get(channel) ?? []
    // Keep the newest sample older than the window too: with slow polls it is the only base there is.
    while (samples.length > 1 && (samples[1]?.at ?? now) <= now - throughputWindowMs) samples.shift()
    const base = samples[0]
    samples.push({ at: now, next })
    this.#finished.set(channel, samples)
    if (base === undefined || now <= base.at) return null
    // Offsets only go back when a topic is recreated or Redis lost them: no throughput to tell then.
    const rate = (Math.max(0, next - base.next) * 1000) / (now - base.at)
    return Math.round(rate * 10) / 10
  }

  #view(l: { partition: number; next: number; high: number; lag: number }) {
    return { partition: l.partition, next: l.next, end: l.high, lag: l.lag }
  }
}
