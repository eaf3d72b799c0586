// End to end through the api: a POST becomes a message at the provider stand-in (real SDKs: nodemailer,
// twilio, @slack/webhook), the status becomes `delivered`, and one event is written per notification.
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { type RunningApi, startApi } from '../../api/src/server.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { readTopic, waitForStoredOffsetsAtEnd } from '../support/offsets.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
let ns: TestNamespace
let api: RunningApi
const distributors: ServiceProcess[] = []

before(async () => {
  ns = await ctx.setup('e2e')
  const env = serviceEnv(ns, ctx.sandbox.env, {
    DEFAULT_EMAIL_TO: 'oncall@example.com',
    PORT: '0',
    LOG_LEVEL: 'silent',
  })
  api = await startApi(loadConfig(env, 'api'), createLogger({ service: 'api', level: 'silent' }))
  for (const channel of ['email', 'sms', 'slack']) {
    distributors.push(ctx.distributor(ns, `distributor-${channel}`, { CHANNEL: channel }))
  }
  ctx.teardown(async () => {
    for (const d of distributors) d.kill('SIGTERM')
    await Promise.all(distributors.map((d) => d.exited))
    await api.stop()
  })
  await Promise.all(distributors.map((p) => ctx.claimed(p)))
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
  const mail = ctx.sandbox.smtp.messages().find((m) => m.heraldId === id)
  assert.ok(mail, 'the relay received it')
  assert.equal(mail.to, 'ada@example.com')
  assert.equal(mail.subject, 'Build green')
  assert.equal(mail.text, 'All tests pass.')
  assert.equal(mail.messageId, `<${id}@herald>`)
})

test('the bare {"message","channel"} body goes to the default recipient', async () => {
  const id = await post({ message: 'Charm!', channel: 'email' })
  await delivered(id)
  assert.equal(ctx.sandbox.smtp.messages().find((m) => m.heraldId === id)?.to, 'oncall@example.com')
})

test('an SMS posted to the api reaches Twilio through the twilio SDK', async () => {
  const id = await post({ channel: 'sms', to: '+14155550123', message: 'Disk 91% full' })
  await delivered(id)
  const sms = ctx.sandbox.twilio.messages().find((m) => m.text === 'Disk 91% full')
  assert.equal(sms?.to, '+14155550123')
  assert.equal(sms?.from, ctx.sandbox.env.TWILIO_FROM)
})

test('a Slack message posted to the api reaches the named webhook', async () => {
  const id = await post({ channel: 'slack', to: 'ops', message: 'Deploy 42 rolled out' })
  await delivered(id)
  const hook = ctx.sandbox.slack.messages().find((m) => m.text === 'Deploy 42 rolled out')
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
  await waitForStoredOffsetsAtEnd(ctx.admin, ctx.redis, ns, 'email')
  const events = (await readTopic(ctx.kafka, ns.topics.events))
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
