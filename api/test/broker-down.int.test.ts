// What the api promises when its servers fail, on a private broker and Redis: a 202 is never given without
// Kafka's acknowledgement (broker stopped, or frozen mid-write, even for a concurrent duplicate), it recovers by
// itself, Redis down degrades only idempotency and status reads, and SIGTERM finishes requests in flight.
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { connect } from 'node:net'
import { after, before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { createRedis, type Redis } from '@herald/shared/redis/client'
import { redisKeys } from '@herald/shared/redis/keys'
import { topicNames } from '@herald/shared/topics'
import { kafkaPid, startKafka, stopKafka } from '../../dev/lib/kafka.ts'
import { startRedis, stopRedis } from '../../dev/lib/redis.ts'
import { freePort, type PrivateStack, startPrivateStack } from '../../test/helpers.ts'
import { testKafka } from '../../test/support/fixtures.ts'
import { eventually, freeze, startService } from '../../test/support/service-process.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const deadlineMs = 1500
const keys = redisKeys('herald')
let stack: PrivateStack
let api: RunningApi
let redis: Redis

before(async () => {
  stack = await startPrivateStack()
  const config = loadConfig(
    {
      KAFKA_BROKERS: stack.brokers,
      REDIS_URL: stack.redisUrl,
      PORT: '0',
      TOPIC_PARTITIONS: '2',
      DEFAULT_EMAIL_TO: 'oncall@example.com',
      PRODUCE_TIMEOUT_MS: String(deadlineMs),
    },
    'api',
  )
  api = await startApi(config, createLogger({ service: 'api', level: 'silent' }))
  redis = createRedis(stack.redisUrl, { maxRetriesPerRequest: 1 })
  await redis.connect()
})

after(async () => {
  redis?.disconnect()
  await api?.stop()
  await stack?.destroy()
})

async function timedPost(headers: Record<string, string> = {}, message = 'are you there?') {
  const started = performance.now()
  const r = await fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ channel: 'email', message }),
  })
  return {
    status: r.status,
    retryAfter: r.headers.get('retry-after'),
    replayed: r.headers.get('idempotent-replayed'),
    body: (await r.json()) as Record<string, string>,
    ms: performance.now() - started,
  }
}

/** Whether a new TCP connection to the port is accepted. */
function connects(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

/** Ids of the records in the email topic whose message is `message`, read up to the current end. */
async function idsInKafka(message: string): Promise<string[]> {
  const kafka = testKafka(stack.brokers)
  const admin = kafka.admin()
  await admin.connect()
  const topic = topicNames('notifications').main('email')
  const groupId = `broker-down-reader-${randomUUID()}`
  const consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 })
  try {
    const ends = new Map(
      (await admin.fetchTopicOffsets(topic))
        .filter((p) => Number(p.high) > Number(p.low))
        .map((p) => [p.partition, Number(p.high)]),
    )
    const ids: string[] = []
    if (ends.size === 0) return ids
    await consumer.connect()
    await consumer.subscribe({ topic, fromBeginning: true })
    await new Promise<void>((resolve) => {
      void consumer.run({
        eachMessage: async ({ partition, message: m }) => {
          const record = JSON.parse(m.value?.toString('utf8') ?? '{}') as { id?: string; message?: string }
          if (record.message === message && record.id) ids.push(record.id)
          if (Number(m.offset) >= (ends.get(partition) ?? 0) - 1) ends.delete(partition)
          if (ends.size === 0) resolve()
        },
      })
    })
    return ids
  } finally {
    await consumer.disconnect()
    await admin.deleteGroups([groupId]).catch(() => {})
    await admin.disconnect()
  }
}

const accepted = () =>
  eventually('a 202 again', async () => ((await timedPost()).status === 202 ? true : undefined), 60_000, 500)

