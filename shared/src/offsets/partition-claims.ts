// The offset protocol on the consumer side, one implementation for every consumer that must not lose a record
// (distributors, router): claim on every join (rule 1), the tracker of each claimed partition (rules 2 and
// 4), advance in Redis under the fencing token (rule 4), mirror to Kafka (rule 5), fence (rule 6). The
// service owns what a record means and its batch loop; it asks this class where a partition stands, finishes
// offsets on its tracker, and calls `advance` once their outcomes are durable. See ARCHITECTURE.md,
// "Delivery guarantee: the offset protocol".
import { hostname } from 'node:os'
import { setTimeout as delay } from 'node:timers/promises'
import type { Admin, Consumer, ConsumerGroupJoinEvent } from 'kafkajs'
import type { Logger } from '../logger.ts'
import type { Redis } from '../redis/client.ts'
import type { RedisKeys } from '../redis/keys.ts'
import type { OffsetMetrics } from './metrics.ts'
import { OffsetStore } from './offsets.ts'
import { readTopicId } from './topic-id.ts'
import { PartitionTracker } from './tracker.ts'

/** A claimed partition: its fencing token and tracker. Replaced on every claim; old ones are dropped. */
export interface PartitionState {
  partition: number
  token: number
  tracker: PartitionTracker
  /** Highest next offset Redis accepted from this claim. */
  recorded: number
  /** Highest next offset committed to Kafka (the mirror, rule 5); behind `recorded` until a commit works. */
  mirrored: number
  fenced: boolean
  joinSeq: number
  /** Highest offset that may be noted in Redis as finished beyond next (-1: none), so the set is pruned. */
  notedMax: number
  /** A claim again in progress after Redis lost the token (one at a time: two would fence each other). */
  reclaiming?: Promise<void>
  /** The commit of the mirror in progress (one at a time, so an older offset never lands after a newer one). */
  mirroring?: Promise<void>
}

/** Where a claimed partition starts instead of the protocol's choice: a negative control, tests only. */
export type ClaimStartFault = (claim: {
  chosen: number
  committed: number | undefined
  logEnd: number
}) => number

export interface PartitionClaimsOptions {
  consumer: Consumer
  admin: Admin
  redis: Redis
  keys: RedisKeys
  groupId: string
  topic: string
  /** Bootstrap brokers, for the topic id (topic-id.ts). */
  brokers: readonly string[]
  metrics: OffsetMetrics
  logger: Logger
  /** Aborted when the consumer stops: claims and fences stop retrying. */
  signal: AbortSignal
  claimStart?: ClaimStartFault
  /** Called on every join, after the partitions were paused and dropped, with the partitions assigned. */
  onJoin?(assigned: readonly number[], event: ConsumerGroupJoinEvent): void
}

/** The metadata of an offset this consumer mirrored to Kafka: only those may win over Redis at a claim. */
const mirrorMetadata = (topicId: string): string => `herald-mirror:${topicId}`

/** A claim stuck on an unresponsive broker or Redis must not hold the partitions paused forever. */
const claimTimeoutMs = 30_000

/**
 * How long an advance waits for its mirror commit. A commit takes milliseconds; when the group coordinator
 * died, kafkajs retries it against the dead broker for minutes (the consumer's retries, up to 30 s apart),
 * and a batch that waited would neither deliver nor let the member rejoin the group under the new
 * coordinator (issue 20). Past this the commit goes on in the background.
 */
const mirrorWaitMs = 2_000

export class PartitionClaims {
  readonly #o: PartitionClaimsOptions
  readonly #log: Logger
  readonly #offsets: OffsetStore
  readonly #partitions = new Map<number, PartitionState>()
  #joinSeq = 0
  #joins: Promise<void> = Promise.resolve()
  #memberId = ''
  #lastHeartbeatAt = 0
  /** Per partition, the contiguous prefix this process finished under its last claims (and which topic). */
  readonly #finishedPrefix = new Map<number, number>()
  #topicId: string | undefined

  constructor(options: PartitionClaimsOptions) {
    this.#o = options
    this.#log = options.logger
    this.#offsets = new OffsetStore(options.redis, options.keys, options.groupId, options.topic)
  }

  get offsets(): OffsetStore {
    return this.#offsets
  }

