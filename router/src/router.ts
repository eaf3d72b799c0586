// The router's consumer of one alarm-events topic: the offset protocol from shared (PartitionClaims), and per
// batch of events: match routes, plan and render one notification per (route, recipient, channel), produce
// them with acks=all, keep the reminder schedule in Redis, and only then finish the events' offsets. A crash
// anywhere repeats the events after the last recorded offset, and their notifications carry the same ids
// (plan.ts), which the distributors fold. See ARCHITECTURE.md, "The alarm side".
import { hostname } from 'node:os'
import type { AlarmEvent } from '@herald/shared/alarm-events'
import { decodeAlarmEvent } from '@herald/shared/alarm-events'
import type { Config } from '@herald/shared/config'
import type { ConfigStores } from '@herald/shared/config-topics/stores'
import { type DeadLetter, writeDeadLetters } from '@herald/shared/dead-letter-writer'
import type { Logger } from '@herald/shared/logger'
import { encodeRecord, type NotificationRecord, recordVersion } from '@herald/shared/notification'
import { LagExporter } from '@herald/shared/offsets/lag'
import { PartitionClaims, type PartitionState } from '@herald/shared/offsets/partition-claims'
import { HeraldPartitioner } from '@herald/shared/partitioner'
import type { Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'
import type { StatusStore } from '@herald/shared/status'
import type { TopicNames } from '@herald/shared/topics'
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage, Message, Producer } from 'kafkajs'
import { matchingRoutes } from './match.ts'
import type { RouterMetrics } from './metrics.ts'
import { type PlannedNotification, planNotifications } from './plan.ts'
import { type DueReminder, entryKey, type ReminderEntry, ReminderSchedule } from './reminders.ts'
import { renderNotification } from './render.ts'
import { skipReason } from './skip.ts'

export interface RouterDeps {
  kafka: Kafka
  redis: Redis
  keys: RedisKeys
  statuses: StatusStore
  stores: ConfigStores
  config: Config
  logger: Logger
  metrics: RouterMetrics
  /** The alarm-events topic this router follows, and where its unreadable events go. */
  topic: string
  deadLetterTopic: string
  notificationTopics: TopicNames
  groupId: string
}

/** Events routed per produce request (and per offset advance) within a batch. */
const chunkSize = 200
/** How often due reminders are looked for. */
const reminderTickMs = 1000

/** What one event (or a due reminder) becomes. */
interface Routed {
  messages: Array<{ topic: string; message: Message }>
  records: NotificationRecord[]
  problems: string[]
}

export class Router {
  readonly #deps: RouterDeps
  readonly #log: Logger
  readonly #consumer: Consumer
  readonly #producer: Producer
  readonly #claims: PartitionClaims
  readonly #admin: Admin
  /** The topic's consumer lag and oldest unfinished age, exported while this replica leads the group. */
  readonly #lag: LagExporter
  readonly #stop = new AbortController()
  /** Each claim's reminder schedule, read from Redis on first use (a new claim reads it again). */
  readonly #schedules = new WeakMap<PartitionState, Promise<ReminderSchedule>>()
  /** One change at a time per claim: a batch and the reminder tick both change the schedule. */
  readonly #locks = new WeakMap<PartitionState, Promise<unknown>>()
  /** The schedules of #schedules once read. */
  readonly #loaded = new WeakMap<PartitionState, ReminderSchedule>()
  #timer: NodeJS.Timeout | undefined
  #running = false
  #reminding: Promise<void> | undefined
  #stopping: Promise<void> | undefined

