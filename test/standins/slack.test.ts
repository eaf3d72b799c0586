import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { IncomingWebhook } from '@slack/webhook'
import type { StandIn } from '../../dev/standins/common.ts'
import { startSlackStandIn } from '../../dev/standins/slack.ts'

let standIn: StandIn
const hook = (path = '/services/T1/B1/x') =>
  new IncomingWebhook(`${standIn.url}${path}`, { retryConfig: { retries: 0 } })

before(async () => {
  standIn = await startSlackStandIn({ port: 0, quiet: true })
})
after(async () => {
  await standIn.close()
})

// Statuses and bodies are those Slack documents for incoming webhooks.
test('@slack/webhook posts to the stand-in and gets ok', async () => {
  const result = await hook().send({ text: 'deploy finished' })
  assert.equal(result.text, 'ok')
  assert.equal(standIn.messages().at(-1)?.text, 'deploy finished')
  assert.equal(standIn.messages().at(-1)?.to, '/services/T1/B1/x')
})

test('a missing text is 400 no_text, seen by the SDK as an HTTP error with status and body', async () => {
  await assert.rejects(hook().send({}), (e: { statusCode?: number; body?: string; code?: string }) => {
    return e.statusCode === 400 && e.body === 'no_text' && e.code === 'slack_webhook_http_error'
  })
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
  await assert.rejects(capturing.send({ text: 'x' }), (e: { statusCode?: number; body?: string }) => {
    return e.statusCode === 429 && e.body === 'rate_limited'
  })
  assert.equal(retryAfter, '30')
  for (const status of [500, 503]) {
    standIn.setFaults({ failNext: 1, status })
    await assert.rejects(hook().send({ text: 'x' }), (e: { statusCode?: number }) => e.statusCode === status)
  }
  standIn.setFaults({})
})

test('a removed webhook is 404 no_service or 410 channel_is_archived, bad credentials 403', async () => {
  standIn.setFaults({ permanentRecipients: ['/services/T1/B1/gone'] })
  await assert.rejects(
    hook('/services/T1/B1/gone').send({ text: 'x' }),
    (e: { statusCode?: number; body?: string }) => {
      return e.statusCode === 404 && e.body === 'no_service'
    },
  )
  standIn.setFaults({ permanentRecipients: ['/services/T1/B1/gone'], permanentCode: 410 })
  await assert.rejects(
    hook('/services/T1/B1/gone').send({ text: 'x' }),
    (e: { statusCode?: number; body?: string }) => {
      return e.statusCode === 410 && e.body === 'channel_is_archived'
    },
  )
  standIn.setFaults({ authFail: true })
  await assert.rejects(hook().send({ text: 'x' }), (e: { statusCode?: number; body?: string }) => {
    return e.statusCode === 403 && e.body === 'invalid_token'
  })
  standIn.setFaults({})
})

test('broken JSON is 400 invalid_payload and the stand-in stays up', async () => {
  const bad = await fetch(`${standIn.url}/services/T1/B1/x`, { method: 'POST', body: '{"text":' })
  assert.equal(bad.status, 400)
  assert.equal(await bad.text(), 'invalid_payload')
  assert.equal((await hook().send({ text: 'still up' })).text, 'ok')
})