  /** Partitions claimed now, ascending. */
  get held(): number[] {
    return [...this.#partitions.keys()].sort((a, b) => a - b)
  }

  /** The current claims. */
  states(): PartitionState[] {
    return [...this.#partitions.values()]
  }

  /** The current claim of `partition`, if this consumer holds it. */
  get(partition: number): PartitionState | undefined {
    return this.#partitions.get(partition)
  }

  /** True while `state` is the current, unfenced claim of its partition. */
  isCurrent(state: PartitionState): boolean {
    return !state.fenced && this.#partitions.get(state.partition) === state
  }

  /** Listens to the consumer's joins and heartbeats and to Redis coming back; call before `consumer.run`. */
  attach(): void {
    const c = this.#o.consumer
    c.on(c.events.GROUP_JOIN, (event) => this.#onGroupJoin(event))
    c.on(c.events.HEARTBEAT, () => {
      this.#lastHeartbeatAt = Date.now()
    })
    this.#o.redis.on('ready', this.#onRedisReady)
  }

  detach(): void {
    this.#o.redis.off('ready', this.#onRedisReady)
  }

  /**
   * Redis is back after a disconnect. It may have lost its last writes (a crash before the AOF fsync, a
   * failover to a replica that lagged) or everything (restarted empty): the offsets of the partitions held
   * here are written again at once, so an idle partition does not keep an older offset (what lag metrics
   * and the next claim read) until its next record; the advance writes only a higher offset.
   */
  readonly #onRedisReady = (): void => {
    for (const state of this.#partitions.values()) {
      if (state.fenced) continue
      state.recorded = -1
      void this.advance(state).catch((error: unknown) =>
        this.#log.warn({ err: error, partition: state.partition }, 'recording the offset again failed'),
      )
    }
  }

  // --- Rule 1: claim on every join ---------------------------------------------------------------------

  #onGroupJoin(event: ConsumerGroupJoinEvent): void {
    const { topic, consumer } = this.#o
    const assigned = [...(event.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b)
    // Synchronously, before kafkajs fetches again: nothing is fetched until the claim sought every partition.
    if (assigned.length > 0) consumer.pause([{ topic, partitions: assigned }])
    const seq = ++this.#joinSeq
    this.#memberId = event.payload.memberId
    // Every rebalance drops kafkajs' positions, even for kept partitions: every claim starts over. What this
    // process finished is remembered: a claim that finds less in Redis (emptied, or behind after a failover)
    // starts from there rather than from the mirror in Kafka, which may be further behind.
    for (const state of this.#partitions.values())
      this.#finishedPrefix.set(
        state.partition,
        Math.max(state.tracker.next, this.#finishedPrefix.get(state.partition) ?? 0),
      )
    this.#partitions.clear()
    this.#o.metrics.partitionsHeld.set({ topic }, 0)
    this.#o.onJoin?.(assigned, event)
    this.#log.info({ assigned, memberId: this.#memberId }, 'joined the group; claiming partitions')
    this.#joins = this.#joins.then(() => this.#claimUntilDone(seq, assigned))
  }

  /** One join at a time; a failed claim is retried until it succeeds or a newer join supersedes it. */
  async #claimUntilDone(seq: number, partitions: number[]): Promise<void> {
    for (let attempt = 1; seq === this.#joinSeq && !this.#o.signal.aborted; attempt++) {
      try {
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`claim timed out after ${claimTimeoutMs / 1000} s`)),
            claimTimeoutMs,
          )
        })
        await Promise.race([this.#claim(seq, partitions), timeout]).finally(() => clearTimeout(timer))
        return
      } catch (error) {
        this.#o.metrics.claims.inc({ source: 'failed' }, partitions.length)
        const wait = Math.min(10_000, 250 * 2 ** Math.min(attempt, 6))
        this.#log.error({ err: error, attempt, waitMs: wait }, 'claiming partitions failed; retrying')
        await delay(wait, undefined, { signal: this.#o.signal }).catch(() => {})
      }
    }
  }

  async #claim(seq: number, partitions: number[]): Promise<void> {
    if (partitions.length === 0) return
    const { topic, admin, metrics } = this.#o
    const topicId = await this.#currentTopicId()
    // What this process finished counts only for the same topic (its id known both times).
    if (!topicId || topicId !== this.#topicId) this.#finishedPrefix.clear()
    this.#topicId = topicId || undefined
    const claims = await this.#offsets.claim(partitions, `${this.#memberId}@${hostname()}`, topicId)
    // The mirror in Kafka is read on every claim, not only when Redis has nothing: a Redis that failed over
    // or crashed before its AOF was written may hold an offset behind the one it acknowledged and that was
    // then mirrored. Only Herald's own mirror of this topic (its metadata says so) may win over Redis: an
    // offset set by a tool (a reset to the latest) names no finished records.
    const committed = new Map<number, number>()
    const mirroredHere = new Set<number>()
    const [offsets] = await admin.fetchOffsets({ groupId: this.#o.groupId, topics: [topic] })
    for (const p of offsets?.partitions ?? []) {
      const offset = Number(p.offset)
      if (offset < 0) continue
      committed.set(p.partition, offset)
      if (topicId && p.metadata === mirrorMetadata(topicId)) mirroredHere.add(p.partition)
    }
    const bounds = new Map(
      (await admin.fetchTopicOffsets(topic)).map((p) => [
        p.partition,
        { low: Number(p.low), high: Number(p.high) },
      ]),
    )
    // Offsets earlier claims finished out of order: the new trackers skip them.
    const finishedBefore = await this.#offsets.finishedFrom(
      new Map(claims.map((c) => [c.partition, c.next ?? 0])),
    )
    if (seq !== this.#joinSeq) return // a newer join owns the partitions now
    const recordNow: PartitionState[] = []
    for (const claim of claims) {
      const { low, high } = bounds.get(claim.partition) ?? { low: 0, high: 0 }
      const log = this.#log.child({ partition: claim.partition })
      const recreated = claim.replacedTopicId !== undefined
      if (recreated) {
        // The claim dropped the offset, notes and attempt counters of the old topic; Kafka's committed
        // offset may name the old topic's records too: start at the log start.
        metrics.topicMismatch.inc()
        log.error(
          { storedTopicId: claim.replacedTopicId, topicId, logStart: low, logEnd: high },
          'ALERT: stored offsets belong to an earlier topic of this name (deleted and recreated); reset to the log start',
        )
      }
      const fromKafka = recreated ? undefined : committed.get(claim.partition)
      let source = recreated
        ? 'reset'
        : claim.next !== undefined
          ? 'redis'
          : fromKafka !== undefined
            ? 'kafka'
            : 'log_start'
      let next = claim.next ?? fromKafka ?? low
      let recorded = claim.next ?? -1
      if (
        claim.next !== undefined &&
        fromKafka !== undefined &&
        mirroredHere.has(claim.partition) &&
        fromKafka > next &&
        fromKafka <= high
      ) {
        log.warn(
          { stored: claim.next, committed: fromKafka },
          'Redis holds less than the offset mirrored to Kafka (it lost its last writes: a crash before fsync, a failover): starting at the mirror',
        )
        next = fromKafka
        source = 'kafka'
      }
      const remembered = this.#finishedPrefix.get(claim.partition)
      if (
        !recreated &&
        topicId !== undefined &&
        remembered !== undefined &&
        remembered > next &&
        remembered <= high
      ) {
        log.warn(
          { stored: claim.next, committed: fromKafka, finishedHere: remembered },
          'Redis holds less than this process finished (emptied or failed over): starting after what it finished',
        )
        next = remembered
        source = 'memory'
      }
      if (this.#o.claimStart) next = this.#o.claimStart({ chosen: next, committed: fromKafka, logEnd: high })
      if (next > high) {
        // Topic recreated or broker data lost: keeping next would skip every new record below it.
        metrics.offsetOutOfRange.inc({ kind: 'above_end' })
        const reset = fromKafka !== undefined && fromKafka <= high ? fromKafka : low
        log.error(
          { stored: next, logStart: low, logEnd: high, resetTo: reset },
          'ALERT: stored offset is above the log end (topic recreated or data lost?); not skipping: resetting',
        )
        await this.#offsets.advance(claim.partition, claim.token, reset, 'reset')
        await this.#offsets.forgetFinished(claim.partition)
        finishedBefore.delete(claim.partition)
        this.#finishedPrefix.delete(claim.partition)
        next = reset
        recorded = reset // what Redis holds now: later advances compare with it
        source = 'reset'
      }
      metrics.claims.inc({ source })
      const state: PartitionState = {
        partition: claim.partition,
        token: claim.token,
        tracker: new PartitionTracker(next, finishedBefore.get(claim.partition) ?? []),
        recorded,
        // After a reset the mirror is moved down to the reset offset too (at once, below): a mirror left
        // above it would win over Redis at a later claim once the log grows past it, skipping new records.
        mirrored: source === 'reset' ? -1 : (fromKafka ?? -1),
        fenced: false,
        joinSeq: seq,
        notedMax: (finishedBefore.get(claim.partition) ?? []).reduce((a, b) => Math.max(a, b), -1),
      }
      this.#partitions.set(claim.partition, state)
      this.#seekWithin(state, 'next', low)
      // Past what Redis holds (expired records, or what this process finished before): recorded at once, or a
      // partition with nothing more to fetch would never move its stored offset there.
      if (
        state.tracker.next > next ||
        source === 'memory' ||
        source === 'reset' ||
        (source === 'kafka' && claim.next !== undefined)
      )
        recordNow.push(state)
      next = state.tracker.next
      log.info({ next, source, token: claim.token, logStart: low, logEnd: high }, 'claimed partition')
    }
    this.#o.consumer.resume([{ topic, partitions }])
    metrics.partitionsHeld.set({ topic }, this.#partitions.size)
    // Recorded at once, so the next claim neither counts the expired records again nor starts before what
    // this process finished.
    for (const state of recordNow) {
      await this.advance(state).catch((error: unknown) =>
        this.#log.warn({ err: error, partition: state.partition }, 'recording the offset failed'),
      )
    }
  }

  /** The topic's Kafka id, which stored offsets are tied to; '' (nothing checked) when it cannot be read. */
  async #currentTopicId(): Promise<string> {
    try {
      return await readTopicId(this.#o.brokers, this.#o.topic)
    } catch (error) {
      this.#log.warn(
        { err: error },
        'topic id not read: stored offsets are not checked against a recreated topic in this claim',
      )
      return ''
    }
  }

  /**
   * Every seek of a claimed partition ends here: to its first unfinished offset (`next`) or to the next one
   * it expects, never below the log start. Records below the log start that were not finished are gone
   * (retention, deleted records): they are counted and alerted, and the tracker moves past them; otherwise
   * kafkajs' reset to the log start would look like a gap, and seeking back to it would loop forever.
   */
  #seekWithin(state: PartitionState, to: 'next' | 'expected', logStart: number | undefined): void {
    const { tracker } = state
    const from = tracker.next
    if (logStart !== undefined && from < logStart) {
      const expired = tracker.expireBelow(logStart)
      this.#o.metrics.offsetOutOfRange.inc({ kind: 'below_start' })
      if (expired > 0) {
        this.#o.metrics.expiredRecords.inc(expired)
        this.#log.error(
          { partition: state.partition, next: from, logStart, expired },
          'ALERT: records expired by retention before they were finished',
        )
      }
    }
    const offset = to === 'next' ? tracker.next : tracker.expected
    this.#o.consumer.seek({ topic: this.#o.topic, partition: state.partition, offset: String(offset) })
  }

  /**
   * Seeks the partitions whose claim is current to `next` (their first unfinished offset) or `expected`,
   * with their log start read from the broker (if that fails, the seek goes ahead unchecked: kafkajs resets
   * an offset out of range and the gap that follows checks again). Records the offset when records expired.
   * Returns the partitions it sought.
   */
  async seekWithinLog(states: PartitionState[], to: 'next' | 'expected'): Promise<PartitionState[]> {
    let starts: Map<number, number> | undefined
    try {
      const offsets = await this.#o.admin.fetchTopicOffsets(this.#o.topic)
      starts = new Map(offsets.map((p) => [p.partition, Number(p.low)]))
    } catch (error) {
      this.#log.warn({ err: error }, 'log start not read; seeking without checking it')
    }
    const current = states.filter((s) => this.isCurrent(s))
    for (const state of current) {
      const before = state.tracker.next
      this.#seekWithin(state, to, starts?.get(state.partition))
      if (state.tracker.next > before) {
        await this.advance(state).catch((error: unknown) =>
          this.#log.warn({ err: error, partition: state.partition }, 'recording the offset failed'),
        )
      }
    }
    return current
  }

  /** Pauses the partition if `state` is its current claim (a superseded claim must not stall its successor). */
  pause(state: PartitionState): boolean {
    if (!this.isCurrent(state)) return false
    this.#o.consumer.pause([{ topic: this.#o.topic, partitions: [state.partition] }])
    return true
  }

  // --- Rules 4–6: advance, mirror, fence -----------------------------------------------------------------

  /** Rule 4 and 5: record the finished prefix in Redis (current token only), then mirror it to Kafka. */
  async advance(state: PartitionState): Promise<void> {
    const next = state.tracker.next
    // A batch of an earlier claim that ends after a rebalance: the newer claim read Redis and started from
    // there; this one's token is superseded on purpose (by ourselves, or by the new owner). Nothing to fence.
    if (!this.isCurrent(state)) return
    if (next > state.recorded) {
      const token = state.token
      const result = await this.#offsets.advance(state.partition, token, next)
      this.#o.metrics.offsetAdvances.inc({ result: result.status })
      // This process claimed the partition again meanwhile (Redis lost the claim): try with the new token.
      if ((result.status === 'fenced' || result.status === 'token-missing') && state.token !== token)
        return this.advance(state)
      switch (result.status) {
        case 'written':
        case 'not-higher':
          state.recorded = Math.max(state.recorded, next)
          break
        case 'fenced':
          this.#fence(state, result.stored)
          return
        case 'token-missing': {
          // Redis lost the claim (restarted empty): claim again; the tracker knows what finished. One claim
          // at a time per partition: two (a flush and the reconnect's advance) would fence each other.
          state.reclaiming ??= this.#claimAgain(state).finally(() => {
            state.reclaiming = undefined
          })
          await state.reclaiming
          if (this.#partitions.get(state.partition) === state) await this.advance(state)
          return
        }
      }
    }
    await this.#mirror(state)
  }

  async #claimAgain(state: PartitionState): Promise<void> {
    const [claim] = await this.#offsets.claim([state.partition], `${this.#memberId}@${hostname()}`)
    if (!claim || this.#partitions.get(state.partition) !== state) return
    state.token = claim.token
    this.#log.warn(
      { partition: state.partition, token: claim.token },
      'offset claim was missing in Redis; claimed again',
    )
  }

