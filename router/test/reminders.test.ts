import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { matchingRoutes } from '@herald/router/match'
import { planNotifications } from '@herald/router/plan'
import { type DueReminder, ReminderSchedule } from '@herald/router/reminders'
import type { AlarmEvent } from '@herald/shared/alarm-events'
import type { Route } from '@herald/shared/config-topics/schemas'
import { alarmEvent, directory, recipient, route } from './fixtures.ts'

const minute = 60_000
const t0 = alarmEvent().timestamp

const paging = route('paging', { match: { states: ['ALARM'] }, periodSeconds: 300 })
const onOk = route('on-ok', { match: { states: ['OK'] }, periodSeconds: 300 })
const once = route('once', { match: { states: ['ALARM'] } })
const routes = [paging, onOk, once]
const routeOf = directory(routes.map((r): [string, Route] => [r.name, r]))

const raised = alarmEvent({ timestamp: t0 })
const cleared = alarmEvent({ oldState: 'ALARM', newState: 'OK', timestamp: t0 + 32 * minute })

/**
 * Runs the clock from `from` to `to` in steps of `stepMs`, producing every due reminder (and recording it
 * sent at once), and feeding each event when the clock reaches its timestamp.
 */
function run(
  schedule: ReminderSchedule,
  options: { from: number; to: number; stepMs?: number; events?: ReturnType<typeof alarmEvent>[] },
): Array<DueReminder & { at: number }> {
  const produced: Array<DueReminder & { at: number }> = []
  const events = [...(options.events ?? [])]
  for (let now = options.from; now <= options.to; now += options.stepMs ?? 10_000) {
    while (events[0] !== undefined && events[0].timestamp <= now) {
      const event = events.shift()
      if (event) schedule.observe(event, matchingRoutes(event, routes), now)
    }
    for (const reminder of schedule.due(now, routeOf).due) {
      assert.ok(schedule.sent(reminder, now), 'a due reminder is recorded once')
      produced.push({ ...reminder, at: now })
    }
  }
  return produced
}

