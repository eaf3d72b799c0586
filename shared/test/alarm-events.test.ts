import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  decodeAlarmEvent,
  deriveEventId,
  encodeAlarmEvent,
  parseAlarmEvent,
} from '@herald/shared/alarm-events'
import { monascaEvent } from '../../test/support/alarm-events.ts'

function problems(body: unknown): Record<string, string> {
  const parsed = parseAlarmEvent(body)
  assert.equal(parsed.ok, false, `${JSON.stringify(body)} is refused`)
  return parsed.ok ? {} : Object.fromEntries(parsed.issues.map((i) => [i.field, i.reason]))
}

function accepted(body: unknown) {
  const parsed = parseAlarmEvent(body)
  assert.ok(parsed.ok, parsed.ok ? '' : JSON.stringify(parsed.issues))
  return parsed.event
}

describe('alarm event schema', () => {
  test("monasca's event is accepted with every field unchanged and an eventId added", () => {
    const event = monascaEvent()
    const { eventId, ...rest } = accepted(event)
    assert.deepEqual(rest, event)
    assert.match(eventId, /^[\da-f]{8}-[\da-f]{4}-8[\da-f]{3}-[89ab][\da-f]{3}-[\da-f]{12}$/)
  })

  test('the wrapped form gives the same event as the plain one', () => {
    assert.deepEqual(accepted({ 'alarm-transitioned': monascaEvent() }), accepted(monascaEvent()))
  })

  test('a missing eventId is the same for the same transition and differs for another', () => {
    const first = accepted(monascaEvent()).eventId
    assert.equal(accepted(JSON.parse(JSON.stringify(monascaEvent()))).eventId, first)
    assert.equal(accepted(monascaEvent({ stateChangeReason: 'other words' })).eventId, first)
    assert.notEqual(accepted(monascaEvent({ newState: 'OK' })).eventId, first)
    assert.notEqual(accepted(monascaEvent({ timestamp: 1_763_000_000_001 })).eventId, first)
    assert.notEqual(accepted(monascaEvent({ alarmId: 'another alarm' })).eventId, first)
    assert.equal(first, deriveEventId(monascaEvent() as Parameters<typeof deriveEventId>[0]))
  })

  test("Herald's own fields are accepted, and an eventId given is kept", () => {
    const event = accepted({
      alarmName: 'queue depth',
      newState: 'ALARM',
      timestamp: 1_763_000_000_000,
      kind: 'escalated',
      labels: { team: 'payments', env: 'prod' },
      value: 1234.5,
      eventId: 'alarms:queue-depth:42',
    })
    assert.equal(event.eventId, 'alarms:queue-depth:42')
    assert.deepEqual(event.labels, { team: 'payments', env: 'prod' })
  })

  test('missing and invalid fields are named with a reason', () => {
    assert.deepEqual(problems({ oldState: 'OK' }), {
      alarmName: 'is required',
      newState: 'is required',
      timestamp: 'is required',
    })
    const found = problems(
      monascaEvent({
        newState: 'alarm',
        timestamp: '1763000000000',
        kind: 'page',
        labels: { team: 7 },
        actionsEnabled: 'yes',
        eventId: 'has spaces',
      }),
    )
    assert.equal(found.newState, 'must be one of OK, ALARM, UNDETERMINED')
    assert.match(found.timestamp ?? '', /must be a number/)
    assert.match(found.kind ?? '', /alarm, escalated, reminder, ok/)
    assert.equal(found['labels.team'], 'must be a string')
    assert.equal(found.actionsEnabled, 'must be true or false')
    assert.match(found.eventId ?? '', /letters, digits/)
  })

  test('a timestamp in seconds is refused rather than read as 1970', () => {
    assert.match(problems(monascaEvent({ timestamp: 1_763_000_000 })).timestamp ?? '', /looks like seconds/)
  })

  test('problems of the wrapped form are named under alarm-transitioned, and nothing may sit beside it', () => {
    const found = problems({ 'alarm-transitioned': monascaEvent({ newState: 'BROKEN' }), extra: 1 })
    assert.equal(found['alarm-transitioned.newState'], 'must be one of OK, ALARM, UNDETERMINED')
    assert.equal(found['(body)'], 'unknown field(s): extra')
    assert.deepEqual(problems([monascaEvent()]), { '(body)': 'must be a JSON object (one alarm event)' })
  })

  test('a record is keyed by alarm name and decodes back to the same event', () => {
    const event = accepted(monascaEvent())
    const { key, value } = encodeAlarmEvent(event)
    assert.equal(key, 'disk usage high')
    assert.deepEqual(decodeAlarmEvent(Buffer.from(value)), { kind: 'ok', event })
    const wrapped = Buffer.from(JSON.stringify({ 'alarm-transitioned': monascaEvent() }))
    assert.deepEqual(decodeAlarmEvent(wrapped), { kind: 'ok', event })
    assert.deepEqual(decodeAlarmEvent(Buffer.from('{')), { kind: 'poison', reason: 'not JSON' })
    assert.equal(decodeAlarmEvent(null).kind, 'poison')
  })
})
