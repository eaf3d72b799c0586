// The rules evaluator: owns partitions of the rules topic through a consumer group (nothing committed: every
// assignment reads its partitions from the beginning), keeps each owned rule's evaluation state in Redis,
// and evaluates each rule at its slot (schedule.ts) with bounded concurrency, a timeout per query and
// retries within the interval. Outcomes become alarm activations (evaluate.ts; the rule's alarm is
// registered on first use), and in alert-exec compatibility mode also the engine's POST /notify and
// POST /resolve. A member that takes a partition over reads the states and carries the schedule on.
import { hostname } from 'node:os'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import type { Activation } from '@herald/shared/alarms/schemas'
import { activationSchema } from '@herald/shared/alarms/schemas'
import type { Config } from '@herald/shared/config'
import type { ConfigTopicStore } from '@herald/shared/config-topics/store'
import type { Logger } from '@herald/shared/logger'
import type { Redis } from '@herald/shared/redis/client'
import type { RedisKeys } from '@herald/shared/redis/keys'
import { parseRuleRecord, type Rule, type RuleState, ruleStateSchema } from '@herald/shared/rules/schemas'
import type { Consumer, ConsumerGroupJoinEvent, EachBatchPayload, Kafka, Producer } from 'kafkajs'
import { activationSource, evaluate, type RuleAction, retireRule, stateFromActivation } from './evaluate.ts'
import type { RulesMetrics } from './metrics.ts'
import { postToEngine, queryRule } from './queries.ts'
import { queryFailingRegistration, ruleAlarmRegistration } from './registrations.ts'
import { nextDueAt } from './schedule.ts'

export interface RulesEvaluatorDeps {
  kafka: Kafka
  redis: Redis
  keys: RedisKeys
  config: Config
  logger: Logger
  metrics: RulesMetrics
  topics: { rules: string; registered: string; activations: string }
  groupId: string
  /** Every alarm's activation (all partitions): where a rule without a kept state starts from. */
  activations: ConfigTopicStore<Activation>
}

interface OwnedPartition {
  partition: number
  rules: Map<string, Rule>
  states: Map<string, RuleState>
  due: Map<string, number>
  loading?: { end: number | undefined; read: number; lastBatchAt: number }
}

const idleLoadMs = 3000
const audit = { 'herald-user': 'rules', 'herald-source': 'rules-evaluator', 'herald-host': hostname() }

export class RulesEvaluator {
  readonly #deps: RulesEvaluatorDeps
  readonly #log: Logger
  readonly #consumer: Consumer
  readonly #producer: Producer
  readonly #partitions = new Map<number, OwnedPartition>()
  /** Rules being evaluated now (one evaluation of a rule at a time). */
  readonly #inFlight = new Set<string>()
  /** Rules due at the last tick, earliest first, and how far #dispatch got through them. */
  #queue: Array<{ owned: OwnedPartition; name: string; dueAt: number }> = []
  #queueAt = 0
  /** Registrations this process wrote, by alarm name (written again when the rule changes). */
  readonly #registered = new Map<string, string>()
  readonly #stop = new AbortController()
  #joinSeq = 0
  #running = false
  #ticker: NodeJS.Timeout | undefined
  #stopping: Promise<void> | undefined

  constructor(deps: RulesEvaluatorDeps) {
    this.#deps = deps
    this.#log = deps.logger.child({ component: 'rules-evaluator' })
    const session = deps.config.kafka.sessionTimeoutMs
    this.#consumer = deps.kafka.consumer({
      groupId: deps.groupId,
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
  }

  get running(): boolean {
    return this.#running
  }

