// End to end through the api: a POST becomes a message at the provider stand-in (real SDKs: nodemailer,
// twilio, @slack/webhook), the status becomes `delivered`, and one event is written per notification.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import type { Admin, Kafka } from 'kafkajs'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import { type Sandbox, startSandbox } from '../../dev/standins/index.ts'
import { kafkaBrokers, redisUrl, requireServers } from '../helpers.ts'
import {
  createTopics,
  deleteNamespace,
  namespace,
  readTopic,
  serviceEnv,
  testKafka,
  waitForStoredOffsetsAtEnd,
} from '../support/fixtures.ts'
import { eventually, type ServiceProcess, startService } from '../support/service-process.ts'

const ns = namespace('e2e')
let sandbox: Sandbox
let api: RunningApi
let kafka: Kafka
let admin: Admin
let redis: Redis
const distributors: ServiceProcess[] = []

before(async () => {
  await requireServers()
  process.env.SMTP_STANDIN_PORT = '0'
  process.env.SMTP_STANDIN_HTTP_PORT = '0'
  process.env.TWILIO_STANDIN_PORT = '0'
  process.env.SLACK_STANDIN_PORT = '0'
  sandbox = await startSandbox({ quiet: true })
  kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  redis = createRedis(redisUrl())
  await redis.connect()
  await createTopics(admin, ns, 4, kafkaBrokers())
  const env = serviceEnv(ns, sandbox.env, {
    DEFAULT_EMAIL_TO: 'oncall@example.com',
    PORT: '0',
    LOG_LEVEL: 'silent',
  })
  api = await startApi(loadConfig(env, 'api'), createLogger({ service: 'api', level: 'silent' }))
  for (const channel of ['email', 'sms', 'slack']) {
    distributors.push(
      startService(
        `distributor-${channel}`,
        'distributor',
        serviceEnv(ns, sandbox.env, { CHANNEL: channel }),
      ),
    )
  }
  await Promise.all(distributors.map((d) => d.waitForLog((l) => l.msg === 'claimed partition', 30_000)))
})

after(async () => {
  for (const d of distributors) d.kill('SIGTERM')
  await Promise.all(distributors.map((d) => d.exited))
  await api?.stop()
  await sandbox?.close()
  await deleteNamespace(admin, redis, ns)
  await admin?.disconnect()
  redis?.disconnect()
})

async function post(body: unknown): Promise<string> {
  const r = await fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  assert.equal(r.status, 202)
  return ((await r.json()) as { id: string }).id
}

async function statusOf(id: string): Promise<{ status: string; attempts: number }> {
  const r = await fetch(`${api.url}/api/v1/notification/${id}`)
  return (await r.json()) as { status: string; attempts: number }
}

const delivered = (id: string) =>
  eventually(
    `${id} delivered`,
    async () => ((await statusOf(id)).status === 'delivered' ? true : undefined),
    30_000,
    100,
  )

test('an email posted to the api arrives at the SMTP relay and its status becomes delivered', async () => {
  const id = await post({
    channel: 'email',
    to: 'ada@example.com',
    subject: 'Build green',
    message: 'All tests pass.',
  })
  await delivered(id)
  const mail = sandbox.smtp.messages().find((m) => m.heraldId === id)
  assert.ok(mail, 'the relay received it')
  assert.equal(mail.to, 'ada@example.com')
  assert.equal(mail.subject, 'Build green')
  assert.equal(mail.text, 'All tests pass.')
  assert.equal(mail.messageId, `<${id}@herald>`)
})

test('the bare {"message","channel"} body goes to the default recipient', async () => {
  const id = await post({ message: 'Charm!', channel: 'email' })
  await delivered(id)
  assert.equal(sandbox.smtp.messages().find((m) => m.heraldId === id)?.to, 'oncall@example.com')
})

test('an SMS posted to the api reaches Twilio through the twilio SDK', async () => {
  const id = await post({ channel: 'sms', to: '+14155550123', message: 'Disk 91% full' })
  await delivered(id)
  const sms = sandbox.twilio.messages().find((m) => m.text === 'Disk 91% full')
  assert.equal(sms?.to, '+14155550123')
  assert.equal(sms?.from, sandbox.env.TWILIO_FROM)
})

test('a Slack message posted to the api reaches the named webhook', async () => {
  const id = await post({ channel: 'slack', to: 'ops', message: 'Deploy 42 rolled out' })
  await delivered(id)
  const hook = sandbox.slack.messages().find((m) => m.text === 'Deploy 42 rolled out')
  assert.equal(hook?.to, '/services/T000/B000/ops')
})

test('every finished notification has exactly one event on the events topic', async () => {
  const ids = await Promise.all(
    Array.from({ length: 5 }, (_, i) =>
      post({ channel: 'email', to: `ev${i}@example.com`, message: `event ${i}` }),
    ),
  )
  await Promise.all(ids.map(delivered))
  // Events are written before the offset moves past their record: once the stored offsets reached the log
  // end, every event these notifications will ever get is on the events topic.
  await waitForStoredOffsetsAtEnd(admin, redis, ns, 'email')
  const events = (await readTopic(kafka, admin, ns.topics.events))
    .map((r) => ({ key: r.key, event: JSON.parse(r.value) as { id: string; status: string } }))
    .filter(({ event }) => ids.includes(event.id))
  assert.deepEqual(
    events.filter(({ key, event }) => key !== event.id),
    [],
    'events are keyed by id',
  )
  assert.deepEqual(
    ids.map((id) => events.filter(({ event }) => event.id === id).map(({ event }) => event.status)),
    ids.map(() => ['delivered']),
  )
})
