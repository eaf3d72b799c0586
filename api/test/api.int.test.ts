// The api against the real broker and Redis: what a 202 means, what bad input gets, idempotency, OpenAPI.
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { Ajv2020 } from 'ajv/dist/2020.js'
import type { Admin, Kafka } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { deleteNamespace, namespace, testKafka, watermarks } from '../../test/support/fixtures.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const ns = namespace('api')
const auth = { authorization: 'Bearer s3cret', 'content-type': 'application/json' }
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
      TOPIC_PARTITIONS: '3',
      API_KEYS: 'ops:s3cret,ci:other',
      DEFAULT_EMAIL_TO: 'oncall@example.com',
      SLACK_WEBHOOK_URL: 'http://127.0.0.1:9/services/T/B/default',
      SLACK_WEBHOOKS: JSON.stringify({ ops: 'http://127.0.0.1:9/services/T/B/ops' }),
      PRODUCE_TIMEOUT_MS: '2000',
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

function post(body: unknown, headers: Record<string, string> = {}, path = '/api/v1/notification') {
  return fetch(`${api.url}${path}`, {
    method: 'POST',
    headers: { ...auth, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
}

async function totals(): Promise<Record<string, number>> {
  const result: Record<string, number> = {}
  for (const channel of ['email', 'sms', 'slack'] as const) {
    const marks = await watermarks(admin, ns.topics.main(channel))
    result[channel] = [...marks.values()].reduce((sum, m) => sum + m.high, 0)
  }
  return result
}

/** Reads every record of a topic from the start with a throwaway group. */
async function readTopic(topic: string, expected: number) {
  const consumer = kafka.consumer({ groupId: `${ns.prefix}.reader.${topic}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const records: Array<{
    partition: number
    key: string
    value: Record<string, unknown>
    headers: Record<string, string>
  }> = []
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`read ${records.length} of ${expected} records`)), 20_000)
    void consumer.run({
      eachMessage: async ({ partition, message }) => {
        const headers: Record<string, string> = {}
        for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v)
        records.push({
          partition,
          key: String(message.key),
          value: JSON.parse(String(message.value)),
          headers,
        })
        if (records.length === expected) {
          clearTimeout(timer)
          resolve()
        }
      },
    })
  })
  await consumer.disconnect()
  return records
}

describe('accepting notifications', () => {
  test('N accepted notifications are exactly N new records on the right topics, one recipient on one partition', async () => {
    const before = await totals()
    const bodies = [
      ...Array.from({ length: 12 }, (_, i) => ({
        channel: 'email',
        to: `user${i % 3}@example.com`,
        subject: 's',
        message: `e${i}`,
      })),
      ...Array.from({ length: 6 }, (_, i) => ({
        channel: 'SMS',
        to: `+1415555010${i % 2}`,
        message: `s${i}`,
      })),
      ...Array.from({ length: 4 }, (_, i) => ({
        channel: 'slack',
        to: i % 2 ? 'ops' : 'default',
        message: `k${i}`,
      })),
      { channel: 'email', message: 'Charm!' },
    ]
    const answers = await Promise.all(bodies.map((b) => post(b)))
    const accepted = await Promise.all(
      answers.map(async (r) => {
        assert.equal(r.status, 202)
        const body = (await r.json()) as { id: string; channel: string; status: string }
        assert.equal(r.headers.get('location'), `/api/v1/notification/${body.id}`)
        assert.equal(body.status, 'queued')
        return body
      }),
    )
    assert.equal(new Set(accepted.map((a) => a.id)).size, bodies.length, 'distinct ids')
    const after = await totals()
    assert.deepEqual(
      {
        email: (after.email ?? 0) - (before.email ?? 0),
        sms: (after.sms ?? 0) - (before.sms ?? 0),
        slack: (after.slack ?? 0) - (before.slack ?? 0),
      },
      { email: 13, sms: 6, slack: 4 },
    )
    const emails = await readTopic(ns.topics.main('email'), 13)
    const byId = new Map(accepted.map((a) => [a.id, a]))
    for (const r of emails) {
      assert.ok(byId.has(String(r.value.id)), 'every record is an accepted id')
      assert.equal(r.value.v, 1)
      assert.equal(r.key, String(r.value.to).toLowerCase())
      assert.equal(r.headers['herald-source'], 'api')
      assert.equal(r.headers['herald-user'], 'ops')
      assert.match(r.headers['herald-trace-id'] ?? '', /^[\da-f]{32}$/)
    }
    assert.equal(
      emails.find((r) => r.value.message === 'Charm!')?.value.to,
      'oncall@example.com',
      'default recipient',
    )
    for (const key of new Set(emails.map((r) => r.key))) {
      assert.equal(
        new Set(emails.filter((r) => r.key === key).map((r) => r.partition)).size,
        1,
        `${key} on one partition`,
      )
    }
  })

  test('an accepted notification reads back as queued; an unknown id is 404', async () => {
    const r = await post({ channel: 'email', to: 'a@example.com', message: 'status please' })
    const { id } = (await r.json()) as { id: string }
    const status = await fetch(`${api.url}/api/v1/notification/${id}`, { headers: auth })
    assert.equal(status.status, 200)
    const view = (await status.json()) as { status: string; attempts: number; channel: string }
    assert.deepEqual([view.status, view.attempts, view.channel], ['queued', 0, 'email'])
    const missing = await fetch(`${api.url}/api/v1/notification/nope`, { headers: auth })
    assert.equal(missing.status, 404)
  })
})

describe('bad requests', () => {
  const table: Array<[string, () => Promise<Response>, number, string, string?]> = [
    ['broken JSON', () => post('{"channel": "email",'), 400, 'invalid_json', '(body)'],
    ['a JSON array on the single endpoint', () => post([1, 2]), 400, 'invalid_request', '(body)'],
    [
      'a number as the message',
      () => post({ channel: 'email', message: 42 }),
      400,
      'invalid_request',
      'message',
    ],
    ['an unknown channel', () => post({ channel: 'fax', message: 'x' }), 400, 'invalid_request', 'channel'],
    ['a missing channel', () => post({ message: 'x' }), 400, 'invalid_request', 'channel'],
    ['an empty message', () => post({ channel: 'email', message: '   ' }), 400, 'invalid_request', 'message'],
    [
      'a bad email address',
      () => post({ channel: 'email', to: 'not-an-address', message: 'x' }),
      400,
      'invalid_request',
      'to',
    ],
    [
      'a bad phone number',
      () => post({ channel: 'sms', to: '555-0100', message: 'x' }),
      400,
      'invalid_request',
      'to',
    ],
    [
      'an SMS with no default recipient',
      () => post({ channel: 'sms', message: 'x' }),
      400,
      'invalid_request',
      'to',
    ],
    [
      'a Slack URL as `to`',
      () => post({ channel: 'slack', to: 'https://hooks.slack.com/services/X', message: 'x' }),
      400,
      'invalid_request',
      'to',
    ],
    [
      'an unknown Slack destination',
      () => post({ channel: 'slack', to: 'elsewhere', message: 'x' }),
      400,
      'invalid_request',
      'to',
    ],
    [
      'an unknown field',
      () => post({ channel: 'email', message: 'x', priority: 'high' }),
      400,
      'invalid_request',
      '(body)',
    ],
    [
      'a subject with a line break',
      () => post({ channel: 'email', message: 'x', subject: 'a\r\nBcc: x@y.z' }),
      400,
      'invalid_request',
      'subject',
    ],
    [
      'an SMS over 1600 characters',
      () => post({ channel: 'sms', to: '+14155550100', message: 'x'.repeat(1601) }),
      400,
      'invalid_request',
      'message',
    ],
    ['a huge body', () => post({ channel: 'email', message: 'x'.repeat(70_000) }), 413, 'payload_too_large'],
    [
      'a form-encoded body',
      () => post('channel=email&message=x', { 'content-type': 'application/x-www-form-urlencoded' }),
      415,
      'unsupported_media_type',
    ],
    [
      'a wrong method',
      () => fetch(`${api.url}/api/v1/notification`, { method: 'DELETE', headers: auth }),
      405,
      'method_not_allowed',
    ],
    ['an unknown route', () => fetch(`${api.url}/api/v2/notification`, { headers: auth }), 404, 'not_found'],
    [
      'a missing API key',
      () => post({ channel: 'email', message: 'x' }, { authorization: '' }),
      401,
      'unauthorized',
    ],
    [
      'a wrong API key',
      () => post({ channel: 'email', message: 'x' }, { authorization: 'Bearer nope' }),
      401,
      'unauthorized',
    ],
    [
      'a bad Idempotency-Key',
      () => post({ channel: 'email', message: 'x' }, { 'idempotency-key': 'x'.repeat(300) }),
      400,
      'invalid_request',
    ],
  ]

  test('each bad request gets its documented status, code and field, and nothing reaches Kafka', async () => {
    const before = await totals()
    for (const [name, send, status, code, field] of table) {
      const r = await send()
      const body = (await r.json()) as { error: string; message: string; details?: Array<{ field: string }> }
      assert.equal(r.status, status, name)
      assert.equal(body.error, code, name)
      assert.equal(typeof body.message, 'string', name)
      if (field)
        assert.ok(
          body.details?.some((d) => d.field === field),
          `${name}: details name ${field}`,
        )
      if (status === 405) assert.equal(r.headers.get('allow'), 'POST')
    }
    assert.deepEqual(await totals(), before, 'the high watermarks did not move')
  })
})

describe('idempotency keys', () => {
  test('two concurrent requests with one key give one record and one id', async () => {
    const before = await totals()
    const body = { channel: 'email', to: 'idem@example.com', message: 'only once' }
    const [a, b] = await Promise.all([
      post(body, { 'idempotency-key': 'k-concurrent' }),
      post(body, { 'idempotency-key': 'k-concurrent' }),
    ])
    assert.equal(a?.status, 202)
    assert.equal(b?.status, 202)
    const [ja, jb] = (await Promise.all([a?.json(), b?.json()])) as Array<{ id: string }>
    assert.equal(ja?.id, jb?.id)
    const after = await totals()
    assert.equal((after.email ?? 0) - (before.email ?? 0), 1)
    const again = await post(body, { 'idempotency-key': 'k-concurrent' })
    assert.equal(again.headers.get('idempotent-replayed'), 'true')
    assert.equal(((await again.json()) as { id: string }).id, ja?.id)
  })

  test('the same key with another body is 422; keys are per API key', async () => {
    await post({ channel: 'email', message: 'first' }, { 'idempotency-key': 'k-reuse' })
    const other = await post({ channel: 'email', message: 'second' }, { 'idempotency-key': 'k-reuse' })
    assert.equal(other.status, 422)
    const otherClient = await post(
      { channel: 'email', message: 'second' },
      { 'idempotency-key': 'k-reuse', authorization: 'Bearer other' },
    )
    assert.equal(otherClient.status, 202, 'another API key has its own key space')
  })
})

describe('batch', () => {
  test('a batch answers 207 with per-item results in order; valid items are accepted', async () => {
    const before = await totals()
    const r = await post(
      [
        { channel: 'email', message: 'a' },
        { channel: 'fax', message: 'b' },
        { channel: 'sms', to: '+14155550100', message: 'c' },
      ],
      {},
      '/api/v1/notifications',
    )
    assert.equal(r.status, 207)
    const { results } = (await r.json()) as {
      results: Array<{ index: number; status: number; id?: string; error?: string }>
    }
    assert.deepEqual(
      results.map((x) => [x.index, x.status]),
      [
        [0, 202],
        [1, 400],
        [2, 202],
      ],
    )
    const after = await totals()
    assert.equal((after.email ?? 0) - (before.email ?? 0) + (after.sms ?? 0) - (before.sms ?? 0), 2)
  })
})

describe('OpenAPI', () => {
  test('real answers match the published document', async () => {
    const doc = (await (await fetch(`${api.url}/api/v1/openapi.json`)).json()) as {
      openapi: string
      components: { schemas: Record<string, object> }
    }
    assert.equal(doc.openapi, '3.1.0')
    const ajv = new Ajv2020({ strict: false })
    for (const [name, schema] of Object.entries(doc.components.schemas))
      ajv.addSchema(schema, `#/components/schemas/${name}`)
    const check = (name: string, value: unknown) => {
      const validate = ajv.getSchema(`#/components/schemas/${name}`)
      assert.ok(validate, name)
      assert.ok(validate(value), `${name}: ${JSON.stringify(validate.errors)}`)
    }
    const ok = await post({ channel: 'sms', to: '+14155550100', message: 'openapi' })
    const accepted = (await ok.json()) as { id: string }
    check('Accepted', accepted)
    check('Error', await (await post({ channel: 'sms', message: 1 })).json())
    check(
      'Status',
      await (await fetch(`${api.url}/api/v1/notification/${accepted.id}`, { headers: auth })).json(),
    )
    check('smsNotification', { channel: 'SMS', to: '+14155550100', message: 'case-insensitive channel' })
    const requestSchema = ajv.getSchema('#/components/schemas/emailNotification')
    assert.equal(
      requestSchema?.({ channel: 'email', message: 'x', extra: true }),
      false,
      'unknown fields are refused in the document too',
    )
  })
})

describe('dead letters over the api', () => {
  test('listing needs the API key, names the channel, and a replay needs a selection', async () => {
    const denied = await fetch(`${api.url}/api/v1/dead-letters/email`)
    assert.equal(denied.status, 401)
    const listed = await fetch(`${api.url}/api/v1/dead-letters/email?class=permanent`, { headers: auth })
    assert.equal(listed.status, 200)
    assert.deepEqual(await listed.json(), { channel: 'email', deadLetters: [] })
    assert.equal((await fetch(`${api.url}/api/v1/dead-letters/fax`, { headers: auth })).status, 404)
    const badClass = await fetch(`${api.url}/api/v1/dead-letters/email?class=nope`, { headers: auth })
    assert.equal(badClass.status, 400)
    const noSelection = await post({}, {}, '/api/v1/dead-letters/email/replay')
    assert.equal(noSelection.status, 400)
    const replayed = await post({ all: true }, {}, '/api/v1/dead-letters/sms/replay')
    assert.deepEqual(await replayed.json(), { channel: 'sms', replayed: [] })
  })
})
