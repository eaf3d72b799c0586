// The api against the real broker and Redis: what a 202 means, what bad input gets, idempotency, OpenAPI.
import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { Ajv2020 } from 'ajv/dist/2020.js'
import kafkajs, { type Admin, type Kafka } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../../test/helpers.ts'
import { deleteNamespace, namespace, testKafka, watermarks } from '../../test/support/fixtures.ts'
import { eventually } from '../../test/support/service-process.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const ns = namespace('api')
const auth = { authorization: 'Bearer s3cret', 'content-type': 'application/json' }
/** The `ci` key: a sender, not an admin. */
const senderAuth = { authorization: 'Bearer other', 'content-type': 'application/json' }
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
      API_KEYS: 'ops:s3cret:admin,ci:other',
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

/** Sum of the high watermarks per main topic. Retried: just-created topics may not have their leader yet. */
async function totals(): Promise<Record<string, number>> {
  for (let attempt = 1; ; attempt++) {
    try {
      const result: Record<string, number> = {}
      for (const channel of ['email', 'sms', 'slack'] as const) {
        const marks = await watermarks(admin, ns.topics.main(channel))
        result[channel] = [...marks.values()].reduce((sum, m) => sum + m.high, 0)
      }
      return result
    } catch (error) {
      if (attempt >= 10 || !(error as { retriable?: boolean }).retriable) throw error
      await sleep(200)
    }
  }
}

/**
 * Posts n bodies so that they reach the server in the same event-loop turn: connections first, then every
 * request written at once (the api runs in this process, so it reads them all in one poll), as on busy
 * keep-alive connections. Returns the status of each answer.
 */
async function postAtOnce(bodies: unknown[]): Promise<number[]> {
  const { port } = new URL(api.url)
  const sockets = await Promise.all(
    bodies.map(
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect(Number(port), '127.0.0.1', () => resolve(socket))
          socket.once('error', reject)
        }),
    ),
  )
  // Node accepts new connections over several loop turns: wait until the server holds all of them.
  await eventually(
    'connections accepted',
    async () => {
      const open = await new Promise<number>((resolve, reject) =>
        api.server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
      )
      return open >= bodies.length ? true : undefined
    },
    5000,
    10,
  )
  const answers = sockets.map(
    (socket) =>
      new Promise<number>((resolve, reject) => {
        let text = ''
        socket.setEncoding('utf8')
        socket.on('data', (chunk: string) => {
          text += chunk
        })
        socket.once('end', () => resolve(Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)))
        socket.once('error', reject)
      }),
  )
  sockets.forEach((socket, i) => {
    const body = JSON.stringify(bodies[i])
    socket.write(
      `POST /api/v1/notification HTTP/1.1\r\nHost: x\r\nAuthorization: ${auth.authorization}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
        `Connection: close\r\n\r\n${body}`,
    )
  })
  return Promise.all(answers)
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

  test('a request refused by validation leaves its key unused', async () => {
    const bad = await post({ channel: 'email', message: '' }, { 'idempotency-key': 'k-invalid-first' })
    assert.equal(bad.status, 400)
    const good = await post({ channel: 'email', message: 'fixed' }, { 'idempotency-key': 'k-invalid-first' })
    assert.equal(good.status, 202, 'not 422: the refused body was never stored')
    assert.equal(good.headers.get('idempotent-replayed'), null)
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

interface OpenApiResponse {
  headers?: Record<string, unknown>
  content?: Record<string, { schema: object }>
}

/** One sample of a metric from the Prometheus text (0 when absent). */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `))
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0
}