  constructor(deps: RouterDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ topic: deps.topic })
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
      topic: deps.topic,
      brokers: deps.config.kafka.brokers,
      metrics: deps.metrics,
      logger: this.#log,
      signal: this.#stop.signal,
      onJoin: (_assigned, event) => this.#lag.setLeader(event.payload.isLeader),
    })
    this.#lag = new LagExporter({
      admin: this.#admin,
      offsets: this.#claims.offsets,
      topic: deps.topic,
      groupId: deps.groupId,
      metrics: deps.metrics,
      logger: this.#log,
    })
  }

  get running(): boolean {
    return this.#running
  }

  get heldPartitions(): number[] {
    return this.#claims.held
  }

  async start(onCrash: (error: Error) => void): Promise<void> {
    const c = this.#consumer
    await Promise.all([this.#producer.connect(), this.#admin.connect(), c.connect()])
    this.#claims.attach()
    c.on(c.events.CRASH, (event) => {
      const { error, restart } = event.payload
      this.#log.error({ err: error, restart }, 'kafkajs consumer crashed')
      if (!restart) onCrash(error)
    })
    await c.subscribe({ topic: this.#deps.topic, fromBeginning: true })
    this.#running = true
    await c.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: Math.max(1, this.#deps.config.topics.partitions),
      eachBatch: (payload) => this.#onBatch(payload),
    })
    this.#timer = setInterval(() => {
      // One tick at a time; stop() waits for the one running (a reminder produced is recorded too).
      this.#reminding ??= this.#remindDue().finally(() => {
        this.#reminding = undefined
      })
    }, reminderTickMs)
    this.#lag.start(this.#deps.config.lagIntervalMs)
  }

  /** Stops fetching, lets the batch in progress finish, leaves the group. Same promise on every call. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (!this.#running) return
      this.#running = false
      clearInterval(this.#timer)
      await this.#reminding
      this.#claims.detach()
      this.#lag.stop()
      try {
        await this.#consumer.stop()
      } finally {
        this.#stop.abort(new Error('stopped'))
        await this.#consumer.disconnect().catch(() => {})
        await this.#producer.disconnect().catch(() => {})
        await this.#admin.disconnect().catch(() => {})
      }
    })()
    return this.#stopping
  }

  async #onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const claims = this.#claims
    const state = claims.get(batch.partition)
    if (!state || !claims.isCurrent(state) || isStale() || !isRunning()) return
    const accepted: KafkaMessage[] = []
    let lastInOrder: string | undefined
    let soughtBack = false
    for (const message of batch.messages) {
      const decision = state.tracker.offer(Number(message.offset))
      if (decision === 'gap') {
        this.#log.warn(
          { partition: batch.partition, offset: message.offset, expected: state.tracker.expected },
          'offset gap; seeking back',
        )
        await claims.seekWithinLog([state], 'expected')
        soughtBack = true
        break
      }
      lastInOrder = message.offset
      if (decision === 'accept') accepted.push(message)
    }
    let done = 0
    try {
      while (done < accepted.length) {
        if (!claims.isCurrent(state) || isStale() || !isRunning()) break
        const chunk = accepted.slice(done, done + chunkSize)
        await this.#exclusive(state, () => this.#routeEvents(state, chunk))
        for (const m of chunk) state.tracker.finish(Number(m.offset))
        done += chunk.length
        await claims.advance(state)
        if (done < accepted.length) await heartbeat()
      }
    } catch (error) {
      // kafkajs retries the batch: what was not finished must be accepted again then.
      for (const m of accepted) state.tracker.release(Number(m.offset))
      throw error
    }
    if (done < accepted.length) {
      for (const m of accepted) state.tracker.release(Number(m.offset))
      return
    }
    if (!soughtBack && lastInOrder !== undefined && claims.isCurrent(state)) resolveOffset(lastInOrder)
  }

  #exclusive<T>(state: PartitionState, work: () => Promise<T>): Promise<T> {
    const before = this.#locks.get(state) ?? Promise.resolve()
    const run = before.then(work)
    this.#locks.set(
      state,
      run.catch(() => {}),
    )
    return run
  }

  #scheduleOf(state: PartitionState): Promise<ReminderSchedule> {
    let schedule = this.#schedules.get(state)
    if (!schedule) {
      const key = this.#remindersKey(state.partition)
      schedule = this.#deps.redis.hgetall(key).then((hash) => {
        const entries = Object.values(hash).map((json) => JSON.parse(json) as ReminderEntry)
        const loaded = new ReminderSchedule(entries)
        this.#loaded.set(state, loaded)
        return loaded
      })
      this.#schedules.set(state, schedule)
    }
    return schedule
  }

  /** Forgets the schedule in memory (a step failed half-way): the next step reads Redis again. */
  #reloadSchedule(state: PartitionState): void {
    this.#schedules.delete(state)
    this.#loaded.delete(state)
  }

  #remindersKey(partition: number): string {
    return this.#deps.keys.reminders(this.#deps.groupId, this.#deps.topic, partition)
  }

  async #routeEvents(state: PartitionState, messages: readonly KafkaMessage[]): Promise<void> {
    const { metrics, config, stores } = this.#deps
    const topic = this.#deps.topic
    const now = Date.now()
    const schedule = await this.#scheduleOf(state)
    const out: Routed = { messages: [], records: [], problems: [] }
    const letters: DeadLetter[] = []
    const started: ReminderEntry[] = []
    const stopped: ReminderEntry[] = []
    const routes = stores.routes.entries().map(([, route]) => route)
    for (const message of messages) {
      const letter = (reason: string, failureClass: string): DeadLetter => ({
        message,
        topic,
        partition: state.partition,
        reason,
        failureClass,
        attempts: 0,
      })
      const decoded = decodeAlarmEvent(message.value)
      if (decoded.kind === 'poison') {
        metrics.events.inc({ topic, outcome: 'poison', reason: '' })
        this.#log.warn(
          { partition: state.partition, offset: message.offset, reason: decoded.reason },
          'unreadable alarm event: dead-lettered',
        )
        letters.push(letter(decoded.reason, 'poison'))
        continue
      }
      const event = decoded.event
      const skip = skipReason(event, now, config.alarmEvents.ttlSeconds)
      const matched = skip ? [] : matchingRoutes(event, routes)
      const before = out.problems.length
      const notified = matched.filter((route) => this.#route(event, route, 'event', out) > 0)
      if (out.problems.length > before) {
        const reason = out.problems.slice(before).join('; ')
        letters.push(letter(reason, 'render'))
        this.#log.warn({ eventId: event.eventId, reason }, 'notifications of an alarm event not rendered')
      }
      metrics.events.inc({
        topic,
        outcome: skip ? 'skipped' : matched.length > 0 ? 'routed' : 'unrouted',
        reason: skip ?? '',
      })
      // The alarm's reminders follow its latest event, skipped or not (a transition ends the repeats).
      const changes = schedule.observe(event, notified, now)
      started.push(...changes.started)
      stopped.push(...changes.stopped)
    }
    try {
      await this.#produce(out, letters)
      await this.#saveReminders(state, started, stopped)
    } catch (error) {
      this.#reloadSchedule(state)
      throw error
    }
    metrics.reminders.set(this.#reminderCount())
  }

  /**
   * Plans and renders `event` for one route into `out`; returns how many notifications it gave. A failed
   * render is a problem (the event is dead-lettered with it), the route's other notifications still go.
   */
  #route(event: AlarmEvent, route: PlannedNotification['route'], kind: string, out: Routed): number {
    const { stores, metrics, notificationTopics } = this.#deps
    const plan = planNotifications(event, [route], (id) => stores.recipients.get(id))
    for (const u of plan.unplanned) metrics.unplanned.inc({ reason: u.reason })
    let produced = 0
    const createdAt = new Date().toISOString()
    for (const planned of plan.notifications) {
      const rendered = renderNotification(planned, event, (name) => stores.templates.get(name))
      if (!rendered.ok) {
        metrics.renderFailures.inc({ reason: rendered.error.reason })
        out.problems.push(rendered.error.message)
        continue
      }
      const { id, channel, to, subject, message } = rendered.value
      const record: NotificationRecord = {
        v: recordVersion,
        id,
        channel,
        to,
        ...(subject !== undefined ? { subject } : {}),
        message,
        createdAt,
        event: event as unknown as Record<string, unknown>,
      }
      out.records.push(record)
      out.messages.push({
        topic: notificationTopics.main(channel),
        message: {
          ...encodeRecord(record),
          headers: {
            'herald-source': 'router',
            'herald-user': `route:${route.name}`,
            'herald-host': hostname(),
            'herald-trace-id': event.eventId,
            'herald-kind': kind,
          },
        },
      })
      produced++
    }
    return produced
  }

  /** Notifications and dead letters, acks=all; then the `queued` statuses (best effort, like the api). */
  async #produce(out: Routed, letters: DeadLetter[]): Promise<void> {
    const byTopic = new Map<string, Message[]>()
    for (const { topic, message } of out.messages)
      byTopic.set(topic, [...(byTopic.get(topic) ?? []), message])
    if (byTopic.size > 0)
      await this.#producer.sendBatch({
        acks: -1,
        topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })),
      })
    await writeDeadLetters(this.#producer, this.#deps.deadLetterTopic, letters)
    for (const r of out.records) this.#deps.metrics.notifications.inc({ channel: r.channel, kind: kindOf(r) })
    await Promise.all(
      out.records.map((r) =>
        this.#deps.statuses
          .set(r.id, 'queued', 'create', { channel: r.channel, attempts: 0 })
          .catch((error: unknown) => this.#log.warn({ err: error, id: r.id }, 'queued status not written')),
      ),
    )
  }

  async #saveReminders(
    state: PartitionState,
    started: readonly ReminderEntry[],
    stopped: readonly ReminderEntry[],
  ): Promise<void> {
    if (started.length === 0 && stopped.length === 0) return
    const key = this.#remindersKey(state.partition)
    const multi = this.#deps.redis.multi()
    const startedKeys = new Set(started.map(entryKey))
    const gone = stopped.map(entryKey).filter((k) => !startedKeys.has(k))
    if (gone.length > 0) multi.hdel(key, ...gone)
    for (const entry of started) multi.hset(key, entryKey(entry), JSON.stringify(entry))
    await multi.exec()
  }

  /** The reminders that are due on every partition held here, produced, then recorded as sent. */
  async #remindDue(): Promise<void> {
    for (const state of this.#claims.states()) {
      if (!this.#claims.isCurrent(state) || !this.#running) continue
      await this.#exclusive(state, () => this.#remindPartition(state)).catch((error: unknown) => {
        this.#reloadSchedule(state)
        this.#log.warn({ err: error, partition: state.partition }, 'reminders not sent; trying again')
      })
    }
    this.#deps.metrics.reminders.set(this.#reminderCount())
  }

  async #remindPartition(state: PartitionState): Promise<void> {
    if (!this.#claims.isCurrent(state)) return
    const schedule = await this.#scheduleOf(state)
    const { due, dropped } = schedule.due(Date.now(), (name) => this.#deps.stores.routes.get(name))
    const out: Routed = { messages: [], records: [], problems: [] }
    const sent: DueReminder[] = []
    for (const reminder of due) {
      const before = out.problems.length
      this.#route(reminder.event, reminder.route, 'reminder', out)
      if (out.problems.length > before)
        this.#log.warn(
          { eventId: reminder.event.eventId, reason: out.problems.slice(before).join('; ') },
          'a reminder not rendered for every recipient',
        )
      sent.push(reminder)
    }
    if (out.messages.length > 0) await this.#produce(out, [])
    const now = Date.now()
    const updated = sent.flatMap((r) => schedule.sent(r, now) ?? [])
    await this.#saveReminders(state, updated, dropped)
    if (due.length > 0)
      this.#log.info({ partition: state.partition, reminders: due.length }, 'reminders sent')
  }

  /** Entries of the schedules read so far for the claims held now (an unread one is read at the next tick). */
  #reminderCount(): number {
    let count = 0
    for (const state of this.#claims.states()) count += this.#loaded.get(state)?.size ?? 0
    return count
  }
}

const kindOf = (record: NotificationRecord): string =>
  (record.event as { kind?: string } | undefined)?.kind === 'reminder' ? 'reminder' : 'event'
