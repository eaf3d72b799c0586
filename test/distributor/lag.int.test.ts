// Consumer lag for autoscalers: exported once per partition across replicas (by the group leader), for every
// partition, moved to the new leader when the old one leaves, and back to 0 once everything is delivered.
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { testContext } from '../support/context.ts'
import { emailRecord, produceRecords, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ smtp: true })
let ns: TestNamespace

before(async () => {
  ns = await ctx.setup('lag')
})

function replica(name: string): ServiceProcess {
  return ctx.distributor(ns, name, {
    CHANNEL: 'email',
    LAG_INTERVAL_MS: '300',
    BREAKER_PROBE_MS: '300',
    BREAKER_PROBE_MAX_MS: '600',
  })
}

/** The lag series a replica exports: partition → records. */
async function lagOf(p: ServiceProcess): Promise<Map<string, number>> {
  const { metricsPort } = await p.waitForLog((l) => typeof l.metricsPort === 'number')
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
  return new Map(
    [...text.matchAll(/^herald_consumer_lag_records\{[^}]*partition="(\d+)"[^}]*\} (\d+)/gm)].map((m) => [
      m[1] ?? '',
      Number(m[2]),
    ]),
  )
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((s, v) => s + v, 0)

test('one replica exports the lag of every partition; the other takes over when it leaves; lag returns to 0', async () => {
  ctx.smtp.setFaults({ authFail: true }) // the breaker holds every delivery: the backlog stays put
  const a = replica('lag-a')
  const b = replica('lag-b')
  await Promise.all([a, b].map((p) => ctx.claimed(p)))
  await produceRecords(
    ctx.producer,
    ns.topics.main('email'),
    Array.from({ length: 40 }, (_, i) => emailRecord(`${ns.prefix}-${i}`, `u${i}@example.com`)),
  )
  const [exporter, other] = await eventually(
    'one exporter with the whole backlog',
    async () => {
      const [la, lb] = await Promise.all([lagOf(a), lagOf(b)])
      if (la.size === 4 && lb.size === 0 && sum(la) === 40) return [a, b] as const
      if (lb.size === 4 && la.size === 0 && sum(lb) === 40) return [b, a] as const
      return undefined
    },
    30_000,
    300,
  )
  const { metricsPort } = await exporter.waitForLog((l) => typeof l.metricsPort === 'number')
  const age = await eventually(
    'the age of the oldest unfinished record',
    async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      const value = Number(/^herald_oldest_unfinished_age_seconds\{[^}]*\} ([\d.]+)/m.exec(text)?.[1] ?? 0)
      return value > 0 ? value : undefined
    },
    10_000,
    300,
  )
  assert.ok(age < 120, `a backlog produced seconds ago is seconds old (${age} s)`)
  exporter.kill('SIGTERM')
  await exporter.exited
  await eventually(
    'the remaining replica exports every partition',
    async () => {
      const lags = await lagOf(other)
      return lags.size === 4 && sum(lags) === 40 ? true : undefined
    },
    30_000,
    300,
  )
  ctx.smtp.setFaults({})
  await eventually(
    'lag back to 0 after delivery',
    async () => {
      const lags = await lagOf(other)
      return lags.size === 4 && sum(lags) === 0 ? true : undefined
    },
    60_000,
    300,
  )
  other.kill('SIGTERM')
  await other.exited
})
