// The router SIGKILLed mid-fan-out, on the real stack (issue 14, "Show it"): alarm events routed to 30
// recipients by email; the first router dies half-way through producing one event's notifications (a crash
// point composed in by test/support/entries/router.ts: half of the batch acknowledged by Kafka, none of it
// finished, the offset not moved), a second router takes over. Every expected notification arrives; the
// replayed ones carry the same ids; the email distributor lets each id reach the SMTP stand-in once, never
// after its final status. Negative control: the same crash with routers whose ids change on a restart
// (salted per process) is caught by the same checks, so they can fail.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { alarmEventTopicName } from '@herald/shared/topics'
import { notificationId } from '../../router/src/plan.ts'
import { monascaEvent } from '../support/alarm-events.ts'
import { startTestApi } from '../support/api.ts'
import { testContext } from '../support/context.ts'
import { countBy, serviceEnv } from '../support/fixtures.ts'
import { readTopic, waitForStoredOffsetsAtEnd, waitUntilConsumed } from '../support/offsets.ts'

const ctx = testContext({ smtp: true })
const recipients = Array.from({ length: 30 }, (_, i) => `person-${String(i).padStart(2, '0')}`)
const eventCount = 4
const route = 'fleet-paging'

interface ProducedRecord {
  id: string
  to: string
  eventId: string
}

/**
 * A namespace with its api, 30 recipients (addresses at `<label>.example.com`, so each run's mail is told
 * apart at the shared SMTP stand-in), a route to all of them and an email distributor; a router with the
 * crash point (and `faults`), 4 ALARM events, then a second router (with `faults` only) until every event
 * and every notification was consumed. Returns what was produced and what reached the stand-in.
 */
async function crashMidFanOut(label: string, faults: Record<string, string> = {}) {
  const ns = await ctx.setup(label)
  const domain = `${label}.example.com`
  const api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '4', API_KEYS: 'ops:s3cret:admin' },
  })
  ctx.teardown(() => api.stop())
  for (const id of recipients) {
    const person = { id, name: `Person ${id}`, email: `${id}@${domain}`, channels: ['email'] }
    const put = await api.call('PUT', `/recipients/${id}`, person)
    assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  }
  const put = await api.call('PUT', `/routes/${route}`, {
    name: route,
    match: { states: ['ALARM'] },
    recipients,
  })
  assert.ok([200, 201].includes(put.status), JSON.stringify(put.body))
  await ctx.claimed(ctx.distributor(ns, `${label}-distributor`, { CHANNEL: 'email' }))
  const router = (name: string, extra: Record<string, string>) =>
    ctx.service(
      name,
      'router',
      serviceEnv(ns, {}, { KAFKA_BROKERS: ctx.brokers, REDIS_URL: ctx.redisUrl, ...extra }),
    )

  const first = router(`${label}-router-1`, { ...faults, HERALD_TEST_CRASH_MID_FANOUT: '1' })
  await first.waitForLog((l) => l.msg === 'claimed partition', 60_000)
  // Distinct alarm names: the events are keyed by name, so they spread over the partitions.
  const now = Date.now()
  const events = Array.from({ length: eventCount }, (_, i) =>
    monascaEvent({ alarmId: `crash-alarm-${i}`, alarmName: `crash test alarm ${i}`, timestamp: now + i }),
  )
  const posted = await api.call('POST', '/alarm-events', events)
  assert.equal(posted.status, 202, JSON.stringify(posted.body))
  const eventIds = posted.body.eventIds as string[]
  const expected = new Set(
    eventIds.flatMap((eventId) => recipients.map((r) => notificationId(eventId, route, r, 'email'))),
  )
  assert.equal(expected.size, eventCount * recipients.length)

  const crash = await first.waitForLog((l) => l.msg === 'TEST-ONLY crash point: SIGKILL mid-fan-out', 60_000)
  assert.equal(await first.exited, 'SIGKILL')
  const second = router(`${label}-router-2`, faults)
  await second.waitForLog((l) => l.msg === 'claimed partition', 60_000)

  // Every event finished by the second router, and every notification produced consumed by the
  // distributor: no replay is still on its way when the counts are taken.
  const routerGroup = {
    groupId: `${ns.prefix}.router`,
    topic: alarmEventTopicName(ns.prefix),
    keyPrefix: ns.prefix,
  }
  const behind = await waitUntilConsumed(ctx.admin, ctx.redis, [routerGroup], {
    timeoutMs: 90_000,
    intervalMs: 100,
  })
  assert.deepEqual(behind, [], 'the second router finished every alarm event')
  await waitForStoredOffsetsAtEnd(ctx.admin, ctx.redis, ns, 'email')

  const produced = (await readTopic(ctx.kafka, ns.topics.main('email'))).map((r): ProducedRecord => {
    const record = JSON.parse(r.value) as { id: string; to: string; event: { eventId: string } }
    return { id: record.id, to: record.to, eventId: record.event.eventId }
  })
  // Every distinct id the routers produced for one (event, recipient): one route, one channel here.
  const idsPerNotification = new Map<string, Set<string>>()
  for (const r of produced) {
    const key = JSON.stringify([r.eventId, r.to])
    idsPerNotification.set(key, (idsPerNotification.get(key) ?? new Set()).add(r.id))
  }
  const mail = ctx.smtp.messages().filter((m) => m.to.endsWith(`@${domain}`))
  return { ns, crash, expected, produced, idsPerNotification, mail }
}

