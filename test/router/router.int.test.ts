// The router end to end on the real stack: recipients, templates and routes written through the api, a
// monasca-shaped alarm event posted to the api, the router process turning it into notifications, and the
// three distributors delivering them to the stand-ins (real SDKs). Issue 14, "Show it".
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { notificationId } from '../../router/src/plan.ts'
import { monascaEvent } from '../support/alarm-events.ts'
import { startTestApi, type TestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ sandbox: true })
let ns: TestNamespace
let api: TestApi
let router: ServiceProcess
const definition = 'def-disk-0001'

before(async () => {
  ns = await ctx.setup('router')
  const at = { KAFKA_BROKERS: ctx.brokers, REDIS_URL: ctx.redisUrl }
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: {
      SLACK_WEBHOOK_URL: ctx.sandbox.env.SLACK_WEBHOOK_URL ?? '',
      TOPIC_PARTITIONS: '4',
      API_KEYS: 'ops:s3cret:admin',
    },
  })
  ctx.teardown(() => api.stop())
  const people = [
    {
      id: 'alice',
      name: 'Alice',
      email: 'alice@example.com',
      phone: '+14155550201',
      channels: ['email', 'sms'],
    },
    { id: 'bob', name: 'Bob', email: 'bob@example.com', slack: 'default', channels: ['slack'] },
    { id: 'carol', name: 'Carol', email: 'carol@example.com', channels: ['email'] },
  ]
  for (const person of people) {
    const put = await api.call('PUT', `/recipients/${person.id}`, person)
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  }
  const template = {
    name: 'sms-short',
    channel: 'sms',
    body: '{{alarmName}} is {{newState}}, {{recipient.name}} ({{route}})',
  }
  assert.ok([200, 201].includes((await api.call('PUT', '/templates/sms-short', template)).status))
  const routes = [
    {
      name: 'disk-alarm',
      match: { alarmDefinitionId: definition, states: ['ALARM'] },
      recipients: ['alice', 'bob'],
      template: { sms: 'sms-short' },
    },
    { name: 'disk-ok', match: { alarmDefinitionId: definition, states: ['OK'] }, recipients: ['carol'] },
  ]
  for (const route of routes) {
    const put = await api.call('PUT', `/routes/${route.name}`, route)
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  }
  router = ctx.service('router', 'router', serviceEnv(ns, ctx.sandbox.env, at))
  await router.waitForLog((l) => l.msg === 'claimed partition', 60_000)
  for (const channel of ['email', 'sms', 'slack']) {
    await ctx.claimed(ctx.distributor(ns, `distributor-${channel}`, { CHANNEL: channel }))
  }
})

async function postEvent(overrides: Record<string, unknown>): Promise<string> {
  const answer = await api.call('POST', '/alarm-events', monascaEvent(overrides))
  assert.equal(answer.status, 202, JSON.stringify(answer.body))
  return answer.body.eventId as string
}

const idOf = (eventId: string, route: string, recipient: string, channel: 'email' | 'sms' | 'slack') =>
  notificationId(eventId, route, recipient, channel)

async function routerMetric(pattern: RegExp): Promise<number> {
  const line = await eventually(
    `router metric ${pattern}`,
    async () => {
      const port = router.lines.find((l) => typeof l.metricsPort === 'number')?.metricsPort
      if (port === undefined) return undefined
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
      return text.split('\n').find((l) => pattern.test(l))
    },
    30_000,
  )
  return Number(line.split(' ').at(-1))
}

test('an ALARM event reaches the two recipients routed for it, on their enabled channels, rendered', async () => {
  const eventId = await postEvent({ alarmDefinitionId: definition, newState: 'ALARM', timestamp: Date.now() })
  const expected = [
    idOf(eventId, 'disk-alarm', 'alice', 'email'),
    idOf(eventId, 'disk-alarm', 'alice', 'sms'),
    idOf(eventId, 'disk-alarm', 'bob', 'slack'),
  ]
  for (const id of expected) assert.equal((await ctx.finalStatus(ns, id, 60_000)).status, 'delivered', id)
  const mail = ctx.sandbox.smtp.messages().find((m) => m.heraldId === expected[0])
  assert.equal(mail?.to, 'alice@example.com')
  assert.equal(mail?.subject, '[ALARM] disk usage high (HIGH)')
  assert.match(mail?.text ?? '', /Alarm disk usage high went from OK to ALARM/)
  const sms = ctx.sandbox.twilio.messages().filter((m) => m.to === '+14155550201')
  assert.deepEqual(
    sms.map((m) => m.text),
    ['disk usage high is ALARM, Alice (disk-alarm)'],
    "the route's own sms template",
  )
  assert.ok(
    ctx.sandbox.slack.messages().some((m) => m.text.includes('disk usage high')),
    'bob got the default Slack text',
  )
  assert.equal(await ctx.statuses(ns).get(idOf(eventId, 'disk-ok', 'carol', 'email')), undefined)
  assert.ok(
    !ctx.sandbox.smtp.messages().some((m) => m.to === 'carol@example.com'),
    'carol is routed for OK only',
  )
})

test('an OK event fires only the route for OK', async () => {
  const eventId = await postEvent({
    alarmDefinitionId: definition,
    oldState: 'ALARM',
    newState: 'OK',
    timestamp: Date.now(),
  })
  const id = idOf(eventId, 'disk-ok', 'carol', 'email')
  assert.equal((await ctx.finalStatus(ns, id, 60_000)).status, 'delivered')
  assert.equal(ctx.sandbox.smtp.messages().find((m) => m.heraldId === id)?.to, 'carol@example.com')
  for (const [recipient, channel] of [
    ['alice', 'email'],
    ['alice', 'sms'],
    ['bob', 'slack'],
  ] as const)
    assert.equal(await ctx.statuses(ns).get(idOf(eventId, 'disk-alarm', recipient, channel)), undefined)
})

test('an event with actions disabled, or older than the TTL, notifies nobody and is counted', async () => {
  const disabled = await postEvent({
    alarmDefinitionId: definition,
    newState: 'ALARM',
    actionsEnabled: false,
    timestamp: Date.now(),
  })
  const stale = await postEvent({
    alarmDefinitionId: definition,
    newState: 'ALARM',
    timestamp: Date.now() - 5 * 3600 * 1000,
  })
  assert.equal(
    await routerMetric(/^herald_alarm_events_total\{.*outcome="skipped".*reason="actions-disabled"/),
    1,
  )
  assert.equal(await routerMetric(/^herald_alarm_events_total\{.*outcome="skipped".*reason="expired"/), 1)
  // A later event is routed: the skipped ones were read before it and produced nothing.
  const later = await postEvent({ alarmDefinitionId: definition, newState: 'ALARM', timestamp: Date.now() })
  await ctx.finalStatus(ns, idOf(later, 'disk-alarm', 'alice', 'email'), 60_000)
  for (const eventId of [disabled, stale])
    for (const [recipient, channel] of [
      ['alice', 'email'],
      ['alice', 'sms'],
      ['bob', 'slack'],
    ] as const)
      assert.equal(await ctx.statuses(ns).get(idOf(eventId, 'disk-alarm', recipient, channel)), undefined)
})
