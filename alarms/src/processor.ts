// The alarms processor: follows the registered, activations, overrides and effective topics with a consumer
// group whose members own partition numbers (co-assigned: partition p of every alarm topic to one member,
// co-assigner.ts). On every assignment it reads its partitions of the four topics from the beginning
// (nothing is committed), rebuilds each alarm's state (lifecycle.ts `applyChange`), then reconciles each
// alarm once and follows: every new record is a `step`, and one timer per partition fires at the earliest
// deadline (shelve expiry, on/off-delay, reminder) read from the topics' absolute times, so timers survive
// restarts and rebalances. What a decision calls for is produced in order, acks=all: automatic overrides,
// then alarm events (to the router), then the effective record (the processor's memory, written last).
import { hostname } from 'node:os'
import { type AlarmEvent, encodeAlarmEvent } from '@herald/shared/alarm-events'
import { AlarmPartitioner, alarmOfKey } from '@herald/shared/alarms/partitioner'
import {
  activationSchema,
  type Effective,
  effectiveSchema,
  parseOverride,
  registrationSchema,
} from '@herald/shared/alarms/schemas'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { Logger } from '@herald/shared/logger'
import type { AlarmTopicKind } from '@herald/shared/topics'
import type {
  Admin,
  Consumer,
  ConsumerGroupJoinEvent,
  EachBatchPayload,
  Kafka,
  KafkaMessage,
  Producer,
} from 'kafkajs'
import { CoAssigner } from './co-assigner.ts'
import {
  type AlarmChange,
  type AlarmDecision,
  type AlarmState,
  applyChange,
  newAlarmState,
  reconcile,
  step,
} from './lifecycle.ts'
import type { AlarmsMetrics } from './metrics.ts'

export interface AlarmProcessorDeps {
  kafka: Kafka
  logger: Logger
  metrics: AlarmsMetrics
  topics: Record<AlarmTopicKind, string>
  /** Where alarm events go: the router's topic. */
  eventsTopic: string
  groupId: string
  sessionTimeoutMs: number
  /** Every alarm's effective state (all partitions): the parents of masked alarms. */
  parents: ConfigTopicStore<Effective>
}

/** A partition this member owns: its alarms, and where its load stands. */
interface PartitionAlarms {
  partition: number
  joinSeq: number
  /** Replaced, not changed in place, by a step that fails (its decisions were not all produced). */
  alarms: Map<string, AlarmState>
  /** Set while loading: the log end of each topic's partition at the assignment, and how far it was read. */
  loading?: { ends: Map<string, number> | undefined; read: Map<string, number>; lastBatchAt: number }
  /** Alarms' next deadlines; the partition's timer fires at the earliest. */
  deadlines: Map<string, number>
  timer?: { at: number; handle: NodeJS.Timeout }
  /** One batch or timer at a time: decisions of one alarm never interleave. */
  queue: Promise<void>
}

/** A partition is taken as loaded when no batch came for this long (its tail was compacted away). */
const idleLoadMs = 3000
const audit = { 'herald-user': 'alarms', 'herald-source': 'alarms-processor', 'herald-host': hostname() }

export class AlarmProcessor {
  readonly #deps: AlarmProcessorDeps
  readonly #log: Logger
  readonly #consumer: Consumer
  readonly #producer: Producer
  readonly #admin: Admin
  readonly #partitions = new Map<number, PartitionAlarms>()
  #joinSeq = 0
  #running = false
  #stopping: Promise<void> | undefined
  #ticker: NodeJS.Timeout | undefined