async function findRecord(topic: string, id: string) {
  const consumer = kafka.consumer({ groupId: `${ns.prefix}.find.${id}` })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  try {
    return await new Promise<{ key: string; headers: Record<string, string> }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`record ${id} not found in ${topic}`)), 20_000)
      void consumer.run({
        eachMessage: async ({ message }) => {
          if (JSON.parse(String(message.value)).id !== id) return
          const headers: Record<string, string> = {}
          for (const [k, v] of Object.entries(message.headers ?? {})) headers[k] = String(v)
          clearTimeout(timer)
          resolve({ key: String(message.key), headers })
        },
      })
    })
  } finally {
    await consumer.disconnect()
  }
}

describe('topics', () => {
  test('every topic is ensured at start with explicit partitions and retention', async () => {
    const names = [
      ...(['email', 'sms', 'slack'] as const).flatMap((c) => [ns.topics.main(c), ns.topics.deadLetter(c)]),
      ns.topics.events,
    ]
    const { topics } = await admin.fetchTopicMetadata({ topics: names })
    assert.deepEqual(
      topics.map((t) => `${t.name}:${t.partitions.length}`).sort(),
      names.map((n) => `${n}:3`).sort(),
    )
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: names.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name })),
    })
    for (const resource of described.resources) {
      const retention = resource.configEntries.find((e) => e.configName === 'retention.ms')
      assert.equal(retention?.isDefault, false, `${resource.resourceName} has an explicit retention`)
      if (resource.resourceName.endsWith('.dlq')) assert.ok(Number(retention?.configValue) >= 30 * 86_400_000)
      else assert.ok(Number(retention?.configValue) >= 7 * 86_400_000)
    }
  })

  test('another partition count than the existing topics stops the start with a clear error', async () => {
    const config = loadConfig(
      {
        KAFKA_BROKERS: kafkaBrokers(),
        REDIS_URL: redisUrl(),
        PORT: '0',
        TOPIC_PREFIX: ns.prefix,
        KEY_PREFIX: ns.prefix,
        TOPIC_PARTITIONS: '5',
      },
      'api',
    )
    await assert.rejects(
      startApi(config, createLogger({ service: 'api', level: 'silent' })),
      (error: Error) => {
        assert.equal((error as Error & { code?: string }).code, 'HERALD_TOPIC_MISMATCH')
        assert.match(error.message, /TOPIC_PARTITIONS=5/)
        assert.match(error.message, new RegExp(`${ns.topics.main('email')} has 3`))
        return true
      },
    )
  })
})

describe('operations', () => {
  test('/healthz and /readyz answer without an API key; /readyz names Kafka and Redis', async () => {
    const health = await fetch(`${api.url}/healthz`)
    assert.equal(health.status, 200)
    const ready = await fetch(`${api.url}/readyz`)
    assert.equal(ready.status, 200)
    assert.deepEqual(await ready.json(), { status: 'ready', kafka: 'ok', redis: 'ok', config: 'loaded' })
  })

  test('concurrent requests are coalesced into fewer Kafka writes, and the metrics count them', async () => {
    const metrics = async () => (await fetch(`${api.url}/metrics`)).text()
    const before = await metrics()
    const n = 40
    const statuses = await postAtOnce(
      Array.from({ length: n }, (_, i) => ({ channel: 'sms', to: `+1415555${2000 + i}`, message: 'm' })),
    )
    assert.deepEqual(statuses, new Array(n).fill(202))
    const after = await metrics()
    const delta = (name: string, labels = '') => sample(after, name, labels) - sample(before, name, labels)
    assert.equal(delta('herald_produce_batch_records_sum'), n, 'every record went out in some write')
    const writes = delta('herald_produce_batch_records_count')
    assert.ok(writes >= 1 && writes < n, `${n} records in ${writes} writes`)
    assert.equal(delta('herald_produce_duration_seconds_count'), writes)
    assert.equal(delta('herald_notifications_accepted_total', 'channel="sms"'), n)
    assert.equal(
      delta('herald_http_requests_total', 'route="/api/v1/notification",method="POST",status="202"'),
      n,
    )
    assert.ok(delta('herald_http_request_duration_seconds_count', 'route="/api/v1/notification"') >= n)
    assert.match(after, /^herald_produce_failures_total{reason="timeout"} 0$/m, 'alertable at 0')
  })

  test('a W3C traceparent travels with the record as its trace id; the user is the API key name', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
    const r = await post(
      { channel: 'slack', to: 'ops', message: 'traced' },
      { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, authorization: 'Bearer other' },
    )
    assert.equal(r.status, 202)
    const { id } = (await r.json()) as { id: string }
    const record = await findRecord(ns.topics.main('slack'), id)
    assert.equal(record.key, 'ops')
    assert.equal(record.headers['herald-trace-id'], traceId)
    assert.equal(record.headers['herald-user'], 'ci')
    assert.ok(record.headers['herald-host'])
  })
})

