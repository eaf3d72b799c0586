// Periodic re-notification on the real stack (issue 14, "Show it"): a route with a 10 s period repeats an
// ALARM to its recipient while the alarm stays in ALARM; the router is restarted (SIGTERM, then a new
// process) between two reminders and the schedule, kept in Redis, goes on where it was: no reminder lost,
// none sent early, no burst; an OK event stops the repeats. Counts are taken at checkpoints (each reminder's
// arrival) and the spacing is checked only from below (a reminder may come late on a loaded machine, never
// early), so the test does not depend on the machine's speed.
import assert from 'node:assert/strict'
import { before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { alarmEventTopicName } from '@herald/shared/topics'
import { notificationId } from '../../router/src/plan.ts'
import { monascaEvent } from '../support/alarm-events.ts'
import { startTestApi, type TestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { serviceEnv, type TestNamespace } from '../support/fixtures.ts'
import { readTopic, waitUntilConsumed } from '../support/offsets.ts'
import { eventually, type ServiceProcess } from '../support/service-process.ts'

const ctx = testContext({ smtp: true })
const periodSeconds = 10
const period = periodSeconds * 1000
/** A reminder's notification is queued at least a period after the one before it; ms-rounded times. */
const earlyMarginMs = 50
const alarmName = 'reminder test alarm'
let ns: TestNamespace
let api: TestApi

before(async () => {
  ns = await ctx.setup('reminders')
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '4', API_KEYS: 'ops:s3cret:admin' },
  })
  ctx.teardown(() => api.stop())
  for (const id of ['oncall', 'watcher']) {
    const put = await api.call('PUT', `/recipients/${id}`, {
      id,
      name: id,
      email: `${id}@example.com`,
      channels: ['email'],
    })
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  }
  // `cleared` tells the test when the router has read the OK event.
  const routes = [
    { name: 'paging', match: { alarmName, states: ['ALARM'] }, recipients: ['oncall'], periodSeconds },
    { name: 'cleared', match: { alarmName, states: ['OK'] }, recipients: ['watcher'] },
  ]
  for (const route of routes) {
    const put = await api.call('PUT', `/routes/${route.name}`, route)
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  }
  await ctx.claimed(ctx.distributor(ns, 'distributor-email', { CHANNEL: 'email' }))
})

function router(name: string): ServiceProcess {
  const at = { KAFKA_BROKERS: ctx.brokers, REDIS_URL: ctx.redisUrl }
  return ctx.service(name, 'router', serviceEnv(ns, {}, at))
}

async function postEvent(overrides: Record<string, unknown>): Promise<string> {
  const answer = await api.call(
    'POST',
    '/alarm-events',
    monascaEvent({ alarmId: 'reminder-alarm-1', alarmName, timestamp: Date.now(), ...overrides }),
  )
  assert.equal(answer.status, 202, JSON.stringify(answer.body))
  return answer.body.eventId as string
}

/** The distinct ids delivered to oncall, first arrival first. */
function oncallIds(): string[] {
  const ids = ctx.smtp
    .messages()
    .filter((m) => m.to === 'oncall@example.com')
    .map((m) => m.heraldId ?? '')
  return [...new Set(ids)]
}

/** Waits until oncall got `count` notifications (the first and its reminders); returns their ids then. */
const oncallReached = (count: number, timeoutMs: number) =>
  eventually(
    `${count} notifications to oncall`,
    () => {
      const ids = oncallIds()
      return ids.length >= count ? ids : undefined
    },
    timeoutMs,
    100,
  )

/**
 * When the router queued the notification: the createdAt of its record on the email topic, which the router
 * stamps before the produce. (Not the status's creation: the router writes `queued` after the produce is
 * acknowledged, and the distributor may have delivered it by then, so the status can be missing or created
 * by the delivery.) The record is on the topic once it was delivered.
 */
async function queuedAt(id: string): Promise<number> {
  const records = await readTopic(ctx.kafka, ns.topics.main('email'))
  const found = records
    .map((r) => JSON.parse(r.value) as { id: string; createdAt: string })
    .find((r) => r.id === id)
  assert.ok(found, `${id} is on the email topic`)
  return Date.parse(found.createdAt)
}

