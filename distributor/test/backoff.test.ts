import assert from 'node:assert/strict'
import { test } from 'node:test'
import { backoffDelay, parseRetryAfter } from '../src/backoff.ts'

const policy = { baseMs: 1000, capMs: 60_000 }

test('the ceiling doubles per attempt and stops at the cap', () => {
  const top = () => 0.999_999
  assert.equal(backoffDelay(policy, 1, undefined, top), 999)
  assert.equal(backoffDelay(policy, 2, undefined, top), 1999)
  assert.equal(backoffDelay(policy, 4, undefined, top), 7999)
  assert.equal(backoffDelay(policy, 30, undefined, top), 59_999)
})

test('full jitter can wait nothing at all', () => {
  assert.equal(
    backoffDelay(policy, 5, undefined, () => 0),
    0,
  )
})

test('Retry-After is a floor for the wait', () => {
  assert.equal(
    backoffDelay(policy, 1, 30_000, () => 0.5),
    30_000,
  )
  assert.equal(
    backoffDelay(policy, 8, 10, () => 0.5),
    Math.floor(0.5 * 60_000),
  )
})

test('Retry-After is read as seconds or as an HTTP date', () => {
  assert.equal(parseRetryAfter('120'), 120_000)
  const now = Date.parse('2026-01-01T00:00:00Z')
  assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:00:30 GMT', now), 30_000)
  assert.equal(parseRetryAfter('soon'), undefined)
  assert.equal(parseRetryAfter(undefined), undefined)
})
