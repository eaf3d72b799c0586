// POST /api/v1/alarm-events against the real broker: monasca's events accepted unchanged (plain, wrapped, in
// a batch), on the topic keyed by alarm name with the same fields, stable ids on a re-post, clear errors, and a
// 503 when the write cannot be confirmed.
import assert from 'node:assert/strict'
import type { AddressInfo } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { type Config, loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { StatusStore } from '@herald/shared/status'
import { alarmEventTopicName, topicNames } from '@herald/shared/topics'
import { type Admin, type Kafka, Partitioners } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { monascaEvent } from '../../test/support/alarm-events.ts'
import { type ConfigRecord, readConfigRecords } from '../../test/support/config-records.ts'
import { deleteNamespace, namespace, testKafka } from '../../test/support/fixtures.ts'
import { createApp } from '../src/app.ts'
import { IdempotencyStore } from '../src/idempotency.ts'
import { createApiMetrics } from '../src/metrics.ts'
import { NotificationProducer } from '../src/producer.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const ns = namespace('api-alarm-events')
const topic = alarmEventTopicName(ns.prefix)
const sender = { authorization: 'Bearer other', 'content-type': 'application/json' }
const logger = createLogger({ service: 'api', level: 'silent' })
let config: Config
let api: RunningApi
let kafka: Kafka
let admin: Admin

before(async () => {
  await requireServers()
  config = loadConfig(
    {
      KAFKA_BROKERS: kafkaBrokers(),
      REDIS_URL: redisUrl(),
      PORT: '0',
      TOPIC_PREFIX: ns.prefix,
      KEY_PREFIX: ns.prefix,
      TOPIC_PARTITIONS: '2',
      API_KEYS: 'ops:s3cret:admin,ci:other',
      PRODUCE_TIMEOUT_MS: '5000',
    },
    'api',
  )
  api = await startApi(config, logger)
  kafka = testKafka(kafkaBrokers())
  admin = kafka.admin()
  await admin.connect()
})

after(async () => {
  await api?.stop()
  await deleteNamespace(admin, undefined, ns)
  await admin?.disconnect()
})

async function post(body: unknown, headers: Record<string, string> = sender, url = api.url) {
  const res = await fetch(`${url}/api/v1/alarm-events`, {
    method: 'POST',
    headers,
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.text()
  // biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field by the tests
  const answer: Record<string, any> = text ? JSON.parse(text) : {}
  return { status: res.status, body: answer, retryAfter: res.headers.get('retry-after') }
}

/** The topic's records whose key (alarm name) is one of `names`, in offset order per partition. */
async function recordsOf(...names: string[]): Promise<ConfigRecord[]> {
  return (await readConfigRecords(kafka, topic)).filter((r) => names.includes(r.key))
}

function detailsOf(body: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(
    (body.details as Array<{ field: string; reason: string }>).map((d) => [d.field, d.reason]),
  )
}

describe('POST /api/v1/alarm-events', () => {
  test('a monasca event posted unchanged lands on the topic keyed by alarm name with the same fields', async () => {
    const event = monascaEvent({ alarmName: 'disk usage high' })
    const answer = await post(event)
    assert.equal(answer.status, 202, JSON.stringify(answer.body))
    assert.deepEqual(Object.keys(answer.body), ['eventId'])
    const [record, ...more] = await recordsOf('disk usage high')
    assert.equal(more.length, 0)
    assert.deepEqual(JSON.parse(record?.value ?? 'null'), { ...event, eventId: answer.body.eventId })
    assert.equal(record?.headers['herald-user'], 'ci', 'a sender key may post alarm events')
    assert.equal(record?.headers['herald-source'], 'api')
    assert.ok(record?.headers['herald-host'])
  })

  test("monasca's wrapped form lands as the plain event", async () => {
    const inner = monascaEvent({ alarmName: 'wrapped cpu' })
    const answer = await post({ 'alarm-transitioned': inner })
    assert.equal(answer.status, 202, JSON.stringify(answer.body))
    const records = await recordsOf('wrapped cpu')
    assert.deepEqual(
      records.map((r) => JSON.parse(r.value ?? 'null')),
      [{ ...inner, eventId: answer.body.eventId }],
    )
  })

  test('a batch is answered with every eventId in order once all of them are on the topic', async () => {
    const batch = [
      monascaEvent({ alarmName: 'batch a' }),
      { 'alarm-transitioned': monascaEvent({ alarmName: 'batch b', newState: 'OK', oldState: 'ALARM' }) },
      {
        alarmName: 'batch c',
        newState: 'ALARM',
        timestamp: Date.now(),
        kind: 'escalated',
        labels: { team: 'payments' },
        value: 97.5,
        eventId: 'alarms:batch-c:1',
      },
    ]
    const answer = await post(batch)
    assert.equal(answer.status, 202, JSON.stringify(answer.body))
    assert.equal(answer.body.eventIds.length, 3)
    assert.equal(answer.body.eventIds[2], 'alarms:batch-c:1')
    const records = await recordsOf('batch a', 'batch b', 'batch c')
    const byKey = new Map(records.map((r) => [r.key, JSON.parse(r.value ?? 'null')]))
    assert.equal(records.length, 3)
    assert.deepEqual(
      ['batch a', 'batch b', 'batch c'].map((key) => byKey.get(key)?.eventId),
      answer.body.eventIds,
    )
    assert.equal(byKey.get('batch b')?.newState, 'OK')
    assert.deepEqual(byKey.get('batch c')?.labels, { team: 'payments' })
  })

  test('the same event posted again without an eventId gets the same eventId', async () => {
    const event = monascaEvent({ alarmName: 'reposted' })
    const first = await post(event)
    const again = await post({ 'alarm-transitioned': event })
    assert.equal(first.status, 202)
    assert.equal(again.status, 202)
    assert.equal(again.body.eventId, first.body.eventId)
    const other = await post({ ...event, newState: 'OK' })
    assert.notEqual(other.body.eventId, first.body.eventId, 'another transition has another id')
    const ids = (await recordsOf('reposted')).map((r) => JSON.parse(r.value ?? 'null').eventId)
    assert.deepEqual(ids.sort(), [first.body.eventId, first.body.eventId, other.body.eventId].sort())
  })

  test('missing or invalid fields are a 400 naming each field, by item index in a batch, and nothing is written', async () => {
    const single = await post(
      monascaEvent({ alarmName: 'invalid one', newState: 'FIRING', timestamp: undefined }),
    )
    assert.equal(single.status, 400)
    assert.equal(single.body.error, 'invalid_request')
    assert.deepEqual(detailsOf(single.body), {
      newState: 'must be one of OK, ALARM, UNDETERMINED',
      timestamp: 'is required',
    })
    const batch = await post([
      monascaEvent({ alarmName: 'invalid batch a' }),
      { 'alarm-transitioned': monascaEvent({ alarmName: 'invalid batch b', timestamp: 1_763_000_000 }) },
      monascaEvent({ alarmName: undefined, labels: { team: 1 } }),
      'not an event',
    ])
    assert.equal(batch.status, 400)
    assert.deepEqual(detailsOf(batch.body), {
      '[1].alarm-transitioned.timestamp': 'must be milliseconds since the epoch (this looks like seconds)',
      '[2].alarmName': 'is required',
      '[2].labels.team': 'must be a string',
      '[3]': 'must be a JSON object (one alarm event)',
    })
    const empty = await post([])
    assert.equal(empty.status, 400)
    assert.match(empty.body.details[0].reason, /1 to 1000 alarm events/)
    const tooMany = Array.from({ length: 1001 }, (_, i) => ({
      alarmName: `x${i}`,
      newState: 'OK',
      timestamp: 1e12,
    }))
    assert.equal((await post(tooMany)).status, 400)
    assert.deepEqual(await recordsOf('invalid one', 'invalid batch a', 'invalid batch b', 'x0'), [])
  })

  test('a request without an API key is 401, another method 405, a body that is not JSON 415', async () => {
    const event = monascaEvent({ alarmName: 'refused' })
    assert.equal((await post(event, { 'content-type': 'application/json' })).status, 401)
    const get = await fetch(`${api.url}/api/v1/alarm-events`, { headers: sender })
    assert.equal(get.status, 405)
    assert.equal(get.headers.get('allow'), 'POST')
    assert.equal((await post('alarmName=x', { ...sender, 'content-type': 'text/plain' })).status, 415)
    assert.equal((await post('{"alarmName":', sender)).status, 400)
  })

  test('requests are counted under their route template', async () => {
    const metrics = await (await fetch(`${api.url}/metrics`)).text()
    assert.match(
      metrics,
      /herald_http_requests_total\{route="\/api\/v1\/alarm-events",method="POST",status="202"\}/,
    )
    assert.match(metrics, /herald_alarm_events_accepted_total [1-9]/)
  })

  test('a write Kafka does not acknowledge is a 503 with Retry-After, never a 202', async () => {
    // The app over a producer that cannot write: connected once, then disconnected.
    const kafkaProducer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })
    await kafkaProducer.connect()
    await kafkaProducer.disconnect()
    const redis = createRedis(redisUrl())
    const keys = redisKeys(ns.prefix)
    const app = createApp({
      config,
      producer: new NotificationProducer(kafkaProducer, { deadlineMs: 5000 }),
      redis,
      statuses: new StatusStore(redis, keys, 60),
      idempotency: new IdempotencyStore(redis, keys, { pendingWindowMs: 5000, ttlSeconds: 60 }),
      topics: topicNames(ns.prefix),
      metrics: createApiMetrics(),
      logger,
      kafkaReady: async () => false,
    })
    const server = app.listen(0, '127.0.0.1')
    await new Promise((resolve) => server.once('listening', resolve))
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
      const single = await post(monascaEvent({ alarmName: 'unconfirmed' }), sender, url)
      assert.equal(single.status, 503)
      assert.equal(single.body.error, 'unavailable')
      assert.match(single.body.message, /outcome unknown/)
      assert.equal(single.retryAfter, '5')
      const batch = await post([monascaEvent({ alarmName: 'unconfirmed' })], sender, url)
      assert.equal(batch.status, 503)
    } finally {
      server.close()
      redis.disconnect()
    }
  })
})
