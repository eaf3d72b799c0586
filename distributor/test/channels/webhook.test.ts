// The webhook channel's classification table, its body and its signature (without a network: the
// integration test in test/e2e/webhook.int.test.ts sends through the stand-in).
import assert from 'node:assert/strict'
import { createHmac } from 'node:crypto'
import { test } from 'node:test'
import type { NotificationRecord } from '@herald/shared/notification'
import {
  classifyWebhookError,
  classifyWebhookStatus,
  webhookBody,
  webhookSignature,
} from '../../src/channels/webhook.ts'

const table: Array<[number, 'retryable' | 'permanent' | 'provider']> = [
  [408, 'retryable'],
  [425, 'retryable'],
  [429, 'retryable'],
  [500, 'retryable'],
  [502, 'retryable'],
  [503, 'retryable'],
  [504, 'retryable'],
  [400, 'permanent'],
  [409, 'permanent'],
  [413, 'permanent'],
  [415, 'permanent'],
  [422, 'permanent'],
  [401, 'provider'],
  [403, 'provider'],
  [404, 'provider'],
  [410, 'provider'],
  [301, 'provider'],
  [307, 'provider'],
]

for (const [status, failureClass] of table) {
  test(`a webhook answer ${status} is ${failureClass}`, () => {
    const error = classifyWebhookStatus(status, 'detail')
    assert.equal(error.failureClass, failureClass)
    assert.equal(error.code, `WEBHOOK_${status}`)
    assert.match(error.message, new RegExp(`${status} detail`))
  })
}

test('Retry-After travels with a retryable answer', () => {
  assert.equal(classifyWebhookStatus(429, '', 7000).retryAfterMs, 7000)
  assert.equal(classifyWebhookStatus(503, '', 2000).retryAfterMs, 2000)
  assert.equal(classifyWebhookStatus(503).retryAfterMs, undefined)
})

test('a timeout is retryable and says how long Herald waited', () => {
  const timeout = new DOMException('The operation was aborted due to timeout', 'TimeoutError')
  const error = classifyWebhookError(timeout, 1500)
  assert.equal(error.failureClass, 'retryable')
  assert.equal(error.code, 'WEBHOOK_TIMEOUT')
  assert.match(error.message, /1500 ms/)
})

test('a refused connection is retryable and named by its code', () => {
  const refused = new TypeError('fetch failed', {
    cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }),
  })
  const error = classifyWebhookError(refused, 1000)
  assert.equal(error.failureClass, 'retryable')
  assert.equal(error.code, 'WEBHOOK_ECONNREFUSED')
})

test("the HTTP client's errors: its deadline is a timeout, a socket error is named by its code", async () => {
  const { HttpRequestError } = await import('../../src/channels/http-client.ts')
  const late = classifyWebhookError(new HttpRequestError('ETIMEDOUT', 'no answer within 1500 ms'), 1500)
  assert.equal(late.code, 'WEBHOOK_TIMEOUT')
  assert.match(late.message, /1500 ms/)
  const reset = classifyWebhookError(new HttpRequestError('ECONNRESET', 'socket hang up'), 1500)
  assert.equal(reset.failureClass, 'retryable')
  assert.equal(reset.code, 'WEBHOOK_ECONNRESET')
})

test('an unknown network failure is retryable', () => {
  const error = classifyWebhookError(new TypeError('fetch failed'), 1000)
  assert.equal(error.failureClass, 'retryable')
  assert.equal(error.code, 'WEBHOOK_NETWORK')
})

const record: NotificationRecord = {
  v: 1,
  id: 'n-1',
  channel: 'webhook',
  to: 'ops',
  message: 'disk full on db-1',
  createdAt: '2026-12-01T00:00:00.000Z',
}

test('the body carries the notification, and the alarm event only when the record has one', () => {
  assert.deepEqual(JSON.parse(webhookBody(record)), {
    v: 1,
    notification: {
      id: 'n-1',
      channel: 'webhook',
      to: 'ops',
      message: 'disk full on db-1',
      createdAt: '2026-12-01T00:00:00.000Z',
    },
  })
  const event = { alarmId: 'a-1', newState: 'ALARM', timestamp: 1 }
  assert.deepEqual(JSON.parse(webhookBody({ ...record, event })).event, event)
})

test('the signature is the hex HMAC-SHA256 of "<timestamp>.<body>" with the secret', () => {
  const body = webhookBody(record)
  const expected = createHmac('sha256', 'a-secret-of-sixteen').update(`1764547200.${body}`).digest('hex')
  assert.equal(webhookSignature('a-secret-of-sixteen', '1764547200', body), `sha256=${expected}`)
  assert.notEqual(
    webhookSignature('a-secret-of-sixteen', '1764547201', body),
    webhookSignature('a-secret-of-sixteen', '1764547200', body),
    'the timestamp is signed',
  )
})
