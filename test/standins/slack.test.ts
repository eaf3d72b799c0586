import assert from 'node:assert/strict'
import { after, before, beforeEach, test } from 'node:test'
import { IncomingWebhook } from '@slack/webhook'
import type { StandIn } from '../../dev/standins/common.ts'
import { startSlackStandIn } from '../../dev/standins/slack.ts'
import { garbage, talkRaw } from './raw-socket.ts'

// How @slack/webhook v8 shows an error answer: send() rejects with an IncomingWebhookHTTPError,
// `code` 'slack_webhook_http_error', `statusCode`, `statusMessage` and `body` (Slack's error word, e.g.
// 'no_text'); no headers. No answer at all is an IncomingWebhookRequestError, code
// 'slack_webhook_request_error', with `original` (the fetch error). Options: `retryConfig` (p-retry; 5xx
// and network errors are retried, 4xx including 429 are not; default no retries), `timeout`, and `fetch`
// - wrapping that is how Retry-After is read. Statuses and bodies are those Slack documents for incoming
// webhooks.
interface WebhookError {
  code?: string
  statusCode?: number
  body?: string
  original?: Error
}

let standIn: StandIn
const hook = (path = '/services/T1/B1/x') =>
  new IncomingWebhook(`${standIn.url}${path}`, { retryConfig: { retries: 0 } })
