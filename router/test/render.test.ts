import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { type PlannedNotification, planNotifications } from '@herald/router/plan'
import { renderNotification } from '@herald/router/render'
import type { Route, Template } from '@herald/shared/config-topics/schemas'
import { alarmEvent, directory, recipient, route, template } from './fixtures.ts'

const event = alarmEvent({ link: 'https://monitoring.example.com/alarms/1?a=1&b=2' })
const people = directory([['ann', recipient('ann')]])

/** The planned notification of `r` for ann on `channel`. */
function planned(r: Route, channel: PlannedNotification['channel']): PlannedNotification {
  const found = planNotifications(event, [r], people).notifications.find((n) => n.channel === channel)
  assert.ok(found, `ann is planned on ${channel}`)
  return found
}

const templates = directory<Template>([
  [
    'short-sms',
    template({
      name: 'short-sms',
      channel: 'sms',
      body: '{{upper newState}} {{alarmName}} for {{recipient.name}}',
    }),
  ],
  [
    'plain-email',
    template({
      name: 'plain-email',
      channel: 'email',
      subject: '{{alarmName}} via {{route}}',
      body: '{{stateChangeReason}}',
    }),
  ],
  ['bad-helper', template({ name: 'bad-helper', channel: 'email', body: '{{nosuchhelper alarmName}}' })],
  ['blank', template({ name: 'blank', channel: 'sms', body: '{{missingField}} ' })],
  [
    'huge-sms',
    template({
      name: 'huge-sms',
      channel: 'sms',
      body: '{{#each metrics}}{{name}}{{/each}}{{stateChangeReason}}',
    }),
  ],
])

describe('renderNotification', () => {
  test('without a template the defaults give an email subject and body, a short SMS and Slack mrkdwn with the link', () => {
    const r = route('r')
    const email = renderNotification(planned(r, 'email'), event, templates)
    assert.ok(email.ok)
    assert.equal(email.value.subject, '[ALARM] disk usage high (HIGH)')
    assert.match(email.value.message, /^Reason: Thresholds were exceeded/m)
    assert.equal(email.value.to, 'ann@example.com')
    assert.equal(email.value.template, 'default-email')

    const sms = renderNotification(planned(r, 'sms'), event, templates)
    assert.ok(sms.ok)
    assert.equal(sms.value.subject, undefined)
    assert.ok(sms.value.message.length <= 200)
    assert.match(sms.value.message, /^\[ALARM\] disk usage high HIGH: Thresholds/)

    const slack = renderNotification(planned(r, 'slack'), event, templates)
    assert.ok(slack.ok)
    assert.match(
      slack.value.message,
      /^\*\[ALARM\]\* <https:\/\/monitoring\.example\.com\/alarms\/1\?a=1&amp;b=2\|disk usage high> \(HIGH\)$/m,
    )
    assert.equal(slack.value.to, 'ops')
  })

  test('the rendered notification keeps the planned id and address', () => {
    const p = planned(route('r'), 'sms')
    const sms = renderNotification(p, event, templates)
    assert.ok(sms.ok)
    assert.equal(sms.value.id, p.id)
    assert.equal(sms.value.to, '+14155550123')
  })

  test('a single template name is used on its own channel, the defaults on the others, with the route and recipient in context', () => {
    const r = route('r', { template: 'short-sms' })
    const sms = renderNotification(planned(r, 'sms'), event, templates)
    assert.ok(sms.ok)
    assert.equal(sms.value.message, 'ALARM disk usage high for Person ann')
    assert.equal(sms.value.template, 'short-sms')
    const email = renderNotification(planned(r, 'email'), event, templates)
    assert.ok(email.ok)
    assert.equal(email.value.template, 'default-email')
  })

  test('a template per channel is used on that channel', () => {
    const r = route('r', { template: { email: 'plain-email' } })
    const email = renderNotification(planned(r, 'email'), event, templates)
    assert.ok(email.ok)
    assert.equal(email.value.subject, 'disk usage high via r')
    assert.match(email.value.message, /^Thresholds were exceeded/)
    const slack = renderNotification(planned(r, 'slack'), event, templates)
    assert.ok(slack.ok)
    assert.equal(slack.value.template, 'default-slack')
  })

  test('a template the store does not have is a failure naming it, for a single name on every channel', () => {
    for (const [r, channel] of [
      [route('r', { template: 'gone' }), 'slack'],
      [route('r', { template: { sms: 'gone' } }), 'sms'],
    ] as const) {
      const result = renderNotification(planned(r, channel), event, templates)
      assert.ok(!result.ok)
      assert.equal(result.error.reason, 'template-missing')
      assert.equal(result.error.template, 'gone')
      assert.equal(
        result.error.message,
        `route "r", recipient "ann", ${channel}: template "gone" does not exist`,
      )
    }
  })

  test('a template named for another channel than its own is a failure, not sent with the wrong text', () => {
    const r = route('r', { template: { email: 'short-sms' } })
    const result = renderNotification(planned(r, 'email'), event, templates)
    assert.ok(!result.ok)
    assert.equal(result.error.reason, 'template-channel')
    assert.match(result.error.message, /template "short-sms" is for sms/)
  })

  test('a template that fails to render returns its reason instead of throwing', () => {
    const result = renderNotification(
      planned(route('r', { template: 'bad-helper' }), 'email'),
      event,
      templates,
    )
    assert.ok(!result.ok)
    assert.equal(result.error.reason, 'render-failed')
    assert.equal(result.error.template, 'bad-helper')
    assert.match(
      result.error.message,
      /^route "r", recipient "ann", email: template bad-helper: .*nosuchhelper/,
    )
  })

  test('a template that renders blank text is a failure', () => {
    const result = renderNotification(planned(route('r', { template: 'blank' }), 'sms'), event, templates)
    assert.ok(!result.ok)
    assert.equal(result.error.reason, 'render-failed')
    assert.match(result.error.message, /blank/)
  })

  test('text longer than the channel takes is a failure with both lengths', () => {
    const long = alarmEvent({ stateChangeReason: 'x'.repeat(2000) })
    const p = planNotifications(long, [route('r', { template: 'huge-sms' })], people).notifications.find(
      (n) => n.channel === 'sms',
    )
    assert.ok(p)
    const result = renderNotification(p, long, templates)
    assert.ok(!result.ok)
    assert.equal(result.error.reason, 'too-long')
    assert.match(result.error.message, /renders 2020 characters; sms takes at most 1600/)
  })
})
