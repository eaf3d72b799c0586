// The rules evaluator in alert-exec compatibility mode on the real stack (issue 16): rules imported from the
// alerts-engine stand-in (GET /alerts), values scripted per query (GET /query), and the engine's POST /notify
// and /resolve recorded; the rule's alarm activation is read back from the activations topic.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { after, before, test } from 'node:test'
import { createLogger } from '@herald/shared/logger'
import { rulesTopicName, rulesTopicSpec } from '@herald/shared/rules/topics'
import { alarmTopicNames, alarmTopicSpecs, ensureTopics } from '@herald/shared/topics'
import type { Consumer } from 'kafkajs'
import { type AlertsEngineStandIn, startAlertsEngineStandIn } from '../../dev/standins/alerts-engine.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext()
let ns: TestNamespace
let engine: AlertsEngineStandIn
let rules: ServiceProcess
let follower: Consumer
let steadyCrossAt = 0
/** Each alarm's activations in order (null: cleared), as written to the activations topic. */
const activations = new Map<string, Array<Record<string, unknown> | null>>()

const alert = (name: string, fields: Record<string, unknown> = {}) => ({
  name,
  query: name,
  intervalSecs: 1,
  repeatIntervalSecs: 3,
  warn: { value: 0.5, message: `${name} is high` },
  critical: { value: 0.9, message: `${name} is very high` },
  ...fields,
})

before(async () => {
  await ctx.ready
  ns = ctx.namespace('rules')
  const alarmTopics = alarmTopicNames(ns.prefix)
  await ensureTopics(ctx.admin, {
    specs: [rulesTopicSpec(rulesTopicName(ns.prefix), 1), ...alarmTopicSpecs(alarmTopics, 1)],
    partitions: 4,
    replication: 1,
    brokers: ctx.brokers.split(','),
    logger: createLogger({ service: 'test', level: 'silent' }),
  })
  engine = await startAlertsEngineStandIn({ port: 0, quiet: true, faults: {} })
  engine.setAlerts([
    alert('cpu'),
    alert('zero'),
    alert('spike', { sustainSecs: 4 }),
    alert('steady', { sustainSecs: 3 }),
    alert('broken'),
  ])
  const start = Date.now()
  // cpu: passes, warns, goes critical, passes; zero: 0 with a warn at 0.5 passes.
  engine.setValues({
    cpu: [
      { at: start, value: 0.1 },
      { at: start + 6_000, value: 0.7 },
      { at: start + 14_000, value: 0.95 },
      { at: start + 19_000, value: 0.2 },
    ],
    zero: 0,
    // Every query of this one fails (the engine answers 500).
    broken: null,
    // A 2 s spike under a 4 s sustain: held back. A crossing that holds past its 3 s sustain: notified.
    spike: [
      { at: start, value: 0.1 },
      { at: start + 8_000, value: 0.7 },
      { at: start + 10_000, value: 0.1 },
    ],
    steady: [
      { at: start, value: 0.1 },
      { at: start + 6_000, value: 0.7 },
      { at: start + 19_000, value: 0.1 },
    ],
  })
  steadyCrossAt = start + 6_000
  follower = ctx.kafka.consumer({ groupId: `rules-test-${randomUUID().slice(0, 8)}`, maxWaitTimeInMs: 100 })
  await follower.connect()
  await follower.subscribe({ topic: alarmTopics.activations, fromBeginning: true })
  await follower.run({
    eachMessage: async ({ message }) => {
      const key = message.key?.toString('utf8') ?? ''
      const list = activations.get(key) ?? []
      list.push(message.value ? JSON.parse(message.value.toString('utf8')) : null)
      activations.set(key, list)
    },
  })
  rules = ctx.service(
    'rules',
    'rules',
    serviceEnv(
      ns,
      {},
      {
        KAFKA_BROKERS: ctx.brokers,
        REDIS_URL: ctx.redisUrl,
        ALERTS_ENGINE_URL: engine.url,
        RULES_FROM_ENGINE: 'true',
        RULES_REFRESH_SECONDS: '2',
      },
    ),
  )
  await rules.waitForLog((l) => l.msg === 'rules partition loaded; evaluating', 60_000)
})

