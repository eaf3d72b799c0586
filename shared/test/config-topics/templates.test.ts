import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { checkTemplate, defaultTemplates, renderTemplate } from '@herald/shared/config-topics/templates'

const event = {
  alarmId: 'a-1',
  alarmDefinitionId: 'D',
  alarmName: 'disk full on db-1',
  oldState: 'OK',
  newState: 'ALARM',
  stateChangeReason: 'Thresholds were exceeded for the sub-alarms: max(disk.used_perc) > 90',
  severity: 'HIGH',
  link: 'https://monitoring.example.com/alarms/a-1?x=1&y=2',
  timestamp: Date.UTC(2026, 10, 30, 12, 0, 0),
  labels: { host: 'db-1' },
}

describe('renderTemplate', () => {
  test('the default email template renders a subject and a body with the reason, labels and link', () => {
    const result = renderTemplate(defaultTemplates.email, event)
    assert.ok(result.ok)
    assert.equal(result.value.subject, '[ALARM] disk full on db-1 (HIGH)')
    assert.match(result.value.text, /went from OK to ALARM at 2026-11-30T12:00:00\.000Z\./)
    assert.match(result.value.text, /^Reason: Thresholds were exceeded/m)
    assert.match(result.value.text, /^host: db-1$/m)
    assert.match(result.value.text, /^Details: https:\/\/monitoring\.example\.com\/alarms\/a-1\?x=1&y=2$/m)
  })

  test('the default SMS text is short even with a long reason', () => {
    const result = renderTemplate(defaultTemplates.sms, { ...event, stateChangeReason: 'x'.repeat(5000) })
    assert.ok(result.ok)
    assert.ok(result.value.text.length <= 200, `${result.value.text.length} characters`)
    assert.match(result.value.text, /^\[ALARM\] disk full on db-1 HIGH: x+…$/)
  })

  test('the default Slack text links the alarm name and escapes what mrkdwn would interpret', () => {
    const result = renderTemplate(defaultTemplates.slack, { ...event, stateChangeReason: 'a <b> & c' })
    assert.ok(result.ok)
    assert.match(
      result.value.text,
      /^\*\[ALARM\]\* <https:\/\/monitoring\.example\.com\/alarms\/a-1\?x=1&amp;y=2\|disk full on db-1> \(HIGH\)$/m,
    )
    assert.match(result.value.text, /^a &lt;b&gt; &amp; c$/m)
  })

  test('text is not HTML-escaped for email and SMS', () => {
    const result = renderTemplate(
      { name: 't', channel: 'sms', body: '{{alarmName}}' },
      { alarmName: 'a <b> & "c"' },
    )
    assert.deepEqual(result, { ok: true, value: { text: 'a <b> & "c"' } })
  })

  test('a template that fails to render for an event is an error naming the template, not an exception', () => {
    const result = renderTemplate({ name: 'shouty', channel: 'email', body: '{{shout alarmName}}' }, event)
    assert.equal(result.ok, false)
    assert.ok(!result.ok)
    assert.equal(result.error.code, 'HERALD_TEMPLATE_RENDER')
    assert.match(result.error.message, /^template shouty: Missing helper: "shout"/)
  })

  test('a body that renders to blank text for an event is an error', () => {
    const result = renderTemplate({ name: 'empty', channel: 'sms', body: '{{missing}}' }, event)
    assert.ok(!result.ok)
    assert.match(result.error.message, /blank/)
  })
})

describe('checkTemplate', () => {
  test('a template that does not compile names the field and the reason', () => {
    const found = checkTemplate({ subject: 'ok {{alarmName}}', body: 'Hello {{#if x}} unclosed' })
    assert.equal(found.length, 1)
    assert.equal(found[0]?.field, 'body')
    assert.match(found[0]?.reason ?? '', /^does not compile: /)
  })

  test('the default templates compile', () => {
    for (const t of Object.values(defaultTemplates)) assert.deepEqual(checkTemplate(t), [], t.name)
  })
})
