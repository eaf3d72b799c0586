import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { notificationId, planNotifications } from '@herald/router/plan'
import type { Recipient } from '@herald/shared/config-topics/schemas'
import { alarmEvent, directory, recipient, route } from './fixtures.ts'

const uuid = /^[\da-f]{8}-[\da-f]{4}-8[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/

const people = directory<Recipient>([
  ['ann', recipient('ann')],
  ['bob', recipient('bob', { channels: ['sms'] })],
  ['cat', recipient('cat', { channels: ['email'], phone: undefined, slack: undefined })],
])

const summary = (plan: ReturnType<typeof planNotifications>) =>
  plan.notifications.map((n) => `${n.route.name}:${n.recipient.id}:${n.channel}:${n.to}`)

describe('planNotifications', () => {
  test('each recipient gets every channel it enabled, addressed from the directory, in the order email, sms, slack', () => {
    const plan = planNotifications(alarmEvent(), [route('r', { recipients: ['bob', 'ann'] })], people)
    assert.deepEqual(summary(plan), [
      'r:bob:sms:+14155550123',
      'r:ann:email:ann@example.com',
      'r:ann:sms:+14155550123',
      'r:ann:slack:ops',
    ])
    assert.deepEqual(plan.unplanned, [])
  })

  test("a route's channels narrow each recipient's enabled ones, and one left with none is reported", () => {
    const plan = planNotifications(
      alarmEvent(),
      [route('r', { recipients: ['ann', 'bob', 'cat'], channels: ['email', 'slack'] })],
      people,
    )
    assert.deepEqual(summary(plan), [
      'r:ann:email:ann@example.com',
      'r:ann:slack:ops',
      'r:cat:email:cat@example.com',
    ])
    assert.deepEqual(plan.unplanned, [{ route: 'r', recipient: 'bob', reason: 'no-channel' }])
  })

  test('a channel without an address is left out even when enabled', () => {
    // The schema refuses this; a record written before a schema change could still carry it.
    const noPhone = { ...recipient('dan', { channels: ['email'] }), channels: ['email', 'sms'] } as Recipient
    delete noPhone.phone
    const plan = planNotifications(
      alarmEvent(),
      [route('r', { recipients: ['dan'] })],
      directory([['dan', noPhone]]),
    )
    assert.deepEqual(summary(plan), ['r:dan:email:dan@example.com'])
  })

  test('an unknown recipient is reported, not thrown, and the others are still planned', () => {
    const plan = planNotifications(alarmEvent(), [route('r', { recipients: ['ghost', 'bob'] })], people)
    assert.deepEqual(summary(plan), ['r:bob:sms:+14155550123'])
    assert.deepEqual(plan.unplanned, [{ route: 'r', recipient: 'ghost', reason: 'unknown-recipient' }])
  })

  test('a recipient a route names twice is planned once; two routes give a notification each', () => {
    const plan = planNotifications(
      alarmEvent(),
      [route('a', { recipients: ['bob', 'bob'] }), route('b', { recipients: ['bob'] })],
      people,
    )
    assert.deepEqual(summary(plan), ['a:bob:sms:+14155550123', 'b:bob:sms:+14155550123'])
    assert.notEqual(plan.notifications[0]?.id, plan.notifications[1]?.id)
  })

  test('ids are UUIDs, the same when the event is planned again and distinct across (event, route, recipient, channel)', () => {
    const routes = [route('a', { recipients: ['ann', 'bob'] }), route('b', { recipients: ['ann'] })]
    const first = planNotifications(alarmEvent(), routes, people).notifications.map((n) => n.id)
    const again = planNotifications(alarmEvent(), routes, people).notifications.map((n) => n.id)
    const otherEvent = planNotifications(alarmEvent({ timestamp: 1_763_000_060_000 }), routes, people)
    assert.deepEqual(again, first)
    for (const id of first) assert.match(id, uuid)
    assert.equal(new Set(first).size, first.length)
    assert.equal(new Set([...first, ...otherEvent.notifications.map((n) => n.id)]).size, 2 * first.length)
  })

  test('the id depends only on the event id, route, recipient and channel', () => {
    const event = alarmEvent()
    const [planned] = planNotifications(event, [route('a', { recipients: ['bob'] })], people).notifications
    assert.equal(planned?.id, notificationId(event.eventId, 'a', 'bob', 'sms'))
    assert.notEqual(notificationId('e', 'a', 'bob', 'sms'), notificationId('e', 'a', 'bob', 'email'))
    assert.notEqual(notificationId('e', 'a', 'bob', 'sms'), notificationId('e', 'b', 'bob', 'sms'))
    assert.notEqual(notificationId('e', 'a', 'bob', 'sms'), notificationId('e', 'a', 'ann', 'sms'))
    assert.notEqual(notificationId('e', 'a', 'bob', 'sms'), notificationId('f', 'a', 'bob', 'sms'))
  })

  test('no routes, nothing planned', () => {
    assert.deepEqual(planNotifications(alarmEvent(), [], people), { notifications: [], unplanned: [] })
  })
})
