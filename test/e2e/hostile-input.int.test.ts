// Thousands of generated bad requests interleaved with valid ones, against the api as a real process: no 5xx,
// no crash, the topics grow only by the valid ones, and memory stays under a stated bound — a bound shown to
// catch a deliberate leak (a test-only switch), so the check can fail.
import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { after, before, test } from 'node:test'
import type { Admin } from 'kafkajs'
import { kafkaBrokers, redisUrl, requireServers } from '../helpers.ts'
import { createTopics, deleteNamespace, namespace, testKafka, watermarks } from '../support/fixtures.ts'
import { type ServiceProcess, startService } from '../support/service-process.ts'

const requests = Number(process.env.HOSTILE_REQUESTS ?? 3000)
/** Resident memory growth allowed over a run, after a warm-up of the same size. */
const memoryBoundBytes = 64 * 1024 * 1024
const ns = namespace('hostile')
let admin: Admin

before(async () => {
  await requireServers()
  admin = testKafka(kafkaBrokers()).admin()
  await admin.connect()
  await createTopics(admin, ns, 3, kafkaBrokers())
})

after(async () => {
  await deleteNamespace(admin, undefined, ns)
  await admin?.disconnect()
})

/** A small deterministic PRNG (mulberry32) so a failing run can be replayed with the same seed. */
function prng(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

type Attack = {
  method: string
  path: string
  headers: Record<string, string>
  body?: string
  valid?: boolean
}

function generate(random: () => number, i: number): Attack {
  const json = { 'content-type': 'application/json' }
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)] as T
  const path = '/api/v1/notification'
  const kind = Math.floor(random() * 14)
  switch (kind) {
    case 0:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({ channel: 'email', to: `v${i}@example.com`, message: `ok ${i} 🚀 ‮مرحبا​` }),
        valid: true,
      }
    case 1:
      return {
        method: 'POST',
        path,
        headers: json,
        body: pick(['{', '{"channel":', '[', 'nul', '"', '{"a":1,}', '\u0000', '']),
      }
    case 2: {
      const depth = 1000 + Math.floor(random() * 20_000)
      return { method: 'POST', path, headers: json, body: `${'['.repeat(depth)}${']'.repeat(depth)}` }
    }
    case 3: {
      const depth = 500 + Math.floor(random() * 5000)
      return { method: 'POST', path, headers: json, body: `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}` }
    }
    case 4:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: pick([1, null, [], {}, true, 'EMAIL ', 'fax']),
          message: pick([1, null, [], {}, '', ' ']),
        }),
      }
    case 5:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: 'email',
          message: 'x'.repeat(60_000 + Math.floor(random() * 20_000)),
        }),
      }
    case 6:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: 'sms',
          to: pick(['+1', '+0123456789', '１２３', '+1415555\u200b0100', `+${'9'.repeat(40)}`]),
          message: 'x',
        }),
      }
    case 7:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: 'email',
          to: pick(['a@', '@b', 'a@b@c', 'a\r\n@b.c', `${'a'.repeat(300)}@b.co`]),
          message: '\ud800 lone surrogate',
        }),
      }
    case 8:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: 'slack',
          to: pick(['https://evil.example/hook', 'javascript:alert(1)', '../../etc', 'a'.repeat(100)]),
          message: 'x',
        }),
      }
    case 9:
      return {
        method: 'POST',
        path,
        headers: json,
        body: JSON.stringify({
          channel: 'email',
          message: 'x',
          __proto__: { polluted: true },
          constructor: { prototype: { x: 1 } },
        }),
      }
    case 10:
      return { method: pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']), path, headers: json }
    case 11:
      return {
        method: 'GET',
        path: pick([
          '/',
          '/api',
          '/api/v1/notification/%',
          '/api/v1/notification/..%2f..%2fetc',
          `/${'a'.repeat(5000)}`,
          '/api/v1/notification/x?y[z]=1',
        ]),
        headers: {},
      }
    case 12:
      return {
        method: 'POST',
        path,
        headers: pick<Record<string, string>>([
          { 'content-type': 'text/plain' },
          { 'content-type': 'application/json; charset=latin-7' },
          { 'content-type': 'application/json', 'content-encoding': 'br' },
          {},
        ]),
        body: '{"channel":"email","message":"x"}',
      }
    default:
      return {
        method: 'POST',
        path,
        headers: {
          ...json,
          'idempotency-key': pick(['', ' ', 'ü', 'k'.repeat(500)]),
          'x-junk': 'y'.repeat(4000),
        },
        body: JSON.stringify({ channel: 'email', message: 'x' }),
      }
  }
}