describe('OpenAPI', () => {
  test('real answers match what the published document says of their operation and status', async () => {
    const doc = (await (await fetch(`${api.url}/api/v1/openapi.json`)).json()) as {
      openapi: string
      components: object
      paths: Record<string, Record<string, { responses: Record<string, OpenApiResponse> }>>
    }
    assert.equal(doc.openapi, '3.1.0')
    const ajv = new Ajv2020({ strict: false, allErrors: true })
    const checked = new Set<string>()
    /** Validates an answer against the response the document gives for its operation and status. */
    const check = async (path: string, method: string, r: Response) => {
      const responses = doc.paths[path]?.[method]?.responses
      assert.ok(responses, `${method} ${path} is documented`)
      const documented = responses[String(r.status)]
      const response = documented ?? responses.default
      assert.ok(response, `${method} ${path} → ${r.status} is documented`)
      if (r.status >= 400 && !documented) assert.ok([404, 405].includes(r.status), `${r.status} is named`)
      for (const header of Object.keys(response.headers ?? {}))
        assert.ok(r.headers.get(header), `${method} ${path} → ${r.status} has ${header}`)
      const schema = response.content?.['application/json']?.schema
      assert.ok(schema, `${method} ${path} → ${r.status} has a body schema`)
      const validate = ajv.compile({ ...schema, components: doc.components })
      const body: unknown = await r.json()
      assert.ok(validate(body), `${method} ${path} → ${r.status}: ${JSON.stringify(validate.errors)}`)
      checked.add(`${method} ${path} ${r.status}`)
      return body
    }
    const single = '/api/v1/notification'
    const accepted = (await check(
      single,
      'post',
      await post({ channel: 'sms', to: '+14155550100', message: 'openapi' }),
    )) as { id: string }
    await check(single, 'post', await post({ channel: 'sms', message: 1 }))
    await check(single, 'post', await post('{'))
    await check(
      single,
      'post',
      await post({ channel: 'email', message: 'x' }, { authorization: 'Bearer no' }),
    )
    await check(single, 'post', await post({ channel: 'email', message: 'x'.repeat(70_000) }))
    await check(single, 'post', await post('x', { 'content-type': 'text/plain' }))
    await post({ channel: 'email', message: 'one' }, { 'idempotency-key': 'k-openapi' })
    await check(
      single,
      'post',
      await post({ channel: 'email', message: 'two' }, { 'idempotency-key': 'k-openapi' }),
    )
    await check(single, 'post', await fetch(`${api.url}${single}`, { method: 'PUT', headers: auth }))
    const status = '/api/v1/notification/{id}'
    await check(
      status,
      'get',
      await fetch(`${api.url}/api/v1/notification/${accepted.id}`, { headers: auth }),
    )
    await check(status, 'get', await fetch(`${api.url}/api/v1/notification/unknown`, { headers: auth }))
    await check(status, 'get', await fetch(`${api.url}/api/v1/notification/${accepted.id}`))
    const batch = '/api/v1/notifications'
    await check(
      batch,
      'post',
      await post([{ channel: 'email', message: 'a' }, { channel: 'fax' }], {}, batch),
    )
    await check(batch, 'post', await post({ not: 'an array' }, {}, batch))
    const letters = '/api/v1/dead-letters/{channel}'
    await check(letters, 'get', await fetch(`${api.url}/api/v1/dead-letters/sms?limit=2`, { headers: auth }))
    await check(letters, 'get', await fetch(`${api.url}/api/v1/dead-letters/sms`, { headers: senderAuth }))
    await check(letters, 'get', await fetch(`${api.url}/api/v1/dead-letters/sms?limit=0`, { headers: auth }))
    const replay = '/api/v1/dead-letters/{channel}/replay'
    await check(replay, 'post', await post({ class: 'permanent' }, {}, '/api/v1/dead-letters/sms/replay'))
    await check(replay, 'post', await post({ all: true }, senderAuth, '/api/v1/dead-letters/sms/replay'))
    assert.equal(checked.size, 17, [...checked].join(', '))
  })
})