after(async () => {
  await follower?.disconnect()
  await engine?.close()
})

test('pass → warn → critical → pass: notify(warn), notify(critical) at once, repeats, one resolve; 0 is a value; sustain holds back a spike; a failing query raises its query-failing alarm', async () => {
  await eventually(
    'the resolve',
    () =>
      ['cpu', 'steady'].every((n) => engine.calls().some((c) => c.kind === 'resolve' && c.alertName === n))
        ? true
        : undefined,
    60_000,
  )
  const calls = engine.calls().filter((c) => c.alertName === 'cpu')
  const notices = calls.map((c) => (c.kind === 'resolve' ? 'resolve' : (c.message ?? '')))
  const warns = calls.filter((c) => c.message === 'cpu is high')
  const criticals = calls.filter((c) => c.message === 'cpu is very high')
  assert.ok(warns.length >= 2, `the warn notified and repeated: ${notices.join(' | ')}`)
  assert.ok(criticals.length >= 1, `the critical notified: ${notices.join(' | ')}`)
  assert.equal(calls.filter((c) => c.kind === 'resolve').length, 1, 'one resolve')
  assert.equal(notices.at(-1), 'resolve', 'the resolve comes last')
  // Critical right after crossing (within two intervals of 1 s), not after the warn's repeat interval.
  const firstCritical = Date.parse(criticals[0]?.at ?? '')
  const lastWarnBefore = Math.max(...warns.map((c) => Date.parse(c.at)).filter((t) => t < firstCritical))
  assert.ok(firstCritical - lastWarnBefore < 3000, 'critical did not wait for the warn repeat interval')
  // Repeats every repeatIntervalSecs (3 s), never faster.
  for (let i = 1; i < warns.length; i++) {
    const gap = Date.parse(warns[i]?.at ?? '') - Date.parse(warns[i - 1]?.at ?? '')
    assert.ok(gap >= 2500, `warn repeats ${gap} ms apart`)
  }
  assert.equal(
    engine.calls().filter((c) => c.alertName === 'zero').length,
    0,
    'a value of 0 passes a warn at 0.5',
  )
  assert.equal(
    engine.calls().filter((c) => c.alertName === 'spike').length,
    0,
    'the sustain held the spike back',
  )
  // A query that keeps failing is neither a pass nor a violation: no notice, and its query-failing alarm.
  assert.equal(
    engine.calls().filter((c) => c.alertName === 'broken').length,
    0,
    'a failing query notifies nothing',
  )
  const failing = activations.get('herald.rules.broken.query-failing') ?? []
  assert.equal(failing.length, 1, 'the query-failing alarm is set once')
  assert.equal(failing[0]?.source, 'rule:broken')
  assert.equal(activations.get('broken'), undefined, "the rule's own alarm is never set")
  const steady = engine.calls().filter((c) => c.alertName === 'steady' && c.kind === 'notify')
  assert.ok(steady.length > 0, 'a crossing that outlasts its sustain is notified')
  assert.ok(
    Date.parse(steady[0]?.at ?? '') >= steadyCrossAt + 3000 - 1000,
    'not before the sustain (one interval of tolerance)',
  )

  // The rule's alarm: MEDIUM at warn, CRITICAL on escalation (same trip), then cleared.
  // The clear is written before the resolve is called, but this test's own consumer may still be behind.
  const cpu = await eventually('the clear of the cpu alarm read', () => {
    const seen = activations.get('cpu') ?? []
    return seen.at(-1) === null ? seen : undefined
  })
  assert.deepEqual(
    cpu.map((a) => (a === null ? 'cleared' : a.severity)),
    ['MEDIUM', 'CRITICAL', 'cleared'],
  )
  assert.equal(cpu[0]?.at, cpu[1]?.at, 'the escalation keeps the trip')
  assert.equal(cpu[0]?.source, 'rule:cpu')
})
