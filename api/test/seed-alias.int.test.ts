// Seed 001's request body, {"type", "receiver", "message"}, accepted on POST /api/v1/notification as an
// alias of Herald's own, with errors that name the alias's fields and no URL as a Slack receiver.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import type { Admin, Kafka } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { deleteNamespace, namespace, testKafka } from '../../test/support/fixtures.ts'
import { readTopic } from '../../test/support/offsets.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const ns = namespace('seed-alias')
let api: RunningApi
let kafka: Kafka
let admin: Admin
let redis: Redis

before(async () => {
  await requireServers()
  const config = loadConfig(
    {
      KAFKA_BROKERS: kafkaBrokers(),
      REDIS_URL: redisUrl(),
      PORT: '0',
      TOPIC_PREFIX: ns.prefix,
      KEY_PREFIX: ns.prefix,
      TOPIC_PARTITIONS: '1',
      SLACK_WEBHOOK_URL: 'http://127.0.0.1:9/services/T/B/default',
    },
    'api',
  )
  api = await startApi(config, createLogger({ service: 'api', level: 'silent' }))
  kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
  redis = createRedis(redisUrl())
  await redis.connect()
})

after(async () => {
  await api?.stop()
  await deleteNamespace(admin, redis, ns)
  await admin?.disconnect()
  redis?.disconnect()
})

const post = (body: unknown) =>
  fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })

test("seed 001's body is accepted and written as Herald's record", async () => {
  const res = await post({ type: 'EMAIL', message: 'Hello World', receiver: 'Test@Example.com' })
  assert.equal(res.status, 202)
  const { id, channel } = (await res.json()) as { id: string; channel: string }
  assert.equal(channel, 'email')
  const records = await readTopic(kafka, ns.topics.main('email'))
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