describe('dead letters over the api', () => {
  /** Writes `count` dead letters to the email dead-letter topic, as a distributor does. */
  async function writeLetters(count: number, errorClass = 'permanent'): Promise<void> {
    const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner })
    await producer.connect()
    try {
      await producer.send({
        topic: ns.topics.deadLetter('email'),
        acks: -1,
        messages: Array.from({ length: count }, (_, i) => ({
          key: `r${i}@example.com`,
          value: JSON.stringify({
            v: 1,
            id: `dl-${errorClass}-${i}`,
            channel: 'email',
            to: `r${i}@example.com`,
          }),
          headers: {
            'herald-error': '550 no such mailbox',
            'herald-error-class': errorClass,
            'herald-attempts': '1',
            'herald-original-topic': ns.topics.main('email'),
            'herald-original-partition': '0',
            'herald-original-offset': String(i),
            'herald-failed-at': new Date().toISOString(),
          },
        })),
      })
    } finally {
      await producer.disconnect()
    }
  }

  interface Page {
    channel: string
    deadLetters: Array<{ partition: number; offset: string; id: string }>
    nextCursor: string | null
  }

  test('listing needs an admin key, names the channel, and a replay needs a selection', async () => {
    const denied = await fetch(`${api.url}/api/v1/dead-letters/email`)
    assert.equal(denied.status, 401)
    const listed = await fetch(`${api.url}/api/v1/dead-letters/slack?class=permanent`, { headers: auth })
    assert.equal(listed.status, 200)
    assert.deepEqual(await listed.json(), { channel: 'slack', deadLetters: [], nextCursor: null })
    assert.equal((await fetch(`${api.url}/api/v1/dead-letters/fax`, { headers: auth })).status, 404)
    const badClass = await fetch(`${api.url}/api/v1/dead-letters/email?class=nope`, { headers: auth })
    assert.equal(badClass.status, 400)
    const noSelection = await post({}, {}, '/api/v1/dead-letters/email/replay')
    assert.equal(noSelection.status, 400)
    const replayed = await post({ all: true }, {}, '/api/v1/dead-letters/sms/replay')
    assert.deepEqual(await replayed.json(), { channel: 'sms', replayed: [], nextCursor: null })
  })

  test('a sender key can neither list nor replay dead letters', async () => {
    const listed = await fetch(`${api.url}/api/v1/dead-letters/email`, { headers: senderAuth })
    assert.equal(listed.status, 403)
    const body = (await listed.json()) as { error: string; message: string }
    assert.equal(body.error, 'forbidden')
    assert.match(body.message, /admin API key/)
    const replayed = await post({ all: true }, senderAuth, '/api/v1/dead-letters/email/replay')
    assert.equal(replayed.status, 403)
    assert.equal((await post({ channel: 'email', message: 'senders still send' }, senderAuth)).status, 202)
  })

  test('with no API keys configured, the dead-letter endpoints refuse everyone', async () => {
    const open = await startApi(
      loadConfig(
        {
          KAFKA_BROKERS: kafkaBrokers(),
          REDIS_URL: redisUrl(),
          PORT: '0',
          TOPIC_PREFIX: ns.prefix,
          KEY_PREFIX: ns.prefix,
          TOPIC_PARTITIONS: '3',
          DEFAULT_EMAIL_TO: 'oncall@example.com',
        },
        'api',
      ),
      createLogger({ service: 'api', level: 'silent' }),
    )
    try {
      const listed = await fetch(`${open.url}/api/v1/dead-letters/email`)
      assert.equal(listed.status, 403)
      assert.match(((await listed.json()) as { message: string }).message, /none is configured/)
      const replayed = await fetch(`${open.url}/api/v1/dead-letters/email/replay`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ all: true }),
      })
      assert.equal(replayed.status, 403)
    } finally {
      await open.stop()
    }
  })

  test('listing comes in pages: 50 by default, at most 500, and a cursor leads to the next page', async () => {
    await writeLetters(120)
    const seen = new Set<string>()
    const sizes: number[] = []
    let cursor: string | null = null
    do {
      const query: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : ''
      const r = await fetch(`${api.url}/api/v1/dead-letters/email${query}`, { headers: auth })
      assert.equal(r.status, 200)
      const page = (await r.json()) as Page
      sizes.push(page.deadLetters.length)
      for (const l of page.deadLetters) {
        const at = `${l.partition}:${l.offset}`
        assert.ok(!seen.has(at), `${at} is on one page only`)
        seen.add(at)
      }
      cursor = page.nextCursor
    } while (cursor !== null && sizes.length < 10)
    assert.deepEqual(sizes.slice(0, 2), [50, 50], 'full pages of the default size')
    assert.equal(seen.size, 120, `every letter once (pages ${sizes.join(', ')})`)

    const all = (await (
      await fetch(`${api.url}/api/v1/dead-letters/email?limit=500`, { headers: auth })
    ).json()) as Page
    assert.deepEqual([all.deadLetters.length, all.nextCursor], [120, null])
    const tooMany = await fetch(`${api.url}/api/v1/dead-letters/email?limit=501`, { headers: auth })
    assert.equal(tooMany.status, 400)
    const tooManyBody = (await tooMany.json()) as { details: Array<{ field: string }> }
    assert.deepEqual(
      tooManyBody.details.map((d) => d.field),
      ['limit'],
    )
    const badCursor = await fetch(`${api.url}/api/v1/dead-letters/email?cursor=not-a-cursor`, {
      headers: auth,
    })
    assert.equal(badCursor.status, 400)
    assert.deepEqual(
      ((await badCursor.json()) as { details: Array<{ field: string }> }).details.map((d) => d.field),
      ['cursor'],
    )
  })

  test('a replay goes page by page too, and writes each chosen letter once', async () => {
    await writeLetters(30, 'retryable')
    const before = (await totals()).email ?? 0
    const replayed: string[] = []
    const first = await post({ class: 'retryable', limit: 20 }, {}, '/api/v1/dead-letters/email/replay')
    assert.equal(first.status, 200)
    const page1 = (await first.json()) as { replayed: Page['deadLetters']; nextCursor: string | null }
    replayed.push(...page1.replayed.map((l) => l.id))
    assert.equal(page1.replayed.length, 20)
    assert.ok(page1.nextCursor)
    const second = await post(
      { class: 'retryable', limit: 20, cursor: page1.nextCursor },
      {},
      '/api/v1/dead-letters/email/replay',
    )
    const page2 = (await second.json()) as { replayed: Page['deadLetters']; nextCursor: string | null }
    replayed.push(...page2.replayed.map((l) => l.id))
    assert.equal(page2.nextCursor, null)
    assert.equal(new Set(replayed).size, 30)
    await eventually('the replayed records in the main topic', async () =>
      (await totals()).email === before + 30 ? true : undefined,
    )
  })
})