  /**
   * Rule 5: the offset Redis accepted, committed to Kafka. Best effort, never failing a batch, and never
   * holding it for long: the caller waits `mirrorWaitMs` at most (the commit goes on meanwhile). A commit
   * that failed (broker restarting, rebalance) is tried again at the next flush, not only at the next
   * advance, so the fallback of a Redis that comes back empty stays close.
   */
  async #mirror(state: PartitionState): Promise<void> {
    if (state.recorded <= state.mirrored || !this.isCurrent(state)) return
    state.mirroring ??= this.#commitMirror(state)
    let timer: NodeJS.Timeout | undefined
    const waited = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, mirrorWaitMs)
    })
    await Promise.race([state.mirroring, waited]).finally(() => clearTimeout(timer))
  }

  /**
   * Commits the recorded offset until the mirror caught up with it (an advance may move it during a commit);
   * never throws. Called with an offset to commit (so it always awaits a commit before it returns), and it
   * clears `mirroring` in the same step as its last check: an advance that comes later starts a new one.
   */
  async #commitMirror(state: PartitionState): Promise<void> {
    try {
      while (state.recorded > state.mirrored && this.isCurrent(state)) {
        const offset = state.recorded
        const started = Date.now()
        try {
          await this.#o.consumer.commitOffsets([
            {
              topic: this.#o.topic,
              partition: state.partition,
              offset: String(offset),
              metadata: this.#topicId ? mirrorMetadata(this.#topicId) : null,
            },
          ])
          state.mirrored = Math.max(state.mirrored, offset)
        } catch (error) {
          const ms = Date.now() - started
          // A commit kafkajs gave up on after retrying this long is worth seeing (issue 20): the group
          // coordinator is unreachable, and Redis holds the only copy of the offset meanwhile.
          if (ms > mirrorWaitMs)
            this.#log.warn(
              { err: error, partition: state.partition, ms },
              'mirror commit failed after retries',
            )
          else this.#log.debug({ err: error, partition: state.partition }, 'mirror commit failed')
          return
        }
      }
    } finally {
      state.mirroring = undefined
    }
  }

  /**
   * Rule 6: another consumer claimed this partition after us. Stop consuming it. If our own membership is
   * confirmed by a heartbeat after the refusal and no rebalance happened meanwhile, we are the rightful
   * owner (the other claim was a zombie's) and claim again; otherwise the next join settles it.
   */
  #fence(state: PartitionState, stored: number | undefined): void {
    const { metrics, signal } = this.#o
    const wasCurrent = this.pause(state)
    state.fenced = true
    if (!wasCurrent) return
    metrics.fenced.inc()
    metrics.stalled.inc()
    this.#log.warn(
      { partition: state.partition, token: state.token, stored },
      'offset advance refused: another consumer claimed this partition; stopped consuming it',
    )
    const refusedAt = Date.now()
    const seq = this.#joinSeq
    void (async () => {
      while (seq === this.#joinSeq && !signal.aborted && this.#partitions.get(state.partition) === state) {
        if (this.#lastHeartbeatAt > refusedAt) {
          metrics.stalled.dec()
          this.#log.warn(
            { partition: state.partition },
            'membership confirmed after the refusal; claiming again',
          )
          this.#joins = this.#joins.then(() => this.#claimUntilDone(seq, [state.partition]))
          return
        }
        await delay(250, undefined, { signal }).catch(() => {})
      }
      metrics.stalled.dec()
    })()
  }
}
