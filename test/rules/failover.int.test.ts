// Two rules evaluators against an alerts-engine stand-in that fails 2% of its calls (issue 16): one of them
// is SIGKILLed while its rules are notifying; the other takes its partitions over. Every transition reaches
// the engine (no notify or resolve lost to the 500s or to the kill), no notify is repeated early, and none is
// late by more than one interval plus the takeover.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createLogger } from '@herald/shared/logger'
import { rulesTopicName, rulesTopicSpec } from '@herald/shared/rules/topics'
import { alarmTopicNames, alarmTopicSpecs, ensureTopics } from '@herald/shared/topics'
import { startAlertsEngineStandIn } from '../../dev/standins/alerts-engine.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv } from '../support/fixtures.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext()

test('a SIGKILLed evaluator of two: no transition lost to 2% engine errors or to the kill, no notify early or skipped', async (t) => {
  const ns = await ctx.setup('rules-failover', 4)
  await ensureTopics(ctx.admin, {
    specs: [rulesTopicSpec(rulesTopicName(ns.prefix), 1), ...alarmTopicSpecs(alarmTopicNames(ns.prefix), 1)],
    partitions: 4,
    replication: 1,
    brokers: ctx.brokers.split(','),
    logger: createLogger({ service: 'test', level: 'silent' }),
  })
  const engine = await startAlertsEngineStandIn({ port: 0, quiet: true, faults: { failRate: 0.02, seed: 7 } })
  ctx.teardown(() => engine.close())
  const intervalSecs = 2
  const repeatIntervalSecs = 6
  const names = Array.from({ length: 12 }, (_, i) => `r${i}`)
  engine.setAlerts(
    names.map((name) => ({
      name,
      query: name,
      intervalSecs,
      repeatIntervalSecs,
      warn: { value: 0.5, message: `${name} high` },
    })),
  )
  const start = Date.now()
  const crossAt = start + 12_000
  const passAt = start + 32_000
  engine.setValues(
    Object.fromEntries(
      names.map((name) => [
        name,
        [
          { at: start, value: 0.1 },
          { at: crossAt, value: 0.9 },
          { at: passAt, value: 0.1 },
        ],
      ]),
    ),
  )
  const env = serviceEnv(
    ns,
    {},
    {
      KAFKA_BROKERS: ctx.brokers,
      REDIS_URL: ctx.redisUrl,
      ALERTS_ENGINE_URL: engine.url,
      RULES_FROM_ENGINE: 'true',
      RULES_REFRESH_SECONDS: '2',
      SESSION_TIMEOUT_MS: '3000',
    },
  )
  const a = ctx.service('rules-a', 'rules', env)
  const b = ctx.service('rules-b', 'rules', env)
  for (const p of [a, b]) await p.waitForLog((l) => l.msg === 'rules partition loaded; evaluating', 60_000)
  // Kill one while the rules are notifying (after the first notify, before the first repeat).
  await eventually(
    'every rule notified',
    () =>
      names.every((n) => engine.calls().some((c) => c.alertName === n && c.kind === 'notify'))
        ? true
        : undefined,
    30_000,
  )
  a.kill('SIGKILL')
  await a.exited
  await eventually(
    'every rule resolved',
    () =>
      names.every((n) => engine.calls().some((c) => c.alertName === n && c.kind === 'resolve'))
        ? true
        : undefined,
    60_000,
  )
  await new Promise((r) => setTimeout(r, 3 * intervalSecs * 1000))
  const takeoverSlackMs = 3000 + 2000 // the session timeout and a load of the partitions
  let repeats = 0
  for (const name of names) {
    const calls = engine.calls().filter((c) => c.alertName === name)
    const notifies = calls.filter((c) => c.kind === 'notify').map((c) => Date.parse(c.at))
    const resolves = calls.filter((c) => c.kind === 'resolve').map((c) => Date.parse(c.at))
    assert.equal(resolves.length, 1, `${name}: one resolve`)
    assert.ok((notifies[0] ?? 0) >= crossAt, `${name}: no notify before the crossing`)
    assert.ok((resolves[0] ?? 0) >= passAt, `${name}: no resolve before the pass`)
    assert.ok((resolves[0] ?? 0) >= (notifies.at(-1) ?? 0), `${name}: nothing notified after the resolve`)
    for (let i = 1; i < notifies.length; i++) {
      const gap = (notifies[i] ?? 0) - (notifies[i - 1] ?? 0)
      assert.ok(
        gap >= repeatIntervalSecs * 1000 - 1000,
        `${name}: a repeat ${gap} ms after the previous (early)`,
      )
      assert.ok(
        gap <= (repeatIntervalSecs + intervalSecs) * 1000 + takeoverSlackMs,
        `${name}: a repeat ${gap} ms after the previous (skipped)`,
      )
    }
    repeats += notifies.length - 1
  }
  t.diagnostic(`repeats: ${repeats}; engine calls answered 500: ${JSON.stringify(engine.stats())}`)
})
