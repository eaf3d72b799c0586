// From an alarm to a person's inbox on the real stack (issues 15 and 14): a registered alarm is activated on
// the alarm topics, the alarms processor turns it into an alarm event, the router routes it to a recipient,
// the email distributor delivers it to the SMTP stand-in; the clear arrives as an OK; a reminder repeats
// while the alarm stays active and stops once it is cleared.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AlarmPartitioner } from '@herald/shared/alarms/partitioner'
import { createLogger } from '@herald/shared/logger'
import {
  alarmEventTopicName,
  alarmEventTopicSpec,
  alarmTopicNames,
  alarmTopicSpecs,
  ensureTopics,
} from '@herald/shared/topics'
import { startTestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv } from '../support/fixtures.ts'
import { eventually } from '../support/service-process.ts'

const ctx = testContext({ smtp: true })

test('an activation reaches the routed person, its reminder repeats while active, and the clear arrives as OK', async (t) => {
  const ns = await ctx.setup('alarm-mail', 4)
  const topics = alarmTopicNames(ns.prefix)
  await ensureTopics(ctx.admin, {
    specs: [...alarmTopicSpecs(topics, 1), alarmEventTopicSpec(alarmEventTopicName(ns.prefix), 1)],
    partitions: 4,
    replication: 1,
    brokers: ctx.brokers.split(','),
    logger: createLogger({ service: 'test', level: 'silent' }),
  })
  const api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '4', API_KEYS: 'ops:s3cret:admin' },
  })
  ctx.teardown(() => api.stop())
  const name = 'db-disk-full'
  const put = async (path: string, body: unknown) => {
    const answer = await api.call('PUT', path, body)
    assert.ok([200, 201].includes(answer.status), JSON.stringify(answer.body))
  }
  await put('/recipients/ann', { id: 'ann', name: 'Ann', email: 'ann@example.com', channels: ['email'] })
  await put('/routes/db-disk', {
    name: 'db-disk',
    match: { alarmName: name, states: ['ALARM', 'OK'] },
    recipients: ['ann'],
  })
  const env = serviceEnv(
    ns,
    { SMTP_URL: ctx.smtp.url },
    {
      KAFKA_BROKERS: ctx.brokers,
      REDIS_URL: ctx.redisUrl,
      TOPIC_PARTITIONS: '4',
    },
  )
  const alarms = ctx.service('alarms', 'alarms', env)
  const router = ctx.service('router', 'router', env)
  const email = ctx.service('distributor-email', 'distributor', { ...env, CHANNEL: 'email' })
  await alarms.waitForLog((l) => l.msg === 'alarm partition loaded; following it', 60_000)
  await router.waitForLog((l) => l.msg === 'claimed partition', 60_000)
  await ctx.claimed(email)

  const producer = ctx.kafka.producer({ createPartitioner: AlarmPartitioner, allowAutoTopicCreation: false })
  await producer.connect()
  ctx.teardown(() => producer.disconnect())
  const write = (topic: string, value: unknown) =>
    producer.send({
      topic,
      acks: -1,
      messages: [{ key: name, value: value === null ? null : JSON.stringify(value) }],
    })
  await write(topics.registered, {
    name,
    severity: 'HIGH',
    repeatSeconds: 10,
    docUrl: 'https://runbooks.example/db',
  })
  await write(topics.activations, { message: 'disk 97% full', value: 97, source: 'test', at: Date.now() })

  const mails = () => ctx.smtp.messages().filter((m) => m.to === 'ann@example.com')
  const first = await eventually('the alarm mail', () => mails()[0], 60_000)
  assert.match(first.subject ?? '', /^\[ALARM\] db-disk-full \(HIGH\)$/)
  assert.match(first.text, /disk 97% full/)
  const reminder = await eventually('a reminder mail while still active', () => mails()[1], 30_000)
  assert.match(reminder.subject ?? '', /\[ALARM\] db-disk-full/)
  await write(topics.activations, null)
  const ok = await eventually(
    'the OK mail',
    () => mails().find((m) => /^\[OK\]/.test(m.subject ?? '')),
    60_000,
  )
  assert.match(ok.subject ?? '', /^\[OK\] db-disk-full/)
  // No reminder once it is normal: wait longer than the period and count.
  const after = mails().length
  await new Promise((r) => setTimeout(r, 12_000))
  assert.equal(mails().length, after, 'no reminder after the clear')
  t.diagnostic(
    `mails: ${mails()
      .map((m) => m.subject)
      .join(' | ')}`,
  )
})