describe('ReminderSchedule', () => {
  test('while the alarm stays in ALARM a reminder is due every period; none after OK', () => {
    const schedule = new ReminderSchedule()
    const produced = run(schedule, { from: t0, to: t0 + 120 * minute, events: [raised, cleared] })
    const alarmReminders = produced.filter((r) => r.route.name === 'paging')
    // Raised at t0, cleared at t0 + 32 min: reminders at 5, 10, ..., 30 minutes.
    assert.deepEqual(
      alarmReminders.map((r) => (r.at - t0) / minute),
      [5, 10, 15, 20, 25, 30],
    )
    assert.deepEqual(
      alarmReminders.map((r) => r.number),
      [1, 2, 3, 4, 5, 6],
    )
    // The OK route has its own period: it repeats the OK, the ALARM route does not.
    assert.ok(produced.filter((r) => r.route.name === 'on-ok').every((r) => r.event.newState === 'OK'))
    assert.ok(
      produced.every((r) => r.route.name !== 'once'),
      'a route without a period never repeats',
    )
  })

  test('the next transition stops the reminders and reports the stopped entry', () => {
    const schedule = new ReminderSchedule()
    const started = schedule.observe(raised, [paging, once], t0)
    assert.deepEqual(
      started.started.map((e) => e.route),
      ['paging'],
    )
    const result = schedule.observe(cleared, [], cleared.timestamp)
    assert.deepEqual(
      result.stopped.map((e) => [e.route, e.event.newState]),
      [['paging', 'ALARM']],
    )
    assert.deepEqual(schedule.entries(), [])
    assert.deepEqual(schedule.due(cleared.timestamp + 60 * minute, routeOf).due, [])
    assert.equal(schedule.nextDueAt(), undefined)
  })

  test('an event with actions disabled (notified on no route) stops the reminders too', () => {
    const schedule = new ReminderSchedule()
    schedule.observe(raised, [paging], t0)
    const disabled = alarmEvent({
      oldState: 'ALARM',
      newState: 'ALARM',
      actionsEnabled: false,
      timestamp: t0 + minute,
    })
    assert.equal(schedule.observe(disabled, [], t0 + minute).stopped.length, 1)
  })

  test('a reminder repeats the event as kind reminder, with an id of its own that is the same when due again', () => {
    const schedule = new ReminderSchedule()
    schedule.observe(raised, [paging], t0)
    const [first] = schedule.due(t0 + 5 * minute, routeOf).due
    const [again] = schedule.due(t0 + 5 * minute + 1000, routeOf).due
    assert.ok(first && again)
    assert.equal(first.event.kind, 'reminder')
    assert.equal(first.event.reminderOf, raised.eventId)
    assert.equal(first.event.reminderNumber, 1)
    assert.equal(first.event.alarmName, raised.alarmName)
    assert.equal(first.event.newState, 'ALARM')
    assert.notEqual(first.event.eventId, raised.eventId)
    assert.equal(again.event.eventId, first.event.eventId, 'not marked sent: the same reminder, the same id')

    const people = directory([['ann', recipient('ann', { channels: ['sms'] })]])
    const ids = (event: AlarmEvent) =>
      planNotifications(event, [paging], people).notifications.map((n) => n.id)
    assert.deepEqual(ids(first.event), ids(again.event))
    assert.notDeepEqual(ids(first.event), ids(raised))

    assert.ok(schedule.sent(first, t0 + 5 * minute))
    assert.equal(schedule.sent(again, t0 + 5 * minute + 1000), undefined, 'recorded once')
    const [second] = schedule.due(t0 + 10 * minute, routeOf).due
    assert.equal(second?.number, 2)
    assert.notEqual(second?.event.eventId, first.event.eventId)
  })

  test('a restart from the persisted entries loses nothing and does not burst after a long stop', () => {
    const before = new ReminderSchedule()
    const produced = run(before, { from: t0, to: t0 + 12 * minute, events: [raised] })
    assert.deepEqual(
      produced.map((r) => r.number),
      [1, 2],
    )
    const restored = new ReminderSchedule(JSON.parse(JSON.stringify(before.entries())))
    // The router was down from 12 to 40 minutes: one reminder when it is back, then one per period again.
    const after = run(restored, { from: t0 + 40 * minute, to: t0 + 56 * minute })
    assert.deepEqual(
      after.map((r) => [(r.at - t0) / minute, r.number]),
      [
        [40, 3],
        [45, 4],
        [50, 5],
        [55, 6],
      ],
    )
  })

  test('the same event replayed after a restart keeps its schedule; an older one changes nothing', () => {
    const schedule = new ReminderSchedule()
    const earlier = alarmEvent({ newState: 'UNDETERMINED', timestamp: t0 - minute })
    schedule.observe(raised, [paging], t0)
    const [first] = schedule.due(t0 + 5 * minute, routeOf).due
    assert.ok(first && schedule.sent(first, t0 + 5 * minute))

    const restored = new ReminderSchedule(schedule.entries())
    assert.deepEqual(restored.observe(raised, [paging], t0 + 6 * minute), { started: [], stopped: [] })
    assert.deepEqual(restored.observe(earlier, [], t0 + 6 * minute), { started: [], stopped: [] })
    assert.equal(restored.nextDueAt(), t0 + 10 * minute)
    assert.equal(restored.due(t0 + 10 * minute, routeOf).due[0]?.number, 2)
  })

  test('a new event in the same state restarts the period from its notification', () => {
    const schedule = new ReminderSchedule()
    schedule.observe(raised, [paging], t0)
    const escalated = alarmEvent({ oldState: 'ALARM', severity: 'CRITICAL', timestamp: t0 + 3 * minute })
    const result = schedule.observe(escalated, [paging], t0 + 3 * minute)
    assert.equal(result.stopped.length, 1)
    assert.equal(result.started.length, 1)
    assert.equal(schedule.nextDueAt(), t0 + 8 * minute)
    const [reminder] = schedule.due(t0 + 8 * minute, routeOf).due
    assert.equal(reminder?.event.severity, 'CRITICAL')
    assert.equal(reminder?.number, 1)
  })

  test('alarms of one definition (same name, other alarm ids) repeat and stop independently', () => {
    const schedule = new ReminderSchedule()
    const db1 = alarmEvent({ alarmId: 'db-1', timestamp: t0 })
    const db2 = alarmEvent({ alarmId: 'db-2', timestamp: t0 })
    schedule.observe(db1, [paging], t0)
    schedule.observe(db2, [paging], t0)
    schedule.observe(alarmEvent({ alarmId: 'db-1', newState: 'OK', timestamp: t0 + minute }), [], t0 + minute)
    assert.deepEqual(
      schedule.due(t0 + 5 * minute, routeOf).due.map((r) => r.alarm),
      ['db-2'],
    )
  })

  test('a route deleted, without a period or no longer matching drops its entries; a changed period applies', () => {
    const schedule = new ReminderSchedule()
    const others = [
      route('gone', { periodSeconds: 60 }),
      route('unperiodic', { periodSeconds: 60 }),
      route('narrowed', { periodSeconds: 60 }),
    ]
    schedule.observe(raised, [paging, ...others], t0)
    const now: Record<string, Route> = {
      paging: { ...paging, periodSeconds: 600 },
      unperiodic: route('unperiodic'),
      narrowed: route('narrowed', { match: { states: ['OK'] }, periodSeconds: 60 }),
    }
    const { due, dropped } = schedule.due(t0 + 5 * minute, (name) => now[name])
    assert.deepEqual(due, [], 'paging now repeats every 10 minutes')
    assert.deepEqual(dropped.map((e) => e.route).sort(), ['gone', 'narrowed', 'unperiodic'])
    assert.equal(schedule.nextDueAt(), t0 + 10 * minute)
  })
})