/** A client that sends half a body and stops: the api must not hang on it forever or crash. */
function slowBody(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' }, () => {
      socket.write(
        'POST /api/v1/notification HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"chan',
      )
      setTimeout(() => {
        socket.destroy()
        resolve()
      }, 300)
    })
    socket.on('error', () => resolve())
  })
}

async function rss(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  return Number(/^herald_api_process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? 0)
}

async function run(leak: boolean) {
  const api: ServiceProcess = startService(leak ? 'api-leak' : 'api', 'api', {
    KAFKA_BROKERS: kafkaBrokers(),
    REDIS_URL: redisUrl(),
    PORT: '0', // the api picks a free port and logs it: no port chosen here for another process to take
    TOPIC_PREFIX: ns.prefix,
    KEY_PREFIX: ns.prefix,
    TOPIC_PARTITIONS: '3',
    LOG_LEVEL: 'info',
    ...(leak ? { HERALD_TEST_LEAK: '1' } : {}),
  })
  try {
    const { port } = await api.waitForLog((l) => String(l.msg ?? '').startsWith('api listening'), 30_000)
    if (typeof port !== 'number') throw new Error('the api did not log its port')
    const url = `http://127.0.0.1:${port}`
    const random = prng(leak ? 7 : 42)
    const fire = async (count: number) => {
      const statuses = new Map<number, number>()
      let valid202 = 0
      for (let i = 0; i < count; i += 20) {
        const wave = Array.from({ length: Math.min(20, count - i) }, (_, j) => generate(random, i + j))
        const answers = await Promise.all(
          wave.map(async (a) => {
            const r = await fetch(`${url}${a.path}`, {
              method: a.method,
              headers: a.headers,
              ...(a.body !== undefined ? { body: a.body } : {}),
            }).catch(() => undefined)
            await r?.arrayBuffer().catch(() => {})
            return { status: r?.status ?? 0, valid: a.valid === true }
          }),
        )
        for (const { status, valid } of answers) {
          statuses.set(status, (statuses.get(status) ?? 0) + 1)
          if (valid && status === 202) valid202++
        }
        if (i % 500 === 0) await slowBody(port)
      }
      return { statuses, valid202 }
    }
    await fire(Math.floor(requests / 3)) // warm-up: JIT, pools and caches reach their size
    const before = await rss(url)
    const total = async () =>
      [...(await watermarks(admin, ns.topics.main('email'))).values()].reduce((s, m) => s + m.high, 0)
    const highBefore = await total()
    const { statuses, valid202 } = await fire(requests)
    const growth = (await rss(url)) - before
    const grown = (await total()) - highBefore
    return { statuses, valid202, growth, grown, alive: api.child.exitCode === null }
  } finally {
    api.kill('SIGTERM')
    await api.exited
  }
}

test('thousands of hostile requests: no 5xx, no crash, only valid ones reach Kafka, memory bounded', async (t) => {
  const result = await run(false)
  t.diagnostic(
    `answers by status: ${JSON.stringify(Object.fromEntries(result.statuses))}; rss growth ${(result.growth / 2 ** 20).toFixed(1)} MiB`,
  )
  assert.equal(result.alive, true, 'the api is still running')
  const fiveHundreds = [...result.statuses].filter(([s]) => s >= 500 || s === 0)
  assert.deepEqual(fiveHundreds, [], 'no 5xx and no dropped connection')
  assert.ok(result.valid202 > 0)
  assert.equal(result.grown, result.valid202, 'the topic grew by exactly the valid requests')
  assert.ok(
    result.growth < memoryBoundBytes,
    `resident memory grew ${(result.growth / 2 ** 20).toFixed(1)} MiB`,
  )
})

test('negative control: a deliberately leaking api fails the memory bound', async (t) => {
  const result = await run(true)
  t.diagnostic(`rss growth with the leak: ${(result.growth / 2 ** 20).toFixed(1)} MiB`)
  assert.ok(result.growth >= memoryBoundBytes, 'the memory check can fail')
})
