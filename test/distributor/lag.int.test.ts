// Consumer lag for autoscalers: exported once per partition across replicas (by the group leader), for every
// partition, moved to the new leader when the old one leaves, and back to 0 once everything is delivered.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { Admin, Producer } from 'kafkajs'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'
import { kafkaBrokers, requireServers } from '../helpers.ts'
import {
  createTopics,
  deleteNamespace,
  emailRecord,
  namespace,
  newProducer,
  produceRecords,
  serviceEnv,
  testKafka,
} from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

const ns = namespace('lag')
let admin: Admin
let producer: Producer
let smtp: SmtpStandIn
const running: ServiceProcess[] = []

before(async () => {
  await requireServers()
  const kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  producer = await newProducer(kafka)
  smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
  await createTopics(admin, ns, 4, kafkaBrokers())
})

after(async () => {
  for (const p of running) p.kill('SIGKILL')
  await deleteNamespace(admin, undefined, ns)
  await smtp?.close()
  await producer?.disconnect()
  await admin?.disconnect()
})

function replica(name: string): ServiceProcess {
  const p = startService(
    name,
    'distributor',
    serviceEnv(
      ns,
      { SMTP_URL: smtp.url },
      { CHANNEL: 'email', LAG_INTERVAL_MS: '300', BREAKER_PROBE_MS: '300', BREAKER_PROBE_MAX_MS: '600' },
    ),
  )
  running.push(p)
  return p
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
  smtp.setFaults({ authFail: true }) // the breaker holds every delivery: the backlog stays put
  const a = replica('lag-a')
  const b = replica('lag-b')
  await Promise.all([a, b].map((p) => p.waitForLog((l) => l.msg === 'claimed partition', 30_000)))
  await produceRecords(
    producer,
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
  smtp.setFaults({})
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