  constructor(deps: AlarmProcessorDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ component: 'alarms-processor' })
    const session = deps.sessionTimeoutMs
    this.#consumer = deps.kafka.consumer({
      groupId: deps.groupId,
      partitionAssigners: [CoAssigner],
      sessionTimeout: session,
      heartbeatInterval: Math.max(500, Math.floor(session / 10)),
      rebalanceTimeout: Math.max(session, 60_000),
      allowAutoTopicCreation: false,
      maxWaitTimeInMs: 250,
    })
    this.#producer = deps.kafka.producer({
      allowAutoTopicCreation: false,
      createPartitioner: AlarmPartitioner,
    })
    this.#admin = deps.kafka.admin()
  }

  get running(): boolean {
    return this.#running
  }

  /** Partitions owned and loaded. */
  get loadedPartitions(): number[] {
    return [...this.#partitions.values()]
      .filter((p) => !p.loading)
      .map((p) => p.partition)
      .sort((a, b) => a - b)
  }

  get ownedPartitions(): number[] {
    return [...this.#partitions.keys()].sort((a, b) => a - b)
  }

  async start(onCrash: (error: Error) => void): Promise<void> {
    const c = this.#consumer
    await Promise.all([this.#producer.connect(), this.#admin.connect(), c.connect()])
    c.on(c.events.GROUP_JOIN, (event) => this.#onJoin(event))
    c.on(c.events.CRASH, (event) => {
      const { error, restart } = event.payload
      this.#log.error({ err: error, restart }, 'kafkajs consumer crashed')
      if (!restart) onCrash(error)
    })
    const { topics } = this.#deps
    await c.subscribe({
      topics: [topics.registered, topics.activations, topics.overrides, topics.effective],
      fromBeginning: true,
    })
    this.#running = true
    await c.run({
      autoCommit: false,
      partitionsConsumedConcurrently: 8,
      eachBatch: (payload) => this.#onBatch(payload),
    })
    // Loads whose partitions' tails were compacted away end by idleness; parents are looked at here too.
    this.#ticker = setInterval(() => this.#tick(), 500)
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (!this.#running) return
      this.#running = false
      clearInterval(this.#ticker)
      for (const p of this.#partitions.values()) clearTimeout(p.timer?.handle)
      await this.#consumer.stop().catch(() => {})
      await this.#consumer.disconnect().catch(() => {})
      await this.#producer.disconnect().catch(() => {})
      await this.#admin.disconnect().catch(() => {})
    })()
    return this.#stopping
  }

  /**
   * A new assignment: every partition is read again from the beginning (kafkajs finds nothing committed and
   * starts at the earliest offset; the seek makes it explicit for partitions kept across the rebalance).
   */
  #onJoin(event: ConsumerGroupJoinEvent): void {
    const seq = ++this.#joinSeq
    const { topics } = this.#deps
    const assigned = [...(event.payload.memberAssignment[topics.registered] ?? [])].sort((a, b) => a - b)
    for (const p of this.#partitions.values()) clearTimeout(p.timer?.handle)
    this.#partitions.clear()
    for (const partition of assigned) {
      this.#partitions.set(partition, {
        partition,
        joinSeq: seq,
        alarms: new Map(),
        loading: { ends: undefined, read: new Map(), lastBatchAt: Date.now() },
        deadlines: new Map(),
        queue: Promise.resolve(),
      })
      for (const topic of Object.values(topics)) this.#consumer.seek({ topic, partition, offset: '0' })
    }
    this.#deps.metrics.partitionsOwned.set(assigned.length)
    this.#log.info({ assigned }, 'joined the group; loading the alarm topics of the assigned partitions')
    void this.#readEnds(seq, assigned)
  }

  async #readEnds(seq: number, partitions: number[]): Promise<void> {
    const ends = new Map<number, Map<string, number>>(partitions.map((p) => [p, new Map()]))
    for (let attempt = 1; seq === this.#joinSeq && this.#running; attempt++) {
      try {
        for (const topic of Object.values(this.#deps.topics)) {
          for (const { partition, high } of await this.#admin.fetchTopicOffsets(topic))
            ends.get(partition)?.set(topic, Number(high))
        }
        break
      } catch (error) {
        this.#log.warn({ err: error, attempt }, 'log ends of the alarm topics not read; retrying')
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)))
      }
    }
    if (seq !== this.#joinSeq) return
    for (const [partition, byTopic] of ends) {
      const p = this.#partitions.get(partition)
      if (p?.loading) {
        p.loading.ends = byTopic
        this.#enqueue(p, () => this.#finishLoadIfRead(p))
      }
    }
  }

  #enqueue(p: PartitionAlarms, work: () => Promise<void>): Promise<void> {
    const run = p.queue.then(work).catch((error: unknown) => {
      this.#log.error({ err: error, partition: p.partition }, 'alarm decisions failed; they are made again')
      throw error
    })
    p.queue = run.catch(() => {})
    return run
  }

  async #onBatch({ batch, heartbeat }: EachBatchPayload): Promise<void> {
    const p = this.#partitions.get(batch.partition)
    if (!p) return
    await this.#enqueue(p, async () => {
      if (this.#partitions.get(batch.partition) !== p) return
      const before = new Map(p.alarms)
      const decisions: AlarmDecision[] = []
      for (const message of batch.messages) {
        const change = this.#changeOf(batch.topic, message)
        if (!change) continue
        const alarm = p.alarms.get(change.name) ?? newAlarmState(change.name)
        if (p.loading) {
          p.alarms.set(change.name, applyChange(alarm, change.change))
          continue
        }
        // After the load, the alarm's own effective records are its own writes read back (an older one
        // would roll its memory back): only the registered, activations and overrides topics are news.
        if (change.change.type === 'effective') continue
        const decision = step(this.#withParent(alarm), change.change, Date.now())
        p.alarms.set(change.name, decision.state)
        decisions.push(decision)
      }
      if (p.loading) {
        p.loading.read.set(batch.topic, Number(batch.lastOffset()) + 1)
        p.loading.lastBatchAt = Date.now()
        await this.#finishLoadIfRead(p)
      } else {
        // kafkajs fetches the batch again when this throws: the alarms must be as they were before it.
        await this.#publish(p, decisions).catch((error: unknown) => {
          p.alarms = before
          throw error
        })
      }
    })
    await heartbeat()
  }

  /** The alarm and change a record stands for; undefined (logged, counted) when it cannot be read. */
  #changeOf(topic: string, message: KafkaMessage): { name: string; change: AlarmChange } | undefined {
    const { topics, metrics } = this.#deps
    const key = message.key?.toString('utf8') ?? ''
    const at = Number(message.timestamp)
    const bad = (reason: string) => {
      metrics.unreadable.inc({ topic })
      this.#log.warn({ topic, key, offset: message.offset, reason }, 'alarm record ignored: unreadable')
      return undefined
    }
    let json: unknown = null
    if (message.value !== null) {
      try {
        json = JSON.parse(message.value.toString('utf8'))
      } catch {
        return bad('not JSON')
      }
    }
    if (key === '') return bad('no key')
    switch (topic) {
      case topics.registered: {
        if (json === null) return { name: key, change: { type: 'registration', registration: null } }
        const parsed = registrationSchema.safeParse(json)
        if (!parsed.success) return bad(parsed.error.issues[0]?.message ?? 'schema')
        return { name: key, change: { type: 'registration', registration: parsed.data } }
      }
      case topics.activations: {
        if (json === null) return { name: key, change: { type: 'activation', activation: null, at } }
        const parsed = activationSchema.safeParse(json)
        if (!parsed.success) return bad(parsed.error.issues[0]?.message ?? 'schema')
        return { name: key, change: { type: 'activation', activation: parsed.data, at } }
      }
      case topics.overrides: {
        const parsed = parseOverride(key, json)
        if (!parsed.ok) return bad(parsed.issues[0]?.reason ?? 'schema')
        return {
          name: parsed.name,
          change: { type: 'override', kind: parsed.kind, override: parsed.override },
        }
      }
      case topics.effective: {
        if (json === null) return { name: alarmOfKey(key), change: { type: 'effective', effective: null } }
        const parsed = effectiveSchema.safeParse(json)
        if (!parsed.success) return bad(parsed.error.issues[0]?.message ?? 'schema')
        return { name: key, change: { type: 'effective', effective: parsed.data } }
      }
    }
    return undefined
  }

  /** Once every topic of the partition was read to its end at the assignment: reconcile every alarm. */
  async #finishLoadIfRead(p: PartitionAlarms, idle = false): Promise<void> {
    const loading = p.loading
    if (!loading?.ends) return
    const unread = [...loading.ends].filter(([topic, end]) => (loading.read.get(topic) ?? 0) < end)
    if (unread.length > 0 && !idle) return
    if (unread.length > 0)
      this.#log.warn(
        { partition: p.partition, unread: Object.fromEntries(unread) },
        'no record came for a while below the log end (compacted away): taking the partition as loaded',
      )
    const before = new Map(p.alarms)
    p.loading = undefined
    const now = Date.now()
    const decisions: AlarmDecision[] = []
    for (const [name, alarm] of p.alarms) {
      const withParent = this.#withParent(alarm)
      const decision = reconcile(withParent, now)
      p.alarms.set(name, decision.state)
      decisions.push(decision)
    }
    try {
      await this.#publish(p, decisions)
    } catch (error) {
      // Loaded again by the next batch or the idle check: nothing was decided.
      p.alarms = before
      p.loading = { ...loading, lastBatchAt: Date.now() }
      throw error
    }
    this.#log.info({ partition: p.partition, alarms: p.alarms.size }, 'alarm partition loaded; following it')
  }

  /**
   * The alarm with its parent's effective state: this processor's own decision when it owns the parent
   * (current at once), else what the parents' store has read (another member's, a moment behind).
   */
  #withParent(alarm: AlarmState): AlarmState {
    const parent = alarm.registration?.maskedBy
    if (parent === undefined) return alarm
    let owned: AlarmState | undefined
    for (const p of this.#partitions.values()) owned ??= p.loading ? undefined : p.alarms.get(parent)
    const active =
      (owned ? owned.published?.effectivelyActive : this.#deps.parents.get(parent)?.effectivelyActive) ??
      false
    if (alarm.parentEffectivelyActive === active) return alarm
    return applyChange(alarm, { type: 'parent', effectivelyActive: active })
  }

  /** Produces the decisions (overrides, then events, then effective records) and re-arms the timer. */
  async #publish(p: PartitionAlarms, decisions: AlarmDecision[]): Promise<void> {
    const { topics, eventsTopic, metrics } = this.#deps
    const writes = decisions.flatMap((d) => d.writes)
    const events: AlarmEvent[] = decisions.flatMap((d) => d.events)
    const effective = decisions.filter((d) => d.publish)
    if (writes.length > 0)
      await this.#producer.send({
        topic: topics.overrides,
        acks: -1,
        messages: writes.map((w) => ({
          key: w.key,
          value: w.override === null ? null : JSON.stringify(w.override),
          headers: audit,
        })),
      })
    if (events.length > 0) {
      await this.#producer.send({
        topic: eventsTopic,
        acks: -1,
        messages: events.map((e) => ({ ...encodeAlarmEvent(e), headers: audit })),
      })
      for (const e of events) metrics.events.inc({ kind: e.kind ?? 'alarm' })
    }
    if (effective.length > 0)
      await this.#producer.send({
        topic: topics.effective,
        acks: -1,
        messages: effective.map((d) => ({
          key: d.state.name,
          value: d.effective === null ? null : JSON.stringify(d.effective),
          headers: audit,
        })),
      })
    for (const d of decisions) {
      if (d.deadline === undefined) p.deadlines.delete(d.state.name)
      else p.deadlines.set(d.state.name, d.deadline)
    }
    // A parent that changed here: its children on this processor follow at once, not at the next tick.
    if (effective.length > 0) setImmediate(() => this.#tick())
    metrics.alarms.set([...this.#partitions.values()].reduce((n, q) => n + q.alarms.size, 0))
    this.#arm(p)
  }

  /** One timer per partition, at its earliest deadline. */
  #arm(p: PartitionAlarms): void {
    let earliest = Infinity
    for (const at of p.deadlines.values()) earliest = Math.min(earliest, at)
    if (earliest === Infinity) {
      clearTimeout(p.timer?.handle)
      p.timer = undefined
      return
    }
    if (p.timer && p.timer.at === earliest) return
    clearTimeout(p.timer?.handle)
    const handle = setTimeout(
      () => {
        p.timer = undefined
        void this.#enqueue(p, () => this.#fire(p)).catch(() => {
          // Kafka unreachable: the same deadlines are tried again in a second.
          p.timer = { at: earliest, handle: setTimeout(() => this.#arm(p), 1000) }
        })
      },
      Math.max(0, earliest - Date.now()),
    )
    handle.unref()
    p.timer = { at: earliest, handle }
  }

  /** Steps every alarm whose deadline has come. */
  async #fire(p: PartitionAlarms): Promise<void> {
    if (this.#partitions.get(p.partition) !== p || p.loading) return
    const now = Date.now()
    const before = new Map(p.alarms)
    const decisions: AlarmDecision[] = []
    for (const [name, at] of p.deadlines) {
      if (at > now) continue
      const alarm = p.alarms.get(name)
      if (!alarm) continue
      const decision = step(alarm, { type: 'timer' }, now)
      p.alarms.set(name, decision.state)
      decisions.push(decision)
      this.#deps.metrics.timerLateness.observe(Math.max(0, now - at) / 1000)
    }
    await this.#publish(p, decisions).catch((error: unknown) => {
      p.alarms = before
      throw error
    })
  }

  #tick(): void {
    const now = Date.now()
    for (const p of this.#partitions.values()) {
      if (p.loading?.ends && now - p.loading.lastBatchAt > idleLoadMs) {
        void this.#enqueue(p, () => this.#finishLoadIfRead(p, true)).catch(() => {})
        continue
      }
      if (p.loading) continue
      // A masked alarm follows its parent, which another member may own: look at the parents' store.
      const changed = [...p.alarms.values()].filter((a) => a.registration?.maskedBy !== undefined)
      if (changed.some((a) => this.#withParent(a) !== a))
        void this.#enqueue(p, async () => {
          const before = new Map(p.alarms)
          const decisions: AlarmDecision[] = []
          for (const alarm of before.values()) {
            const next = this.#withParent(alarm)
            if (next === alarm) continue
            const decision = reconcile(next, Date.now())
            p.alarms.set(alarm.name, decision.state)
            decisions.push(decision)
          }
          await this.#publish(p, decisions).catch((error: unknown) => {
            p.alarms = before
            throw error
          })
        }).catch(() => {})
    }
  }
}
