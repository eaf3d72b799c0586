// The distributor's consumer loop: kafkajs wired to the offset protocol (shared/src/offsets/), deliveries by key,
// outcomes recorded before offsets advance. See ARCHITECTURE.md, "Delivery guarantee: the offset protocol".
import type { Config } from '@herald/shared/config'
import { type DeadLetter, writeDeadLetters } from '@herald/shared/dead-letter-writer'
import { errorMessage } from '@herald/shared/errors'
import type { Logger } from '@herald/shared/logger'
import {
  type DecodedRecord,
  decodeRecord,
  type NotificationRecord,
  recordVersion,
} from '@herald/shared/notification'
import { LagExporter } from '@herald/shared/offsets/lag'
import type { OffsetStore } from '@herald/shared/offsets/offsets'
import { PartitionClaims, type PartitionState } from '@herald/shared/offsets/partition-claims'
import type { Acceptance } from '@herald/shared/offsets/tracker'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import type { Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'
import type { Status, StatusStore } from '@herald/shared/status'
import type { Admin, Batch, Consumer, EachBatchPayload, Kafka, KafkaMessage, Producer } from 'kafkajs'
import { untilAborted } from './abort.ts'
import { Breaker } from './breaker.ts'
import { BreakerBoard } from './breaker-board.ts'
import type { Channel } from './channels/channel.ts'
import { CrashGuard, isReplay, livenessTtlFor } from './crash-guard.ts'
import { deliver } from './delivery.ts'
import type { DistributorMetrics } from './metrics.ts'
import { RateLimiter } from './rate-limit.ts'
import { Slots } from './slots.ts'

/**
 * Hooks that break one rule of the protocol, passed in only by tests (test/support/faults.ts) as negative
 * controls: they show that the at-least-once tests can fail. Production passes none.
 */
export interface ProtocolFaults {
  /** Where a claimed partition starts instead of the protocol's choice (rule 1). */
  claimStart?(claim: { chosen: number; committed: number | undefined; logEnd: number }): number
  /** Overrides the tracker's decision for a fetched offset (rule 2). */
  offer?(decision: Acceptance): Acceptance
  /** Runs before the accepted records of a batch are delivered; may record an offset early (rule 3). */
  beforeDelivery?(lastAccepted: number, advance: (next: number) => Promise<void>): Promise<void>
}

export interface DistributorDeps {
  kafka: Kafka
  redis: Redis
  keys: RedisKeys
  statuses: StatusStore
  channel: Channel
  config: Config
  logger: Logger
  metrics: DistributorMetrics
  topics: { main: string; deadLetter: string; events: string }
  groupId: string
  faults?: ProtocolFaults
}

/** How many finished ids a distributor remembers to fold repeats of one id before its status is written. */
const recentOutcomesKept = 50_000
/** Statuses written again when Redis is back: more than a few seconds of outcomes, what a failover can lose. */
const statusesRewritten = 10_000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/**
 * Not finished: delivered again later. `retryInMs`: the partition pauses that long (a backoff, a probe);
 * `throttledUntil`: only its recipient waits until then (its rate limit), the partition flows on.
 */
type Unfinished = { status: 'unfinished'; retryInMs?: number; throttledUntil?: number }

type Finished =
  | { record: NotificationRecord; status: 'delivered'; attempts: number; latencyMs: number }
  | {
      record: NotificationRecord
      status: 'dead_lettered'
      attempts: number
      error: string
      failureClass: string
    }
  | { record: NotificationRecord; status: 'expired'; attempts: number }
  | { record: undefined; status: 'dead_lettered'; attempts: number; error: string; failureClass: string }

export class Distributor {
  readonly #deps: DistributorDeps
  readonly #log: Logger
  readonly #consumer: Consumer
  readonly #producer: Producer
  readonly #admin: Admin
  /** The offset protocol: claims, trackers, advance, mirror, fence (shared/src/offsets/). */
  readonly #claims: PartitionClaims
  readonly #stop = new AbortController()
  #running = false
  #probeTimer: NodeJS.Timeout | undefined
  #breakerReported = false
  readonly #breaker: Breaker
  /** Publishes the breakers' states to Redis for the api, in the background (breaker-board.ts). */
  readonly #board: BreakerBoard
  /** Delivery slots shared by every partition this replica holds (DELIVERY_CONCURRENCY). */
  readonly #slots: Slots
  readonly #lag: LagExporter
  /** Counts crashes per record and spots records whose notification already finished (crash-guard.ts). */
  readonly #guard: CrashGuard
  #crashed: ((error: Error) => void) | undefined
  #stopping: Promise<{ abandoned: number }> | undefined
  /** Deliveries given up at the shutdown bound (delivered again by the next owner). */
  #abandoned = 0
  /** Ids this process finished lately, with their outcome (bounded, oldest dropped first). */
  readonly #recentOutcomes = new Map<string, { status: Status; attempts: number }>()
  /** Per record (`partition:offset`), the earliest time its next attempt may start (Retry-After, backoff). */
  readonly #notBefore = new Map<string, number>()
  /** Per partition, recipients (record keys) over their rate limit → when their next record may go. */
  readonly #waits = new Map<number, Map<string, number>>()
  /** Per partition, the timer that fetches waiting recipients' records again when the earliest is due. */
  readonly #waitTimers = new Map<number, { at: number; timer: NodeJS.Timeout }>()
  readonly #rateLimiter: RateLimiter | undefined
  /** Breakers of the destinations of a channel that names them (Channel.destinationOf), created on use. */
  readonly #destinationBreakers = new Map<string, Breaker>()
  readonly #deliveryCounters = new Map<Status, ReturnType<DistributorMetrics['deliveries']['labels']>>()

  constructor(deps: DistributorDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ topic: deps.topics.main })
    const session = deps.config.kafka.sessionTimeoutMs
    this.#consumer = deps.kafka.consumer({
      groupId: deps.groupId,
      sessionTimeout: session,
      heartbeatInterval: Math.max(500, Math.floor(session / 10)),
      rebalanceTimeout: Math.max(session, 60_000),
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 500,
      retry: { retries: 10 },
    })
    this.#producer = deps.kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: HeraldPartitioner,
      idempotent: false,
    })
    this.#admin = deps.kafka.admin()
    this.#claims = new PartitionClaims({
      consumer: this.#consumer,
      admin: this.#admin,
      redis: deps.redis,
      keys: deps.keys,
      groupId: deps.groupId,
      topic: deps.topics.main,
      brokers: deps.config.kafka.brokers,
      metrics: deps.metrics,
      logger: this.#log,
      signal: this.#stop.signal,
      ...(deps.faults?.claimStart ? { claimStart: deps.faults.claimStart } : {}),
      onJoin: (assigned, event) => {
        this.#lag.setLeader(event.payload.isLeader)
        const kept = new Set(assigned)
        for (const key of this.#notBefore.keys())
          if (!kept.has(Number(key.split(':')[0]))) this.#notBefore.delete(key)
        // The buckets are in Redis; a new claim starts without waits and asks them again.
        for (const { timer } of this.#waitTimers.values()) clearTimeout(timer)
        this.#waitTimers.clear()
        this.#waits.clear()
        this.#deps.metrics.recipientsWaiting.set(0)
      },
    })
    this.#lag = new LagExporter({
      admin: this.#admin,
      offsets: this.#claims.offsets,
      topic: deps.topics.main,
      groupId: deps.groupId,
      metrics: deps.metrics,
      logger: this.#log,
    })
    this.#slots = new Slots(deps.config.delivery.concurrency)
    const limit = deps.config.rateLimits[deps.channel.name as keyof Config['rateLimits']]
    this.#rateLimiter = limit ? new RateLimiter(deps.redis, deps.keys, deps.channel.name, limit) : undefined
    this.#guard = new CrashGuard({
      redis: deps.redis,
      keys: deps.keys,
      statuses: deps.statuses,
      groupId: deps.groupId,
      topic: deps.topics.main,
      livenessTtlMs: livenessTtlFor(session),
      signal: this.#stop.signal,
      logger: this.#log,
    })
    this.#board = new BreakerBoard({
      redis: deps.redis,
      key: deps.keys.breakers(deps.channel.name),
      replica: this.#guard.instanceId,
      logger: this.#log,
    })
    this.#breaker = new Breaker({
      failureThreshold: deps.config.breaker.threshold,
      probeDelayMs: deps.config.breaker.probeMs,
      maxProbeDelayMs: deps.config.breaker.probeMaxMs,
      onChange: () => this.#board.changed(),
    })
    this.#board.watch(null, this.#breaker)
  }

  get offsets(): OffsetStore {
    return this.#claims.offsets
  }

  /** Partitions claimed now (for /readyz and tests). */
  get heldPartitions(): number[] {
    return this.#claims.held
  }

  get running(): boolean {
    return this.#running
  }

  /** Connects and starts consuming. `onCrash` is called when kafkajs gives up (the process should exit). */
  async start(onCrash: (error: Error) => void): Promise<void> {
    this.#crashed = onCrash
    const c = this.#consumer
    await Promise.all([this.#producer.connect(), this.#admin.connect(), c.connect()])
    this.#claims.attach()
    c.on(c.events.CRASH, (event) => {
      const { error, restart } = event.payload
      this.#log.error({ err: error, restart }, 'kafkajs consumer crashed')
      if (!restart) this.#crashed?.(error)
    })
    await c.subscribe({ topic: this.#deps.topics.main, fromBeginning: true })
    this.#running = true
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, this.#deps.config.topics.partitions),
      eachBatch: (payload) => this.#onBatch(payload),
    })
    this.#deps.redis.on('ready', this.#onRedisReady)
    this.#lag.start(this.#deps.config.lagIntervalMs)
    this.#board.start()
  }

  /**
   * Stops fetching, lets in-flight deliveries finish within the shutdown bound (then abandons them, whether
   * or not the channel honours the abort: they stay unfinished and are delivered again later), records
   * offsets for what finished, leaves the group. Resolves with the number of deliveries abandoned.
   */
  stop(): Promise<{ abandoned: number }> {
    this.#stopping ??= this.#stopOnce()
    return this.#stopping
  }

  async #stopOnce(): Promise<{ abandoned: number }> {
    if (!this.#running) return { abandoned: 0 }
    this.#running = false
    this.#deps.redis.off('ready', this.#onRedisReady)
    this.#claims.detach()
    this.#lag.stop()
    this.#board.stop()
    const bound = setTimeout(
      () => this.#stop.abort(new Error('shutdown bound reached')),
      this.#deps.config.shutdownTimeoutMs,
    )
    try {
      await this.#consumer.stop()
    } finally {
      clearTimeout(bound)
      this.#stop.abort(new Error('stopped'))
      await this.#consumer.disconnect().catch(() => {})
      await this.#producer.disconnect().catch(() => {})
      await this.#admin.disconnect().catch(() => {})
    }
    return { abandoned: this.#abandoned }
  }

  /**
   * Redis is back after a disconnect and may have lost its last writes or everything (the claims write the
   * held partitions' offsets again): the statuses of the latest outcomes are written again too (a final
   * status is never changed). A claim that starts at the mirror skips records whose statuses Redis lost,
   * and nothing else would write them.
   */
  readonly #onRedisReady = (): void => {
    void this.#rewriteRecentStatuses().catch((error: unknown) =>
      this.#log.warn({ err: error }, 'writing the latest statuses again failed'),
    )
  }

  async #rewriteRecentStatuses(): Promise<void> {
    const latest = [...this.#recentOutcomes].slice(-statusesRewritten)
    const channel = this.#deps.channel.name
    for (let i = 0; i < latest.length; i += 500) {
      await Promise.all(
        latest
          .slice(i, i + 500)
          .map(([id, { status, attempts }]) =>
            this.#deps.statuses.set(id, status, 'move', { channel, attempts }),
          ),
      )
    }
    if (latest.length > 0) this.#log.info({ count: latest.length }, 'latest statuses written again')
  }

  // --- Rules 2–5: track, finish, advance, mirror ----------------------------------------------------------

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const state = this.#claims.get(batch.partition)
    if (!state || state.fenced || isStale() || !isRunning()) return
    const { tracker } = state
    const faults = this.#deps.faults
    const accepted: KafkaMessage[] = []
    let lastInOrder: string | undefined
    const decoded = new Map<string, DecodedRecord>()
    for (const message of batch.messages) {
      const offset = Number(message.offset)
      let decision = tracker.offer(offset)
      if (faults?.offer) decision = faults.offer(decision)
      if (decision === 'gap') {
        this.#log.warn(
          { partition: batch.partition, offset, expected: tracker.expected },
          'offset gap; seeking back',
        )
        // After kafkajs reset an offset out of range to the log start, the log start check ends the gap.
        await this.#claims.seekWithinLog([state], 'expected')
        break
      }
      lastInOrder = message.offset
      if (decision === 'accept') {
        const record = decodeRecord(message.value)
        decoded.set(message.offset, record)
        accepted.push(message)
        // A record from a newer Herald stops the partition: nothing after it is accepted (see #processOne).
        if (record.kind === 'future-version') break
      }
    }
    if (faults?.beforeDelivery && accepted.length > 0) {
      const last = Number(accepted[accepted.length - 1]?.offset)
      await faults.beforeDelivery(last, async (next) => {
        await this.#claims.offsets.advance(batch.partition, state.token, next)
      })
    }
    let soughtBack = false
    if (accepted.length > 0)
      soughtBack = await this.#processWithHeartbeats(state, batch, accepted, decoded, heartbeat, isStale)
    await this.#claims.advance(state)
    // kafkajs' position moves only for the current claim (a newer claim sought the partition itself).
    if (
      !soughtBack &&
      lastInOrder !== undefined &&
      !state.fenced &&
      this.#claims.get(batch.partition) === state
    ) {
      resolveOffset(lastInOrder)
    }
  }

  /**
   * Delivers the accepted messages, one recipient (key) at a time in order, keys concurrently. What finishes
   * is recorded as it goes (dead letters, statuses and events, then the offset, every half second), so a
   * long batch keeps its progress whatever ends it. When a rebalance is waiting (a heartbeat fails), the
   * claim is lost, or the distributor stops, no new delivery starts: the batch ends as soon as the ones in
   * flight finish, so the member rejoins in time instead of being expelled with all of its work unrecorded.
   * Returns true when the partition was sought back to its first unfinished offset (records handed back
   * without a timer of their own to fetch them again).
   */
  async #processWithHeartbeats(
    state: PartitionState,
    batch: Batch,
    messages: KafkaMessage[],
    decoded: ReadonlyMap<string, DecodedRecord>,
    heartbeat: () => Promise<void>,
    isStale: () => boolean,
  ): Promise<boolean> {
    let finished: Array<{ offset: number; result: Finished; statusWritten?: boolean }> = []
    let deadLetters: DeadLetter[] = []
    const released: string[] = []
    /** Released because their recipient waits for its rate limit (a timer of its own fetches them again). */
    let waiting = 0
    let resumeAfterMs: number | undefined
    let yielding: string | undefined
    // Set while outcomes cannot be recorded (Redis or Kafka unreachable): no new delivery starts, so what
    // an outage can cost is what was in flight, not everything delivered meanwhile.
    let recordingFailed = false
    const mustYield = (): string | undefined => {
      if (yielding) return yielding
      if (!this.#running || this.#stop.signal.aborted) return 'stopping'
      if (state.fenced || this.#claims.get(batch.partition) !== state) return 'claim lost'
      if (isStale()) return 'partition sought elsewhere'
      return undefined
    }
    const keyOf = (m: KafkaMessage) => m.key?.toString('latin1') ?? ''
    const handBack = (m: KafkaMessage) => {
      state.tracker.release(Number(m.offset))
      released.push(m.offset)
    }

    /** Delivers one message; false when it was handed back (its recipient's later messages wait too). */
    const deliverOne = async (message: KafkaMessage): Promise<boolean> => {
      const offset = Number(message.offset)
      const record = decoded.get(message.offset) ?? decodeRecord(message.value)
      // One round trip before the delivery: the crash guard notes this start (a record that keeps killing
      // the process is dead-lettered instead of blocking its partition), and the status says whether the
      // notification already finished (an offset read again, an id produced again). A dead-letter replay
      // is delivered whatever its status: it may be read before the replay requeued its status.
      const id = record.kind === 'ok' && !isReplay(message.headers) ? record.record.id : undefined
      const storesDown = (error: unknown, what: string) => {
        if (!recordingFailed)
          this.#log.warn(
            { err: error, partition: batch.partition, offset },
            `${what} failed (Redis or Kafka unreachable?): handed back, starting no delivery until it works`,
          )
        recordingFailed = true
        handBack(message)
        return false
      }
      let check: Awaited<ReturnType<CrashGuard['start']>>
      try {
        check = await this.#guard.start(batch.partition, offset, id)
      } catch (error) {
        return storesDown(error, 'the crash guard')
      }
      let result: Finished | Unfinished
      // Repeats of one id (a client's retry after the api lost its answer) are folded here too when the
      // first one finished in this process and its status is not written yet (it is, at the next flush).
      const foldedHere = id === undefined ? undefined : this.#recentOutcomes.get(id)
      if (check.finished === undefined && foldedHere) check = { ...check, finished: foldedHere }
      try {
        if (check.finished && record.kind === 'ok') {
          // Nothing to deliver or record again, but an event: the first one may be missing (a crash
          // between the status write and the event). Then the offset may move over it.
          const { channel } = record.record
          const { status, attempts } = check.finished
          const at = new Date().toISOString()
          try {
            await Promise.all([
              this.#producer.send({
                topic: this.#deps.topics.events,
                acks: -1,
                messages: [{ key: id, value: JSON.stringify({ id, channel, status, attempts, at }) }],
              }),
              this.#guard.forget(batch.partition, [offset]),
            ])
          } catch (error) {
            await this.#guard.handBack(batch.partition, offset)
            return storesDown(error, 'recording a skipped record')
          }
          this.#guard.ended(batch.partition, offset)
          this.#deps.metrics.skipped.inc({ reason: 'already_final' })
          state.tracker.finish(offset)
          return true
        }
        // Dead letters go to whichever list the next flush writes (it swaps the list while deliveries run).
        result = await this.#processOne(batch, message, record, check, (letter) => deadLetters.push(letter))
      } catch (error) {
        await this.#guard.handBack(batch.partition, offset)
        throw error
      }
      if (result.status === 'unfinished') {
        // Handed back on purpose (backoff, breaker, shutdown): a later death of this process is no crash.
        await this.#guard.handBack(batch.partition, offset)
        handBack(message)
        if (result.throttledUntil !== undefined) {
          this.#waitKey(state, keyOf(message), result.throttledUntil)
          waiting += 1
          return false
        }
        if (result.retryInMs !== undefined)
          resumeAfterMs = Math.min(resumeAfterMs ?? Infinity, result.retryInMs)
        return false
      }
      this.#guard.ended(batch.partition, offset)
      if (result.record) this.#rememberOutcome(result.record.id, result.status, result.attempts)
      finished.push({ offset, result })
      this.#reportBreakerClosed()
      return true
    }

    // The scheduler: each free slot (shared by every partition of this replica) takes the earliest message
    // whose recipient has nothing in flight, so one recipient's messages go out in order, recipients run
    // concurrently, and the finished prefix (what the offset may cover) grows steadily from the front.
    // Each message with its recipient's key, decoded once: the scan below walks past busy recipients.
    const queue = messages.map((message) => ({ message, key: keyOf(message) }))
    const busy = new Set<string>()
    const blocked = new Set<string>()
    const inFlight = new Set<Promise<void>>()
    let wake: (() => void) | undefined
    let failure: { error: unknown } | undefined
    const work = (async () => {
      while (queue.length > 0 && !failure) {
        if (mustYield()) break
        if (recordingFailed || this.#deps.redis.status !== 'ready') {
          await sleep(200)
          continue
        }
        await this.#slots.acquire()
        let index = -1
        for (let i = 0; i < queue.length; i++) {
          const { message: m, key } = queue[i] as { message: KafkaMessage; key: string }
          if (blocked.has(key)) {
            handBack(m)
            if (this.#keyWaits(state, key)) waiting += 1
            queue.splice(i, 1)
            i -= 1
          } else if (!busy.has(key) && this.#keyWaits(state, key)) {
            // Its recipient waits for its rate limit: behind the record that waits, in order.
            handBack(m)
            waiting += 1
            queue.splice(i, 1)
            i -= 1
          } else if (!busy.has(key)) {
            index = i
            break
          }
        }
        if (index < 0 || mustYield() || failure) {
          this.#slots.release()
          // Every remaining recipient has a message in flight: wait until one finishes.
          if (index < 0 && queue.length > 0 && inFlight.size > 0) await new Promise<void>((r) => (wake = r))
          continue
        }
        const [{ message, key }] = queue.splice(index, 1) as [{ message: KafkaMessage; key: string }]
        busy.add(key)
        const task = deliverOne(message)
          .then(
            (done) => {
              if (!done) blocked.add(key)
            },
            (error: unknown) => {
              failure ??= { error }
              handBack(message)
            },
          )
          .finally(() => {
            busy.delete(key)
            this.#slots.release()
            inFlight.delete(task)
            wake?.()
            wake = undefined
          })
        inFlight.add(task)
      }
      for (const { message: m } of queue.splice(0)) handBack(m)
      await Promise.all(inFlight)
      if (failure) throw failure.error
    })()

    // Rule 3: a message is finished only once its dead letter is acknowledged and its status and event are
    // written; then the offset may move over it. Each stage is done once: a dead letter Kafka acknowledged is
    // not written again when a later stage fails (Redis down); what failed is retried by the next flush.
    let cleanup: number[] = []
    let flushingSince: number | undefined
    const flush = async (): Promise<void> => {
      flushingSince = Date.now()
      try {
        await flushOnce()
      } finally {
        flushingSince = undefined
      }
    }
    const flushOnce = async (): Promise<void> => {
      const results = finished
      const letters = deadLetters
      finished = []
      deadLetters = []
      // Deliveries' statuses do not wait for the dead letters (Kafka), only dead letters' statuses do.
      if (letters.length > 0) await this.#writeDeliveredStatuses(results)
      try {
        await writeDeadLetters(this.#producer, this.#deps.topics.deadLetter, letters)
      } catch (error) {
        finished.unshift(...results)
        deadLetters.unshift(...letters)
        throw error
      }
      try {
        await this.#recordOutcomes(results)
      } catch (error) {
        finished.unshift(...results)
        throw error
      }
      for (const { offset } of results) {
        state.tracker.finish(offset)
        cleanup.push(offset)
      }
      if (cleanup.length > 0) {
        const offsets = cleanup
        const next = state.tracker.next
        const beyond = offsets.filter((offset) => offset >= next)
        const notedMax = beyond.reduce((a, b) => Math.max(a, b), state.notedMax)
        // Redis is touched only while something was noted: in order, nothing finishes beyond next.
        const noting = notedMax >= 0
        await Promise.all([
          this.#guard.forget(batch.partition, offsets),
          noting ? this.#claims.offsets.noteFinished(batch.partition, beyond, next) : undefined,
        ])
        cleanup = cleanup.slice(offsets.length)
        state.notedMax = noting && next > notedMax ? -1 : notedMax // -1: pruned, all of it is below next
      }
      await this.#claims.advance(state)
    }

    // kafkajs heartbeats only from inside the handler: keep the membership alive during long batches. A
    // failed heartbeat means a rebalance is waiting (or the member was expired): stop starting deliveries.
    let done = false
    let beaten = false
    // While a flush waits (on Kafka, for seconds when the broker is down), what finishes after it began gets
    // its status written anyway (see #writeDeliveredStatuses), until the last flush of the batch returned.
    // Its sleep ends early when the batch's last flush returned: a batch must not outlast it by a tick.
    let wakeStatusing: () => void = () => {}
    const statusing = (async () => {
      while (!beaten) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 250)
          wakeStatusing = () => {
            clearTimeout(timer)
            resolve()
          }
        })
        if (beaten) return
        if (flushingSince !== undefined && Date.now() - flushingSince >= 250)
          await this.#writeDeliveredStatuses(finished)
      }
    })()
    const beating = (async () => {
      while (!done) {
        // Not the stop signal's sleep: once it aborted, that one returns at once and this loop would spin.
        await Promise.race([work.catch(() => {}), sleep(500)])
        if (done) return
        await flush().then(
          () => {
            recordingFailed = false
          },
          (error: unknown) => {
            if (!recordingFailed)
              this.#log.warn(
                { err: error, partition: batch.partition },
                'recording finished deliveries failed; holding them and retrying',
              )
            recordingFailed = true
          },
        )
        if (done || this.#stop.signal.aborted || yielding) continue
        try {
          await heartbeat()
        } catch (error) {
          yielding = 'heartbeat failed'
          this.#log.warn(
            { err: error, partition: batch.partition },
            'heartbeat failed during a batch (rebalance?): finishing deliveries in flight, starting no more',
          )
        }
      }
    })()
    try {
      await work
      done = true
      await beating.finally(() => {
        beaten = true
        wakeStatusing()
      })
      await statusing
      // Redis (or Kafka) unreachable: hold what finished, keep the membership alive, and record it once the
      // stores are back, rather than throwing it away to be delivered again. Give up only when the claim is
      // lost, a rebalance waits, or the shutdown bound is reached.
      for (;;) {
        try {
          await flush()
          break
        } catch (error) {
          const lost = state.fenced || this.#claims.get(batch.partition) !== state || isStale()
          if (yielding || lost || this.#stop.signal.aborted) throw error
          if (!recordingFailed)
            this.#log.warn(
              { err: error, partition: batch.partition },
              'recording finished deliveries failed; holding them and retrying',
            )
          recordingFailed = true
          await sleep(500)
          await heartbeat().catch((failed: unknown) => {
            yielding = 'heartbeat failed'
            this.#log.warn(
              { err: failed, partition: batch.partition },
              'heartbeat failed while holding outcomes',
            )
          })
        }
      }
      if (recordingFailed)
        this.#log.warn({ partition: batch.partition }, 'finished deliveries recorded again')
    } catch (error) {
      done = true
      await beating.finally(() => {
        beaten = true
        wakeStatusing()
      })
      await statusing
      // kafkajs retries the batch: everything accepted and unfinished must be accepted again then.
      for (const m of messages) state.tracker.release(Number(m.offset))
      throw error
    }
    this.#reportBreakerClosed()
    if (this.#breaker.blocking) {
      this.#onBreakerOpen()
      return false
    }
    if (resumeAfterMs !== undefined) {
      this.#retryLater(state, resumeAfterMs)
      return false
    }
    if (released.length > waiting && !state.fenced && this.#claims.get(batch.partition) === state) {
      // Handed back without a timer (the batch yielded): fetch them again from the first unfinished offset.
      // Those of recipients over their rate limit only are fetched again by #waitKey's timer: the partition
      // reads on meanwhile, so other recipients are not held up.
      await this.#claims.seekWithinLog([state], 'next')
      return true
    }
    return false
  }

  async #writeStatuses(results: readonly Finished[]): Promise<void> {
    const { statuses, channel } = this.#deps
    await Promise.all(
      results.map((r) =>
        r.record === undefined
          ? undefined
          : statuses.set(r.record.id, r.status, 'move', {
              channel: channel.name,
              attempts: r.attempts,
              ...('error' in r ? { lastError: r.error.slice(0, 500) } : {}),
            }),
      ),
    )
  }

  /**
   * Writes the statuses of deliveries that finished since the last flush began, ahead of it. A flush waits
   * on Kafka (dead letters, events) before it writes statuses and the offset, and while the broker is
   * down it waits for many seconds; meanwhile deliveries go on, and a replica that claims the partition
   * (the group rebalances when the broker is back) would deliver them again. With their statuses final in
   * Redis it skips them instead (sending the event the first one may not have sent). Only deliveries: a
   * dead-lettered record is final only once its dead letter is in Kafka.
   */
  async #writeDeliveredStatuses(
    entries: ReadonlyArray<{ result: Finished; statusWritten?: boolean }>,
  ): Promise<void> {
    const early = entries.filter((e) => !e.statusWritten && e.result.status === 'delivered')
    if (early.length === 0 || this.#deps.redis.status !== 'ready') return
    try {
      await this.#writeStatuses(early.map((e) => e.result))
      for (const e of early) e.statusWritten = true
    } catch {
      // Written by the flush, which holds the outcomes until it can.
    }
  }

  /** The deliveries counter of an outcome, its labelled child kept (no label hashing per message). */
  #deliveriesBy(outcome: Status): ReturnType<DistributorMetrics['deliveries']['labels']> {
    let counter = this.#deliveryCounters.get(outcome)
    if (!counter) {
      counter = this.#deps.metrics.deliveries.labels({ outcome })
      this.#deliveryCounters.set(outcome, counter)
    }
    return counter
  }

  #rememberOutcome(id: string, status: Status, attempts: number): void {
    this.#recentOutcomes.delete(id)
    this.#recentOutcomes.set(id, { status, attempts })
    if (this.#recentOutcomes.size > recentOutcomesKept) {
      const oldest = this.#recentOutcomes.keys().next()
      if (!oldest.done) this.#recentOutcomes.delete(oldest.value)
    }
  }

  /** Once a probe got through, the breaker is closed: say so at once (not only when the batch ends). */
  #reportBreakerClosed(): void {
    if (this.#breaker.state === 'closed' && this.#breakerReported) {
      this.#breakerReported = false
      this.#deps.metrics.breakerOpen.set(0)
      this.#log.warn('breaker closed: the provider accepts deliveries again')
    }
  }

  /** How the message finished, or 'unfinished' when it must be delivered again (and when to retry). */
  async #processOne(
    batch: Batch,
    message: KafkaMessage,
    decoded: DecodedRecord,
    history: { crashes: number; attempts: number; notBefore?: number } | undefined,
    deadLetter: (letter: DeadLetter) => void,
  ): Promise<Finished | Unfinished> {
    const base = { topic: batch.topic, partition: batch.partition, message }
    // Made when something is logged: a pino child per delivered message was a cost of every message.
    let child: Logger | undefined
    const log = (): Logger => {
      child ??= this.#log.child({ partition: batch.partition, offset: message.offset })
      return child
    }
    if (decoded.kind === 'poison') {
      this.#deps.metrics.poison.inc()
      log().warn({ reason: decoded.reason }, 'poison record: dead-lettered')
      deadLetter({ ...base, reason: decoded.reason, failureClass: 'poison', attempts: 0 })
      return {
        record: undefined,
        status: 'dead_lettered',
        attempts: 0,
        error: decoded.reason,
        failureClass: 'poison',
      }
    }
    if (decoded.kind === 'future-version') {
      // Not poison: a newer Herald wrote it, and an upgraded distributor will deliver it. The partition
      // stops at this record (#onBatch accepts nothing after it) and looks again every minute.
      this.#deps.metrics.futureVersionWaits.inc()
      log().error(
        { version: decoded.version, understood: recordVersion },
        'ALERT: record from a newer Herald version; upgrade this distributor (the partition waits)',
      )
      return { status: 'unfinished', retryInMs: 60_000 }
    }
    const record = decoded.record
    const { maxAttempts, retryBaseMs, retryCapMs, crashLoopLimit } = this.#deps.config.delivery
    const previous = history?.attempts ?? 0
    // Only deaths count (crash-guard.ts): a distributor died with this record in flight that many times.
    const crashes = history?.crashes ?? 0
    if (crashes >= crashLoopLimit) {
      const reason = `crash-loop: the distributor died ${crashes} times while delivering it`
      this.#deps.metrics.crashLoops.inc()
      log().error({ id: record.id, crashes }, 'record keeps crashing the distributor: dead-lettered')
      deadLetter({ ...base, reason, failureClass: 'crash-loop', attempts: previous })
      return {
        record,
        status: 'dead_lettered',
        attempts: previous,
        error: reason,
        failureClass: 'crash-loop',
      }
    }
    if (record.expiresAt !== undefined && Date.parse(record.expiresAt) < Date.now()) {
      return { record, status: 'expired', attempts: previous }
    }
    if (this.#breaker.blocking) return { status: 'unfinished' }
    // A destination whose breaker is open holds only its own records: they wait for its probe, while the
    // scheduler keeps delivering other recipients' records (this partition pauses until the probe).
    const destination = this.#deps.channel.destinationOf?.(record)
    const breaker = destination === undefined ? this.#breaker : this.#destinationBreaker(destination)
    if (breaker !== this.#breaker) {
      breaker.tryHalfOpen()
      if (breaker.blocking)
        return { status: 'unfinished', retryInMs: Math.max(10, breaker.openUntil - Date.now()) }
    }
    const probing = breaker.state === 'half-open'
    // A record waiting out Retry-After or a backoff is not attempted early, whatever resumed its partition
    // (another record's shorter wait, a probe, a claim): an early attempt would burn one of its attempts.
    const waitKey = `${batch.partition}:${message.offset}`
    const dueIn = Math.max(this.#notBefore.get(waitKey) ?? 0, history?.notBefore ?? 0) - Date.now()
    if (dueIn > 0) return { status: 'unfinished', retryInMs: dueIn }
    this.#notBefore.delete(waitKey)
    if (this.#rateLimiter) {
      const waitMs = await this.#rateLimiter.take(message.key?.toString('latin1') ?? record.to)
      if (waitMs > 0) {
        const until = Date.now() + waitMs
        this.#deps.metrics.throttled.inc()
        await this.#deps.statuses.set(record.id, 'throttled', 'move', {
          channel: this.#deps.channel.name,
          notBefore: new Date(until).toISOString(),
        })
        return { status: 'unfinished', throttledUntil: until }
      }
    }
    const attemptsKey = this.#deps.keys.attempts(this.#deps.groupId, batch.topic)
    const started = performance.now()
    try {
      const outcome = await untilAborted(
        this.#stop.signal,
        deliver(this.#deps.channel, record, {
          maxAttempts,
          previousAttempts: previous,
          backoff: { baseMs: retryBaseMs, capMs: retryCapMs },
          maxInlineWaitMs: Math.floor(this.#deps.config.kafka.sessionTimeoutMs / 3),
          breaker,
          signal: this.#stop.signal,
          onAttemptFailed: async (attempt, error, waitMs) => {
            this.#deps.metrics.attemptsFailed.inc({ class: error.failureClass })
            log().warn(
              { id: record.id, code: error.code, class: error.failureClass, waitMs },
              `delivery attempt ${attempt} of ${maxAttempts} failed: ${error.message}`,
            )
            if (waitMs === undefined) return
            // The wait is kept with the attempt count, so whichever consumer resumes the record honours it.
            await this.#deps.redis.hset(attemptsKey, {
              [`${batch.partition}:${message.offset}:attempts`]: attempt,
              [`${batch.partition}:${message.offset}:notBefore`]: Date.now() + waitMs,
            })
            await this.#deps.statuses.set(record.id, 'retrying', 'move', {
              channel: this.#deps.channel.name,
              attempts: attempt,
              lastError: error.message.slice(0, 500),
            })
          },
        }),
      )
      switch (outcome.outcome) {
        case 'delivered':
          if (probing && breaker !== this.#breaker)
            log().warn(
              { destination },
              'destination breaker closed: the destination accepts deliveries again',
            )
          return {
            record,
            status: 'delivered',
            attempts: outcome.attempts,
            latencyMs: performance.now() - started,
          }
        case 'dead-letter':
          deadLetter({
            ...base,
            reason: outcome.error.message,
            failureClass: outcome.failureClass,
            attempts: outcome.attempts,
          })
          return {
            record,
            status: 'dead_lettered',
            attempts: outcome.attempts,
            error: outcome.error.message,
            failureClass: outcome.failureClass,
          }
        case 'deferred':
          this.#notBefore.set(waitKey, Date.now() + outcome.waitMs)
          this.#deps.metrics.deferred.inc({ reason: 'backoff' })
          return { status: 'unfinished', retryInMs: outcome.waitMs }
        case 'breaker-open':
          this.#deps.metrics.deferred.inc({ reason: 'breaker' })
          if (breaker !== this.#breaker) {
            const probeInMs = Math.max(10, breaker.openUntil - Date.now())
            this.#deps.metrics.breakerOpened.inc()
            log().error(
              { destination, reason: breaker.reason, probeInMs },
              'DESTINATION BREAKER OPEN: its records wait for a probe, nothing dead-lettered; other destinations flow',
            )
            return { status: 'unfinished', retryInMs: probeInMs }
          }
          return { status: 'unfinished' }
      }
    } catch (error) {
      if (this.#stop.signal.aborted) {
        this.#abandoned += 1
        log().warn(
          { id: record.id, reason: errorMessage(error) },
          'delivery abandoned (shutdown); it will be delivered again',
        )
      } else {
        // Recording a failed attempt failed (Redis unreachable): the record goes back and is tried again.
        log().warn({ id: record.id, err: error }, 'recording a failed attempt failed; handed back')
      }
      return { status: 'unfinished' }
    }
  }

  /** True while `key`'s recipient waits for its rate limit on this partition (forgotten once due). */
  #keyWaits(state: PartitionState, key: string): boolean {
    const waits = this.#waits.get(state.partition)
    const until = waits?.get(key)
    if (until === undefined) return false
    if (until > Date.now()) return true
    waits?.delete(key)
    this.#deps.metrics.recipientsWaiting.dec()
    return false
  }

  /**
   * `key`'s recipient is over its rate limit until `until`: its records are handed back as they come, and
   * a timer seeks the partition back to its first unfinished offset when the earliest wait is over (the
   * tracker skips what finished meanwhile). The partition is neither paused nor held: others flow.
   */
  #waitKey(state: PartitionState, key: string, until: number): void {
    let waits = this.#waits.get(state.partition)
    if (!waits) {
      waits = new Map()
      this.#waits.set(state.partition, waits)
    }
    if (!waits.has(key)) this.#deps.metrics.recipientsWaiting.inc()
    waits.set(key, Math.max(until, waits.get(key) ?? 0))
    const scheduled = this.#waitTimers.get(state.partition)
    if (scheduled && scheduled.at <= until) return
    if (scheduled) clearTimeout(scheduled.timer)
    const timer = setTimeout(
      () => {
        this.#waitTimers.delete(state.partition)
        if (!this.#claims.isCurrent(state)) return
        void this.#claims.seekWithinLog([state], 'next').then(() => {
          // Waits still running (a later recipient's): the timer goes on for the earliest of them.
          const left = [...(this.#waits.get(state.partition)?.entries() ?? [])]
          const next = left.reduce((a, [, at]) => (at > Date.now() ? Math.min(a, at) : a), Infinity)
          const [first] = left.find(([, at]) => at === next) ?? []
          if (first !== undefined) this.#waitKey(state, first, next)
        })
      },
      Math.max(1, until - Date.now()),
    )
    timer.unref()
    this.#waitTimers.set(state.partition, { at: until, timer })
  }

  /**
   * A long backoff: the partition pauses and is sought back to `next` when the wait is over, so the member
   * keeps heartbeating and other partitions keep flowing. Released records are accepted again then.
   */
  #retryLater(state: PartitionState, waitMs: number): void {
    const { main: topic } = this.#deps.topics
    // Only the current claim may pause its partition: a superseded batch that ends late would otherwise
    // pause the partition its successor sought and resumed, and nothing would resume it.
    if (state.fenced || this.#claims.get(state.partition) !== state) return
    this.#consumer.pause([{ topic, partitions: [state.partition] }])
    this.#deps.metrics.stalled.inc()
    this.#log.info({ partition: state.partition, waitMs }, 'partition paused until its next retry is due')
    const timer = setTimeout(() => {
      this.#deps.metrics.stalled.dec()
      if (this.#claims.get(state.partition) !== state || state.fenced || this.#breaker.blocking) return
      void this.#claims.seekWithinLog([state], 'next').then((sought) => {
        if (sought.length > 0 && !this.#breaker.blocking)
          this.#consumer.resume([{ topic, partitions: [state.partition] }])
      })
    }, waitMs)
    timer.unref()
  }

  /** The provider is down or rejects Herald: pause every partition until a probe may start. */
  #onBreakerOpen(): void {
    const { main: topic } = this.#deps.topics
    const held = this.#claims.held
    if (held.length > 0) this.#consumer.pause([{ topic, partitions: held }])
    if (this.#probeTimer) return
    this.#breakerReported = true
    this.#deps.metrics.breakerOpen.set(1)
    this.#deps.metrics.breakerOpened.inc()
    const waitMs = Math.max(0, this.#breaker.openUntil - Date.now())
    this.#log.error(
      { reason: this.#breaker.reason, probeInMs: waitMs },
      'BREAKER OPEN: the provider is down or rejects our credentials; consumption paused, nothing dead-lettered',
    )
    this.#scheduleProbe()
  }

  #destinationBreaker(destination: string): Breaker {
    let breaker = this.#destinationBreakers.get(destination)
    if (!breaker) {
      breaker = new Breaker({
        failureThreshold: this.#deps.config.breaker.threshold,
        probeDelayMs: this.#deps.config.breaker.probeMs,
        maxProbeDelayMs: this.#deps.config.breaker.probeMaxMs,
        onChange: () => this.#board.changed(),
      })
      this.#destinationBreakers.set(destination, breaker)
      this.#board.watch(destination, breaker)
    }
    return breaker
  }

  /** At the end of the breaker's delay, the next deliveries are the probe (half-open). */
  #scheduleProbe(): void {
    const { main: topic } = this.#deps.topics
    // Timers may fire a millisecond early: never less than 10 ms, and reschedule if still too early.
    const waitMs = Math.max(10, this.#breaker.openUntil - Date.now())
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined
      if (this.#stop.signal.aborted) return
      if (!this.#breaker.tryHalfOpen()) {
        if (this.#breaker.blocking) this.#scheduleProbe()
        return
      }
      this.#log.warn('breaker half-open: probing the provider')
      const probing = this.#claims.states().filter((s) => !s.fenced)
      void this.#claims.seekWithinLog(probing, 'next').then((sought) => {
        if (sought.length > 0) this.#consumer.resume([{ topic, partitions: sought.map((s) => s.partition) }])
      })
    }, waitMs)
    this.#probeTimer.unref()
  }

  /**
   * Statuses (one Lua script each, pipelined; those written early by #writeDeliveredStatuses are skipped)
   * and one event per finished notification, acks=all.
   */
  async #recordOutcomes(
    entries: ReadonlyArray<{ result: Finished; statusWritten?: boolean }>,
  ): Promise<void> {
    if (entries.length === 0) return
    const { metrics } = this.#deps
    const now = new Date().toISOString()
    await this.#writeStatuses(entries.filter((e) => !e.statusWritten).map((e) => e.result))
    const results = entries.map((e) => e.result)
    const events = results.flatMap((r) =>
      r.record === undefined
        ? []
        : [
            {
              key: r.record.id,
              value: JSON.stringify({
                id: r.record.id,
                channel: r.record.channel,
                status: r.status,
                attempts: r.attempts,
                at: now,
                ...('error' in r ? { error: r.error.slice(0, 500), class: r.failureClass } : {}),
              }),
            },
          ],
    )
    if (events.length > 0)
      await this.#producer.send({ topic: this.#deps.topics.events, acks: -1, messages: events })
    for (const r of results) {
      this.#deliveriesBy(r.status).inc()
      if (r.status === 'delivered') {
        metrics.deliveryLatency.observe(r.latencyMs / 1000)
        metrics.endToEndLatency.observe((Date.now() - Date.parse(r.record.createdAt)) / 1000)
      }
    }
  }
}