  get ownedPartitions(): number[] {
    return [...this.#partitions.keys()].sort((a, b) => a - b)
  }

  get loadedPartitions(): number[] {
    return [...this.#partitions.values()]
      .filter((p) => !p.loading)
      .map((p) => p.partition)
      .sort((a, b) => a - b)
  }

  async start(onCrash: (error: Error) => void): Promise<void> {
    const c = this.#consumer
    await Promise.all([this.#producer.connect(), c.connect()])
    c.on(c.events.GROUP_JOIN, (event) => this.#onJoin(event))
    c.on(c.events.CRASH, (event) => {
      const { error, restart } = event.payload
      this.#log.error({ err: error, restart }, 'kafkajs consumer crashed')
      if (!restart) onCrash(error)
    })
    await c.subscribe({ topic: this.#deps.topics.rules, fromBeginning: true })
    this.#running = true
    await c.run({ autoCommit: false, eachBatch: (payload) => this.#onBatch(payload) })
    this.#ticker = setInterval(() => this.#tick(), 100)
  }

  /** Stops starting evaluations, lets those in flight finish (within the bound), leaves the group. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      if (!this.#running) return
      this.#running = false
      clearInterval(this.#ticker)
      const bound = Date.now() + this.#deps.config.shutdownTimeoutMs
      while (this.#inFlight.size > 0 && Date.now() < bound) await new Promise((r) => setTimeout(r, 50))
      this.#stop.abort(new Error('stopped'))
      await this.#consumer.stop().catch(() => {})
      await this.#consumer.disconnect().catch(() => {})
      await this.#producer.disconnect().catch(() => {})
    })()
    return this.#stopping
  }

  #onJoin(event: ConsumerGroupJoinEvent): void {
    const seq = ++this.#joinSeq
    const topic = this.#deps.topics.rules
    const assigned = [...(event.payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b)
    this.#partitions.clear()
    for (const partition of assigned) {
      this.#partitions.set(partition, {
        partition,
        rules: new Map(),
        states: new Map(),
        due: new Map(),
        loading: { end: undefined, read: 0, lastBatchAt: Date.now() },
      })
      this.#consumer.seek({ topic, partition, offset: '0' })
    }
    this.#deps.metrics.partitionsOwned.set(assigned.length)
    this.#log.info({ assigned }, 'joined the group; loading the rules of the assigned partitions')
    void this.#load(seq, assigned)
  }

  /** The log ends to read to, and the kept states (Redis) of the assigned partitions. */
  async #load(seq: number, partitions: number[]): Promise<void> {
    const { redis, keys, topics } = this.#deps
    for (let attempt = 1; seq === this.#joinSeq && this.#running; attempt++) {
      try {
        const admin = this.#deps.kafka.admin()
        await admin.connect()
        const ends = await admin.fetchTopicOffsets(topics.rules).finally(() => admin.disconnect())
        const states = await Promise.all(
          partitions.map((p) => redis.hgetall(keys.ruleStates(topics.rules, p))),
        )
        if (seq !== this.#joinSeq) return
        partitions.forEach((partition, i) => {
          const owned = this.#partitions.get(partition)
          if (!owned?.loading) return
          for (const [name, json] of Object.entries(states[i] ?? {})) {
            const parsed = ruleStateSchema.safeParse(JSON.parse(json))
            if (parsed.success) owned.states.set(name, parsed.data)
          }
          owned.loading.end = Number(ends.find((e) => e.partition === partition)?.high ?? 0)
          this.#finishLoadIfRead(owned)
        })
        return
      } catch (error) {
        this.#log.warn({ err: error, attempt }, 'rules partitions not loaded yet; retrying')
        await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)))
      }
    }
  }

  async #onBatch({ batch }: EachBatchPayload): Promise<void> {
    const owned = this.#partitions.get(batch.partition)
    if (!owned) return
    const changed: Array<[string, Rule | null]> = []
    for (const message of batch.messages) {
      const key = message.key?.toString('utf8') ?? ''
      let json: unknown = null
      try {
        json = message.value === null ? null : JSON.parse(message.value.toString('utf8'))
      } catch {
        json = undefined
      }
      const parsed = json === undefined ? undefined : parseRuleRecord(key, json)
      if (!parsed?.ok) {
        this.#deps.metrics.unreadable.inc()
        this.#log.warn({ key, offset: message.offset }, 'rule record ignored: unreadable')
        continue
      }
      changed.push([parsed.name, parsed.rule])
    }
    for (const [name, rule] of changed) {
      const before = owned.rules.get(name)
      if (rule === null) owned.rules.delete(name)
      else owned.rules.set(name, rule)
      if (owned.loading) continue
      if (rule === null) {
        if (before) await this.#retire(owned, before)
      } else {
        const state = this.#stateOf(owned, name)
        owned.due.set(name, nextDueAt(rule, state?.evaluatedAt, Date.now()))
      }
    }
    if (owned.loading) {
      owned.loading.read = Number(batch.lastOffset()) + 1
      owned.loading.lastBatchAt = Date.now()
      this.#finishLoadIfRead(owned)
    }
    this.#deps.metrics.rules.set([...this.#partitions.values()].reduce((n, p) => n + p.rules.size, 0))
  }

  #finishLoadIfRead(owned: OwnedPartition, idle = false): void {
    const loading = owned.loading
    if (loading?.end === undefined) return
    if (loading.read < loading.end && !idle) return
    owned.loading = undefined
    const now = Date.now()
    for (const [name, rule] of owned.rules) {
      owned.due.set(name, nextDueAt(rule, this.#stateOf(owned, name)?.evaluatedAt, now))
    }
    this.#log.info(
      { partition: owned.partition, rules: owned.rules.size },
      'rules partition loaded; evaluating',
    )
  }

  /** The kept state, or (none kept) the one its alarm's activation on the topic says. */
  #stateOf(owned: OwnedPartition, name: string): RuleState | undefined {
    const kept = owned.states.get(name)
    if (kept) return kept
    const activation = this.#deps.activations.get(name)
    if (activation?.source !== activationSource(name)) return undefined
    const state = stateFromActivation(activation, Date.now())
    owned.states.set(name, state)
    return state
  }

  /**
   * Every 100 ms: the rules due now, earliest first, become the queue that #dispatch starts from as slots
   * free up (an evaluation that ends starts the next at once, not at the next tick, so a replica is bounded
   * by RULES_CONCURRENCY in flight, not per tick; and the earliest due always goes first, so none starves).
   */
  #tick(): void {
    if (!this.#running) return
    const now = Date.now()
    const due: Array<{ owned: OwnedPartition; name: string; dueAt: number }> = []
    for (const owned of this.#partitions.values()) {
      if (owned.loading) {
        if (owned.loading.end !== undefined && now - owned.loading.lastBatchAt > idleLoadMs)
          this.#finishLoadIfRead(owned, true)
        continue
      }
      for (const [name, dueAt] of owned.due)
        if (dueAt <= now && !this.#inFlight.has(name)) due.push({ owned, name, dueAt })
    }
    this.#queue = due.sort((a, b) => a.dueAt - b.dueAt)
    this.#queueAt = 0
    this.#dispatch()
  }

  #dispatch(): void {
    const limit = this.#deps.config.rules.concurrency
    while (this.#running && this.#inFlight.size < limit && this.#queueAt < this.#queue.length) {
      const next = this.#queue[this.#queueAt++]
      if (!next) break
      const { owned, name, dueAt } = next
      // Still this member's, still due at that slot, not started meanwhile.
      if (this.#partitions.get(owned.partition) !== owned || owned.due.get(name) !== dueAt) continue
      if (this.#inFlight.has(name)) continue
      const rule = owned.rules.get(name)
      if (!rule) {
        owned.due.delete(name)
        continue
      }
      this.#inFlight.add(name)
      void this.#evaluate(owned, name, rule, dueAt).finally(() => {
        this.#inFlight.delete(name)
        this.#dispatch()
      })
    }
  }

  /** One evaluation: the query (retried within the interval), the decision, its actions, the kept state. */
  async #evaluate(owned: OwnedPartition, name: string, rule: Rule, dueAt: number): Promise<void> {
    const { metrics, config } = this.#deps
    const started = Date.now()
    metrics.lateness.observe(Math.max(0, started - dueAt) / 1000)
    const intervalMs = rule.intervalSecs * 1000
    const timeoutMs = Math.max(200, Math.min(10_000, Math.floor(intervalMs / 2)))
    // Retries end so that the evaluation is over well within its interval.
    const retryUntil = dueAt + Math.floor(intervalMs * 0.8)
    let outcome = await queryRule(config.rules, rule, timeoutMs, this.#stop.signal)
    for (let attempt = 1; !outcome.ok && this.#running; attempt++) {
      const wait = Math.min(2000, 100 * 2 ** attempt)
      if (Date.now() + wait + timeoutMs > retryUntil) break
      await new Promise((r) => setTimeout(r, wait))
      outcome = await queryRule(config.rules, rule, timeoutMs, this.#stop.signal)
    }
    metrics.evaluations.inc({ result: outcome.ok ? 'value' : 'failed' })
    metrics.queryDuration.observe((Date.now() - started) / 1000)
    if (!outcome.ok) this.#log.warn({ rule: name, error: outcome.error }, 'rule query failed')
    const decision = evaluate(rule, this.#stateOf(owned, name), outcome, dueAt, {
      engineNotices: config.rules.fromEngine,
    })
    try {
      await this.#act(rule, decision.actions)
      await this.#deps.redis.hset(
        this.#deps.keys.ruleStates(this.#deps.topics.rules, owned.partition),
        name,
        JSON.stringify(decision.state),
      )
      owned.states.set(name, decision.state)
      if (owned.rules.get(name) === rule)
        owned.due.set(name, nextDueAt(rule, decision.state.evaluatedAt, Date.now()))
    } catch (error) {
      // Kafka or Redis unreachable: the same slot is evaluated again in a second (the actions repeat with
      // the same activation times: an activation written twice is the same trip).
      metrics.evaluations.inc({ result: 'unrecorded' })
      this.#log.warn({ err: error, rule: name }, 'rule outcome not recorded; evaluating its slot again')
      owned.due.set(name, Date.now() + 1000)
    }
  }

  async #act(rule: Rule, actions: readonly RuleAction[]): Promise<void> {
    const { topics, metrics, config } = this.#deps
    for (const action of actions) {
      metrics.actions.inc({ type: action.type })
      switch (action.type) {
        case 'activate':
        case 'escalated':
        case 'deescalated':
          await this.#register(action.alarmName, ruleAlarmRegistration(rule))
          await this.#write(topics.activations, action.alarmName, action.activation)
          this.#log.info(
            { rule: rule.name, level: action.level, value: action.activation.value, action: action.type },
            `rule ${action.type === 'activate' ? 'crossed its threshold' : action.type}`,
          )
          break
        case 'clear':
          await this.#write(topics.activations, action.alarmName, null)
          this.#log.info({ rule: rule.name, from: action.from, value: action.value }, 'rule passes again')
          break
        case 'queryFailing':
          await this.#register(action.alarmName, queryFailingRegistration(rule))
          await this.#write(topics.activations, action.alarmName, action.activation)
          break
        case 'queryRecovered':
          await this.#write(topics.activations, action.alarmName, null)
          break
        case 'notify':
        case 'resolve': {
          const url = config.rules.alertsEngineUrl
          if (!url) break
          const body: Record<string, string> = { alertName: action.alertName }
          if (action.type === 'notify') body.message = action.message
          const sent = await postToEngine(url, action.type, body, rule.intervalSecs * 1000, this.#stop.signal)
          metrics.engineCalls.inc({ call: action.type, result: sent.ok ? 'ok' : 'failed' })
          if (!sent.ok)
            this.#log.error(
              { rule: rule.name, call: action.type, attempts: sent.attempts, error: sent.error },
              'the alerts engine did not take a notice',
            )
          break
        }
      }
    }
  }

  /** Registers the rule's alarm when this process has not (or the registration changed). */
  async #register(name: string, registration: object): Promise<void> {
    const json = JSON.stringify({ ...registration, name })
    if (this.#registered.get(name) === json) return
    await this.#write(this.#deps.topics.registered, name, JSON.parse(json))
    this.#registered.set(name, json)
  }

  async #write(topic: string, key: string, value: unknown): Promise<void> {
    if (value !== null && topic === this.#deps.topics.activations) activationSchema.parse(value)
    await this.#producer.send({
      topic,
      acks: -1,
      messages: [{ key, value: value === null ? null : JSON.stringify(value), headers: audit }],
    })
  }

  /** A deleted rule: its alarms are cleared (and resolved at the engine), its state forgotten. */
  async #retire(owned: OwnedPartition, rule: Rule): Promise<void> {
    const { name } = rule
    const state = owned.states.get(name)
    owned.due.delete(name)
    owned.states.delete(name)
    try {
      const actions = retireRule(name, state, { engineNotices: this.#deps.config.rules.fromEngine })
      await this.#act(rule, actions)
      await this.#deps.redis.hdel(this.#deps.keys.ruleStates(this.#deps.topics.rules, owned.partition), name)
    } catch (error) {
      this.#log.warn({ err: error, rule: name }, 'a deleted rule could not be retired')
    }
  }
}
