import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  problemsOf,
  recipientSchema,
  routeSchema,
  templateNameFor,
  templateSchema,
} from '@herald/shared/config-topics/schemas'

function problems(
  schema: typeof recipientSchema | typeof routeSchema | typeof templateSchema,
  value: unknown,
) {
  const result = schema.safeParse(value)
  return result.success ? [] : problemsOf(result.error)
}

describe('recipient schema', () => {
  const ada = {
    id: 'ada',
    name: 'Ada Lovelace',
    email: 'ada@example.com',
    phone: '+14155550100',
    slack: 'ops',
    channels: ['email', 'sms', 'slack'],
    timezone: 'Europe/London',
    quietHours: { start: '22:00', end: '07:00' },
  }

  test('a complete recipient is valid', () => {
    assert.deepEqual(problems(recipientSchema, ada), [])
  })

  test('a Slack webhook URL is refused with a message that says to name a destination', () => {
    const found = problems(recipientSchema, { ...ada, slack: 'https://hooks.slack.com/services/T/B/x' })
    assert.equal(found.length, 1)
    assert.equal(found[0]?.field, 'slack')
    assert.match(found[0]?.reason ?? '', /destination.*never a URL/)
  })

  test('a phone number not in E.164 form, an unknown time zone and a bad clock time name their fields', () => {
    const found = problems(recipientSchema, {
      ...ada,
      phone: '555-0100',
      timezone: 'Mars/Olympus',
      quietHours: { start: '25:00', end: '07:00' },
    })
    assert.deepEqual(found.map((p) => p.field).sort(), ['phone', 'quietHours.start', 'timezone'])
    assert.match(found.find((p) => p.field === 'phone')?.reason ?? '', /E\.164/)
  })

  test('an enabled channel needs its address', () => {
    const found = problems(recipientSchema, { id: 'bob', name: 'Bob', channels: ['sms'] })
    assert.deepEqual(found, [{ field: 'phone', reason: 'is required when channels include sms' }])
  })

  test('an unknown channel and an unknown field are refused', () => {
    const found = problems(recipientSchema, { id: 'bob', name: 'Bob', channels: ['fax'], pager: 1 })
    assert.deepEqual(found.map((p) => p.field).sort(), ['(body)', 'channels.0'])
  })
})

describe('template schema', () => {
  test('a subject is for email templates only', () => {
    const found = problems(templateSchema, { name: 't', channel: 'sms', subject: 'x', body: 'y' })
    assert.deepEqual(found, [{ field: 'subject', reason: 'is for email templates only' }])
  })
})

describe('route schema', () => {
  const route = {
    name: 'disk-full',
    match: { alarmDefinitionId: 'D', states: ['ALARM'], labels: { team: 'storage' } },
    recipients: ['ada'],
  }

  test('a route with a definition id, a state and recipients is valid', () => {
    assert.deepEqual(problems(routeSchema, route), [])
  })

  test('a route needs at least one state, a known state and a recipient', () => {
    assert.deepEqual(
      problems(routeSchema, { ...route, match: { states: [] }, recipients: [] }).map((p) => p.field),
      ['match.states', 'recipients'],
    )
    assert.equal(
      problems(routeSchema, { ...route, match: { states: ['FIRING'] } })[0]?.field,
      'match.states.0',
    )
  })

  test('a period under 10 seconds is refused; 10 seconds is the shortest', () => {
    assert.equal(problems(routeSchema, { ...route, periodSeconds: 9 })[0]?.field, 'periodSeconds')
    assert.deepEqual(problems(routeSchema, { ...route, periodSeconds: 10 }), [])
  })

  test('a single template name applies to its own channel only; a map names one per channel', () => {
    const channelOf = (name: string) => (name === 'pager-text' ? 'sms' : 'email') as 'sms' | 'email'
    const single = routeSchema.parse({ ...route, template: 'pager-text' })
    assert.equal(templateNameFor(single, 'sms', channelOf), 'pager-text')
    assert.equal(templateNameFor(single, 'email', channelOf), undefined)
    const map = routeSchema.parse({ ...route, template: { email: 'long-mail' } })
    assert.equal(templateNameFor(map, 'email', channelOf), 'long-mail')
    assert.equal(templateNameFor(map, 'slack', channelOf), undefined)
  })
})