test('with the broker stopped, posting answers 503 with Retry-After within the deadline, then recovers', async () => {
  assert.equal((await timedPost()).status, 202)
  await stopKafka(stack.stack.kafka)
  const answers = await Promise.all([timedPost(), timedPost(), timedPost()])
  for (const a of answers) {
    assert.equal(a.status, 503)
    assert.equal(a.body.error, 'unavailable')
    assert.match(a.body.message ?? '', /outcome unknown/)
    assert.ok(Number(a.retryAfter) >= 1)
    assert.ok(a.ms < deadlineMs + 1000, `answered in ${Math.round(a.ms)} ms`)
  }
  const ready = await fetch(`${api.url}/readyz`)
  assert.equal(ready.status, 503, '/readyz fails without Kafka')
  await startKafka(stack.stack.kafka)
  await accepted()
  assert.equal((await fetch(`${api.url}/readyz`)).status, 200)
})

test('with the broker frozen mid-write, no 202 is given, not even to a concurrent duplicate; a retry with the same key gets the same id once it is back', async () => {
  const pid = kafkaPid(stack.stack.kafka)
  assert.ok(pid)
  await freeze(pid)
  let held: Record<string, string> = {}
  try {
    const answers = await Promise.all([
      timedPost({ 'idempotency-key': 'frozen-1' }),
      timedPost({ 'idempotency-key': 'frozen-1' }),
    ])
    for (const a of answers) {
      // The holder's write times out (503); the duplicate waited for it within the same deadline and
      // answers 503 (outcome unknown) or 409 (still in flight) — never a replayed 202.
      assert.ok([503, 409].includes(a.status), `status ${a.status}`)
      assert.ok(Number(a.retryAfter) >= 1)
      assert.ok(a.ms < deadlineMs + 1000, `answered in ${Math.round(a.ms)} ms`)
    }
    assert.ok(answers.some((a) => a.status === 503))
    held = await redis.hgetall(keys.idempotency('anonymous', 'frozen-1'))
    assert.equal(held.state, 'pending', 'the key waits for the fate of the write kafkajs still retries')
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  // Once the broker is back, the careful client's retry gets a 202 with the id of the first write: replayed
  // if kafkajs got that write acknowledged, written again (same id) if it gave up on it.
  const retried = await eventually(
    'the retry accepted',
    async () => {
      const r = await timedPost({ 'idempotency-key': 'frozen-1' })
      return r.status === 202 ? r : undefined
    },
    60_000,
    500,
  )
  assert.match(retried.body.id ?? '', /^[\da-f-]{36}$/)
  assert.equal(retried.body.id, held.id)
  const again = await timedPost({ 'idempotency-key': 'frozen-1' })
  assert.deepEqual([again.status, again.replayed, again.body.id], [202, 'true', retried.body.id])
})

test('a write that outlives its deadline keeps its Idempotency-Key and id until its fate is known; the retry gets that id and Kafka holds no other', async () => {
  const message = `outlived ${randomUUID()}`
  const key = keys.idempotency('anonymous', 'outlived-1')
  const pid = kafkaPid(stack.stack.kafka)
  assert.ok(pid)
  await freeze(pid)
  let held: Record<string, string> = {}
  try {
    const first = await timedPost({ 'idempotency-key': 'outlived-1' }, message)
    assert.equal(first.status, 503, 'no acknowledgement within the deadline')
    held = await redis.hgetall(key)
    // kafkajs goes on retrying the write after the 503; wait (broker still frozen) until it gave up.
    await eventually(
      'the first write to fail for good',
      async () => ((await redis.hget(key, 'state')) === 'pending' ? undefined : true),
      60_000,
      200,
    )
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  // The frozen broker may still append what it had received: the retry must not bring a second id.
  const retried = await eventually(
    'the retry accepted',
    async () => {
      const r = await timedPost({ 'idempotency-key': 'outlived-1' }, message)
      return r.status === 202 ? r : undefined
    },
    60_000,
    500,
  )
  const ids = new Set(await idsInKafka(message))
  assert.deepEqual([...ids], [retried.body.id], 'one id for one Idempotency-Key')
  assert.equal(held.state, 'pending', 'the key stayed pending after the 503')
  assert.equal(held.id, retried.body.id, 'the retry reused the id of the first write')
})

test('with Redis down, plain sends are still accepted; idempotent sends and status reads answer 503', async () => {
  const accepted = await timedPost()
  assert.equal(accepted.status, 202)
  await stopRedis(stack.stack.redis)
  try {
    await eventually('the api sees Redis gone', async () => {
      const r = await fetch(`${api.url}/readyz`)
      return ((await r.json()) as { redis: string }).redis === 'degraded' ? true : undefined
    })
    const ready = await fetch(`${api.url}/readyz`)
    assert.equal(ready.status, 200, 'Redis down is degraded, not unready: Kafka is the promise')
    const plain = await timedPost()
    assert.equal(plain.status, 202)
    const keyed = await timedPost({ 'idempotency-key': 'no-redis' })
    assert.equal(keyed.status, 503)
    assert.ok(Number(keyed.retryAfter) >= 1)
    const status = await fetch(`${api.url}/api/v1/notification/${accepted.body.id}`)
    assert.equal(status.status, 503)
    assert.ok(Number(status.headers.get('retry-after')) >= 1)
  } finally {
    await startRedis(stack.stack.redis)
  }
  const keyed = await eventually(
    'idempotent sends accepted again',
    async () => {
      const r = await timedPost({ 'idempotency-key': 'no-redis' })
      return r.status === 202 ? r : undefined
    },
    30_000,
    250,
  )
  assert.equal(keyed.replayed, null)
  const metrics = await (await fetch(`${api.url}/metrics`)).text()
  assert.match(metrics, /^herald_status_write_failures_total [1-9]/m, 'the missing queued status was counted')
})

test('the api process stops on SIGTERM: no new connections, requests in flight answered, exit 0', async () => {
  const port = await freePort()
  const service = startService('api-shutdown', 'api', {
    KAFKA_BROKERS: stack.brokers,
    REDIS_URL: stack.redisUrl,
    PORT: String(port),
    TOPIC_PARTITIONS: '2',
    DEFAULT_EMAIL_TO: 'oncall@example.com',
    PRODUCE_TIMEOUT_MS: '4000',
    KEY_PREFIX: 'shutdown',
  })
  try {
    await service.waitForLog((l) => String(l.msg).startsWith('api listening'))
    const url = `http://127.0.0.1:${port}/api/v1/notification`
    const send = () =>
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ channel: 'email', message: 'in flight at shutdown' }),
      }).then(
        (r) => r.status,
        (error: unknown) => `failed: ${String(error)}`,
      )
    assert.equal(await send(), 202, 'warm: producer connected')
    // Freeze the broker so that requests are surely in flight when the signal arrives.
    const pid = kafkaPid(stack.stack.kafka)
    assert.ok(pid)
    await freeze(pid)
    let inFlight: Array<Promise<number | string>>
    try {
      inFlight = Array.from({ length: 5 }, send)
      // All five received (waiting on the frozen broker) before the signal, however loaded the machine.
      await eventually('five requests in flight', async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()
        const match = /^herald_http_requests_in_flight\{route="\/api\/v1\/notification"\} (\d+)/m.exec(text)
        return Number(match?.[1]) === 5 ? true : undefined
      })
      service.kill('SIGTERM')
      await service.waitForLog((l) => String(l.msg).startsWith('shutting down'), 30_000)
      // The log line is written just before the listener closes: a prompt probe may still get in.
      await eventually('no new connections once stopping', async () =>
        (await connects(port)) ? undefined : true,
      )
    } finally {
      process.kill(pid, 'SIGCONT')
    }
    assert.deepEqual(await Promise.all(inFlight), [202, 202, 202, 202, 202])
    assert.equal(await service.exited, 0)
  } finally {
    service.kill('SIGKILL')
  }
})