const post = (body: string, path = '/services/T1/B1/x') =>
  fetch(`${standIn.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })

before(async () => {
  standIn = await startSlackStandIn({ port: 0, quiet: true })
})
beforeEach(() => {
  standIn.setFaults({})
})
after(async () => {
  await standIn.close()
})

test('@slack/webhook posts to the stand-in and gets ok', async () => {
  const result = await hook().send({ text: 'deploy finished' })
  assert.equal(result.text, 'ok')
  const got = standIn.messages().at(-1)
  assert.equal(got?.provider, 'slack')
  assert.equal(got?.text, 'deploy finished')
  assert.equal(got?.to, '/services/T1/B1/x')
})

test('a message of blocks only is accepted and recorded', async () => {
  const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: '*deploy* finished' } }]
  assert.equal((await hook().send({ blocks })).text, 'ok')
  assert.deepEqual(JSON.parse(standIn.messages().at(-1)?.text ?? ''), blocks)
})

test('the answer is text/html with the body ok, as Slack sends it', async () => {
  const response = await post('{"text":"hi"}')
  assert.equal(response.status, 200)
  assert.match(response.headers.get('content-type') ?? '', /^text\/html/)
  assert.equal(await response.text(), 'ok')
})

test('a missing text is 400 no_text, seen by the SDK as an HTTP error with status and body', async () => {
  await assert.rejects(hook().send({}), (e: WebhookError) => {
    assert.equal(e.code, 'slack_webhook_http_error')
    assert.equal(e.statusCode, 400)
    assert.equal(e.body, 'no_text')
    return true
  })
})

test('malformed blocks are 400 invalid_blocks, blocks that are not a list invalid_blocks_format', async () => {
  await assert.rejects(
    hook().send({ text: 'x', blocks: JSON.parse('[{"text":"no type"}]') }),
    (e: WebhookError) => e.statusCode === 400 && e.body === 'invalid_blocks',
  )
  const response = await post('{"text":"x","blocks":{"type":"section"}}')
  assert.equal(response.status, 400)
  assert.equal(await response.text(), 'invalid_blocks_format')
})

test('rate limiting is 429 rate_limited with Retry-After, server errors are 500 and 503', async () => {
  let retryAfter: string | null = null
  const capturing = new IncomingWebhook(`${standIn.url}/services/T1/B1/x`, {
    retryConfig: { retries: 0 },
    fetch: async (input, init) => {
      const response = await fetch(input, init)
      retryAfter = response.headers.get('retry-after')
      return response
    },
  })
  standIn.setFaults({ failNext: 1, status: 429, retryAfter: 30 })
  await assert.rejects(capturing.send({ text: 'x' }), (e: WebhookError) => {
    return e.statusCode === 429 && e.body === 'rate_limited'
  })
  assert.equal(retryAfter, '30')
  for (const status of [500, 503]) {
    standIn.setFaults({ failNext: 1, status })
    await assert.rejects(hook().send({ text: 'x' }), (e: WebhookError) => e.statusCode === status)
  }
  assert.equal((await hook().send({ text: 'after' })).text, 'ok')
})

test('the SDK retries a 503 by itself when retries are on, and not a 429', async () => {
  const retrying = new IncomingWebhook(`${standIn.url}/services/T1/B1/x`, {
    retryConfig: { retries: 1, minTimeout: 10, maxTimeout: 10 },
  })
  standIn.setFaults({ failNext: 1, status: 503 })
  assert.equal((await retrying.send({ text: 'second try' })).text, 'ok')
  standIn.setFaults({ failNext: 1, status: 429 })
  await assert.rejects(retrying.send({ text: 'x' }), (e: WebhookError) => e.statusCode === 429)
})

test('a removed webhook is 404 no_service or 410 channel_is_archived, bad credentials 403', async () => {
  standIn.setFaults({ permanentRecipients: ['/services/T1/B1/gone'] })
  await assert.rejects(hook('/services/T1/B1/gone').send({ text: 'x' }), (e: WebhookError) => {
    return e.statusCode === 404 && e.body === 'no_service'
  })
  standIn.setFaults({ permanentRecipients: [{ recipient: '/services/T1/B1/archived', code: 410 }] })
  await assert.rejects(hook('/services/T1/B1/archived').send({ text: 'x' }), (e: WebhookError) => {
    return e.statusCode === 410 && e.body === 'channel_is_archived'
  })
  assert.equal((await hook().send({ text: 'other hooks work' })).text, 'ok')
  standIn.setFaults({ authFail: true })
  await assert.rejects(hook().send({ text: 'x' }), (e: WebhookError) => {
    return e.statusCode === 403 && e.body === 'invalid_token'
  })
})

test('nothing listening is a request error with the original error', async () => {
  const closed = await startSlackStandIn({ port: 0, quiet: true })
  const url = `${closed.url}/services/T1/B1/x`
  await closed.close()
  await assert.rejects(
    new IncomingWebhook(url).send({ text: 'x' }),
    (e: WebhookError) => e.code === 'slack_webhook_request_error' && e.original instanceof Error,
  )
})

test('received messages and faults are inspected and set over HTTP', async () => {
  standIn.clear()
  await hook('/services/T1/B1/a').send({ text: 'to a' })
  await hook('/services/T1/B1/b').send({ text: 'to b' })
  const onlyB = (await (await fetch(`${standIn.url}/messages?to=/services/T1/B1/b`)).json()) as Array<{
    text: string
  }>
  assert.deepEqual(
    onlyB.map((m) => m.text),
    ['to b'],
  )
  const put = await fetch(`${standIn.url}/faults`, { method: 'PUT', body: '{"failNext":1,"status":500}' })
  assert.deepEqual(await put.json(), { failNext: 1, status: 500 })
  await assert.rejects(hook().send({ text: 'x' }), (e: WebhookError) => e.statusCode === 500)
  assert.deepEqual(await (await fetch(`${standIn.url}/faults`, { method: 'DELETE' })).json(), {})
  assert.equal((await fetch(`${standIn.url}/faults`, { method: 'POST' })).status, 405)
})

test('broken JSON, garbage bytes and odd requests get error answers and the stand-in stays up', async () => {
  const bad = await post('{"text":')
  assert.equal(bad.status, 400)
  assert.equal(await bad.text(), 'invalid_payload')
  assert.equal(await (await post('"just a string"')).text(), 'invalid_payload')
  assert.equal((await fetch(`${standIn.url}/services/T1/B1/x`)).status, 405)
  assert.equal((await fetch(`${standIn.url}/elsewhere`, { method: 'POST', body: '{}' })).status, 404)
  assert.match(await talkRaw(standIn.port, [garbage(400), '\r\n\r\n']), /^HTTP\/1\.1 400/)
  assert.equal((await hook().send({ text: 'still up' })).text, 'ok')
})
