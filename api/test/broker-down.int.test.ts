// A 202 is never given without Kafka's acknowledgement: the broker stopped or frozen mid-write gets 503 with
// Retry-After within the deadline, and the api recovers by itself. Runs on a private broker and Redis.
import assert from 'node:assert/strict'
import { after, before, test } from 'node:test'
import { loadConfig } from '@herald/shared/config'
import { createLogger } from '@herald/shared/logger'
import { kafkaPid, startKafka, stopKafka } from '../../dev/lib/kafka.ts'
import { type PrivateStack, startPrivateStack } from '../../test/helpers.ts'
import { eventually } from '../../test/support/service-process.ts'
import { type RunningApi, startApi } from '../src/server.ts'

const deadlineMs = 1500
let stack: PrivateStack
let api: RunningApi

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
})

after(async () => {
  await api?.stop()
  await stack?.destroy()
})

async function timedPost(headers: Record<string, string> = {}) {
  const started = performance.now()
  const r = await fetch(`${api.url}/api/v1/notification`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ channel: 'email', message: 'are you there?' }),
  })
  return {
    status: r.status,
    retryAfter: r.headers.get('retry-after'),
    body: (await r.json()) as Record<string, string>,
    ms: performance.now() - started,
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

test('with the broker frozen mid-write, no 202 is given; a retry with the same key is accepted once it is back', async () => {
  const pid = kafkaPid(stack.stack.kafka)
  assert.ok(pid)
  process.kill(pid, 'SIGSTOP')
  try {
    const frozen = await timedPost({ 'idempotency-key': 'frozen-1' })
    assert.equal(frozen.status, 503)
    assert.ok(frozen.ms < deadlineMs + 1000, `answered in ${Math.round(frozen.ms)} ms`)
  } finally {
    process.kill(pid, 'SIGCONT')
  }
  // The failed first attempt released its key: the careful client's retry writes and gets a real 202.
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
})
