// The Slack channel through its pooled HTTP client (http-client.ts) and the @slack/webhook SDK, against the
// Slack stand-in: what the fetch it replaced gave for free must still hold. Retry-After reaches the error,
// the deadline ends a request that gets no answer, the stop signal ends one in flight at once, and one
// webhook per destination does not mix up destinations.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import type { NotificationRecord } from '@herald/shared/notification'
import type { StandIn } from '../../../dev/standins/common.ts'
import { startSlackStandIn } from '../../../dev/standins/slack.ts'
import { DeliveryError } from '../../src/channels/channel.ts'
import { createSlackChannel } from '../../src/channels/slack.ts'

let slack: StandIn
before(async () => {
  slack = await startSlackStandIn({ port: 0, quiet: true })
})
after(async () => {
  await slack.close()
})

const record = (to: string, message: string): NotificationRecord => ({
  v: 1,
  id: `id-${message}`,
  channel: 'slack',
  to,
  message,
  createdAt: '2026-12-01T00:00:00.000Z',
})

const channelFor = (timeoutMs = 5000) =>
  createSlackChannel({
    webhooks: { ops: `${slack.url}/services/ops`, dev: `${slack.url}/services/dev` },
    timeoutMs,
  })

test('each destination gets its own messages, in order, through one webhook per destination', async () => {
  slack.clear()
  slack.setFaults({})
  const channel = channelFor()
  const signal = new AbortController().signal
  for (let i = 0; i < 5; i++) {
    await channel.send(record('ops', `ops-${i}`), signal)
    await channel.send(record('dev', `dev-${i}`), signal)
  }
  const byPath = (path: string) =>
    slack
      .messages()
      .filter((m) => m.to === path)
      .map((m) => m.text)
  assert.deepEqual(
    byPath('/services/ops'),
    [0, 1, 2, 3, 4].map((i) => `ops-${i}`),
  )
  assert.deepEqual(
    byPath('/services/dev'),
    [0, 1, 2, 3, 4].map((i) => `dev-${i}`),
  )
  await channel.close()
})

test("a 429's Retry-After reaches the delivery error; the next answer without one carries none", async () => {
  slack.setFaults({ failNext: 1, status: 429, retryAfter: 7 })
  const channel = channelFor()
  const signal = new AbortController().signal
  const error = await channel.send(record('ops', 'limited'), signal).then(
    () => assert.fail('a 429 must fail'),
    (e: unknown) => e,
  )
  assert.ok(error instanceof DeliveryError)
  assert.equal(error.failureClass, 'retryable')
  assert.equal(error.code, 'SLACK_429')
  assert.equal(error.retryAfterMs, 7000)
  slack.setFaults({ failNext: 1, status: 503 })
  const plain = await channel.send(record('ops', 'unavailable'), signal).then(
    () => assert.fail('a 503 must fail'),
    (e: unknown) => e as DeliveryError,
  )
  assert.equal(plain.code, 'SLACK_503')
  assert.equal(plain.retryAfterMs, undefined)
  await channel.close()
})

test('a webhook that does not answer within the deadline is a retryable timeout', async () => {
  slack.setFaults({ latencyMs: 2000 })
  const channel = channelFor(200)
  const error = await channel.send(record('ops', 'slow'), new AbortController().signal).then(
    () => assert.fail('no answer within 200 ms must fail'),
    (e: unknown) => e as DeliveryError,
  )
  assert.equal(error.failureClass, 'retryable')
  assert.equal(error.code, 'SLACK_ETIMEDOUT')
  slack.setFaults({})
  await channel.close()
})

test('the stop signal ends a send in flight with its reason, long before the provider answers', async () => {
  slack.setFaults({ latencyMs: 3000 })
  const channel = channelFor()
  const stop = new AbortController()
  const sending = channel.send(record('ops', 'stopping'), stop.signal)
  setTimeout(() => stop.abort(new Error('shutdown bound reached')), 100)
  await assert.rejects(sending, /shutdown bound reached/)
  slack.setFaults({})
  await channel.close()
})