test('reminders repeat at the period while in ALARM, survive a router restart without a burst, and stop on OK', async (t) => {
  const first = router('router-1')
  await first.waitForLog((l) => l.msg === 'claimed partition', 60_000)
  const alarm = await postEvent({ newState: 'ALARM' })
  const alarmId = notificationId(alarm, 'paging', 'oncall', 'email')

  // The first notification, then one reminder a period later: no more at that moment.
  const atFirst = await oncallReached(1, 30_000)
  assert.deepEqual(atFirst, [alarmId], 'the first notification to oncall is the alarm itself')
  const atOne = await oncallReached(2, period + 30_000)
  assert.equal(atOne.length, 2, `one reminder at the first checkpoint, got ${atOne.length - 1}`)
  const [, reminder1 = ''] = atOne
  const queued1 = await queuedAt(reminder1)
  const gap1 = queued1 - (await queuedAt(alarmId))
  assert.ok(gap1 >= period - earlyMarginMs, `the first reminder came ${gap1} ms after the alarm`)
  await ctx.finalStatus(ns, reminder1)

  // A restart between two reminders: the next one comes a period after the last, from the new process.
  first.kill('SIGTERM')
  assert.equal(await first.exited, 0, 'the first router stopped cleanly')
  const restartedAt = Date.now()
  const second = router('router-2')
  await second.waitForLog((l) => l.msg === 'claimed partition', 60_000)
  const atTwo = await oncallReached(3, period + 30_000)
  assert.equal(atTwo.length, 3, `two reminders at the second checkpoint, got ${atTwo.length - 1} (a burst)`)
  const [, , reminder2 = ''] = atTwo
  const gap2 = (await queuedAt(reminder2)) - queued1
  assert.ok(gap2 >= period - earlyMarginMs, `the second reminder came ${gap2} ms after the first`)
  // The router logs it after recording the reminder in Redis, which may come after the delivery.
  await second.waitForLog((l) => l.msg === 'reminders sent', 10_000)

  // OK ends the repeats: once the router has routed it, nothing more for 1.5 periods.
  const ok = await postEvent({ oldState: 'ALARM', newState: 'OK' })
  await ctx.finalStatus(ns, notificationId(ok, 'cleared', 'watcher', 'email'), 30_000)
  const okRoutedAt = Date.now()
  await sleep(1.5 * period)
  assert.deepEqual(oncallIds(), atTwo, 'no reminder after the OK event')

  // What the routers produced: the alarm and reminders 1 and 2 of it, one id each, nothing else for oncall.
  const routerGroup = {
    groupId: `${ns.prefix}.router`,
    topic: alarmEventTopicName(ns.prefix),
    keyPrefix: ns.prefix,
  }
  assert.deepEqual(await waitUntilConsumed(ctx.admin, ctx.redis, [routerGroup], { timeoutMs: 30_000 }), [])
  const records = (await readTopic(ctx.kafka, ns.topics.main('email')))
    .map(
      (r) =>
        JSON.parse(r.value) as {
          id: string
          to: string
          event?: { reminderOf?: string; reminderNumber?: number }
        },
    )
    .filter((r) => r.to === 'oncall@example.com')
  const numbers = new Map<number, Set<string>>()
  for (const r of records) {
    const number = r.event?.reminderOf === alarm ? (r.event.reminderNumber ?? -1) : 0
    numbers.set(number, (numbers.get(number) ?? new Set()).add(r.id))
  }
  assert.deepEqual(
    [...numbers].map(([n, ids]) => [n, [...ids]]).sort(([a], [b]) => Number(a) - Number(b)),
    [
      [0, [alarmId]],
      [1, [reminder1]],
      [2, [reminder2]],
    ],
    'the alarm, then reminders 1 and 2 of it, each under one id',
  )
  t.diagnostic(
    `reminder 1 queued ${gap1} ms after the alarm, reminder 2 ${gap2} ms after reminder 1 ` +
      `(the restart began ${restartedAt - queued1} ms after reminder 1); ` +
      `${records.length} records to oncall; none in the ${((Date.now() - okRoutedAt) / 1000).toFixed(1)} s after OK`,
  )
})