test('a router SIGKILLed mid-fan-out: every notification arrives, replays keep their ids, none reaches the provider after its final status', async (t) => {
  const { ns, crash, expected, produced, idsPerNotification, mail } = await crashMidFanOut('router-crash')

  const finals = new Map<string, Date>()
  for (const id of expected) {
    const view = await ctx.finalStatus(ns, id, 30_000)
    assert.equal(view.status, 'delivered', id)
    finals.set(id, new Date(view.updatedAt ?? 0))
  }

  // What the routers produced: the same ids again, never new ones.
  const counts = countBy(produced.map((r) => r.id))
  assert.deepEqual(
    [...idsPerNotification].filter(([, ids]) => ids.size > 1).map(([key]) => key),
    [],
    'every repeat of an (event, route, recipient, channel) carries the same id',
  )
  assert.deepEqual(
    [...counts.keys()].filter((id) => !expected.has(id)),
    [],
    'every produced id is the one plan.ts derives from (event, route, recipient, channel)',
  )
  assert.deepEqual(
    [...expected].filter((id) => !counts.has(id)),
    [],
    'every expected notification was produced',
  )
  const repeats = produced.length - counts.size
  t.diagnostic(
    `crash after ${String(crash.produced)} of ${String(crash.of)} notifications of one produce were acknowledged; ` +
      `${produced.length} records produced for ${expected.size} ids: ${repeats} produced again ` +
      `(${[...counts.values()].filter((n) => n > 1).length} ids repeated)`,
  )
  // The acknowledged half was never finished, so the second router produced it again: the replay happened,
  // and by the checks above under the same ids.
  assert.ok(
    Number(crash.produced) > 0 && repeats >= Number(crash.produced),
    `${repeats} records produced again, at least the ${String(crash.produced)} acknowledged before the kill`,
  )

  // What reached the provider: each id once, and never after its status was final.
  const mailed = countBy(mail.map((m) => m.heraldId ?? `(no id: ${m.messageId})`))
  assert.deepEqual(
    [...mailed.keys()].filter((id) => !expected.has(id)),
    [],
    'every message at the SMTP stand-in carries an expected id',
  )
  assert.deepEqual(
    [...expected].filter((id) => mailed.get(id) !== 1),
    [],
    'each expected id reached the SMTP stand-in exactly once',
  )
  const afterFinal = mail.filter((m) => {
    const final = m.heraldId ? finals.get(m.heraldId) : undefined
    return final !== undefined && new Date(m.at) > final
  })
  assert.deepEqual(
    afterFinal.map((m) => m.heraldId),
    [],
    'no message reached the SMTP stand-in after its status was final',
  )
})

test('negative control: routers whose ids change on a restart fail the same checks (the replay is delivered again)', async (t) => {
  const { expected, produced, idsPerNotification, mail } = await crashMidFanOut('router-crash-broken', {
    HERALD_TEST_BROKEN_IDS: '1',
  })
  const split = [...idsPerNotification.values()].filter((ids) => ids.size > 1).length
  const foreign = new Set(produced.map((r) => r.id).filter((id) => !expected.has(id))).size
  const perRecipientAndEvent = countBy(mail.map((m) => `${m.to} ${m.subject ?? ''}`))
  const twice = [...perRecipientAndEvent.values()].filter((n) => n > 1).length
  t.diagnostic(
    `${split} notifications produced under two ids, ${foreign} ids not from plan.ts, ` +
      `${mail.length} messages at the stand-in for ${expected.size} notifications (${twice} delivered twice)`,
  )
  assert.ok(split > 0, 'the check "every repeat carries the same id" catches it')
  assert.ok(foreign > 0, 'the check "every produced id is the expected one" catches it')
  assert.ok(mail.length > expected.size && twice > 0, 'the replayed notifications reached the provider again')
})
