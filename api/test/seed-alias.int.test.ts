// Seed 001's request body, {"type", "receiver", "message"}, accepted on POST /api/v1/notification as an
// alias of Herald's own, with errors that name the alias's fields and no URL as a Slack receiver.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { startTestApi, type TestApi } from '../../test/support/api.ts'
import { testContext } from '../../test/support/context.ts'
import { readTopic } from '../../test/support/offsets.ts'

const ctx = testContext()
const ns = ctx.namespace('seed-alias')
let api: TestApi
const apiReady = ctx.ready.then(async () => {
  api = await startTestApi(ns, {
    brokers: ctx.brokers,
    redisUrl: ctx.redisUrl,
    env: { TOPIC_PARTITIONS: '1', SLACK_WEBHOOK_URL: 'http://127.0.0.1:9/services/T/B/default' },
    ready: false,
  })
  ctx.teardown(() => api.stop())
})

const post = async (body: unknown) => {
  await apiReady
  return fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
}

test("seed 001's body is accepted and written as Herald's record", async () => {
  const res = await post({ type: 'EMAIL', message: 'Hello World', receiver: 'Test@Example.com' })
  assert.equal(res.status, 202)
  const { id, channel } = (await res.json()) as { id: string; channel: string }
  assert.equal(channel, 'email')
  const records = await readTopic(ctx.kafka, ns.topics.main('email'))
  const record = records
    .map((r) => JSON.parse(r.value) as { id: string; to: string; message: string })
    .find((r) => r.id === id)
  assert.equal(record?.to, 'Test@Example.com')
  assert.equal(record?.message, 'Hello World')
  const sms = await post({ type: 'SMS', message: 'Hi', receiver: '+14155550100' })
  assert.equal(sms.status, 202)
})

test("errors in seed 001's body name its own fields", async () => {
  const url = await post({ type: 'SLACK', message: 'x', receiver: 'https://hooks.slack.com/services/T/B/C' })
  assert.equal(url.status, 400)
  const urlBody = (await url.json()) as { details: Array<{ field: string; reason: string }> }
  assert.deepEqual(
    urlBody.details.map((d) => d.field),
    ['receiver'],
  )
  assert.match(urlBody.details[0]?.reason ?? '', /not a URL/)
  const type = await post({ type: 'FAX', message: 'x', receiver: 'a@example.com' })
  assert.equal(type.status, 400)
  const typeBody = (await type.json()) as { details: Array<{ field: string }> }
  assert.deepEqual(
    typeBody.details.map((d) => d.field),
    ['type'],
  )
  const phone = await post({ type: 'SMS', message: 'x', receiver: '0415 555' })
  assert.equal(phone.status, 400)
  assert.deepEqual(
    ((await phone.json()) as { details: Array<{ field: string }> }).details.map((d) => d.field),
    ['receiver'],
  )
})
