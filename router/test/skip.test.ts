import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { defaultAlarmEventTtlSeconds, skipReason } from '@herald/router/skip'
import { alarmEvent } from './fixtures.ts'

const hour = 3600 * 1000

describe('skipReason', () => {
  const event = alarmEvent()
  const at = event.timestamp

  test('a fresh event with actions enabled, or not saying, is notified', () => {
    assert.equal(skipReason(event, at + 1000), undefined)
    assert.equal(skipReason(alarmEvent({ actionsEnabled: undefined }), at), undefined)
  })

  test('an event with actions disabled is skipped, however fresh', () => {
    assert.equal(skipReason(alarmEvent({ actionsEnabled: false }), at), 'actions-disabled')
  })

  test('the default TTL is four hours: an event older than that is expired, one exactly that old is not', () => {
    assert.equal(defaultAlarmEventTtlSeconds, 14_400)
    assert.equal(skipReason(event, at + 4 * hour), undefined)
    assert.equal(skipReason(event, at + 4 * hour + 1), 'expired')
  })

  test('a given TTL replaces the default', () => {
    assert.equal(skipReason(event, at + 61_000, 60), 'expired')
    assert.equal(skipReason(event, at + 59_000, 60), undefined)
  })

  test('an event from ahead of our clock is not skipped', () => {
    assert.equal(skipReason(event, at - hour), undefined)
  })

  test('actions disabled is the reason counted when an event is also expired', () => {
    assert.equal(skipReason(alarmEvent({ actionsEnabled: false }), at + 5 * hour), 'actions-disabled')
  })
})
