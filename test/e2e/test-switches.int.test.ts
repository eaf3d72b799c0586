// Production entry points read no test switch: the variables that the test-only entry points
// (test/support/entries/) understand have no effect on api/src/main.ts and distributor/src/main.ts, while
// the same variables through the test entry do break things (so the test can fail).
import assert from 'node:assert/strict'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import type { Admin, Kafka, Producer } from 'kafkajs'
import { repoRoot } from '../../dev/lib/process.ts'
import { type SmtpStandIn, startSmtpStandIn } from '../../dev/standins/smtp.ts'
import { freePort, kafkaBrokers, redisUrl, requireServers } from '../helpers.ts'
import {
  createTopics,
  deleteNamespace,
  emailRecord,
  namespace,
  newProducer,
  produceRecords,
  serviceEnv,
  type TestNamespace,
  testKafka,
} from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

const switches = {
  HERALD_TEST_CRASH_ON: 'CRASH-ME',
  HERALD_TEST_BROKEN_VARIANT: 'seek-latest',
  HERALD_TEST_LEAK: '1',
}
let kafka: Kafka
let admin: Admin
let producer: Producer
let redis: Redis
let smtp: SmtpStandIn
const namespaces: TestNamespace[] = []
const running: ServiceProcess[] = []

before(async () => {
  await requireServers()
  kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  producer = await newProducer(kafka)
  redis = createRedis(redisUrl())
  await redis.connect()
  smtp = await startSmtpStandIn({ port: 0, httpPort: 0, quiet: true })
})

after(async () => {
  for (const p of running) p.kill('SIGKILL')
  for (const ns of namespaces) await deleteNamespace(admin, redis, ns)
  await smtp?.close()
  await producer?.disconnect()
  await admin?.disconnect()
  redis?.disconnect()
})

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repoRoot, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.(ts|lua)$/.test(f))
    .map((f) => join(dir, f))
}

test('no production source file mentions a HERALD_TEST_ variable', () => {
  const files = ['api/src', 'distributor/src', 'shared/src'].flatMap(sourceFiles)
  assert.ok(files.length > 20, `found only ${files.length} source files`)
  const offenders = files.filter((f) => readFileSync(join(repoRoot, f), 'utf8').includes('HERALD_TEST'))
  assert.deepEqual(offenders, [])
})

async function emailSetup(label: string) {
  const ns = namespace(label)
  namespaces.push(ns)
  await createTopics(admin, ns, 4, kafkaBrokers())
  // Produced before the distributor starts (seek-latest would skip them), one of them carrying the marker.
  const records = [
    emailRecord(`${ns.prefix}-0`, 'a@example.com'),
    emailRecord(`${ns.prefix}-1`, 'b@example.com', { message: 'please CRASH-ME now' }),
    emailRecord(`${ns.prefix}-2`, 'c@example.com'),
  ]
  await produceRecords(producer, ns.topics.main('email'), records)
  return { ns, records }
}

function distributor(ns: TestNamespace, name: string, entry: 'production' | 'test') {
  const env = serviceEnv(ns, { SMTP_URL: `smtp://127.0.0.1:${smtp.port}` }, { CHANNEL: 'email', ...switches })
  const p = startService(name, 'distributor', env, { entry })
  running.push(p)
  return p
}

const deliveredOf = (ns: TestNamespace) =>
  new Set(
    smtp
      .messages()
      .map((m) => /^<(.+)@herald>$/.exec(m.messageId ?? '')?.[1])
      .filter((id): id is string => id?.startsWith(`${ns.prefix}-`) ?? false),
  )

test('the production distributor ignores the crash marker and the broken variant', async () => {
  const { ns, records } = await emailSetup('switch-prod')
  const d = distributor(ns, 'switch-prod', 'production')
  await eventually(
    'every record delivered by the production distributor',
    () => (records.every((r) => deliveredOf(ns).has(r.id)) ? true : undefined),
    60_000,
    200,
  )
  assert.equal(d.child.exitCode, null, 'the production distributor is still running')
  assert.equal(d.child.signalCode, null)
  assert.ok(!d.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY')))
  d.kill('SIGTERM')
  assert.equal(await d.exited, 0)
})

test('control: the same variables through the test entry point do break the distributor', async () => {
  const { ns } = await emailSetup('switch-test')
  const d = distributor(ns, 'switch-test', 'test')
  await d.waitForLog((l) => String(l.msg ?? '').includes('TEST-ONLY BROKEN VARIANT'))
  await d.waitForLog((l) => String(l.msg ?? '').includes('claimed partition'))
  // seek-latest: the records produced before it started are never fetched, so the marker never kills it.
  const late = emailRecord(`${ns.prefix}-late`, 'late@example.com', { message: 'CRASH-ME late' })
  await produceRecords(producer, ns.topics.main('email'), [late])
  assert.equal(await d.exited, 'SIGKILL', 'the marker killed the test-entry distributor')
  assert.equal(deliveredOf(ns).size, 0, 'records produced before the start were skipped (seek-latest)')
})

test('the production api ignores the leak switch; the test entry point honours it', async () => {
  const ns = namespace('switch-api')
  namespaces.push(ns)
  const base = serviceEnv(ns, {}, switches)
  const ready = (p: ServiceProcess) => p.waitForLog((l) => String(l.msg ?? '').includes('api listening'))
  const prod = startService(
    'api-prod',
    'api',
    { ...base, PORT: String(await freePort()) },
    { entry: 'production' },
  )
  running.push(prod)
  await ready(prod)
  const withLeak = startService(
    'api-test',
    'api',
    { ...base, PORT: String(await freePort()) },
    { entry: 'test' },
  )
  running.push(withLeak)
  await ready(withLeak)
  assert.ok(
    !prod.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY')),
    'production api: no test mode',
  )
  assert.ok(
    withLeak.lines.some((l) => String(l.msg ?? '').includes('TEST-ONLY LEAK')),
    'test entry: leak on',
  )
  prod.kill('SIGTERM')
  withLeak.kill('SIGTERM')
  assert.equal(await prod.exited, 0)
  await withLeak.exited
})
